//! Typed errors where a caller decides something: whether to retry, whether one object
//! failed or the whole command must stop, and which exit code the process ends with.
//! Everything else travels as `anyhow` with context and is printed once by `main`.

use thiserror::Error;

/// The process exit codes of SPEC.md, in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything verified, identical, or skipped on purpose.
    Ok = 0,
    /// Some objects failed, conflicted or collided; the rest are done and recorded.
    Partial = 1,
    /// Usage or configuration error.
    Usage = 2,
    /// Fatal: credentials, bucket, endpoint. Checked before any copy.
    Fatal = 3,
    /// Interrupted by Ctrl-C: manifest flushed, multipart uploads aborted.
    Interrupted = 130,
}

/// A bad flag, config file, URL or manifest: exit 2.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Ctrl-C arrived: exit 130.
#[derive(Debug, Error)]
#[error("interrupted: the manifest is flushed; run the same command again to resume")]
pub struct Interrupted;

/// An error from a source or a target, classified where it is created.
#[derive(Debug, Error, Clone)]
#[non_exhaustive]
pub enum StoreError {
    /// Worth another try: 5xx, 429/SlowDown, timeouts, connection resets.
    #[error("{0}")]
    Transient(String),
    /// This object only: record it as failed and go on.
    #[error("{0}")]
    Object(String),
    /// The bytes read did not match a digest: record failed, never retried blindly.
    #[error("{0}")]
    Digest(String),
    /// The whole command must stop: credentials refused, bucket missing, endpoint down.
    #[error("{0}")]
    Fatal(String),
    /// Access refused (HTTP 401/403) on one request: either this object's permissions
    /// (a bucket policy, another account's ACL) or credentials revoked mid-run. Only a
    /// second look tells which, so the copier asks the store again (see
    /// `transfer::Copier::process`).
    #[error("{0}")]
    Refused(String),
    /// The target refused a write as one it does not accept (a 4xx that is neither a
    /// refusal of access nor a throttle): this object failed. The same refusal of the
    /// same kind of request for several objects in a row stops the run (see
    /// `transfer::repeats`): sending every object again would only learn it again.
    #[error("{}", .0.words)]
    Rejected(Box<Rejection>),
    /// A conditional write found the key no longer as it was looked at (412): someone
    /// else wrote it during the run. Never resent as it was: the copier looks again.
    #[error("{0}")]
    Changed(String),
}

/// A write the target refused, with what was sent, so a message can say both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The S3 operation: `PutObject`, `CompleteMultipartUpload`, …
    pub request: String,
    /// The target's error code (`InvalidRequest`, `BadDigest`, …) and HTTP status.
    pub code: String,
    pub status: u16,
    /// The whole message: the request, the object, the code and the target's words.
    pub words: String,
    /// What the request carried that the target may have objected to (checksum
    /// algorithm, type and headers); filled in by the adapter that sent it.
    pub sent: String,
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Transient(_))
    }

    pub fn is_fatal(&self) -> bool {
        matches!(self, StoreError::Fatal(_))
    }

    /// The same error with more words in front, keeping its class.
    pub fn context(self, what: impl std::fmt::Display) -> StoreError {
        match self {
            StoreError::Transient(m) => StoreError::Transient(format!("{what}: {m}")),
            StoreError::Object(m) => StoreError::Object(format!("{what}: {m}")),
            StoreError::Digest(m) => StoreError::Digest(format!("{what}: {m}")),
            StoreError::Fatal(m) => StoreError::Fatal(format!("{what}: {m}")),
            StoreError::Refused(m) => StoreError::Refused(format!("{what}: {m}")),
            StoreError::Changed(m) => StoreError::Changed(format!("{what}: {m}")),
            StoreError::Rejected(mut r) => {
                r.words = format!("{what}: {}", r.words);
                StoreError::Rejected(r)
            }
        }
    }

    /// Notes on a rejected write what the request carried; other errors pass unchanged.
    pub fn sent(self, sent: impl FnOnce() -> String) -> StoreError {
        match self {
            StoreError::Rejected(mut r) => {
                r.sent = sent();
                StoreError::Rejected(r)
            }
            other => other,
        }
    }
}

/// Which exit code an error chain leads to.
pub fn exit_for(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if cause.downcast_ref::<UsageError>().is_some() {
            return Exit::Usage;
        }
        if cause.downcast_ref::<Interrupted>().is_some() {
            return Exit::Interrupted;
        }
        if cause.downcast_ref::<clap::Error>().is_some() {
            return Exit::Usage;
        }
    }
    Exit::Fatal
}

/// Shorthand for a usage error as `anyhow::Error`.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}
