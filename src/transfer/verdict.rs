//! Whether an object in the target holds the bytes this tool wrote: one comparison for
//! the check right after an upload, for "is this still ours?" (resume, delta, rollback)
//! and for `verify`, so the three can never disagree about what counts as proof.

use std::fmt;

use crate::checksum::b64;
use crate::manifest::ObjectRecord;
use crate::target::TargetObject;

/// What we know we wrote at a key.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wrote<'a> {
    pub size: u64,
    /// The SHA-256 sent with the upload as the target states it (base64; for multipart
    /// on R2 the composite of the parts, `…-N`).
    pub upload_checksum: Option<&'a str>,
    /// The whole object's SHA-256 (hex, as the manifest keeps it).
    pub sha256_hex: Option<&'a str>,
    /// The full-object CRC64NVME sent with a multipart upload (base64).
    pub crc64nvme: Option<&'a str>,
    /// The ETag the PUT or Complete answered.
    pub etag: Option<&'a str>,
}

impl<'a> Wrote<'a> {
    pub fn from_record(rec: &'a ObjectRecord) -> Self {
        Wrote {
            size: rec.size,
            upload_checksum: rec.target_checksum.as_deref(),
            sha256_hex: rec.sha256.as_deref(),
            crc64nvme: rec.target_crc64nvme.as_deref(),
            etag: rec.target_etag.as_deref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The size and a checksum (or the ETag) agree.
    Same,
    /// The sizes agree and the target states nothing else we can compare.
    SizeOnly,
    Differs(Mismatch),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    Size { target: u64, wrote: u64 },
    Crc64nvme,
    Sha256,
    Etag { now: String, then: String },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Size { target, wrote } => write!(
                f,
                "size differs: the target holds {target} bytes, {wrote} were written"
            ),
            Mismatch::Crc64nvme => f.write_str("CRC64NVME differs from the bytes written"),
            Mismatch::Sha256 => f.write_str("SHA-256 differs from the bytes written"),
            Mismatch::Etag { now, then } => write!(f, "ETag differs: {now} now, {then} at upload"),
        }
    }
}

/// The strongest comparison both sides allow: a full-object CRC64NVME (R2, multipart)
/// decides where both have one, else the SHA-256, else the ETag.
pub fn compare(obj: &TargetObject, wrote: &Wrote) -> Verdict {
    if obj.size != wrote.size {
        return Verdict::Differs(Mismatch::Size {
            target: obj.size,
            wrote: wrote.size,
        });
    }
    let agree = |same: bool, mismatch: Mismatch| match same {
        true => Verdict::Same,
        false => Verdict::Differs(mismatch),
    };
    if let (Some(reported), Some(ours)) = (&obj.checksum_crc64nvme, wrote.crc64nvme) {
        return agree(reported == ours, Mismatch::Crc64nvme);
    }
    if let Some(reported) = &obj.checksum_sha256 {
        if wrote.upload_checksum.is_some() || wrote.sha256_hex.is_some() {
            let proven = checksum_proves(reported, wrote.upload_checksum, wrote.sha256_hex);
            return agree(proven, Mismatch::Sha256);
        }
    }
    match (&obj.etag, wrote.etag) {
        (Some(now), Some(then)) => agree(
            now == then,
            Mismatch::Etag {
                now: now.clone(),
                then: then.to_string(),
            },
        ),
        _ => Verdict::SizeOnly,
    }
}

/// Whether the target object is exactly what a record says we wrote (size alone is not
/// enough to call it ours).
pub fn holds_what_we_wrote(obj: &TargetObject, rec: &ObjectRecord) -> bool {
    compare(obj, &Wrote::from_record(rec)) == Verdict::Same
}

/// Whether a reported checksum is the one we computed (R2 may omit the `-N`).
pub fn checksum_matches(reported: &str, ours: &str) -> bool {
    reported == ours
        || ours
            .split_once('-')
            .is_some_and(|(base, _)| reported == base)
}

/// Whether the SHA-256 a target reports proves bytes we wrote: the value we computed for
/// the upload (for multipart on R2 the composite of the part checksums), or the
/// whole-object SHA-256 (a rehearsal directory re-hashes the file, whatever the upload
/// was). `whole_hex` is the whole-object digest as the manifest keeps it (hex).
pub fn checksum_proves(reported: &str, upload: Option<&str>, whole_hex: Option<&str>) -> bool {
    let whole = whole_hex.and_then(|h| hex::decode(h).ok()).map(|d| b64(&d));
    upload.is_some_and(|u| checksum_matches(reported, u)) || whole.as_deref() == Some(reported)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA_HEX: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn sha_b64() -> String {
        b64(&hex::decode(SHA_HEX).unwrap())
    }

    fn object(size: u64) -> TargetObject {
        TargetObject {
            key: "k".into(),
            size,
            ..Default::default()
        }
    }

    fn wrote(size: u64) -> Wrote<'static> {
        Wrote {
            size,
            sha256_hex: Some(SHA_HEX),
            ..Default::default()
        }
    }

    #[test]
    fn size_decides_first() {
        let mut obj = object(5);
        obj.checksum_sha256 = Some(sha_b64());
        assert_eq!(
            compare(&obj, &wrote(4)),
            Verdict::Differs(Mismatch::Size {
                target: 5,
                wrote: 4
            })
        );
    }

    #[test]
    fn crc64nvme_decides_where_both_have_one() {
        let mut obj = object(4);
        obj.checksum_crc64nvme = Some("AAAAAAAAAAA=".into());
        // A SHA-256 that would prove it does not outvote the CRC.
        obj.checksum_sha256 = Some(sha_b64());
        let w = Wrote {
            crc64nvme: Some("BBBBBBBBBBB="),
            ..wrote(4)
        };
        assert_eq!(compare(&obj, &w), Verdict::Differs(Mismatch::Crc64nvme));
        let w = Wrote {
            crc64nvme: Some("AAAAAAAAAAA="),
            ..w
        };
        assert_eq!(compare(&obj, &w), Verdict::Same);
    }

    #[test]
    fn sha256_proves_by_whole_or_upload_checksum() {
        let mut obj = object(4);
        obj.checksum_sha256 = Some(sha_b64());
        assert_eq!(compare(&obj, &wrote(4)), Verdict::Same);
        // R2's multipart composite, stated without its "-N".
        obj.checksum_sha256 = Some("Y29tcG9zaXRl".into());
        let w = Wrote {
            upload_checksum: Some("Y29tcG9zaXRl-3"),
            ..wrote(4)
        };
        assert_eq!(compare(&obj, &w), Verdict::Same);
        obj.checksum_sha256 = Some("b3RoZXI=".into());
        assert_eq!(compare(&obj, &w), Verdict::Differs(Mismatch::Sha256));
    }

    #[test]
    fn etag_where_no_checksum_compares() {
        let mut obj = object(4);
        obj.etag = Some("\"abc\"".into());
        let w = Wrote {
            etag: Some("\"abc\""),
            ..wrote(4)
        };
        assert_eq!(compare(&obj, &w), Verdict::Same);
        let w = Wrote {
            etag: Some("\"def\""),
            ..w
        };
        assert_eq!(
            compare(&obj, &w),
            Verdict::Differs(Mismatch::Etag {
                now: "\"abc\"".into(),
                then: "\"def\"".into()
            })
        );
    }

    #[test]
    fn size_only_is_not_ours() {
        let obj = object(4);
        assert_eq!(compare(&obj, &wrote(4)), Verdict::SizeOnly);
        let mut rec = ObjectRecord::new("k", "k", 4, crate::manifest::Status::Copied);
        rec.sha256 = Some(SHA_HEX.into());
        assert!(!holds_what_we_wrote(&obj, &rec));
        let mut proven = obj.clone();
        proven.checksum_sha256 = Some(sha_b64());
        assert!(holds_what_we_wrote(&proven, &rec));
    }

    #[test]
    fn mismatches_say_what_differs() {
        let size = Mismatch::Size {
            target: 5,
            wrote: 4,
        };
        assert_eq!(
            size.to_string(),
            "size differs: the target holds 5 bytes, 4 were written"
        );
        assert!(Mismatch::Crc64nvme
            .to_string()
            .starts_with("CRC64NVME differs"));
    }
}
