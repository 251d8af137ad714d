//! `r2migrate run`: the copy pipeline, in named stages. *Open* the stores, the earlier
//! manifest and the target's listing; *produce* (list the source, select, skip what the
//! manifest already proves is in the target) and *copy* (workers under one semaphore of
//! `--concurrency` permits) in [`produce`]; *record* every outcome in the manifest from
//! one task in [`record`]; *summarise* in [`summary`]. Stages are joined by bounded
//! channels, so memory stays flat. Ctrl-C stops new work, lets in-flight objects finish
//! or abort, flushes the manifest, exits 130.

mod previous;
mod produce;
mod record;
mod summary;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use previous::{already_done, deleted_at_source, Previous, SeenKeys};

use super::{open_stores, Output, Stores, TargetIndex};
use crate::concurrency::Concurrency;
use crate::config::CopyConfig;
use crate::error::{Exit, Interrupted, StoreError};
use crate::manifest::lock::ManifestLock;
use crate::manifest::{
    now_rfc3339, Header, ManifestWriter, ObjectRecord, Selection, SourceDeleted, VERSION,
};
use crate::progress::{ListingCounts, Progress};
use crate::selection::Selector;
use crate::source::sqlite::RowRef;
use crate::tally::new_run_id;
use crate::transfer::intent::IntentLog;
use crate::transfer::resume::{self, Resumable};
use crate::transfer::upload::{MemoryBudget, UploadSettings};
use crate::transfer::Copier;
use produce::Producer;
use record::{Recorder, RowWriter};
use summary::Summary;

/// What reaches the record stage.
enum Msg {
    /// An outcome to append (and, for a verified row, to write back).
    Record(ObjectRecord, Option<RowRef>),
    /// Already verified by an earlier run, but its row was never rewritten.
    Heal(ObjectRecord, RowRef),
}

/// What every stage shares: how to stop, why it stopped, and the counts that prove
/// every listed object was recorded.
#[derive(Clone)]
struct RunState {
    cancel: CancellationToken,
    interrupted: Arc<AtomicBool>,
    fatal: Arc<Mutex<Option<StoreError>>>,
    /// Items the selection kept (each must end with a record), those an earlier run
    /// already proves done, and whether the listing is complete.
    listing: ListingCounts,
    /// Multipart uploads in flight, for the progress display.
    in_flight: crate::transfer::inflight::InFlight,
}

impl RunState {
    /// A fresh state that Ctrl-C or SIGTERM (what Kubernetes sends) interrupts; a second
    /// signal exits at once (the manifest keeps every record already appended).
    fn watching_signals() -> RunState {
        let state = RunState {
            cancel: CancellationToken::new(),
            interrupted: Arc::new(AtomicBool::new(false)),
            fatal: Arc::new(Mutex::new(None)),
            listing: ListingCounts::default(),
            in_flight: Default::default(),
        };
        let on_signal = state.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            if stop_signal(&mut term).await == Stop::Keyboard {
                crate::terminal::after_keyboard_interrupt();
            }
            on_signal.interrupt();
            stop_signal(&mut term).await;
            crate::terminal::clear_before_exit();
            eprintln!(
                "error: interrupted twice: exiting now; the manifest keeps what was recorded, run the same command again to resume"
            );
            std::process::exit(Exit::Interrupted as i32);
        });
        state
    }

    /// Stops the run for an error that must end it (the first one is reported).
    fn fail(&self, e: StoreError) {
        self.fatal.lock().unwrap().get_or_insert(e);
        self.cancel.cancel();
    }

    fn interrupt(&self) {
        self.interrupted.store(true, Ordering::SeqCst);
        self.cancel.cancel();
    }

    /// After the manifest is flushed: the fatal error or the interruption, if any.
    fn stopped(&self, cfg: &CopyConfig) -> anyhow::Result<()> {
        if let Some(e) = self.fatal.lock().unwrap().take() {
            return Err(anyhow::Error::new(e).context(format!(
                "the run stopped; what was done is recorded in {}",
                cfg.manifest.display()
            )));
        }
        if self.interrupted.load(Ordering::SeqCst) {
            return Err(anyhow::Error::new(Interrupted));
        }
        Ok(())
    }
}

/// After a clean end, drops the intents and part lines the run's outcomes answered, when
/// they are a tenth of the file or more (a delta run that wrote a few leaves a large
/// manifest alone). A failure leaves the manifest as it was, whole: a warning, not an error.
fn compact_when_worth_it(manifest: &std::path::Path, announced: u64, out: &Output) {
    let size = std::fs::metadata(manifest).map(|m| m.len()).unwrap_or(0);
    if announced == 0 || announced * 10 < size || crate::testhooks::keep_intents() {
        return;
    }
    if let Err(e) = crate::manifest::compact(manifest) {
        out.warn(&format!(
            "warning: could not compact manifest {} ({e}); it is whole and correct as it is, only larger",
            manifest.display()
        ));
    }
}

#[derive(Debug, PartialEq)]
enum Stop {
    /// SIGINT: Ctrl-C, which the terminal echoes.
    Keyboard,
    /// SIGTERM: `kill`, Kubernetes.
    Terminate,
}

/// The next SIGINT or SIGTERM.
async fn stop_signal(term: &mut Option<tokio::signal::unix::Signal>) -> Stop {
    let terminate = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    // A handler that cannot be installed never fires (it must not read as a signal).
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await
        }
    };
    tokio::select! {
        _ = interrupt => Stop::Keyboard,
        _ = terminate => Stop::Terminate,
    }
}

/// The open stage's result: everything the later stages start from.
struct Opened {
    /// Held for the whole run: one writer per manifest.
    _lock: ManifestLock,
    stores: Stores,
    previous: Previous,
    index: TargetIndex,
    run_id: String,
    selector: Selector,
    writer: ManifestWriter,
    /// Uploads earlier runs left open with recorded parts, to go on with.
    resumable: Resumable,
}

async fn open(cfg: &CopyConfig, out: &Output) -> anyhow::Result<Opened> {
    let stores = open_stores(cfg).await?;
    let lock = ManifestLock::acquire(&cfg.manifest, "run", |w| out.warn(w))?;
    let previous = Previous::load(cfg)?;
    // Uploads with recorded parts are left for their objects to go on with.
    let resumable = match cfg.resume_uploads {
        true => Resumable::new(resume::candidates(&previous.unfinished, &previous.parts)),
        false => Resumable::default(),
    };
    let aborted = crate::transfer::intent::abort_left_open(
        stores.target.as_ref(),
        &previous.unfinished,
        &resumable.ids(),
    )
    .await
    .map_err(anyhow::Error::new)?;
    if aborted > 0 {
        out.say(&format!(
            "closed {aborted} multipart upload(s) an interrupted run may have left open"
        ));
    }
    let index = TargetIndex::build(stores.target.as_ref())
        .await
        .map_err(anyhow::Error::new)?;
    let run_id = new_run_id();
    let selector = Selector::new(
        cfg.filter.clone(),
        cfg.shard,
        stores.target.prefix(),
        cfg.key_template.clone(),
    );
    let header = Header {
        kind: "header".into(),
        version: VERSION,
        run_id: run_id.clone(),
        source: cfg.source.canonical(),
        target: cfg.target.canonical(),
        started_at: now_rfc3339(),
        selection: Selection {
            copy_links: cfg.copy_links,
            ..selector.describe()
        },
        command: Some("run".into()),
        sqlite: cfg.sqlite.clone(),
    };
    let writer = ManifestWriter::open(&cfg.manifest, &header)?;
    Ok(Opened {
        _lock: lock,
        stores,
        previous,
        index,
        run_id,
        selector,
        writer,
        resumable,
    })
}

fn copier(cfg: &CopyConfig, o: &mut Opened, state: &RunState, intents: IntentLog) -> Copier {
    let backup_prefix = cfg
        .backup_prefix
        .clone()
        .unwrap_or_else(|| format!("_r2migrate/backup/{}/", o.run_id));
    Copier {
        source: o.stores.source.clone(),
        target: o.stores.target.clone(),
        memory: MemoryBudget::new(cfg.stores.concurrency as u64 * cfg.part_size),
        settings: UploadSettings {
            part_size: cfg.part_size,
            multipart_threshold: cfg.multipart_threshold,
            headers: cfg.headers.clone(),
            storage_class: cfg.storage_class,
            parts_at_once: cfg.stores.concurrency.min(crate::limits::PARTS_IN_FLIGHT),
            multipart_checksum: cfg.multipart_checksum,
        },
        cancel: state.cancel.clone(),
        on_conflict: cfg.on_conflict,
        backup_prefix: format!("{}{}", o.stores.target.prefix(), backup_prefix),
        run_id: o.run_id.clone(),
        intents,
        pacer: o.stores.source_pacer.clone(),
        in_flight: state.in_flight.clone(),
        repeats: Default::default(),
        resume_uploads: cfg.resume_uploads,
        resumable: std::mem::take(&mut o.resumable),
    }
}

pub async fn run(cfg: CopyConfig, out: Output) -> anyhow::Result<Exit> {
    let mut opened = open(&cfg, &out).await?;
    let state = RunState::watching_signals();
    let (intents, intent_rx) = IntentLog::channel(64);
    let copier = Arc::new(copier(&cfg, &mut opened, &state, intents));
    let left_open = copier.clone();
    let rows = RowWriter::start(&cfg, &opened.run_id);
    let db_backup = rows.db_backup.clone();
    let (stores, run_id) = (&opened.stores, opened.run_id.clone());
    let (rec_tx, rec_rx) = mpsc::channel::<Msg>(256);
    let concurrency = Concurrency::new(
        cfg.stores.in_flight,
        vec![stores.source_pacer.clone(), stores.target_pacer.clone()],
    );
    let producer = tokio::spawn(
        Producer {
            selector: opened.selector,
            previous: opened.previous,
            index: opened.index,
            source: stores.source.clone(),
            copier,
            concurrency: concurrency.clone(),
            run_id: run_id.clone(),
            state: state.clone(),
            records: rec_tx,
        }
        .produce(),
    );

    let mut recorder = Recorder::new(
        opened.writer,
        Progress::new(
            &out,
            "run",
            cfg.status_interval,
            state.listing.clone(),
            state.in_flight.clone(),
        )
        .showing(concurrency.clone()),
    );
    recorder.record(rec_rx, intent_rx, rows, &state).await?;
    let deleted = producer.await?;
    if !state.cancel.is_cancelled() {
        // A whole run: an upload no object went on with had its object not copied now
        // (deleted at the source, filtered out, or already there).
        left_open
            .resumable
            .abort_untaken(stores.target.as_ref())
            .await;
    }
    for (source_key, target_key) in &deleted {
        let line = SourceDeleted::new(source_key, target_key, &run_id);
        recorder.writer.append_line(&line)?;
    }
    recorder.writer.sync()?;
    recorder.finish();
    state.stopped(&cfg)?;
    compact_when_worth_it(&cfg.manifest, recorder.writer.announced_bytes(), &out);

    let summary = Summary {
        cfg: &cfg,
        run_id: &run_id,
        recorder: &recorder,
        already: state.listing.already.load(Ordering::Relaxed),
        listed: state.listing.listed.load(Ordering::Relaxed),
        deleted: &deleted,
        db_backup: db_backup.as_deref(),
        retries: stores.retries(),
        in_flight: concurrency.span(),
    };
    summary.say(&out);
    out.document(&summary.document());
    Ok(summary.exit())
}
