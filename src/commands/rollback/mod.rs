//! `r2migrate rollback`: undoes what a manifest records. Rows a SQLite write-back
//! rewrote come back first ([`rows`]); then objects this tool created are deleted only
//! while they still hold the bytes it wrote, and objects it overwrote are restored from
//! their backup copy, then the backup is removed ([`work`]); `identical` objects are
//! never touched. Objects changed since are left alone and recorded `kept`. Every
//! outcome is appended to the manifest, so a second rollback resumes.

mod rows;
mod urls;
mod work;

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use serde_json::json;

use super::{open_target, Output};
use crate::concurrency::Concurrency;
use crate::config::RollbackConfig;
use crate::error::{usage, Exit};
use crate::location::{Location, Role};
use crate::manifest::lock::ManifestLock;
use crate::manifest::{
    now_rfc3339, Header, Manifest, ManifestWriter, ObjectRecord, Status, VERSION,
};
use crate::tally::{new_run_id, Tally};
use crate::target::Target;
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
    lines: Vec<serde_json::Value>,
    errors: u64,
    /// What became of each stored URL `rewrite-urls` changed.
    url_lines: Vec<serde_json::Value>,
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
            lines: Vec::new(),
            errors: 0,
            url_lines: Vec::new(),
            urls_kept: 0,
        })
    }

    /// One outcome: its new record, and a line saying what happened.
    fn record(&mut self, rec: &ObjectRecord, note: &str) -> anyhow::Result<()> {
        self.tally.add(rec);
        if let Some(w) = self.writer.as_mut() {
            w.append(rec)?;
        }
        self.lines
            .push(json!({"target_key": rec.target_key, "action": rec.status, "note": note}));
        Ok(())
    }

    /// An object that could not be handled (the manifest keeps its old record).
    fn error(&mut self, rec: &ObjectRecord, why: String) {
        self.errors += 1;
        self.lines
            .push(json!({"target_key": rec.target_key, "action": "error", "note": why}));
    }

    /// A line for the report that is not about an object (a restored URL).
    fn note(&mut self, line: serde_json::Value) {
        if line["action"] == "url_kept" {
            self.urls_kept += 1;
        }
        self.url_lines.push(line);
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
fn confirmed(
    args: &RollbackConfig,
    work: &[(ObjectRecord, Action)],
    target: &str,
) -> anyhow::Result<bool> {
    if args.dry_run || args.yes || work.is_empty() || !std::io::stdin().is_terminal() {
        return Ok(true);
    }
    let deletes = work.iter().filter(|(_, a)| *a == Action::Delete).count();
    let restores = work.len() - deletes;
    confirm(&format!(
        "Roll back {} in {target}: delete {deletes} objects r2migrate created and restore {restores} it overwrote?",
        args.manifest.display()
    ))
}

fn load(path: &Path) -> anyhow::Result<(Manifest, Header)> {
    let manifest = Manifest::load(path)?;
    let Some(first) = manifest.first_header().cloned() else {
        return Err(usage(format!(
            "manifest {} is empty: nothing to roll back (give the manifest the run wrote with --manifest)",
            path.display()
        )));
    };
    Ok((manifest, first))
}

/// Rolls back each manifest of the set in turn (the shards of one migration: a set
/// that mixes migrations is refused first); one JSON document for all.
pub async fn rollback(args: RollbackConfig, out: Output) -> anyhow::Result<Exit> {
    if args.manifests.len() <= 1 {
        let (exit, doc) = rollback_one(args, out).await?;
        if let Some(doc) = doc {
            out.document(&doc);
        }
        return Ok(exit);
    }
    Manifest::load_all(&args.manifests)?;
    let mut docs = Vec::new();
    let mut worst = Exit::Ok;
    for m in &args.manifests {
        let one = RollbackConfig {
            manifest: m.clone(),
            manifests: vec![m.clone()],
            ..args.clone()
        };
        let (exit, doc) = rollback_one(one, out).await?;
        if exit != Exit::Ok {
            worst = exit;
        }
        docs.extend(doc);
    }
    out.document(&json!({
        "command": "rollback",
        "dry_run": args.dry_run,
        "manifests": docs,
        "exit_code": worst as i32,
    }));
    Ok(worst)
}

async fn rollback_one(
    args: RollbackConfig,
    out: Output,
) -> anyhow::Result<(Exit, Option<serde_json::Value>)> {
    // A dry run writes nothing, so it needs no lock.
    let _lock = (!args.dry_run)
        .then(|| ManifestLock::acquire(&args.manifest, "rollback", |w| out.warn(w)))
        .transpose()?;
    let (manifest, first) = load(&args.manifest)?;
    let target_loc = Location::parse(&first.target, Role::Target)?;
    let (target, pacer) = open_target(&target_loc, &args.stores, None)?;
    target.check_access().await.map_err(anyhow::Error::new)?;

    // The manifest's last word on each object, built once for everything below.
    let records = manifest.standing();
    if !args.dry_run {
        let unfinished = manifest.unfinished_intents();
        crate::transfer::intent::abort_left_open(target.as_ref(), &unfinished, &Default::default())
            .await
            .map_err(anyhow::Error::new)?;
    }
    let work = all_work(target.as_ref(), &manifest, &records)
        .await
        .map_err(anyhow::Error::new)?;
    if !confirmed(&args, &work, &first.target)? {
        out.say("rollback cancelled; nothing changed");
        return Ok((Exit::Ok, None));
    }
    let mut ledger = Ledger::open(&args, &first)?;
    // The application's URLs first, so nothing points at an object about to go.
    let urls = urls::restore(&manifest, args.dry_run, &mut ledger).await?;
    if urls.restored + urls.already + urls.kept > 0 {
        out.say(&format!(
            "stored URLs: {} put back, {} already as before, {} kept (changed since)",
            urls.restored, urls.already, urls.kept
        ));
    }
    let rows_kept =
        rows::restore(&first, &records, &args.manifest, args.dry_run, &mut ledger).await?;
    let work: Vec<_> = work
        .into_iter()
        .filter(|(r, _)| !rows_kept.contains_key(&r.source_key))
        .collect();
    let count = Concurrency::new(args.stores.in_flight, vec![pacer]);
    undo_all((target, count), work, &args, &mut ledger).await?;
    if let Some(w) = ledger.writer.as_mut() {
        w.sync()?;
    }
    let doc = say(&args, &first, &ledger, &out);
    Ok((ledger.exit(), Some(doc)))
}

/// Undoes each object, as many at once as `--concurrency` fixes or the rollback finds;
/// a fatal error stops the rollback.
async fn undo_all(
    (target, count): (Arc<dyn Target>, Arc<Concurrency>),
    work: Vec<(ObjectRecord, Action)>,
    args: &RollbackConfig,
    ledger: &mut Ledger,
) -> anyhow::Result<()> {
    let dry_run = args.dry_run;
    let results = count.run_each(work, |(rec, action)| {
        let target = target.clone();
        async move {
            let outcome = undo(target.as_ref(), &rec, action, dry_run).await;
            ((rec, outcome), 0)
        }
    });
    let mut results = std::pin::pin!(results);
    while let Some((rec, outcome)) = results.next().await {
        match outcome {
            Ok((status, note)) => {
                let mut r = row_restored(&rec, status);
                r.error = (status == Status::Kept).then(|| note.clone());
                ledger.record(&r, &note)?;
            }
            Err(e) if e.is_fatal() => return Err(anyhow::Error::new(e)),
            Err(e) => ledger.error(&rec, e.to_string()),
        }
    }
    Ok(())
}

/// Prints what rollback did; returns its JSON document.
fn say(args: &RollbackConfig, first: &Header, ledger: &Ledger, out: &Output) -> serde_json::Value {
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
    for l in &ledger.lines {
        if args.dry_run || l["action"] != json!("rolled_back") {
            out.say(&format!(
                "  {}: {}",
                l["target_key"].as_str().unwrap_or(""),
                l["note"].as_str().unwrap_or("")
            ));
        }
    }
    for l in ledger
        .url_lines
        .iter()
        .filter(|l| l["action"] == "url_kept")
    {
        out.say(&format!(
            "  {} {} id {} {}: {}",
            l["database"].as_str().unwrap_or(""),
            l["table"].as_str().unwrap_or(""),
            l["id"],
            l["column"].as_str().unwrap_or(""),
            l["note"].as_str().unwrap_or("")
        ));
    }
    json!({
        "command": "rollback",
        "dry_run": args.dry_run,
        "target": first.target,
        "manifest": args.manifest,
        "rolled_back": tally.rolled_back,
        "kept": tally.kept,
        "errors": errors,
        "objects": ledger.lines,
        "urls": ledger.url_lines,
        "urls_kept": ledger.urls_kept,
        "exit_code": ledger.exit() as i32,
    })
}
