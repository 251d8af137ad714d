//! Rollback's first step after `rewrite-urls`: each value it changed gets its original
//! text back where the row still holds what was written; a row the application changed
//! since is left alone and counted `kept` (exit 1). Runs before any object is deleted,
//! so the application never points at an object that is gone.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::Ledger;
use crate::manifest::RewriteLine;
use crate::rewrite::sqlite::{Change, Restore};
use crate::rewrite::Db;
use crate::spill::{DiskMap, SpillError};

/// What the rows came to.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Restored {
    pub restored: u64,
    pub already: u64,
    pub kept: u64,
}

/// The last change of each stored value (on disk: `rewrite-urls` may have changed
/// millions), and the columns changed per table, so each table is opened once.
#[derive(Default)]
pub(super) struct Rewrites {
    last: Option<DiskMap<RewriteLine>>,
    columns: BTreeMap<(String, String, String), BTreeSet<String>>,
}

impl Rewrites {
    pub fn note(&mut self, line: &RewriteLine) -> Result<(), SpillError> {
        // Keys sort by table first: a walk in key order meets each table's lines together.
        let key = [
            line.database.as_str(),
            &line.table,
            &line.id_column,
            &line.column,
            &line.id.to_string(),
        ]
        .join("\u{0}");
        let last = self
            .last
            .get_or_insert_with(|| DiskMap::new("the stored URLs changed"));
        last.insert(&key, line)?;
        self.columns
            .entry(table_of(line))
            .or_default()
            .insert(line.column.clone());
        Ok(())
    }
}

fn table_of(line: &RewriteLine) -> (String, String, String) {
    (
        line.database.clone(),
        line.table.clone(),
        line.id_column.clone(),
    )
}

/// Values put back per request batch: a few round trips for this many rows, and this
/// many rows' old and new text in memory at a time.
const RESTORE_BATCH: usize = 256;

pub(super) async fn restore(
    rewrites: &Rewrites,
    dry_run: bool,
    ledger: &mut Ledger,
) -> anyhow::Result<Restored> {
    let mut counts = Restored::default();
    let Some(last) = &rewrites.last else {
        return Ok(counts);
    };
    let mut open: Option<((String, String, String), Db)> = None;
    let mut batch: Vec<RewriteLine> = Vec::with_capacity(RESTORE_BATCH);
    for entry in last.entries() {
        let (_, line) = entry?;
        let which = table_of(&line);
        if open.as_ref().is_none_or(|(t, _)| *t != which) {
            if let Some((_, mut done)) = open.take() {
                put_back(&mut done, &mut batch, dry_run, ledger, &mut counts).await?;
                done.finish().await?;
            }
            let columns: Vec<String> = rewrites.columns[&which].iter().cloned().collect();
            let (database, table_name, id_column) = &which;
            let table = Db::open(database, table_name, id_column, &columns, dry_run)
                .await
                .map_err(|e| e.context("restoring the URLs rewrite-urls changed"))?;
            open = Some((which, table));
        }
        batch.push(line);
        if batch.len() >= RESTORE_BATCH {
            let (_, table) = open.as_mut().expect("opened above");
            put_back(table, &mut batch, dry_run, ledger, &mut counts).await?;
        }
    }
    if let Some((_, mut done)) = open.take() {
        put_back(&mut done, &mut batch, dry_run, ledger, &mut counts).await?;
        done.finish().await?;
    }
    Ok(counts)
}

/// Restores one batch of a table's values (emptying `batch`) and notes each outcome.
async fn put_back(
    table: &mut Db,
    batch: &mut Vec<RewriteLine>,
    dry_run: bool,
    ledger: &mut Ledger,
    counts: &mut Restored,
) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let changes: Vec<Change> = batch
        .iter()
        .map(|line| Change {
            id: line.id.clone(),
            column: line.column.clone(),
            old: line.old.clone(),
            new: line.new.clone(),
        })
        .collect();
    let outcomes = table.restore(&changes, dry_run).await.map_err(|e| {
        let first = &batch[0];
        e.context(format!(
            "{} {}: putting back {} values from id {}",
            first.database,
            first.table,
            batch.len(),
            first.id
        ))
    })?;
    for (line, outcome) in batch.drain(..).zip(outcomes) {
        let action = match outcome {
            Restore::Restored => {
                counts.restored += 1;
                "url_restored"
            }
            Restore::AsBefore => {
                counts.already += 1;
                "url_already_restored"
            }
            Restore::Changed => {
                counts.kept += 1;
                "url_kept"
            }
        };
        ledger.note(json!({
            "database": line.database,
            "table": line.table,
            "id": line.id,
            "column": line.column,
            "action": action,
            "note": if outcome == Restore::Changed {
                "the row changed since rewrite-urls wrote it; left alone"
            } else {
                ""
            },
        }))?;
    }
    Ok(())
}
