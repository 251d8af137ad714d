//! The five commands, and what they share: opening the stores (and proving access before
//! any copy), indexing the target from one listing, and printing — human text to stdout,
//! or with `--json` one JSON document to stdout and the human text to stderr.

pub mod plan;
pub mod report;
pub mod rollback;
pub mod run;
pub mod verify;

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use futures::StreamExt;

use crate::config::CopyConfig;
use crate::error::StoreError;
use crate::keymap::nfc;
use crate::location::Location;
use crate::pacer::Pacer;
use crate::source::{Source, SourceOptions};
use crate::target::Target;

/// What a command ends with: the exit code and the JSON document.
pub struct Outcome {
    pub exit: crate::error::Exit,
}

#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
    pub quiet: bool,
}

impl Output {
    /// Human text: stdout normally, stderr under `--json`, nowhere under `--quiet`.
    pub fn say(&self, text: &str) {
        if self.quiet {
            return;
        }
        if self.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }

    /// Warnings go to stderr unless `--quiet`.
    pub fn warn(&self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }

    /// The machine-readable result, under `--json` only.
    pub fn document(&self, value: &serde_json::Value) {
        if self.json {
            let mut out = std::io::stdout().lock();
            let _ = serde_json::to_writer_pretty(&mut out, value);
            let _ = writeln!(out);
        }
    }
}

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

pub fn source_options(cfg: &CopyConfig) -> SourceOptions {
    SourceOptions {
        endpoint: cfg.source_endpoint.clone(),
        region: cfg.source_region.clone(),
        allow_http: cfg.allow_http,
        sqlite: cfg.sqlite.clone(),
    }
}

/// Opens both stores and proves access to each before anything is copied (exit 3).
pub async fn open_stores(cfg: &CopyConfig) -> anyhow::Result<Stores> {
    let source_pacer = Arc::new(Pacer::new(cfg.retries, cfg.max_rate, None));
    let target_pacer = Arc::new(Pacer::new(cfg.retries, cfg.max_rate, cfg.max_bandwidth));
    let source: Arc<dyn Source> =
        crate::source::open(&cfg.source, &source_options(cfg), source_pacer.clone())
            .await?
            .into();
    let target: Arc<dyn Target> = open_target(&cfg.target, cfg.allow_http, target_pacer.clone())?;
    source.check_access().await.map_err(anyhow::Error::new)?;
    target.check_access().await.map_err(anyhow::Error::new)?;
    Ok(Stores {
        source,
        target,
        source_pacer,
        target_pacer,
    })
}

pub fn open_target(
    loc: &Location,
    allow_http: bool,
    pacer: Arc<Pacer>,
) -> anyhow::Result<Arc<dyn Target>> {
    Ok(crate::target::open(loc, allow_http, pacer)?.into())
}

/// What one listing of the target prefix showed: NFC key → (size, ETag).
#[derive(Default)]
pub struct TargetIndex {
    keys: HashMap<String, (u64, Option<String>)>,
}

impl TargetIndex {
    pub async fn build(target: &dyn Target) -> Result<TargetIndex, StoreError> {
        let mut keys = HashMap::new();
        let mut listing = target.list();
        while let Some(obj) = listing.next().await {
            let obj = obj?;
            keys.insert(nfc(&obj.key), (obj.size, obj.etag));
        }
        Ok(TargetIndex { keys })
    }

    pub fn get(&self, key: &str) -> Option<&(u64, Option<String>)> {
        self.keys.get(&nfc(key))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

pub fn human_bytes(n: u64) -> String {
    bytesize::ByteSize::b(n).display().iec().to_string()
}
