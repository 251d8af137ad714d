//! The manifest's line types: the header each run appends, the object record (the
//! contract in SPEC.md "The manifest"), and the intent, prior and source-deleted lines
//! that make resume, delta and rollback exact.

use serde::{Deserialize, Serialize};

use crate::filter::FilterSpec;

/// What a run covered, so `verify --against-source` re-lists exactly that.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    #[serde(default)]
    pub filter: FilterSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// `--copy-links`: links out of a local source tree were followed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub copy_links: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u32,
    pub run_id: String,
    pub source: String,
    pub target: String,
    pub started_at: String,
    #[serde(default)]
    pub selection: Selection,
    /// Which command wrote this header: run or rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// A SQLite source's table and columns, so verify and rollback can reopen it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlite: Option<crate::source::sqlite::SqliteSettings>,
}

#[cfg(test)]
impl Header {
    /// A `run` header from `source` to `target`, by run `run_id`: for unit tests.
    pub fn for_test(source: &str, target: &str, run_id: &str) -> Header {
        Header {
            kind: "header".into(),
            version: super::VERSION,
            run_id: run_id.into(),
            source: source.into(),
            target: target.into(),
            started_at: now_rfc3339(),
            selection: Selection::default(),
            command: Some("run".into()),
            sqlite: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Copied,
    Identical,
    Conflict,
    Skipped,
    Failed,
    RolledBack,
    Kept,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Copied => "copied",
            Status::Identical => "identical",
            Status::Conflict => "conflict",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
            Status::RolledBack => "rolled_back",
            Status::Kept => "kept",
        }
    }

    /// Recorded as present and proven in the target.
    pub fn is_verified(self) -> bool {
        matches!(self, Status::Copied | Status::Identical)
    }
}

/// What proved an upload arrived whole (SPEC: `verified_by`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VerifiedBy {
    /// The PUT (or CompleteMultipartUpload) response echoed the checksum we sent: the
    /// target computed it over the bytes it stored. No HEAD was needed.
    Response,
    /// A HEAD after the upload reported the size and the checksum (or ETag) we sent.
    Head,
    /// The object was downloaded and re-hashed (`verify --deep`).
    Deep,
}

/// The reason a record gives when a conditional write found its key written by someone
/// else since it was looked at (R2 answered 412).
pub const WRITTEN_BY_OTHERS: &str = "written by someone else during the run";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ObjectRecord {
    #[serde(rename = "type")]
    pub kind: String,
    pub source_key: String,
    pub target_key: String,
    pub size: u64,
    /// Hex SHA-256 of the bytes (absent when they were never read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_md5: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_crc32c: Option<String>,
    /// Whether the bytes read were checked against a digest the source stated (S3 and
    /// GCS sources; absent for local files and SQLite rows, which state none). `false`:
    /// copied without that proof (an SSE-KMS or SSE-C ETag, a store that gives no part
    /// sizes for a multipart object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_checked: Option<bool>,
    /// The source's change signal when this was recorded (see `ObjectInfo::version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The content type the source declared, where the bytes say another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_etag: Option<String>,
    /// The SHA-256 the target reports for what we wrote (base64; `-N` when multipart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_checksum: Option<String>,
    /// A multipart upload's full-object CRC64NVME (base64), which R2 checked on Complete
    /// and reports on HEAD: `verify` proves a multipart object with it, no download.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_crc64nvme: Option<String>,
    /// How the upload was proven: the PUT/Complete response echoed our checksum, or a
    /// HEAD reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_by: Option<VerifiedBy>,
    /// A multipart upload an earlier run left open: "resumed from part N of M", or
    /// "started over: <why>".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<crate::source::sqlite::RowRecord>,
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

impl ObjectRecord {
    pub fn new(source_key: &str, target_key: &str, size: u64, status: Status) -> ObjectRecord {
        ObjectRecord {
            kind: "object".into(),
            source_key: source_key.to_string(),
            target_key: target_key.to_string(),
            size,
            sha256: None,
            status,
            error: None,
            source_etag: None,
            source_md5: None,
            source_crc32c: None,
            source_checked: None,
            source_version: None,
            content_type: None,
            declared_content_type: None,
            target_etag: None,
            target_checksum: None,
            target_crc64nvme: None,
            verified_by: None,
            resume: None,
            backup_key: None,
            row: None,
            at: now_rfc3339(),
            run_id: None,
        }
    }

    pub fn with_error(mut self, error: impl Into<String>) -> ObjectRecord {
        self.error = Some(error.into());
        self
    }
}

/// What the target held at a key before this tool wrote there (`null`: nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prior {
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_sha256: Option<String>,
}

/// Written (and flushed) before any write to the target: this run is about to write
/// `target_key` (and `backup_key`, when it first backs up what is there). If the
/// object's outcome record is lost in a crash, the intent still tells a later run or a
/// rollback that what is now at the key is ours, and what was there before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    #[serde(rename = "type")]
    pub kind: String,
    pub source_key: String,
    pub target_key: String,
    /// The target's object at the start; `None` when the key was free.
    pub prior: Option<Prior>,
    /// The size and hex SHA-256 about to be written (absent for a backup-only intent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// A single PUT: the SHA-256 the target should then report (base64; `-N` for a
    /// multipart composite written by an earlier version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// A multipart upload: the whole object's CRC64NVME sent with Complete (base64),
    /// which the target then reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc64nvme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_key: Option<String>,
    /// A multipart upload just started at the key (written before its first part): a
    /// resume goes on with it from its part lines, or aborts it, if no outcome for the
    /// object followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// With `upload_id`: the part size it was cut into, and the source's version signal
    /// of what was read (a resume goes on only with the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    pub at: String,
}

impl Intent {
    pub fn new(source_key: &str, target_key: &str, prior: Option<Prior>) -> Intent {
        Intent {
            kind: "intent".into(),
            source_key: source_key.to_string(),
            target_key: target_key.to_string(),
            prior,
            size: None,
            sha256: None,
            checksum: None,
            crc64nvme: None,
            backup_key: None,
            upload_id: None,
            part_size: None,
            source_version: None,
            run_id: None,
            at: now_rfc3339(),
        }
    }
}

/// A multipart part that landed, for part-level resume: written (and synced, like an
/// intent) once UploadPart succeeded, with the whole object's digests after it, so a
/// resumed run goes on from the last part of an unbroken run of them without reading
/// the bytes before it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartLine {
    #[serde(rename = "type")]
    pub kind: String,
    pub source_key: String,
    pub target_key: String,
    pub upload_id: String,
    pub part: i32,
    pub size: u64,
    /// The ETag UploadPart answered (ListParts must list the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The part's own CRC64NVME as sent (base64; absent under `--multipart-checksum
    /// md5`, whose uploads are not resumed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc64nvme: Option<String>,
    /// The whole object's digests after this part (absent where they cannot be written
    /// down: a source checked against a composite of its own parts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<crate::hash_state::HashState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    pub at: String,
}

/// Written by a run that listed the whole source: an object this manifest migrated that
/// the source no longer has. It stays in R2; `report` lists what the latest run saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceDeleted {
    #[serde(rename = "type")]
    pub kind: String,
    pub source_key: String,
    pub target_key: String,
    pub run_id: String,
    pub at: String,
}

impl SourceDeleted {
    pub fn new(source_key: &str, target_key: &str, run_id: &str) -> SourceDeleted {
        SourceDeleted {
            kind: "source_deleted".into(),
            source_key: source_key.to_string(),
            target_key: target_key.to_string(),
            run_id: run_id.to_string(),
            at: now_rfc3339(),
        }
    }
}

/// A stored value `rewrite-urls` changed, appended and flushed before its transaction
/// commits; rollback puts `old` back where the row still holds `new`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewriteLine {
    #[serde(rename = "type")]
    pub kind: String,
    pub database: String,
    pub table: String,
    pub id_column: String,
    pub id: serde_json::Value,
    pub column: String,
    pub old: String,
    pub new: String,
    pub run_id: String,
    pub at: String,
}

/// Now, in RFC 3339 UTC to the millisecond ("2026-12-07T13:36:49.964Z"): fixed width, so
/// times compare as text too, and no longer than a manifest line needs.
pub fn now_rfc3339() -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(&fmt)
        .expect("now formats")
}
