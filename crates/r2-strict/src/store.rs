//! The server's state: buckets of objects, and open multipart uploads, in memory. Keys
//! are stored under their NFC form (R2 `reference/unicode-interoperability.mdx`: keys are
//! NFC-normalised on write, read and list; the listing shows the spelling uploaded last).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use unicode_normalization::UnicodeNormalization;

use crate::checksums::{Algorithm, Kind};

/// Which of R2's rules are on. All are by default; a test that must write one key twice
/// within a second (to tamper with what a run wrote) can turn that one off.
#[derive(Debug, Clone)]
pub struct Rules {
    /// R2 `platform/limits.mdx`: at most one write per second to one key; more is 429
    /// (error 10058, `api/error-codes.mdx`).
    pub one_write_per_second: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            one_write_per_second: true,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub expires: Option<s3s::dto::Timestamp>,
    pub custom: HashMap<String, String>,
    pub storage_class: String,
}

#[derive(Debug, Clone)]
pub struct Object {
    /// The spelling uploaded last.
    pub key: String,
    pub body: Bytes,
    pub etag: String,
    pub meta: Meta,
    /// The checksum stored with the object: algorithm, type and value (base64, `-N` for
    /// a composite).
    pub checksum: Option<(Algorithm, Kind, String)>,
    pub modified: std::time::SystemTime,
}

#[derive(Debug, Clone)]
pub struct Part {
    pub body: Bytes,
    pub md5: [u8; 16],
    /// The part's checksum of the upload's algorithm (raw digest).
    pub digest: Option<Vec<u8>>,
    pub uploaded: std::time::SystemTime,
}

#[derive(Debug, Clone)]
pub struct Upload {
    pub bucket: String,
    pub key: String,
    pub algorithm: Option<Algorithm>,
    pub kind: Option<Kind>,
    pub meta: Meta,
    pub parts: BTreeMap<i32, Part>,
    pub initiated: std::time::SystemTime,
}

#[derive(Default)]
pub struct State {
    pub buckets: BTreeMap<String, BTreeMap<String, Object>>,
    pub uploads: BTreeMap<String, Upload>,
    /// When each (bucket, NFC key) was last written.
    pub last_write: HashMap<(String, String), Instant>,
    pub next_upload: u64,
    /// Writes "the application" makes to a key just before the next write to it arrives
    /// (see [`crate::Server::race`]).
    pub races: HashMap<(String, String), Bytes>,
}

/// A test's application write to `key`, made just before the write now arriving is
/// looked at: a PUT without conditions, as an application makes it.
pub fn race(state: &mut State, bucket: &str, key: &str) {
    let Some(body) = state.races.remove(&(bucket.to_string(), key.to_string())) else {
        return;
    };
    let object = Object {
        key: key.to_string(),
        etag: crate::checksums::md5_hex(&body),
        body,
        meta: Meta {
            storage_class: "STANDARD".into(),
            ..Meta::default()
        },
        checksum: None,
        modified: std::time::SystemTime::now(),
    };
    state
        .buckets
        .entry(bucket.to_string())
        .or_default()
        .insert(key.to_string(), object);
    state
        .last_write
        .insert((bucket.to_string(), key.to_string()), Instant::now());
}

pub struct Store {
    pub rules: Rules,
    pub state: Mutex<State>,
    /// Requests answered, by kind ("GET", "LIST", "PUT", "POST", "HEAD", "DELETE"): what
    /// benchmarks count per object.
    pub requests: Mutex<std::collections::BTreeMap<String, u64>>,
}

/// A key as R2 stores it.
pub fn nfc(key: &str) -> String {
    key.nfc().collect()
}

impl Store {
    pub fn new(rules: Rules) -> Store {
        Store {
            rules,
            state: Mutex::new(State::default()),
            requests: Mutex::default(),
        }
    }

    pub fn create_bucket(&self, name: &str) {
        self.state
            .lock()
            .expect("not poisoned")
            .buckets
            .entry(name.to_string())
            .or_default();
    }

    pub fn open_uploads(&self) -> usize {
        self.state.lock().expect("not poisoned").uploads.len()
    }
}
