//! What every source reports and can do: a lazy, paged listing of [`ObjectInfo`] and a
//! streamed read of one object. Adapters know their cloud; nothing else does, and no SDK
//! type crosses this boundary.

pub mod blob;
pub mod gcs;
pub mod local;
pub mod s3;
pub mod sqlite;

use std::collections::BTreeMap;
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, Stream};
use futures::StreamExt;
use time::OffsetDateTime;

use crate::error::StoreError;

/// A stream of an object's bytes, in chunks; never the whole body at once.
pub type ByteStream = BoxStream<'static, Result<Bytes, StoreError>>;

/// Boxes a stream fused: polled after its end it says `None` again instead of panicking
/// (an `Unfold` polled after its end panics — an S3 body once did, mid-copy). Every
/// stream an adapter hands out goes through here.
pub fn fused<'a, T>(stream: impl Stream<Item = T> + Send + 'a) -> BoxStream<'a, T> {
    stream.fuse().boxed()
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

/// Digests the source states for an object, checked against the bytes read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceDigests {
    pub md5: Option<[u8; 16]>,
    pub crc32c: Option<u32>,
    pub sha256: Option<[u8; 32]>,
    /// The source's ETag as given (recorded, never assumed to be an MD5).
    pub etag: Option<String>,
}

/// A SQLite row behind an object: its id and a fingerprint of the original value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RowRef {
    pub id: String,
    pub id_is_int: bool,
    /// Hex SHA-256 and length of the stored text, as it was when read.
    pub original_sha256: String,
    pub original_len: u64,
    pub form: Option<blob::BlobForm>,
    /// Values templates may use: `id`, `ext`, and named columns.
    pub vars: BTreeMap<String, String>,
}

/// One object as a source lists it.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    /// Relative to the source prefix, `/`-separated.
    pub key: String,
    pub size: u64,
    pub modified: Option<OffsetDateTime>,
    pub digests: SourceDigests,
    pub meta: ObjectMeta,
    pub row: Option<RowRef>,
    /// The source's storage class, where it has one (S3: STANDARD, GLACIER, …).
    pub storage_class: Option<String>,
    /// The source's own signal that an object changed (recorded as `source_version`):
    /// S3 ETag, GCS generation, local `size:mtime_ns`, SQLite the digest of the row's text.
    pub version: Option<String>,
    /// SQLite: the content type the row declared when the bytes' magic number says
    /// another (the object gets the type of its bytes).
    pub declared_content_type: Option<String>,
}

impl ObjectInfo {
    pub fn new(key: impl Into<String>, size: u64) -> ObjectInfo {
        ObjectInfo {
            key: key.into(),
            size,
            modified: None,
            digests: SourceDigests::default(),
            meta: ObjectMeta::default(),
            row: None,
            storage_class: None,
            version: None,
            declared_content_type: None,
        }
    }

    /// This object as it turned out to be when opened: metadata and digests that only a
    /// read reveals (an S3 GET's headers) replace what the listing said.
    pub fn updated_by(&self, opened: &Opened) -> ObjectInfo {
        let mut info = self.clone();
        if let Some(meta) = &opened.meta {
            info.meta = meta.clone();
        }
        if let Some(d) = &opened.digests {
            info.digests = d.clone();
        }
        info
    }
}

/// An object opened for reading: its bytes, and what the read told about it.
pub struct Opened {
    pub body: ByteStream,
    /// Metadata from the read's response, when the listing could not give it.
    pub meta: Option<ObjectMeta>,
    /// Digests the source states on read (S3 ETag MD5 and additional checksums).
    pub digests: Option<SourceDigests>,
}

impl Opened {
    pub fn body(body: ByteStream) -> Opened {
        Opened {
            body,
            meta: None,
            digests: None,
        }
    }
}

/// What a listing yields: an object, or an item that exists but cannot be read
/// (recorded as failed; the run goes on).
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one lives at a time; boxing buys nothing
pub enum ListItem {
    Object(ObjectInfo),
    Unreadable { key: String, reason: String },
}

#[async_trait]
pub trait Source: Send + Sync {
    /// Every object under the source prefix, lazily, in a stable order. An `Err` ends the
    /// listing (fatal); per-item problems come as [`ListItem::Unreadable`].
    fn list(&self) -> BoxStream<'_, Result<ListItem, StoreError>>;

    /// The object's bytes as stored, streamed; `range` reads part of it.
    async fn open(&self, obj: &ObjectInfo, range: Option<Range<u64>>)
        -> Result<Opened, StoreError>;

    /// Checks that the source can be read at all (exists, credentials accepted): exit 3 if not.
    async fn check_access(&self) -> Result<(), StoreError>;
}

/// How to reach a source beyond its URL (endpoints for S3-compatible stores and emulators).
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub allow_http: bool,
    /// A sqlite:// source's table and columns.
    pub sqlite: Option<crate::config::SqliteSettings>,
}

/// Builds the source a location names.
pub async fn open(
    loc: &crate::location::Location,
    opts: &SourceOptions,
    pacer: std::sync::Arc<crate::pacer::Pacer>,
) -> anyhow::Result<Box<dyn Source>> {
    use crate::location::Location;
    match loc {
        Location::Local { root } => Ok(Box::new(local::LocalSource::new(root.clone()))),
        Location::S3 { bucket, prefix } => Ok(Box::new(s3::S3Source::new(bucket, prefix, opts, pacer).await?)),
        Location::Gcs { bucket, prefix } => Ok(Box::new(gcs::GcsSource::new(bucket, prefix, opts, pacer).await?)),
        Location::Sqlite { path } => {
            let settings = opts.sqlite.clone().ok_or_else(|| {
                crate::error::usage("a sqlite:// source needs `table` and `data_column` in the [source] table of the config file")
            })?;
            Ok(Box::new(sqlite::SqliteSource::open(path.clone(), settings).await?))
        }
        other => Err(crate::error::usage(format!(
            "{other}: this kind of source is not available in this build yet; copy from a local directory or s3://"
        ))),
    }
}
