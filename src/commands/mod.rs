//! The five commands, and what they share: opening the stores (and proving access before
//! any copy) and indexing the target from one listing. Printing is `output.rs`'s.

pub mod plan;
pub mod report;
pub mod rewrite;
pub mod rollback;
pub mod run;
pub mod verify;

use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;

use crate::config::{CopyConfig, StoreSettings};
use crate::error::StoreError;
use crate::keymap::nfc;
use crate::location::Location;
use crate::manifest::lock::ManifestLock;
pub use crate::output::{human_bytes, Output};
use crate::pacer::Pacer;
use crate::source::local::WalkRules;
use crate::source::sqlite::SqliteSettings;
use crate::source::{Source, SourceOptions};
use crate::spill::DiskMap;
use crate::target::Target;

pub struct Stores {
    pub source: Arc<dyn Source>,
    pub target: Arc<dyn Target>,
    /// One pacer per store: `--max-rate` applies to each.
    pub source_pacer: Arc<Pacer>,
    pub target_pacer: Arc<Pacer>,
}

impl Stores {
    /// Requests retried so far, both stores together.
    pub fn retries(&self) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        self.source_pacer.retried.load(Relaxed) + self.target_pacer.retried.load(Relaxed)
    }
}

/// What a local source must leave out: the rehearsal target and the manifests (with
/// their locks), wherever they sit.
pub fn walk_rules(target: &Location, manifests: &[PathBuf], copy_links: bool) -> WalkRules {
    let mut excluded: Vec<PathBuf> = manifests
        .iter()
        .flat_map(|m| [m.clone(), ManifestLock::path_for(m)])
        .collect();
    if let Location::Local { root } = target {
        excluded.push(root.clone());
    }
    WalkRules {
        copy_links,
        excluded,
    }
}

/// Opens both stores and proves access to each before anything is copied (exit 3).
pub async fn open_stores(cfg: &CopyConfig) -> anyhow::Result<Stores> {
    let walk = walk_rules(
        &cfg.target,
        std::slice::from_ref(&cfg.manifest),
        cfg.copy_links,
    );
    let (source, source_pacer) =
        open_source(&cfg.source, &cfg.stores, cfg.sqlite.clone(), walk).await?;
    let (target, target_pacer) = open_target(&cfg.target, &cfg.stores, cfg.stores.max_bandwidth)?;
    source.check_access().await.map_err(anyhow::Error::new)?;
    target.check_access().await.map_err(anyhow::Error::new)?;
    Ok(Stores {
        source,
        target,
        source_pacer,
        target_pacer,
    })
}

/// The source a location names, with its own pacer (access not yet checked).
pub async fn open_source(
    loc: &Location,
    stores: &StoreSettings,
    sqlite: Option<SqliteSettings>,
    walk: WalkRules,
) -> anyhow::Result<(Arc<dyn Source>, Arc<Pacer>)> {
    let pacer = Arc::new(
        Pacer::new(stores.retries, stores.max_rate, None).with_io_timeout(stores.io_timeout),
    );
    let opts = SourceOptions {
        endpoint: stores.source_endpoint.clone(),
        region: stores.source_region.clone(),
        allow_http: stores.allow_http,
        sqlite,
        walk,
        list_concurrency: stores.list_concurrency,
    };
    let source: Arc<dyn Source> = crate::source::open(loc, &opts, pacer.clone()).await?.into();
    Ok((source, pacer))
}

/// The target a location names, with its own pacer (access not yet checked).
pub fn open_target(
    loc: &Location,
    stores: &StoreSettings,
    max_bandwidth: Option<u64>,
) -> anyhow::Result<(Arc<dyn Target>, Arc<Pacer>)> {
    let pacer = Arc::new(
        Pacer::new(stores.retries, stores.max_rate, max_bandwidth)
            .with_io_timeout(stores.io_timeout),
    );
    let target = crate::target::open(loc, stores.allow_http, pacer.clone())?.into();
    Ok((target, pacer))
}

/// What one listing of the target prefix showed: NFC key → (size, ETag).
pub struct TargetIndex {
    /// On disk: a target of ten million keys is not held in memory.
    keys: DiskMap<(u64, Option<String>)>,
}

impl TargetIndex {
    pub async fn build(target: &dyn Target) -> Result<TargetIndex, StoreError> {
        let keys = DiskMap::new("the target's listing");
        let mut listing = target.list();
        while let Some(obj) = listing.next().await {
            let obj = obj?;
            keys.insert(&nfc(&obj.key), &(obj.size, obj.etag))?;
        }
        Ok(TargetIndex { keys })
    }

    /// The size and ETag listed at `key` (compared in NFC, as R2 does).
    pub fn get(&self, key: &str) -> Result<Option<(u64, Option<String>)>, StoreError> {
        Ok(self.keys.get(&nfc(key))?)
    }

    /// How many keys the target listed (keys equal in NFC count once).
    pub fn len(&self) -> Result<usize, StoreError> {
        Ok(self.keys.len()? as usize)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}
