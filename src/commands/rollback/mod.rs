//! `r2migrate rollback`: undoes what a manifest records. Rows a SQLite write-back
//! rewrote come back first ([`rows`]); then objects this tool created are deleted only
//! while they still hold the bytes it wrote, and objects it overwrote are restored from
//! their backup copy, then the backup is removed ([`work`]); `identical` objects are
//! never touched. Objects changed since are left alone and recorded `kept`. Every
//! outcome is appended to the manifest, so a second rollback resumes.

mod rows;
mod urls;
mod work;

use std::collections::HashSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use serde_json::json;

use super::{open_target, Output};
use crate::concurrency::Concurrency;
use crate::config::RollbackConfig;
use crate::error::Exit;
use crate::error::StoreError;
use crate::location::{Location, Role};
use crate::manifest::lock::ManifestLock;
use crate::manifest::{
    now_rfc3339, Header, Line, ManifestSet, ManifestWriter, ObjectRecord, Status, Word, VERSION,
};
use crate::output::list_mark;
use crate::spill::Lines;
use crate::tally::{new_run_id, Tally};
use crate::target::Target;
use urls::Rewrites;
use work::{all_work, undo, Action};

/// The record after rollback: new status, and its row (if any) no longer rewritten.
fn row_restored(rec: &ObjectRecord, status: Status) -> ObjectRecord {
    let mut r = rec.clone();
    r.status = status;
    r.at = now_rfc3339();
    r.error = None;
    if let Some(row) = r.row.as_mut() {
        row.written = false;
    }
    r
}

fn confirm(prompt: &str) -> anyhow::Result<bool> {
    eprint!("{prompt} [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// What rollback did, as it does it: appended to the manifest (unless `--dry-run`),
/// counted, and listed for the report.
pub(super) struct Ledger {
    writer: Option<ManifestWriter>,
    tally: Tally,
    /// A line per object (on disk: a rollback of millions lists millions).
    lines: Lines,
    errors: u64,
    /// What became of each stored URL `rewrite-urls` changed.
    url_lines: Lines,
    /// Of those, left as the application changed them.
    urls_kept: u64,
}

impl Ledger {
    fn open(args: &RollbackConfig, first: &Header) -> anyhow::Result<Ledger> {
        let writer = if args.dry_run {
            None
        } else {
            let header = Header {
                kind: "header".into(),
                version: VERSION,
                run_id: new_run_id(),
                started_at: now_rfc3339(),
                command: Some("rollback".into()),
                ..first.clone()
            };
            Some(ManifestWriter::open(&args.manifest, &header)?)
        };
        Ok(Ledger {
            writer,
            tally: Tally::default(),
            lines: Lines::default(),
            errors: 0,
            url_lines: Lines::default(),
            urls_kept: 0,
        })
    }

    /// One outcome: its new record, and a line saying what happened.
    fn record(&mut self, rec: &ObjectRecord, note: &str) -> anyhow::Result<()> {
        self.tally.add(rec);
        if let Some(w) = self.writer.as_mut() {
            w.append(rec)?;
        }
        let line = json!({"target_key": rec.target_key, "action": rec.status, "note": note});
        Ok(self.lines.push(&line)?)
    }

    /// An object that could not be handled (the manifest keeps its old record).
    fn error(&mut self, rec: &ObjectRecord, why: String) -> anyhow::Result<()> {
        self.errors += 1;
        let line = json!({"target_key": rec.target_key, "action": "error", "note": why});
        Ok(self.lines.push(&line)?)
    }

    /// A line for the report that is not about an object (a restored URL).
    fn note(&mut self, line: serde_json::Value) -> anyhow::Result<()> {
        if line["action"] == "url_kept" {
            self.urls_kept += 1;
        }
        Ok(self.url_lines.push(&line)?)
    }

    fn exit(&self) -> Exit {
        if self.tally.kept > 0 || self.errors > 0 || self.urls_kept > 0 {
            Exit::Partial
        } else {
            Exit::Ok
        }
    }
}

/// Asks on a terminal unless `--yes` or `--dry-run`; `false` when the user says no.
/// `work` counts what would be done (a walk over the records, only when asking).
fn confirmed(
    args: &RollbackConfig,
    work: impl FnOnce() -> anyhow::Result<(u64, u64)>,
    target: &str,
) -> anyhow::Result<bool> {
    if args.dry_run || args.yes || !std::io::stdin().is_terminal() {
        return Ok(true);
    }
    let (deletes, restores) = work()?;
    if deletes + restores == 0 {
        return Ok(true);
    }
    confirm(&format!(
        "Roll back {} in {target}: delete {deletes} objects r2migrate created and restore {restores} it overwrote?",
        args.manifest.display()
    ))
}

/// Reads the manifest as a stream: the record standing for each object on disk, the
/// last change of each stored URL beside it.
fn load(path: &Path) -> anyhow::Result<(ManifestSet, Rewrites)> {
    let mut rewrites = Rewrites::default();
    let set = ManifestSet::read(&[path.to_path_buf()], Word::Standing, |_, line| {
        if let Line::Rewrite(r) = line {
            rewrites.note(r)?;
        }
        Ok(())
    })?;
    Ok((set, rewrites))
}

/// Rolls back each manifest of the set in turn (the shards of one migration: a set
/// that mixes migrations is refused first); one JSON document for all.
pub async fn rollback(args: RollbackConfig, out: Output) -> anyhow::Result<Exit> {
    let mut lists = Vec::new();
    if args.manifests.len() <= 1 {
        let (exit, doc) = rollback_one(args, out, &mut lists).await?;
        if let Some(doc) = doc {
            out.document_with_lists(&doc, &mut lists);
        }
        return Ok(exit);
    }
    // Refuses a set that mixes migrations before anything is touched.
    ManifestSet::read(&args.manifests, Word::Last, |_, _| Ok(()))?;
    let mut docs = Vec::new();
    let mut worst = Exit::Ok;
    for m in &args.manifests {
        let one = RollbackConfig {
            manifest: m.clone(),
            manifests: vec![m.clone()],
            ..args.clone()
        };
        let (exit, doc) = rollback_one(one, out, &mut lists).await?;
        if exit != Exit::Ok {
            worst = exit;
        }
        docs.extend(doc);
    }
    let doc = json!({
        "command": "rollback",
        "dry_run": args.dry_run,
        "manifests": docs,
        "exit_code": worst as i32,
    });
    out.document_with_lists(&doc, &mut lists);
    Ok(worst)
}

/// Rolls back one manifest; its document's lists of objects and URLs go to `lists`.
async fn rollback_one(
    args: RollbackConfig,
    out: Output,
    lists: &mut Vec<Lines>,
) -> anyhow::Result<(Exit, Option<serde_json::Value>)> {
    // A dry run writes nothing, so it needs no lock.
    let _lock = (!args.dry_run)
        .then(|| ManifestLock::acquire(&args.manifest, "rollback", |w| out.warn(w)))
        .transpose()?;
    let (set, rewrites) = load(&args.manifest)?;
    let first = set.first_header().clone();
    let target_loc = Location::parse(&first.target, Role::Target)?;
    let (target, pacer) = open_target(&target_loc, &args.stores, None)?;
    target.check_access().await.map_err(anyhow::Error::new)?;

    if !args.dry_run {
        crate::transfer::intent::abort_left_open(
            target.as_ref(),
            &set.unfinished,
            &Default::default(),
        )
        .await
        .map_err(anyhow::Error::new)?;
    }
    let unfinished = work::unfinished_work(target.as_ref(), &set)
        .await
        .map_err(anyhow::Error::new)?;
    let count_work = || {
        let mut counts = (0, 0);
        for w in all_work(&set, unfinished.clone(), &Default::default()) {
            match w?.1 {
                Action::Delete => counts.0 += 1,
                _ => counts.1 += 1,
            }
        }
        Ok(counts)
    };
    if !confirmed(&args, count_work, &first.target)? {
        out.say("rollback cancelled; nothing changed");
        return Ok((Exit::Ok, None));
    }
    let mut ledger = Ledger::open(&args, &first)?;
    // The application's URLs first, so nothing points at an object about to go.
    let urls = urls::restore(&rewrites, args.dry_run, &mut ledger).await?;
    if urls.restored + urls.already + urls.kept > 0 {
        out.say(&format!(
            "stored URLs: {} put back, {} already as before, {} kept (changed since)",
            urls.restored, urls.already, urls.kept
        ));
    }
    let rows_kept = rows::restore(&first, &set, &args.manifest, args.dry_run, &mut ledger).await?;
    let left: HashSet<String> = rows_kept.into_keys().collect();
    let work = all_work(&set, unfinished, &left);
    let count = Concurrency::new(args.stores.in_flight, vec![pacer]);
    undo_all((target, count), work, &args, &mut ledger).await?;
    if let Some(w) = ledger.writer.as_mut() {
        w.sync()?;
    }
    let doc = say(&args, &first, &mut ledger, &out, lists)?;
    Ok((ledger.exit(), Some(doc)))
}

/// Undoes each object, as many at once as `--concurrency` fixes or the rollback finds;
/// a fatal error stops the rollback.
async fn undo_all(
    (target, count): (Arc<dyn Target>, Arc<Concurrency>),
    work: impl Iterator<Item = Result<(ObjectRecord, Action), StoreError>>,
    args: &RollbackConfig,
    ledger: &mut Ledger,
) -> anyhow::Result<()> {
    let dry_run = args.dry_run;
    let results = count.run_each(work, |w| {
        let target = target.clone();
        async move {
            let Ok((rec, action)) = w else {
                return (
                    w.map(|(rec, _)| (rec, Ok((Status::Kept, String::new())))),
                    0,
                );
            };
            let outcome = undo(target.as_ref(), &rec, action, dry_run).await;
            (Ok((rec, outcome)), 0)
        }
    });
    let mut results = std::pin::pin!(results);
    while let Some(done) = results.next().await {
        let (rec, outcome) = done.map_err(anyhow::Error::new)?;
        match outcome {
            Ok((status, note)) => {
                let mut r = row_restored(&rec, status);
                r.error = (status == Status::Kept).then(|| note.clone());
                ledger.record(&r, &note)?;
            }
            Err(e) if e.is_fatal() => return Err(anyhow::Error::new(e)),
            Err(e) => ledger.error(&rec, e.to_string())?,
        }
    }
    Ok(())
}

/// Prints what rollback did; returns its JSON document, whose lists of objects and
/// URLs it moves to `lists` (marked in the document where they go).
fn say(
    args: &RollbackConfig,
    first: &Header,
    ledger: &mut Ledger,
    out: &Output,
    lists: &mut Vec<Lines>,
) -> anyhow::Result<serde_json::Value> {
    let (tally, errors) = (&ledger.tally, ledger.errors);
    let verb = if args.dry_run {
        "would roll back"
    } else {
        "rolled back"
    };
    out.say(&format!(
        "rollback {}: {verb} {}, kept {} (changed since migration), errors {errors}",
        first.target, tally.rolled_back, tally.kept
    ));
    ledger.lines.for_each(|l| {
        if args.dry_run || l["action"] != json!("rolled_back") {
            out.say(&format!(
                "  {}: {}",
                l["target_key"].as_str().unwrap_or(""),
                l["note"].as_str().unwrap_or("")
            ));
        }
        Ok(())
    })?;
    ledger.url_lines.for_each(|l| {
        if l["action"] == "url_kept" {
            out.say(&format!(
                "  {} {} id {} {}: {}",
                l["database"].as_str().unwrap_or(""),
                l["table"].as_str().unwrap_or(""),
                l["id"],
                l["column"].as_str().unwrap_or(""),
                l["note"].as_str().unwrap_or("")
            ));
        }
        Ok(())
    })?;
    let exit = ledger.exit();
    lists.push(std::mem::take(&mut ledger.lines));
    lists.push(std::mem::take(&mut ledger.url_lines));
    let tally = &ledger.tally;
    Ok(json!({
        "command": "rollback",
        "dry_run": args.dry_run,
        "target": first.target,
        "manifest": args.manifest,
        "rolled_back": tally.rolled_back,
        "kept": tally.kept,
        "errors": ledger.errors,
        "objects": list_mark(lists.len() - 2),
        "urls": list_mark(lists.len() - 1),
        "urls_kept": ledger.urls_kept,
        "exit_code": exit as i32,
    }))
}
