//! What earlier runs of this manifest left, and what it lets a run skip: objects already
//! verified and unchanged at the source, and (after a full listing) objects the source
//! no longer has.

use std::collections::HashMap;

use crate::config::CopyConfig;
use crate::delta::{change_since, Change};
use crate::error::StoreError;
use crate::manifest::{Intent, Line, Manifest, ObjectRecord, PartLine};
use crate::source::ObjectInfo;
use crate::spill::{DiskMap, SpillError};
use crate::target::Target;
use crate::transfer::holds_what_we_wrote;
use crate::transfer::resume::OpenUpload;

/// The last word on each source key (on disk: a manifest of ten million records is not
/// held in memory), and the writes earlier runs announced but never recorded an outcome
/// for (a crash; a few per crash, so in memory).
pub struct Previous {
    records: DiskMap<ObjectRecord>,
    pub unfinished: HashMap<String, Vec<Intent>>,
    /// The parts those unfinished writes' multipart uploads landed, by source key.
    pub parts: HashMap<String, Vec<PartLine>>,
}

impl Default for Previous {
    fn default() -> Previous {
        Previous {
            records: DiskMap::new("the manifest's records"),
            unfinished: HashMap::new(),
            parts: HashMap::new(),
        }
    }
}

impl Previous {
    /// Reads the manifest one line at a time: later records of a key replace earlier
    /// ones (but a `failed` one does not hide an earlier `copied`), and an intent is
    /// unfinished until a record of its key follows it.
    pub fn load(cfg: &CopyConfig) -> anyhow::Result<Previous> {
        let previous = Previous::default();
        if !cfg.manifest.exists() {
            return Ok(previous);
        }
        let mut unfinished: HashMap<String, Vec<Intent>> = HashMap::new();
        let mut parts: HashMap<String, Vec<PartLine>> = HashMap::new();
        let headers = Manifest::stream(&cfg.manifest, |line| {
            match line {
                Line::Object(r) => {
                    unfinished.remove(&r.source_key);
                    parts.remove(&r.source_key);
                    let before = previous.records.get(&r.source_key)?;
                    if crate::manifest::replaces(before.as_ref(), &r) {
                        previous.records.insert(&r.source_key.clone(), &r)?;
                    }
                }
                Line::Intent(i) => unfinished.entry(i.source_key.clone()).or_default().push(i),
                Line::Part(p) => parts.entry(p.source_key.clone()).or_default().push(p),
                Line::Rewrite(_) | Line::SourceDeleted(_) => {}
            }
            Ok(())
        })?;
        let m = Manifest {
            path: cfg.manifest.clone(),
            headers,
            ..Default::default()
        };
        m.check_belongs(&cfg.source.canonical(), &cfg.target.canonical())?;
        Ok(Previous {
            unfinished,
            parts,
            ..previous
        })
    }

    pub fn get(&self, source_key: &str) -> Result<Option<ObjectRecord>, SpillError> {
        self.records.get(source_key)
    }

    /// No earlier run recorded any object.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Something to compare with: records, or writes a crash left without one.
    pub fn has_history(&self) -> bool {
        !self.records.is_empty() || !self.unfinished.is_empty()
    }

    /// Multipart uploads a crash left open with parts recorded as landed: how many, and
    /// the bytes of those parts (already in R2, for a resumed run to go on from).
    pub fn in_open_uploads(&self) -> (u64, u64) {
        self.unfinished
            .iter()
            .filter_map(|(key, intents)| OpenUpload::of(intents, self.parts.get(key)?))
            .fold((0, 0), |(n, bytes), open| {
                (
                    n + 1,
                    bytes + open.parts.values().map(|p| p.size).sum::<u64>(),
                )
            })
    }
}

/// The source keys a listing showed, kept only when there are earlier records to find
/// deleted ones among (a first run needs none).
pub struct SeenKeys {
    keys: Option<DiskMap<()>>,
}

impl SeenKeys {
    pub fn for_(previous: &Previous) -> SeenKeys {
        SeenKeys {
            keys: (!previous.is_empty()).then(|| DiskMap::new("the keys listed")),
        }
    }

    pub fn note(&self, key: &str) -> Result<(), SpillError> {
        match &self.keys {
            Some(k) => k.insert(key, &()),
            None => Ok(()),
        }
    }

    fn contains(&self, key: &str) -> Result<bool, SpillError> {
        match &self.keys {
            Some(k) => k.contains(key),
            None => Ok(false),
        }
    }
}

/// Recorded as verified, unchanged at the source since (see [`change_since`]), and still
/// in the target with the recorded size and ETag: done already. The ETag comes from the
/// one listing of the target; a store that lists none (some S3-compatible servers) is
/// asked with a HEAD instead of being trusted.
pub async fn already_done(
    target: &dyn Target,
    prev: Option<&ObjectRecord>,
    info: &ObjectInfo,
    target_key: &str,
    listed: Option<&(u64, Option<String>)>,
) -> Result<bool, StoreError> {
    let (Some(prev), Some((listed_size, listed_etag))) = (prev, listed) else {
        return Ok(false);
    };
    if change_since(Some(prev), info) != Change::Unchanged || *listed_size != info.size {
        return Ok(false);
    }
    Ok(match (listed_etag, &prev.target_etag) {
        (Some(a), Some(b)) => a == b,
        (None, Some(_)) => target
            .head(target_key)
            .await?
            .is_some_and(|obj| holds_what_we_wrote(&obj, prev)),
        (_, None) => true,
    })
}

/// Objects an earlier run verified that this listing no longer shows, sorted by source
/// key. A SQLite row whose blob became its R2 URL has moved, not gone.
pub fn deleted_at_source(
    previous: &Previous,
    seen: &SeenKeys,
) -> Result<Vec<ObjectRecord>, SpillError> {
    let mut out = Vec::new();
    let mut failed = None;
    previous.records.for_each(|key, r| {
        if !r.status.is_verified() || r.row.as_ref().is_some_and(|row| row.written) {
            return;
        }
        match seen.contains(key) {
            Ok(true) => {}
            Ok(false) => out.push(r),
            Err(e) => failed = Some(e),
        }
    })?;
    match failed {
        Some(e) => Err(e),
        None => Ok(out),
    }
}
