//! The plain types sources, targets and the transfer share: an object's HTTP metadata, the
//! digests a source states, and a stream of an object's bytes. Both traits use these, so
//! neither side imports the other.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::stream::{BoxStream, Stream};
use futures::StreamExt;

use crate::error::StoreError;

/// Bytes `start..end` of an object (a ranged read).
pub type ByteRange = std::ops::Range<u64>;

/// A stream of an object's bytes, in chunks; never the whole body at once.
pub type ByteStream = BoxStream<'static, Result<Bytes, StoreError>>;

/// Feeds a whole body through `hasher` as it streams by, and returns the digests.
pub async fn digest(
    mut body: ByteStream,
    mut hasher: crate::checksum::Hasher,
) -> Result<crate::checksum::Digests, StoreError> {
    while let Some(chunk) = body.next().await {
        hasher.update(&chunk?);
    }
    Ok(hasher.finish())
}

/// Boxes a stream fused: polled after its end it says `None` again instead of panicking
/// (an `Unfold` polled after its end panics — an S3 body once did, mid-copy). Every
/// stream an adapter hands out goes through here.
pub fn fused<'a, T>(stream: impl Stream<Item = T> + Send + 'a) -> BoxStream<'a, T> {
    stream.fuse().boxed()
}

/// Bytes to write, with the SHA-256 the target must find in them (R2 refuses a body
/// that does not match: BadDigest).
#[derive(Debug, Clone)]
pub struct Body {
    pub bytes: Bytes,
    pub sha256: [u8; 32],
}

impl Body {
    /// The bytes with their own SHA-256.
    pub fn of(bytes: Bytes) -> Body {
        let sha256 = crate::checksum::sha256(&bytes);
        Body { bytes, sha256 }
    }
}

/// How a multipart upload proves its bytes: one scheme from Create to Complete.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MultipartChecksum {
    /// R2's: created with algorithm CRC64NVME and type FULL_OBJECT (R2 allows CRC64NVME
    /// only as FULL_OBJECT, and S3's model fixes one algorithm for the parts and the
    /// whole), each part checked against its own CRC64NVME, the assembled object against
    /// the whole object's.
    #[default]
    Crc64nvme,
    /// For S3-compatible stores that refuse the first (`--multipart-checksum md5`): no
    /// checksum algorithm; each part carries its Content-MD5, and Complete's ETag must be
    /// the MD5 of the parts' MD5s and `-N`.
    Md5,
}

impl MultipartChecksum {
    /// `--multipart-checksum` (or `[transfer] multipart_checksum`).
    pub fn parse(text: &str) -> anyhow::Result<MultipartChecksum> {
        match text.trim().to_ascii_lowercase().as_str() {
            "crc64nvme" => Ok(MultipartChecksum::Crc64nvme),
            "md5" => Ok(MultipartChecksum::Md5),
            _ => Err(crate::error::usage(format!(
                "--multipart-checksum {text:?}: use crc64nvme (R2, the default) or md5 (an \
                 S3-compatible store that refuses full-object CRC64NVME checksums)"
            ))),
        }
    }
}

/// One part of a multipart upload, with its own checksums: the CRC64NVME always (R2's
/// scheme), the MD5 when the upload is checked by Content-MD5.
#[derive(Debug, Clone)]
pub struct Part {
    pub bytes: Bytes,
    pub crc64nvme: u64,
    pub md5: Option<[u8; 16]>,
}

impl Part {
    /// The bytes with the checksums `scheme` sends.
    pub fn of(bytes: Bytes, scheme: MultipartChecksum) -> Part {
        let crc64nvme = crate::checksum::crc64nvme(&bytes);
        let md5 = (scheme == MultipartChecksum::Md5).then(|| crate::checksum::md5(&bytes));
        Part {
            bytes,
            crc64nvme,
            md5,
        }
    }
}

/// HTTP-level metadata carried from source to target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub expires: Option<String>,
    /// User metadata (`x-amz-meta-*` without the prefix).
    pub custom: BTreeMap<String, String>,
    /// The R2 storage class to write in (`STANDARD`, `STANDARD_IA`); `None`: the bucket's
    /// default. Set on upload only, never read back.
    pub storage_class: Option<String>,
}

/// User metadata as a store lists it, keys lower-cased as S3 and R2 keep them.
pub fn custom_metadata(
    map: Option<&std::collections::HashMap<String, String>>,
) -> BTreeMap<String, String> {
    map.map(|m| {
        m.iter()
            .map(|(k, v)| (k.to_lowercase(), v.clone()))
            .collect()
    })
    .unwrap_or_default()
}

impl ObjectMeta {
    /// Bytes this metadata takes in request headers, as R2 counts its 8 KiB limit.
    pub fn header_bytes(&self) -> usize {
        let fixed = [
            &self.content_type,
            &self.cache_control,
            &self.content_disposition,
            &self.content_encoding,
            &self.content_language,
            &self.expires,
        ]
        .iter()
        .filter_map(|v| v.as_ref().map(|s| s.len()))
        .sum::<usize>();
        fixed
            + self
                .custom
                .iter()
                .map(|(k, v)| "x-amz-meta-".len() + k.len() + v.len())
                .sum::<usize>()
    }
}

/// What a write expects to find at its key — R2's conditional writes (`If-None-Match: *`,
/// `If-Match: <etag>` on PutObject and CompleteMultipartUpload; 412 when it does not
/// hold). A write never replaces what someone else wrote since the key was looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Expect {
    /// Unconditional (the caller holds the key some other way).
    #[default]
    Anything,
    /// The key was found absent: write only if it still is.
    Absent,
    /// The key held this object (ETag, unquoted): replace only that.
    Etag(String),
}

/// Digests the source states for an object, checked against the bytes read: whole-object
/// values, and a composite (a digest of the parts' digests) with its part layout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceDigests {
    pub md5: Option<[u8; 16]>,
    pub crc32c: Option<u32>,
    pub sha256: Option<[u8; 32]>,
    /// S3 FULL_OBJECT checksums of a multipart object.
    pub crc64nvme: Option<u64>,
    pub crc32: Option<u32>,
    pub composite: Option<crate::composite::Composite>,
    /// The source's ETag as given (recorded, never assumed to be an MD5).
    pub etag: Option<String>,
}

impl SourceDigests {
    /// Whether any digest here can check the bytes read.
    pub fn can_check(&self) -> bool {
        self.md5.is_some()
            || self.crc32c.is_some()
            || self.sha256.is_some()
            || self.crc64nvme.is_some()
            || self.crc32.is_some()
            || self.composite.is_some()
    }

    /// A hasher that computes all of these, to check them (SHA-256 and CRC64NVME are
    /// always computed: the target needs them); with `md5`, the MD5 even where the source
    /// states none (to compare with a target's ETag).
    pub fn hasher(&self, md5: bool) -> crate::checksum::Hasher {
        let mut h = crate::checksum::Hasher::with(md5 || self.md5.is_some(), self.crc32c.is_some());
        if self.crc32.is_some() {
            h = h.and_crc32();
        }
        if let Some(c) = &self.composite {
            h = h.and_composite(c);
        }
        h
    }
}

/// A channel's receiver as a fused stream (what a blocking producer thread hands out).
pub fn channel_stream<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> BoxStream<'static, T> {
    fused(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}
