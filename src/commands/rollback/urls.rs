//! Rollback's first step after `rewrite-urls`: each value it changed gets its original
//! text back where the row still holds what was written; a row the application changed
//! since is left alone and counted `kept` (exit 1). Runs before any object is deleted,
//! so the application never points at an object that is gone.

use std::collections::HashMap;

use serde_json::json;

use super::Ledger;
use crate::manifest::{Manifest, RewriteLine};
use crate::rewrite::sqlite::{Change, Restore};
use crate::rewrite::Db;

/// What the rows came to.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Restored {
    pub restored: u64,
    pub already: u64,
    pub kept: u64,
}

pub(super) async fn restore(
    manifest: &Manifest,
    dry_run: bool,
    ledger: &mut Ledger,
) -> anyhow::Result<Restored> {
    let mut counts = Restored::default();
    // The last change of each value; grouped by table so each is opened once.
    let mut last: HashMap<(String, String, String, String), &RewriteLine> = HashMap::new();
    for line in &manifest.rewrites {
        let key = (
            line.database.clone(),
            line.table.clone(),
            line.id.to_string(),
            line.column.clone(),
        );
        last.insert(key, line);
    }
    let mut by_table: HashMap<(String, String, String), Vec<&RewriteLine>> = HashMap::new();
    for line in last.into_values() {
        by_table
            .entry((
                line.database.clone(),
                line.table.clone(),
                line.id_column.clone(),
            ))
            .or_default()
            .push(line);
    }
    let mut groups: Vec<_> = by_table.into_iter().collect();
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    for ((database, table_name, id_column), lines) in groups {
        let mut columns: Vec<String> = lines.iter().map(|l| l.column.clone()).collect();
        columns.sort();
        columns.dedup();
        let mut table = Db::open(&database, &table_name, &id_column, &columns, dry_run)
            .await
            .map_err(|e| e.context("restoring the URLs rewrite-urls changed"))?;
        for line in lines {
            let change = Change {
                id: line.id.clone(),
                column: line.column.clone(),
                old: line.old.clone(),
                new: line.new.clone(),
            };
            let outcome = table
                .restore(&change, dry_run)
                .await
                .map_err(|e| e.context(format!("{database} {table_name} id {}", line.id)))?;
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
                "database": database,
                "table": table_name,
                "id": line.id,
                "column": line.column,
                "action": action,
                "note": if outcome == Restore::Changed {
                    "the row changed since rewrite-urls wrote it; left alone"
                } else {
                    ""
                },
            }));
        }
    }
    Ok(counts)
}
