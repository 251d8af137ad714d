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
    for entry in last.entries() {
        let (_, line) = entry?;
        let which = table_of(&line);
        if open.as_ref().is_none_or(|(t, _)| *t != which) {
            if let Some((_, mut done)) = open.take() {
                done.finish().await?;
            }
            let columns: Vec<String> = rewrites.columns[&which].iter().cloned().collect();
            let (database, table_name, id_column) = &which;
            let table = Db::open(database, table_name, id_column, &columns, dry_run)
                .await
                .map_err(|e| e.context("restoring the URLs rewrite-urls changed"))?;
            open = Some((which, table));
        }
        let (_, table) = open.as_mut().expect("opened above");
        let change = Change {
            id: line.id.clone(),
            column: line.column.clone(),
            old: line.old.clone(),
            new: line.new.clone(),
        };
        let outcome = table
            .restore(&change, dry_run)
            .await
            .map_err(|e| e.context(format!("{} {} id {}", line.database, line.table, line.id)))?;
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
    if let Some((_, mut done)) = open.take() {
        done.finish().await?;
    }
    Ok(counts)
}
