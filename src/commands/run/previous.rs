//! What earlier runs of this manifest left, and what it lets a run skip: objects already
//! verified and unchanged at the source, and (after a full listing) objects the source
//! no longer has.

use std::collections::{HashMap, HashSet};

use crate::config::CopyConfig;
use crate::delta::{change_since, Change};
use crate::error::StoreError;
use crate::manifest::{Intent, Manifest, ObjectRecord};
use crate::source::ObjectInfo;
use crate::target::Target;
use crate::transfer::holds_what_we_wrote;

/// The last word on each source key, and the writes earlier runs announced but never
/// recorded an outcome for (a crash).
#[derive(Default)]
pub struct Previous {
    pub records: HashMap<String, ObjectRecord>,
    pub unfinished: HashMap<String, Vec<Intent>>,
}

impl Previous {
    pub fn load(cfg: &CopyConfig) -> anyhow::Result<Previous> {
        if !cfg.manifest.exists() {
            return Ok(Previous::default());
        }
        let m = Manifest::load(&cfg.manifest)?;
        m.check_belongs(&cfg.source.canonical(), &cfg.target.canonical())?;
        Ok(Previous {
            records: m
                .latest()
                .into_iter()
                .map(|r| (r.source_key.clone(), r.clone()))
                .collect(),
            unfinished: m.unfinished_intents(),
        })
    }

    pub fn get(&self, source_key: &str) -> Option<&ObjectRecord> {
        self.records.get(source_key)
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

/// Objects an earlier run verified that this listing no longer shows: (source key,
/// target key), sorted. A SQLite row whose blob became its R2 URL has moved, not gone.
pub fn deleted_at_source(previous: &Previous, seen: &HashSet<String>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = previous
        .records
        .values()
        .filter(|r| r.status.is_verified() && !seen.contains(&r.source_key))
        .filter(|r| !r.row.as_ref().is_some_and(|row| row.written))
        .map(|r| (r.source_key.clone(), r.target_key.clone()))
        .collect();
    out.sort();
    out
}
