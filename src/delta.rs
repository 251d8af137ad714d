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

    /// The verdict as a word, so a table can say what it expects.
    fn verdict(prev: Option<&ObjectRecord>, now: &ObjectInfo) -> &'static str {
        match change_since(prev, now) {
            Change::New => "new",
            Change::Changed(_) => "changed",
            Change::Unchanged => "unchanged",
        }
    }

    #[test]
    fn changes_are_told_by_version_and_size_against_verified_records_only() {
        let copied = record(Status::Copied, 5, Some("5:100"));
        let failed = record(Status::Failed, 5, Some("v"));
        // An old manifest with no source_version falls back to the size.
        let old = record(Status::Identical, 5, None);
        for (prev, now, want) in [
            (Some(&copied), info(5, Some("5:100")), "unchanged"),
            (Some(&copied), info(5, Some("5:200")), "changed"), // same size, new version
            (Some(&copied), info(6, Some("5:100")), "changed"),
            (Some(&failed), info(5, Some("v")), "new"),
            (None, info(5, None), "new"),
            (Some(&old), info(5, Some("v")), "unchanged"),
        ] {
            assert_eq!(verdict(prev, &now), want, "{prev:?} → {now:?}");
        }
    }
}
