//! What changed at the source since a manifest recorded it: the rule `run`, `plan` and
//! `verify --against-source` share for delta runs. An object is unchanged only while its
//! size, its stated SHA-256 (where the source states one) and its version signal
//! (`source_version`: S3 ETag, GCS generation, local size + mtime in nanoseconds, SQLite
//! row digest) are all what was recorded when it was verified.

use crate::manifest::ObjectRecord;
use crate::source::ObjectInfo;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Never verified in the target by this manifest (new, or failed before).
    New,
    /// Verified once, but the source has changed since: the reason, in words.
    Changed(String),
    /// Verified, and the source still holds what was copied.
    Unchanged,
}

/// Compares what the source lists now with the manifest's last word on it.
pub fn change_since(prev: Option<&ObjectRecord>, info: &ObjectInfo) -> Change {
    let Some(prev) = prev.filter(|p| p.status.is_verified()) else {
        return Change::New;
    };
    if prev.size != info.size {
        return Change::Changed(format!(
            "size changed at the source: {} bytes when copied, {} now",
            prev.size, info.size
        ));
    }
    if let (Some(now), Some(then)) = (info.digests.sha256, &prev.sha256) {
        if hex::encode(now) != *then {
            return Change::Changed("its SHA-256 changed at the source".into());
        }
    }
    if let (Some(now), Some(then)) = (&info.version, &prev.source_version) {
        if now != then {
            return Change::Changed(format!(
                "changed at the source since it was copied (version {then} then, {now} now)"
            ));
        }
    }
    Change::Unchanged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Status;

    fn record(status: Status, size: u64, version: Option<&str>) -> ObjectRecord {
        let mut r = ObjectRecord::new("k", "k", size, status);
        r.source_version = version.map(str::to_string);
        r
    }

    fn info(size: u64, version: Option<&str>) -> ObjectInfo {
        let mut i = ObjectInfo::new("k", size);
        i.version = version.map(str::to_string);
        i
    }

    #[test]
    fn same_size_with_a_new_version_is_a_change() {
        let prev = record(Status::Copied, 5, Some("5:100"));
        assert_eq!(
            change_since(Some(&prev), &info(5, Some("5:100"))),
            Change::Unchanged
        );
        assert!(matches!(
            change_since(Some(&prev), &info(5, Some("5:200"))),
            Change::Changed(_)
        ));
        assert!(matches!(
            change_since(Some(&prev), &info(6, Some("5:100"))),
            Change::Changed(_)
        ));
    }

    #[test]
    fn only_verified_records_count_and_old_manifests_fall_back_to_size() {
        let failed = record(Status::Failed, 5, Some("v"));
        assert_eq!(
            change_since(Some(&failed), &info(5, Some("v"))),
            Change::New
        );
        assert_eq!(change_since(None, &info(5, None)), Change::New);
        let old = record(Status::Identical, 5, None);
        assert_eq!(
            change_since(Some(&old), &info(5, Some("v"))),
            Change::Unchanged
        );
    }
}
