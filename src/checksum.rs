//! Hashing while streaming (SHA-256 and CRC64NVME always; MD5 and CRC32C when the source
//! states them, so they can be checked), and the encodings the S3 API uses for them.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::composite::{Composite, CompositeHasher};

/// Running digests over one object's bytes, fed chunk by chunk.
#[derive(Clone)]
pub struct Hasher {
    pub(crate) sha256: Sha256,
    pub(crate) md5: Option<Md5>,
    pub(crate) crc32c: Option<u32>,
    pub(crate) crc32: Option<crc_fast::Digest>,
    pub(crate) composite: Option<CompositeHasher>,
    pub(crate) crc64nvme: crc_fast::Digest,
    pub(crate) len: u64,
}

/// Final digests of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub sha256: [u8; 32],
    pub md5: Option<[u8; 16]>,
    pub crc32c: Option<u32>,
    pub crc32: Option<u32>,
    /// The digest of the parts' digests, over the layout the source stated.
    pub composite: Option<Vec<u8>>,
    /// The full-object CRC64NVME R2 checks on a completed multipart upload.
    pub crc64nvme: u64,
    pub len: u64,
}

impl Hasher {
    /// SHA-256 only.
    pub fn new() -> Hasher {
        Hasher::with(false, false)
    }

    /// SHA-256, plus MD5 and/or CRC32C when a source digest is to be checked.
    pub fn with(md5: bool, crc32c: bool) -> Hasher {
        Hasher {
            sha256: Sha256::new(),
            md5: md5.then(Md5::new),
            crc32c: crc32c.then_some(0),
            crc32: None,
            composite: None,
            crc64nvme: crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme),
            len: 0,
        }
    }

    /// Also the whole object's CRC32 (an S3 FULL_OBJECT CRC32 to check).
    pub fn and_crc32(mut self) -> Hasher {
        self.crc32 = Some(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32IsoHdlc));
        self
    }

    /// Also a composite digest over this part layout.
    pub fn and_composite(mut self, c: &Composite) -> Hasher {
        self.composite = Some(CompositeHasher::new(c));
        self
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.sha256.update(chunk);
        if let Some(m) = self.md5.as_mut() {
            m.update(chunk);
        }
        if let Some(c) = self.crc32c.as_mut() {
            *c = crc32c::crc32c_append(*c, chunk);
        }
        if let Some(c) = self.crc32.as_mut() {
            c.update(chunk);
        }
        if let Some(c) = self.composite.as_mut() {
            c.update(chunk);
        }
        self.crc64nvme.update(chunk);
        self.len += chunk.len() as u64;
    }

    pub fn finish(self) -> Digests {
        Digests {
            sha256: self.sha256.finalize().into(),
            md5: self.md5.map(|m| m.finalize().into()),
            crc32c: self.crc32c,
            crc32: self.crc32.map(|c| c.finalize() as u32),
            composite: self.composite.map(CompositeHasher::finish),
            crc64nvme: self.crc64nvme.finalize(),
            len: self.len,
        }
    }
}

/// The CRC64NVME of one buffer (a multipart part).
pub fn crc64nvme(bytes: &[u8]) -> u64 {
    let mut d = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme);
    d.update(bytes);
    d.finalize()
}

/// The MD5 of one buffer (a part's Content-MD5).
pub fn md5(bytes: &[u8]) -> [u8; 16] {
    Md5::digest(bytes).into()
}

/// The ETag S3 (and R2) give a multipart object: the MD5 of the parts' binary MD5s,
/// hex, then `-N`.
pub fn multipart_etag(parts: &[[u8; 16]]) -> String {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    format!("{}-{}", hex::encode(h.finalize()), parts.len())
}

/// A CRC64NVME as the S3 API writes it: base64 of its 8 big-endian bytes.
pub fn crc64nvme_b64(crc: u64) -> String {
    b64(&crc.to_be_bytes())
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher::new()
    }
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

pub fn from_b64(text: &str) -> Option<Vec<u8>> {
    B64.decode(text.trim()).ok()
}

/// An ETag that is a plain MD5 (single-part upload, no SSE-KMS): 32 hex digits.
pub fn etag_md5(etag: &str) -> Option<[u8; 16]> {
    let t = etag.trim_matches('"');
    if t.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    hex::decode_to_slice(t, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_equals_one_shot() {
        let mut h = Hasher::with(true, true);
        h.update(b"hello ");
        h.update(b"world");
        let d = h.finish();
        assert_eq!(d.sha256, sha256(b"hello world"));
        assert_eq!(
            hex::encode(d.md5.unwrap()),
            "5eb63bbbe01eeed093cb22bb8f5acdc3"
        );
        assert_eq!(d.crc32c.unwrap(), crc32c::crc32c(b"hello world"));
        assert_eq!(d.len, 11);
    }

    #[test]
    fn crc64nvme_is_the_catalogued_crc_64_nvme() {
        // The CRC catalogue's check value of CRC-64/NVME, over "123456789" in two chunks.
        let mut h = Hasher::new();
        h.update(b"1234");
        h.update(b"56789");
        let d = h.finish();
        assert_eq!(d.crc64nvme, 0xae8b_1486_0a79_9888);
        assert_eq!(
            crc64nvme_b64(d.crc64nvme),
            b64(&0xae8b_1486_0a79_9888u64.to_be_bytes())
        );
    }

    #[test]
    fn a_multipart_etag_is_the_md5_of_the_part_md5s() {
        let parts = [md5(b"a"), md5(b"b")];
        let mut cat = Vec::new();
        cat.extend_from_slice(&parts[0]);
        cat.extend_from_slice(&parts[1]);
        assert_eq!(
            multipart_etag(&parts),
            format!("{}-2", hex::encode(md5(&cat)))
        );
    }

    #[test]
    fn multipart_etags_are_not_md5() {
        assert!(etag_md5("\"5eb63bbbe01eeed093cb22bb8f5acdc3\"").is_some());
        assert!(etag_md5("5eb63bbbe01eeed093cb22bb8f5acdc3-2").is_none());
        assert!(etag_md5("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz").is_none());
    }
}
