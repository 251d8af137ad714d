//! `r2migrate run`: the copy pipeline. A producer lists the source and selects what to
//! copy (skipping what the manifest already proves is in the target), workers copy under
//! one semaphore of `--concurrency` permits, and this task appends every outcome to the
//! manifest. Stages are joined by bounded channels, so memory stays flat. Ctrl-C stops
//! new work, lets in-flight objects finish or abort, flushes the manifest, exits 130.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use serde_json::json;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{human_bytes, open_stores, Output, TargetIndex};
use crate::config::CopyConfig;
use crate::delta::{change_since, Change};
use crate::error::{Exit, Interrupted, StoreError};
use crate::location::Location;
use crate::manifest::{
    now_rfc3339, Header, Intent, Manifest, ManifestWriter, ObjectRecord, SourceDeleted, Status,
    VERSION,
};
use crate::progress::Progress;
use crate::selection::{Selected, Selector};
use crate::source::{ObjectInfo, RowRef};
use crate::tally::{new_run_id, Tally};
use crate::target::Target;
use crate::transfer::holds_what_we_wrote;
use crate::transfer::intent::IntentLog;
use crate::transfer::upload::{MemoryBudget, UploadSettings};
use crate::transfer::{Copier, WorkItem};
use crate::writeback::{backup_path, Job, RowInfo, Writer};

/// What earlier runs of this manifest left: the last word on each source key, and the
/// writes they announced but never recorded an outcome for (a crash).
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
        .filter(|r| !RowInfo::of(r).is_some_and(|row| row.written))
        .map(|r| (r.source_key.clone(), r.target_key.clone()))
        .collect();
    out.sort();
    out
}

/// Runs one object's copy, turning a panic into its message: a bug in one object's path
/// must leave that object recorded `failed`, never unrecorded.
async fn supervised<T>(work: impl std::future::Future<Output = T>) -> Result<T, String> {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .map_err(|payload| {
            payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic with no message".into())
        })
}

/// What reaches the manifest task.
enum Msg {
    /// An outcome to append (and, for a verified row, to write back).
    Record(ObjectRecord, Option<RowRef>),
    /// Already verified by an earlier run, but its row was never rewritten.
    Heal(ObjectRecord, RowRef),
}

fn reject_record(
    run_id: &str,
    source_key: String,
    target_key: String,
    size: u64,
    reason: String,
) -> ObjectRecord {
    let mut r =
        ObjectRecord::new(&source_key, &target_key, size, Status::Failed).with_error(reason);
    r.run_id = Some(run_id.to_string());
    r
}

pub async fn run(cfg: CopyConfig, out: Output) -> anyhow::Result<Exit> {
    let stores = open_stores(&cfg).await?;
    let previous = Previous::load(&cfg)?;
    let index = TargetIndex::build(stores.target.as_ref())
        .await
        .map_err(anyhow::Error::new)?;
    let run_id = new_run_id();
    let mut selector = Selector::new(
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
        selection: selector.describe(),
        command: Some("run".into()),
        sqlite: cfg.sqlite.clone(),
    };
    let mut writer = ManifestWriter::open(&cfg.manifest, &header)?;
    let backup_prefix = cfg
        .backup_prefix
        .clone()
        .unwrap_or_else(|| format!("_r2migrate/backup/{run_id}/"));
    let backup_prefix = format!("{}{}", stores.target.prefix(), backup_prefix);

    let cancel = CancellationToken::new();
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let (cancel, interrupted) = (cancel.clone(), interrupted.clone());
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupted.store(true, Ordering::SeqCst);
                cancel.cancel();
            }
        });
    }
    let (intents, mut intent_rx) = IntentLog::channel(64);
    let copier = Arc::new(Copier {
        source: stores.source.clone(),
        target: stores.target.clone(),
        memory: MemoryBudget::new(cfg.concurrency as u64 * cfg.part_size),
        settings: UploadSettings {
            part_size: cfg.part_size,
            multipart_threshold: cfg.multipart_threshold,
        },
        cancel: cancel.clone(),
        on_conflict: cfg.on_conflict,
        backup_prefix,
        run_id: run_id.clone(),
        intents,
    });
    let fatal: Arc<Mutex<Option<StoreError>>> = Arc::new(Mutex::new(None));
    let already = Arc::new(AtomicU64::new(0));
    // Every item the selection keeps (copied or rejected); each must end with a record.
    let listed = Arc::new(AtomicU64::new(0));
    let (rec_tx, mut rec_rx) = mpsc::channel::<Msg>(256);
    // SQLite write-back: one thread, fed verified records, answering with rewritten ones.
    let (wb_tx, mut wb_rx) = mpsc::channel::<ObjectRecord>(256);
    let mut wb_jobs: Option<std::sync::mpsc::Sender<Job>> = None;
    let mut db_backup: Option<std::path::PathBuf> = None;
    if let (Location::Sqlite { path }, Some(s)) = (&cfg.source, &cfg.sqlite) {
        if s.write_back.is_some() {
            let (jobs_tx, jobs_rx) = std::sync::mpsc::channel::<Job>();
            db_backup = (!cfg.no_db_backup).then(|| backup_path(path, &run_id));
            let writer = Writer {
                db: path.clone(),
                settings: s.clone(),
                backup: db_backup.clone(),
            };
            let results = wb_tx.clone();
            std::thread::spawn(move || writer.run(jobs_rx, results));
            wb_jobs = Some(jobs_tx);
        }
    }
    drop(wb_tx);

    let producer = {
        let (cancel, fatal, already, listed, source, copier) = (
            cancel.clone(),
            fatal.clone(),
            already.clone(),
            listed.clone(),
            stores.source.clone(),
            copier.clone(),
        );
        let concurrency = cfg.concurrency;
        let run_id = run_id.clone();
        tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(concurrency));
            let mut workers = JoinSet::new();
            let mut seen: HashSet<String> = HashSet::new();
            let mut listing = source.list();
            loop {
                let next = tokio::select! {
                    n = listing.next() => n,
                    _ = cancel.cancelled() => break,
                };
                let item = match next {
                    None => break,
                    Some(Err(e)) => {
                        fatal
                            .lock()
                            .unwrap()
                            .get_or_insert(e.context("listing the source"));
                        cancel.cancel();
                        break;
                    }
                    Some(Ok(item)) => item,
                };
                let selected = selector.select(item);
                let kept = match &selected {
                    Selected::Excluded => None,
                    Selected::Take { info, .. } => Some(&info.key),
                    Selected::Reject { source_key, .. } => Some(source_key),
                };
                if let Some(key) = kept {
                    seen.insert(key.clone());
                    listed.fetch_add(1, Ordering::Relaxed);
                }
                let (info, target_key) = match selected {
                    Selected::Excluded => continue,
                    Selected::Reject {
                        source_key,
                        target_key,
                        size,
                        reason,
                        ..
                    } => {
                        let rec = reject_record(&run_id, source_key, target_key, size, reason);
                        let _ = rec_tx.send(Msg::Record(rec, None)).await;
                        continue;
                    }
                    Selected::Take { info, target_key } => (info, target_key),
                };
                let prev = previous.get(&info.key);
                let listed = index.get(&target_key);
                let unfinished = previous
                    .unfinished
                    .get(&info.key)
                    .cloned()
                    .unwrap_or_default();
                // An unanswered intent means a crash left this key mid-write: look at it.
                let done = unfinished.is_empty()
                    && match already_done(copier.target.as_ref(), prev, &info, &target_key, listed)
                        .await
                    {
                        Ok(done) => done,
                        Err(e) if e.is_fatal() => {
                            fatal.lock().unwrap().get_or_insert(e);
                            cancel.cancel();
                            break;
                        }
                        Err(_) => false, // the copy path will look again, and record what it finds
                    };
                if done {
                    already.fetch_add(1, Ordering::Relaxed);
                    // A crash between upload and write-back: write the row now.
                    if let (Some(prev), Some(row)) = (prev, &info.row) {
                        if !RowInfo::of(prev).is_some_and(|r| r.written) {
                            let _ = rec_tx.send(Msg::Heal(prev.clone(), row.clone())).await;
                        }
                    }
                    continue;
                }
                let work = WorkItem {
                    listed: listed.is_some(),
                    previous: prev.cloned(),
                    unfinished,
                    info,
                    target_key,
                };
                let permit = tokio::select! {
                    p = permits.clone().acquire_owned() => p.expect("never closed"),
                    _ = cancel.cancelled() => break,
                };
                let (copier, tx, fatal, cancel) = (
                    copier.clone(),
                    rec_tx.clone(),
                    fatal.clone(),
                    cancel.clone(),
                );
                workers.spawn(async move {
                    let _permit = permit;
                    let row = work.info.row.clone();
                    // Built before the copy, so even a panic leaves an honest record.
                    let if_panics = copier.record(&work, Status::Failed);
                    match supervised(copier.process(work)).await {
                        Ok(Ok(rec)) => {
                            let _ = tx.send(Msg::Record(rec, row)).await;
                        }
                        Ok(Err(e)) => {
                            fatal.lock().unwrap().get_or_insert(e);
                            cancel.cancel();
                        }
                        Err(panic) => {
                            let rec = if_panics.with_error(format!(
                                "internal error: {panic}; the object was not copied — re-run to retry, and report this bug"
                            ));
                            let _ = tx.send(Msg::Record(rec, None)).await;
                        }
                    }
                });
                while workers.try_join_next().is_some() {}
            }
            while workers.join_next().await.is_some() {}
            // Only a listing that ran to its end can tell what the source no longer has.
            if cancel.is_cancelled() {
                Vec::new()
            } else {
                deleted_at_source(&previous, &seen)
            }
        })
    };

    let started = Instant::now();
    let progress = Progress::new(&out, "run");
    let mut tally = Tally::default();
    let mut problems: Vec<ObjectRecord> = Vec::new();
    let (mut rows_written, mut rows_not_written) = (0u64, 0u64);
    let mut rewritten = |rec: ObjectRecord,
                         writer: &mut ManifestWriter,
                         problems: &mut Vec<ObjectRecord>|
     -> anyhow::Result<()> {
        writer.append(&rec)?;
        if RowInfo::of(&rec).is_some_and(|r| r.written) {
            rows_written += 1;
        } else {
            rows_not_written += 1;
            if problems.len() < 1000 {
                problems.push(rec);
            }
        }
        Ok(())
    };
    loop {
        tokio::select! {
            msg = rec_rx.recv() => {
                let Some(msg) = msg else { break };
                let (rec, row, append) = match msg {
                    Msg::Record(rec, row) => (rec, row, true),
                    Msg::Heal(rec, row) => (rec, Some(row), false),
                };
                if append {
                    writer.append(&rec)?;
                    tally.add(&rec);
                    if crate::testhooks::cancel_after(tally.total()) {
                        interrupted.store(true, Ordering::SeqCst);
                        cancel.cancel();
                    }
                }
                if let (Some(jobs), Some(row), true) = (&wb_jobs, row, rec.status.is_verified()) {
                    let _ = jobs.send(Job { record: rec.clone(), row });
                }
                if matches!(rec.status, Status::Failed | Status::Conflict) && problems.len() < 1000 {
                    problems.push(rec);
                }
                progress.update(
                    tally.total(),
                    tally.failed + tally.conflict,
                    tally.bytes_copied,
                    started.elapsed(),
                );
            }
            Some(rec) = wb_rx.recv() => rewritten(rec, &mut writer, &mut problems)?,
            // Intents are written before the write they announce may start.
            Some((intent, done)) = intent_rx.recv() => {
                writer.append_line(&intent)?;
                let _ = done.send(());
            }
        }
    }
    drop(wb_jobs);
    while let Some(rec) = wb_rx.recv().await {
        rewritten(rec, &mut writer, &mut problems)?;
    }
    let deleted = producer.await?;
    for (source_key, target_key) in &deleted {
        writer.append_line(&SourceDeleted::new(source_key, target_key, &run_id))?;
    }
    writer.sync()?;
    progress.finish();

    if let Some(e) = fatal.lock().unwrap().take() {
        return Err(anyhow::Error::new(e).context(format!(
            "the run stopped; what was done is recorded in {}",
            cfg.manifest.display()
        )));
    }
    if interrupted.load(Ordering::SeqCst) {
        return Err(anyhow::Error::new(Interrupted));
    }

    let elapsed = started.elapsed().as_secs_f64();
    let handled = tally.copied + tally.identical;
    let listed = listed.load(Ordering::Relaxed);
    let recorded = tally.total() + already.load(Ordering::Relaxed);
    let unrecorded = listed.saturating_sub(recorded);
    let exit = if tally.has_problems() || rows_not_written > 0 || unrecorded > 0 {
        Exit::Partial
    } else {
        Exit::Ok
    };
    out.say(&format!("run {run_id}: {} → {}", cfg.source, cfg.target));
    out.say(&format!(
        "  copied {} ({}), identical {}, already verified {}, skipped {}, conflicts {}, failed {}",
        tally.copied,
        human_bytes(tally.bytes_copied),
        tally.identical,
        already.load(Ordering::Relaxed),
        tally.skipped,
        tally.conflict,
        tally.failed
    ));
    out.say(&format!(
        "  listed {listed}, recorded {recorded} (this run, or verified by an earlier one)"
    ));
    if listed != recorded {
        out.warn(&format!(
            "  internal error: {listed} objects were listed but {recorded} recorded; the run is not complete — re-run to resume, and report this bug"
        ));
    }
    out.say(&format!(
        "  {:.1} objects/s, {}/s over {:.2}s; manifest {}",
        handled as f64 / elapsed.max(1e-6),
        human_bytes((tally.bytes_copied as f64 / elapsed.max(1e-6)) as u64),
        elapsed,
        cfg.manifest.display()
    ));
    if !deleted.is_empty() {
        out.say(&format!(
            "  deleted at the source since migrated (left in the target): {}",
            deleted.len()
        ));
        for (source_key, _) in deleted.iter().take(20) {
            out.say(&format!("    {source_key}"));
        }
    }
    if rows_written + rows_not_written > 0 {
        out.say(&format!(
            "  rows rewritten {rows_written}, not rewritten {rows_not_written}{}",
            db_backup
                .as_ref()
                .map(|b| format!("; database backed up to {}", b.display()))
                .unwrap_or_default()
        ));
    }
    for p in problems.iter().take(20) {
        out.warn(&format!(
            "  {} {}: {}",
            p.status.as_str(),
            p.source_key,
            p.error.as_deref().unwrap_or("")
        ));
    }
    if problems.len() > 20 {
        out.warn(&format!(
            "  … and more: see `r2migrate report --manifest {}`",
            cfg.manifest.display()
        ));
    }
    out.document(&json!({
        "command": "run",
        "run_id": run_id,
        "source": cfg.source.canonical(),
        "target": cfg.target.canonical(),
        "manifest": cfg.manifest,
        "counts": tally,
        "already_verified": already.load(Ordering::Relaxed),
        "listed": listed,
        "recorded": recorded,
        "elapsed_seconds": elapsed,
        "objects_per_second": handled as f64 / elapsed.max(1e-6),
        "bytes_per_second": tally.bytes_copied as f64 / elapsed.max(1e-6),
        "retries": stores.retries(),
        "deleted_at_source": deleted.iter().map(|(s, t)| json!({"source_key": s, "target_key": t})).collect::<Vec<_>>(),
        "rows_rewritten": rows_written,
        "rows_not_rewritten": rows_not_written,
        "db_backup": db_backup,
        "problems": problems.iter().map(|p| json!({
            "source_key": p.source_key, "target_key": p.target_key,
            "status": p.status, "error": p.error,
        })).collect::<Vec<_>>(),
        "exit_code": exit as i32,
    }));
    Ok(exit)
}
