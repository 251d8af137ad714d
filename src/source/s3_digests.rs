//! What an S3 GET states about an object's bytes, as digests to check while they stream:
//! the ETag (an MD5 for a plain single-part upload; for a multipart one the MD5 of its
//! parts' MD5s, `…-N`), and additional checksums — whole-object values (a single PUT's,
//! or a multipart upload's FULL_OBJECT CRC64NVME/CRC32/CRC32C) checked directly, COMPOSITE
//! ones (`…-N`) over the part layout. SSE-KMS and SSE-C ETags are not digests of the bytes.

use crate::checksum::{etag_md5, from_b64};
use crate::composite::{Composite, PartAlgorithm};
use crate::object::SourceDigests;

/// The digest headers of one GET (checksum mode on).
#[derive(Debug, Default, Clone, Copy)]
pub struct Stated<'a> {
    pub etag: Option<&'a str>,
    /// SSE-KMS or SSE-C: the ETag is not a digest of the bytes.
    pub encrypted_etag: bool,
    pub sha256: Option<&'a str>,
    pub sha1: Option<&'a str>,
    pub crc32: Option<&'a str>,
    pub crc32c: Option<&'a str>,
    pub crc64nvme: Option<&'a str>,
}

/// The number of parts an S3 ETag or composite checksum names (`…-N`).
pub fn parts_in(value: &str) -> Option<usize> {
    let (_, n) = value.trim_matches('"').rsplit_once('-')?;
    n.parse().ok().filter(|n| *n >= 1)
}

/// A whole-object value (no `-N`) of exactly `len` bytes.
fn whole<const N: usize>(value: Option<&str>) -> Option<[u8; N]> {
    let v = value.filter(|v| !v.contains('-'))?;
    from_b64(v)?.try_into().ok()
}

/// A composite value `base64-N` as raw bytes, with N.
fn composite(value: Option<&str>) -> Option<(Vec<u8>, usize)> {
    let (b64, _) = value?.rsplit_once('-')?;
    Some((from_b64(b64)?, parts_in(value?)?))
}

/// The digests to check, given the part sizes where the object is multipart and its
/// layout is known.
pub fn digests(s: &Stated, layout: Option<&[u64]>) -> SourceDigests {
    let mut d = SourceDigests {
        md5: if s.encrypted_etag {
            None
        } else {
            s.etag.and_then(etag_md5)
        },
        sha256: whole::<32>(s.sha256),
        crc32c: whole::<4>(s.crc32c).map(u32::from_be_bytes),
        crc32: whole::<4>(s.crc32).map(u32::from_be_bytes),
        crc64nvme: whole::<8>(s.crc64nvme).map(u64::from_be_bytes),
        etag: s.etag.map(|e| e.trim_matches('"').to_string()),
        composite: None,
    };
    let Some(sizes) = layout else {
        return d;
    };
    // One composite is enough: a stated checksum first, else the multipart ETag.
    let checksums = [
        (PartAlgorithm::Sha256, s.sha256),
        (PartAlgorithm::Sha1, s.sha1),
        (PartAlgorithm::Crc32c, s.crc32c),
        (PartAlgorithm::Crc32, s.crc32),
    ];
    let etag = if s.encrypted_etag { None } else { s.etag };
    let from_etag = etag.and_then(|e| {
        let (hex_part, _) = e.trim_matches('"').rsplit_once('-')?;
        Some((hex::decode(hex_part).ok()?, parts_in(e)?))
    });
    let found = checksums
        .into_iter()
        .find_map(|(a, v)| composite(v).map(|c| (a, c)))
        .or(from_etag.map(|c| (PartAlgorithm::Md5, c)));
    if let Some((algorithm, (stated, n))) = found {
        if n == sizes.len() {
            d.composite = Some(Composite {
                algorithm,
                part_sizes: sizes.to_vec(),
                stated,
            });
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::b64;

    #[test]
    fn single_part_etags_are_md5s_unless_encrypted() {
        let s = Stated {
            etag: Some("\"5eb63bbbe01eeed093cb22bb8f5acdc3\""),
            ..Default::default()
        };
        assert!(digests(&s, None).md5.is_some());
        let kms = Stated {
            encrypted_etag: true,
            ..s
        };
        assert!(!digests(&kms, None).can_check());
    }

    #[test]
    fn full_object_checksums_are_checked_directly() {
        let s = Stated {
            etag: Some("\"0123456789abcdef0123456789abcdef-3\""),
            crc64nvme: Some("AAAAAAAAAAE="),
            ..Default::default()
        };
        let d = digests(&s, None);
        assert_eq!(d.crc64nvme, Some(1));
        assert!(d.md5.is_none() && d.composite.is_none());
    }

    #[test]
    fn composites_need_a_layout_of_as_many_parts() {
        let sha = format!("{}-2", b64(&[9u8; 32]));
        let s = Stated {
            etag: Some("\"0123456789abcdef0123456789abcdef-2\""),
            sha256: Some(&sha),
            ..Default::default()
        };
        assert!(digests(&s, None).composite.is_none(), "no layout");
        assert!(
            digests(&s, Some(&[5, 5, 1])).composite.is_none(),
            "3 parts, not 2"
        );
        let c = digests(&s, Some(&[5, 1])).composite.unwrap();
        assert_eq!(c.algorithm, PartAlgorithm::Sha256);
        assert_eq!(c.stated, vec![9u8; 32]);
        let etag_only = Stated { sha256: None, ..s };
        let c = digests(&etag_only, Some(&[5, 1])).composite.unwrap();
        assert_eq!(c.algorithm, PartAlgorithm::Md5);
        assert_eq!(hex::encode(&c.stated), "0123456789abcdef0123456789abcdef");
        let kms = Stated {
            encrypted_etag: true,
            ..etag_only
        };
        assert!(digests(&kms, Some(&[5, 1])).composite.is_none());
    }

    #[test]
    fn part_counts() {
        assert_eq!(parts_in("\"abc-12\""), Some(12));
        assert_eq!(parts_in("abc"), None);
        assert_eq!(parts_in("abc-0"), None);
    }
}
