//! What every source reports and can do: a lazy, paged listing of [`ObjectInfo`] and a
//! streamed read of one object. Adapters know their cloud; nothing else does, and no SDK
//! type crosses this boundary.

pub mod gcs;
pub mod local;
pub mod s3;
pub mod s3_digests;
pub mod sqlite;

use async_trait::async_trait;
use futures::stream::BoxStream;
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::object::{ByteRange, ByteStream, ObjectMeta, SourceDigests};

/// One object as a source lists it.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    /// Relative to the source prefix, `/`-separated.
    pub key: String,
    pub size: u64,
    pub modified: Option<OffsetDateTime>,
    pub digests: SourceDigests,
    pub meta: ObjectMeta,
    pub row: Option<sqlite::RowRef>,
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
    Unreadable {
        key: String,
        problem: Problem,
        /// In words, for the manifest: what is wrong and what to do.
        reason: String,
    },
    /// An item deliberately not copied (a link out of the tree, a FIFO): recorded
    /// `skipped` with the reason; the exit code is unaffected.
    Skipped {
        key: String,
        reason: String,
    },
}

impl ListItem {
    /// The source key it was listed under.
    pub fn key(&self) -> &str {
        match self {
            ListItem::Object(info) => &info.key,
            ListItem::Unreadable { key, .. } | ListItem::Skipped { key, .. } => key,
        }
    }
}

/// Why a listed item cannot be copied: typed, so `plan` counts rows by kind without
/// reading the words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Problem {
    /// Its name cannot be an R2 key (not UTF-8).
    BadName,
    /// The store refused the read (permissions, metadata, a broken or looping link).
    CannotRead,
    /// Archived in a cold storage class: restore it first.
    Archived,
    /// SQLite: the id is neither an integer nor text.
    BadId,
    /// SQLite: the data column holds a number, not text.
    NotText,
    /// SQLite: the text is not valid base64.
    NotBase64,
    /// SQLite: the value holds no bytes.
    Empty,
}

impl Problem {
    /// The short label `plan` counts by (`failures_by_reason`).
    pub fn label(self) -> &'static str {
        match self {
            Problem::BadName => "not a valid key",
            Problem::CannotRead => "cannot read",
            Problem::Archived => "archived",
            Problem::BadId => "bad id",
            Problem::NotText => "not base64 text",
            Problem::NotBase64 => "not valid base64",
            Problem::Empty => "empty",
        }
    }
}

#[async_trait]
pub trait Source: Send + Sync {
    /// Every object under the source prefix, lazily, in a stable order. An `Err` ends the
    /// listing (fatal); per-item problems come as [`ListItem::Unreadable`].
    fn list(&self) -> BoxStream<'_, Result<ListItem, StoreError>>;

    /// The object's bytes as stored, streamed; `range` reads part of it.
    async fn open(&self, obj: &ObjectInfo, range: Option<ByteRange>) -> Result<Opened, StoreError>;

    /// Checks that the source can be read at all (exists, credentials accepted): exit 3 if not.
    async fn check_access(&self) -> Result<(), StoreError>;

    /// What a whole read would learn of the object's digests, without reading it: a
    /// resumed upload reads only the rest, and checks all it read against these. The
    /// listing's, unless the source states more on a read (S3: checksums and the part
    /// layout of a multipart object).
    async fn stated(&self, obj: &ObjectInfo) -> Result<SourceDigests, StoreError> {
        Ok(obj.digests.clone())
    }

    /// Whether the source states digests of its objects (S3, GCS), so a copy says
    /// whether its bytes were checked against one (`source_checked`).
    fn states_digests(&self) -> bool {
        false
    }
}

/// How to reach a source beyond its URL (endpoints for S3-compatible stores and emulators).
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub allow_http: bool,
    /// A sqlite:// source's table and columns.
    pub sqlite: Option<sqlite::SqliteSettings>,
    /// A local source: which links to follow, which paths to leave out.
    pub walk: local::WalkRules,
    /// S3 and GCS: folders under the prefix listed at the same time.
    pub list_concurrency: usize,
}

/// Builds the source a location names.
pub async fn open(
    loc: &crate::location::Location,
    opts: &SourceOptions,
    pacer: std::sync::Arc<crate::pacer::Pacer>,
) -> anyhow::Result<Box<dyn Source>> {
    use crate::location::Location;
    match loc {
        Location::Local { root } => Ok(Box::new(local::LocalSource::with_rules(
            root.clone(),
            opts.walk.clone(),
        ))),
        Location::S3 { bucket, prefix } => Ok(Box::new(
            s3::S3Source::new(bucket, prefix, opts, pacer).await?,
        )),
        Location::Gcs { bucket, prefix } => Ok(Box::new(
            gcs::GcsSource::new(bucket, prefix, opts, pacer).await?,
        )),
        Location::Sqlite { path } => {
            let settings = opts.sqlite.clone().ok_or_else(|| {
                crate::error::usage("a sqlite:// source needs `table` and `data_column` in the [source] table of the config file")
            })?;
            Ok(Box::new(
                sqlite::SqliteSource::open(path.clone(), settings).await?,
            ))
        }
        other => Err(crate::error::usage(format!(
            "{other} cannot be a source: copy from s3://, gs://, sqlite:// or a local directory"
        ))),
    }
}
