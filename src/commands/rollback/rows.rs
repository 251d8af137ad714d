//! Rollback's first step for a SQLite source: put back every row the write-back
//! rewrote, while it still holds what was written. A row the application changed since
//! keeps its object too, since the application may point at it.

use std::collections::HashMap;
use std::path::Path;

use super::Ledger;
use crate::error::usage;
use crate::location::{Location, Role};
use crate::manifest::{Header, ManifestSet, ObjectRecord, Status};
use crate::source::sqlite::restore::{restore_rows, Rewritten};

/// Rows restored per transaction: a write-back of millions of rows comes back in
/// batches, holding one batch in memory.
const BATCH: usize = 10_000;

/// Restores the rows; returns, by source key, why each row left alone was left alone.
pub(super) async fn restore(
    first: &Header,
    set: &ManifestSet,
    manifest: &Path,
    dry_run: bool,
    ledger: &mut Ledger,
) -> anyhow::Result<HashMap<String, String>> {
    let mut kept: HashMap<String, String> = HashMap::new();
    let mut batch = Vec::new();
    for r in set.records() {
        let r = r?;
        if r.row.as_ref().is_some_and(|i| i.written) {
            batch.push(r);
        }
        if batch.len() == BATCH {
            restore_batch(
                first,
                std::mem::take(&mut batch),
                manifest,
                dry_run,
                ledger,
                &mut kept,
            )
            .await?;
        }
    }
    if !batch.is_empty() {
        restore_batch(first, batch, manifest, dry_run, ledger, &mut kept).await?;
    }
    Ok(kept)
}

async fn restore_batch(
    first: &Header,
    rewritten: Vec<ObjectRecord>,
    manifest: &Path,
    dry_run: bool,
    ledger: &mut Ledger,
    kept: &mut HashMap<String, String>,
) -> anyhow::Result<()> {
    let (Location::Sqlite { path: db }, Some(settings)) = (
        Location::parse(&first.source, Role::Source)?,
        first.sqlite.clone(),
    ) else {
        return Err(usage(format!(
            "manifest {} records rewritten rows, but its header names no SQLite source settings; it was edited by hand: restore the rows from the VACUUM INTO backup its records name",
            manifest.display()
        )));
    };
    let (rewritten, outcomes) = tokio::task::spawn_blocking(move || {
        let rows: Vec<Rewritten<'_>> = rewritten
            .iter()
            .filter_map(|r| {
                let row = r.row.as_ref()?;
                Some(Rewritten {
                    target_key: &r.target_key,
                    row,
                })
            })
            .collect();
        let outcomes = restore_rows(&db, &settings, &rows, dry_run);
        drop(rows);
        outcomes.map(|o| (rewritten, o))
    })
    .await??;
    for (rec, outcome) in rewritten.iter().zip(outcomes) {
        match outcome {
            Err(why) => {
                let mut r = rec.clone();
                r.status = Status::Kept;
                r.at = crate::manifest::now_rfc3339();
                r.error = Some(why.clone());
                ledger.record(&r, &why)?;
                kept.insert(rec.source_key.clone(), why);
            }
            // Identical objects stay; only their rows come back. (Our objects, copied or
            // kept before, get their record from undoing the object.)
            Ok(()) if !matches!(rec.status, Status::Copied | Status::Kept) => {
                ledger.record(
                    &super::row_restored(rec, Status::RolledBack),
                    "row restored",
                )?;
            }
            Ok(()) => {}
        }
    }
    Ok(())
}
