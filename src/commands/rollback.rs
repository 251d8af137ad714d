//! `r2migrate rollback`: undoes what a manifest records. Objects this tool created are
//! deleted only while they still hold the bytes it wrote; objects it overwrote are
//! restored from their backup copy (then the backup is removed); `identical` objects are
//! never touched. Objects changed since are left alone and recorded `kept`. Every
//! outcome is appended to the manifest, so a second rollback resumes.

use std::io::{BufRead, IsTerminal, Write};

use futures::StreamExt;
use serde_json::json;

use super::{open_target, Output};
use crate::config::RollbackConfig;
use crate::error::{usage, Exit, StoreError};
use crate::location::{Location, Role};
use crate::manifest::{
    now_rfc3339, Header, Manifest, ManifestWriter, ObjectRecord, Status, VERSION,
};
use crate::source::sqlite::writeback::{restore_rows, Rewritten};
use crate::tally::{new_run_id, Tally};
use crate::target::Target;
use crate::transfer::holds_what_we_wrote;
use crate::transfer::intent::written_under;
use std::collections::HashMap;

/// What rollback does to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Delete,
    Restore,
    /// A backup was made but the write it prepared never landed: remove the backup.
    RemoveBackup,
}

impl Action {
    fn for_record(rec: &ObjectRecord) -> Action {
        if rec.backup_key.is_some() {
            Action::Restore
        } else {
            Action::Delete
        }
    }
}

/// Writes a crash left without an outcome record, turned into rollback work: what is at
/// the key now is ours if an unanswered intent announced exactly it. Such a key is
/// undone as if its record said `copied` with the announced bytes.
async fn unfinished_work(
    target: &dyn Target,
    manifest: &Manifest,
    latest: &HashMap<&str, &ObjectRecord>,
) -> Result<Vec<(ObjectRecord, Action)>, StoreError> {
    let mut work = Vec::new();
    let mut unfinished: Vec<_> = manifest.unfinished_intents().into_iter().collect();
    unfinished.sort_by(|a, b| a.0.cmp(&b.0));
    for (source_key, intents) in unfinished {
        let last = intents.last().expect("at least one intent per key");
        let prev = latest
            .get(source_key.as_str())
            .filter(|r| r.status == Status::Copied);
        let backup = intents
            .iter()
            .find_map(|i| i.backup_key.clone())
            .or_else(|| prev.and_then(|p| p.backup_key.clone()));
        let current = target.head(&last.target_key).await?;
        let ours = current
            .as_ref()
            .is_some_and(|obj| written_under(obj, &intents));
        let announced = intents
            .iter()
            .rev()
            .find(|i| i.size.is_some())
            .unwrap_or(last);
        let mut rec = ObjectRecord::new(
            &source_key,
            &last.target_key,
            announced.size.unwrap_or(0),
            Status::Copied,
        );
        rec.sha256 = announced.sha256.clone();
        rec.target_checksum = announced.checksum.clone();
        rec.run_id = last.run_id.clone();
        rec.backup_key = backup.clone();
        if let Some(p) = latest.get(source_key.as_str()) {
            rec.row = p.row.clone();
        }
        if ours {
            rec.target_etag = current.as_ref().and_then(|o| o.etag.clone());
            work.push((rec.clone(), Action::for_record(&rec)));
        } else if current.is_none() && backup.is_some() {
            // Gone from its key, but we hold a backup of what was there: put it back.
            work.push((rec, Action::Restore));
        } else if prev.is_none() {
            if let Some(b) = intents.iter().find_map(|i| i.backup_key.clone()) {
                rec.backup_key = Some(b);
                work.push((rec, Action::RemoveBackup));
            }
        }
    }
    Ok(work)
}

async fn undo(
    target: &dyn Target,
    rec: &ObjectRecord,
    action: Action,
    dry_run: bool,
) -> Result<(Status, String), StoreError> {
    if action == Action::RemoveBackup {
        let backup = rec.backup_key.as_deref().expect("a backup to remove");
        if target.head(backup).await?.is_none() {
            return Ok((Status::RolledBack, "never written; no backup left".into()));
        }
        if !dry_run {
            target.delete(backup).await?;
        }
        return Ok((
            Status::RolledBack,
            format!("never written; removed its backup {backup}"),
        ));
    }
    let current = target.head(&rec.target_key).await?;
    let ours = current.as_ref().map(|obj| holds_what_we_wrote(obj, rec));
    if ours == Some(false) {
        return Ok((
            Status::Kept,
            "changed since the migration; left alone (delete or restore it by hand if you are sure)".into(),
        ));
    }
    match action {
        Action::Delete if current.is_none() => Ok((Status::RolledBack, "already gone".into())),
        Action::Delete => {
            if !dry_run {
                target.delete(&rec.target_key).await?;
            }
            Ok((Status::RolledBack, "deleted".into()))
        }
        Action::RemoveBackup => unreachable!("handled above"),
        Action::Restore => {
            let backup = rec.backup_key.as_deref().expect("restore has a backup");
            if target.head(backup).await?.is_none() {
                return Ok((
                    Status::Kept,
                    format!("its backup {backup} is gone, so the original cannot be restored"),
                ));
            }
            if !dry_run {
                target.copy(backup, &rec.target_key).await?;
                target.delete(backup).await?;
            }
            Ok((Status::RolledBack, format!("restored from {backup}")))
        }
    }
}

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

pub async fn rollback(args: RollbackConfig, out: Output) -> anyhow::Result<Exit> {
    let path = args.manifest.clone();
    let manifest = Manifest::load(&path)?;
    let Some(first) = manifest.first_header().cloned() else {
        return Err(usage(format!(
            "manifest {} is empty: nothing to roll back",
            path.display()
        )));
    };
    let concurrency = args.stores.concurrency;
    let target_loc = Location::parse(&first.target, Role::Target)?;
    let (target, _) = open_target(&target_loc, &args.stores, None)?;
    target.check_access().await.map_err(anyhow::Error::new)?;

    // The manifest's last word on each object, built once for everything below.
    let records = manifest.latest();
    let latest: HashMap<&str, &ObjectRecord> = records
        .iter()
        .map(|r| (r.source_key.as_str(), *r))
        .collect();
    // A crash's unrecorded writes first; they replace the record of the same key.
    let unfinished = unfinished_work(target.as_ref(), &manifest, &latest)
        .await
        .map_err(anyhow::Error::new)?;
    let taken: std::collections::HashSet<String> = unfinished
        .iter()
        .map(|(r, _)| r.source_key.clone())
        .collect();
    let work: Vec<(ObjectRecord, Action)> = records
        .iter()
        .filter(|r| r.status == Status::Copied && !taken.contains(&r.source_key))
        .map(|r| ((*r).clone(), Action::for_record(r)))
        .chain(unfinished)
        .collect();
    let deletes = work.iter().filter(|(_, a)| *a == Action::Delete).count();
    let restores = work.len() - deletes;

    if !args.dry_run && !args.yes && !work.is_empty() && std::io::stdin().is_terminal() {
        let prompt = format!(
            "Roll back {} in {}: delete {deletes} objects r2migrate created and restore {restores} it overwrote?",
            path.display(),
            first.target
        );
        if !confirm(&prompt)? {
            out.say("rollback cancelled; nothing changed");
            return Ok(Exit::Ok);
        }
    }

    let mut writer = if args.dry_run {
        None
    } else {
        let header = Header {
            kind: "header".into(),
            version: VERSION,
            run_id: new_run_id(),
            source: first.source.clone(),
            target: first.target.clone(),
            started_at: now_rfc3339(),
            selection: first.selection.clone(),
            command: Some("rollback".into()),
            sqlite: first.sqlite.clone(),
        };
        Some(ManifestWriter::open(&path, &header)?)
    };

    let dry_run = args.dry_run;
    let mut tally = Tally::default();
    let mut lines = Vec::new();
    let mut errors = 0u64;

    // Rows first: a row the application changed since the migration keeps its object
    // too, since the application may point at it.
    let row_records: Vec<ObjectRecord> = records
        .iter()
        .filter(|r| r.row.as_ref().is_some_and(|i| i.written))
        .map(|r| (*r).clone())
        .collect();
    let mut rows_kept: HashMap<String, String> = HashMap::new();
    if !row_records.is_empty() {
        let (Location::Sqlite { path: db }, Some(settings)) = (
            Location::parse(&first.source, Role::Source)?,
            first.sqlite.clone(),
        ) else {
            return Err(usage(format!(
                "manifest {} records rewritten rows, but its header names no SQLite source settings",
                path.display()
            )));
        };
        let recs = row_records.clone();
        let outcomes = tokio::task::spawn_blocking(move || {
            let rows: Vec<Rewritten<'_>> = recs
                .iter()
                .filter_map(|r| {
                    r.row.as_ref().map(|row| Rewritten {
                        target_key: &r.target_key,
                        row,
                    })
                })
                .collect();
            restore_rows(&db, &settings, &rows, dry_run)
        })
        .await??;
        for (rec, outcome) in row_records.iter().zip(outcomes) {
            match outcome {
                Err(why) => {
                    rows_kept.insert(rec.source_key.clone(), why);
                }
                // Identical objects stay; only their rows come back.
                Ok(()) if rec.status != Status::Copied => {
                    let r = row_restored(rec, Status::RolledBack);
                    tally.add(&r);
                    if let Some(w) = writer.as_mut() {
                        w.append(&r)?;
                    }
                    lines.push(json!({"target_key": rec.target_key, "action": "rolled_back", "note": "row restored"}));
                }
                Ok(()) => {}
            }
        }
    }
    let (work, kept_by_row): (Vec<_>, Vec<_>) = work
        .into_iter()
        .partition(|(r, _)| !rows_kept.contains_key(&r.source_key));
    for rec in row_records
        .iter()
        .filter(|r| rows_kept.contains_key(&r.source_key))
    {
        let why = rows_kept[&rec.source_key].clone();
        let mut r = rec.clone();
        r.status = Status::Kept;
        r.at = now_rfc3339();
        r.error = Some(why.clone());
        tally.add(&r);
        if let Some(w) = writer.as_mut() {
            w.append(&r)?;
        }
        lines.push(json!({"target_key": rec.target_key, "action": "kept", "note": why}));
    }
    drop(kept_by_row);

    let mut results = futures::stream::iter(work)
        .map(|(rec, action)| {
            let target = target.clone();
            async move {
                let outcome = undo(target.as_ref(), &rec, action, dry_run).await;
                (rec, outcome)
            }
        })
        .buffer_unordered(concurrency);
    while let Some((rec, outcome)) = results.next().await {
        let (status, note) = match outcome {
            Ok(x) => x,
            Err(e) if e.is_fatal() => return Err(anyhow::Error::new(e)),
            Err(e) => {
                errors += 1;
                lines.push(
                    json!({"target_key": rec.target_key, "action": "error", "note": e.to_string()}),
                );
                continue;
            }
        };
        let mut r = row_restored(&rec, status);
        r.error = (status == Status::Kept).then(|| note.clone());
        tally.add(&r);
        if let Some(w) = writer.as_mut() {
            w.append(&r)?;
        }
        lines.push(json!({"target_key": rec.target_key, "action": status, "note": note}));
    }
    if let Some(w) = writer.as_mut() {
        w.sync()?;
    }
    let exit = if tally.kept > 0 || errors > 0 {
        Exit::Partial
    } else {
        Exit::Ok
    };
    let verb = if dry_run {
        "would roll back"
    } else {
        "rolled back"
    };
    out.say(&format!(
        "rollback {}: {verb} {}, kept {} (changed since migration), errors {errors}",
        first.target, tally.rolled_back, tally.kept
    ));
    for l in &lines {
        if dry_run || l["action"] != json!("rolled_back") {
            out.say(&format!(
                "  {}: {}",
                l["target_key"].as_str().unwrap_or(""),
                l["note"].as_str().unwrap_or("")
            ));
        }
    }
    out.document(&json!({
        "command": "rollback",
        "dry_run": dry_run,
        "target": first.target,
        "manifest": path,
        "rolled_back": tally.rolled_back,
        "kept": tally.kept,
        "errors": errors,
        "objects": lines,
        "exit_code": exit as i32,
    }));
    Ok(exit)
}
