//! The checksum algorithms of S3's model, and R2's table of which type each may have.
//!
//! Sources: R2 "S3 API compatibility" (`r2/api/s3/api.mdx`, "Checksum Types"):
//! CRC64NVME is FULL_OBJECT only; CRC32, CRC32C, SHA-1 and SHA-256 are COMPOSITE only.
//! AWS "Checking object integrity in Amazon S3": the algorithm and type of a multipart
//! upload are fixed at CreateMultipartUpload; a composite checksum is the checksum of the
//! concatenated binary part checksums, shown with `-N`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use md5::Digest as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Crc32,
    Crc32c,
    Sha1,
    Sha256,
    Crc64nvme,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    FullObject,
    Composite,
}

#[cfg(test)]
pub const ALL: [Algorithm; 5] = [
    Algorithm::Crc32,
    Algorithm::Crc32c,
    Algorithm::Sha1,
    Algorithm::Sha256,
    Algorithm::Crc64nvme,
];

impl Algorithm {
    pub fn parse(name: &str) -> Option<Algorithm> {
        match name.to_ascii_uppercase().as_str() {
            "CRC32" => Some(Algorithm::Crc32),
            "CRC32C" => Some(Algorithm::Crc32c),
            "SHA1" => Some(Algorithm::Sha1),
            "SHA256" => Some(Algorithm::Sha256),
            "CRC64NVME" => Some(Algorithm::Crc64nvme),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "CRC32",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Crc64nvme => "CRC64NVME",
        }
    }

    /// R2's checksum table: the one type this algorithm may have.
    pub fn r2_kind(self) -> Kind {
        match self {
            Algorithm::Crc64nvme => Kind::FullObject,
            _ => Kind::Composite,
        }
    }

    /// The raw digest of `bytes`.
    pub fn digest(self, bytes: &[u8]) -> Vec<u8> {
        use crc_fast::CrcAlgorithm::{Crc32Iscsi, Crc32IsoHdlc, Crc64Nvme};
        match self {
            Algorithm::Crc32 => (crc_fast::checksum(Crc32IsoHdlc, bytes) as u32)
                .to_be_bytes()
                .to_vec(),
            Algorithm::Crc32c => (crc_fast::checksum(Crc32Iscsi, bytes) as u32)
                .to_be_bytes()
                .to_vec(),
            Algorithm::Sha1 => sha1::Sha1::digest(bytes).to_vec(),
            Algorithm::Sha256 => sha2::Sha256::digest(bytes).to_vec(),
            Algorithm::Crc64nvme => crc_fast::checksum(Crc64Nvme, bytes).to_be_bytes().to_vec(),
        }
    }

    /// The digest as the S3 API writes it (base64).
    pub fn b64(self, bytes: &[u8]) -> String {
        B64.encode(self.digest(bytes))
    }
}

impl Kind {
    pub fn parse(name: &str) -> Option<Kind> {
        match name.to_ascii_uppercase().as_str() {
            "FULL_OBJECT" => Some(Kind::FullObject),
            "COMPOSITE" => Some(Kind::Composite),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::FullObject => "FULL_OBJECT",
            Kind::Composite => "COMPOSITE",
        }
    }
}

/// A composite checksum: the algorithm over the parts' raw digests, base64, `-N`.
pub fn composite(algorithm: Algorithm, part_digests: &[Vec<u8>]) -> String {
    let joined: Vec<u8> = part_digests.concat();
    format!("{}-{}", algorithm.b64(&joined), part_digests.len())
}

pub fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(md5::Md5::digest(bytes))
}

/// A multipart ETag: the MD5 of the parts' binary MD5s, hex, `-N` (R2
/// `objects/multipart-objects.mdx`, uploads after 2023-06-21).
pub fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    let joined: Vec<u8> = part_md5s.iter().flatten().copied().collect();
    format!("{}-{}", md5_hex(&joined), part_md5s.len())
}

pub fn from_b64(text: &str) -> Option<Vec<u8>> {
    B64.decode(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_values_of_the_catalogue() {
        // "123456789": CRC-32/ISO-HDLC cbf43926, CRC-32C e3069283, CRC-64/NVME ae8b14860a799888.
        assert_eq!(
            hex::encode(Algorithm::Crc32.digest(b"123456789")),
            "cbf43926"
        );
        assert_eq!(
            hex::encode(Algorithm::Crc32c.digest(b"123456789")),
            "e3069283"
        );
        assert_eq!(
            hex::encode(Algorithm::Crc64nvme.digest(b"123456789")),
            "ae8b14860a799888"
        );
    }

    #[test]
    fn r2_allows_crc64nvme_only_as_full_object() {
        for a in ALL {
            let want = if a == Algorithm::Crc64nvme {
                Kind::FullObject
            } else {
                Kind::Composite
            };
            assert_eq!(a.r2_kind(), want, "{}", a.name());
        }
    }
}
