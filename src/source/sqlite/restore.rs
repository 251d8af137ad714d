//! Rollback of rewritten rows: each row must still hold exactly what the write-back
//! left (key, url, and no text if it was cleared); then its original text (from the
//! `VACUUM INTO` copy, checked against the recorded SHA-256) and its original key/url
//! values are put back, in one transaction.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, TransactionBehavior};

use super::db::{connect, from_json, id_value, quote};
use super::writeback::{data_is_rewritten, read_row, update_row};
use super::{RowRecord, SqliteSettings, WriteBackConfig};
use crate::checksum::sha256;

/// A row the write-back rewrote, as the manifest recorded it.
#[derive(Clone, Copy)]
pub struct Rewritten<'a> {
    pub target_key: &'a str,
    pub row: &'a RowRecord,
}

/// A recorded SQL value's bytes, to check it against the original text's SHA-256.
fn value_bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::Text(t) => Some(t.as_bytes().to_vec()),
        Value::Blob(b) => Some(b.clone()),
        _ => None,
    }
}

/// Restores the rows; returns, per row in order, `Ok` or why it was left alone.
pub fn restore_rows(
    db: &Path,
    s: &SqliteSettings,
    rows: &[Rewritten<'_>],
    dry_run: bool,
) -> anyhow::Result<Vec<Result<(), String>>> {
    let wb = s.write_back.clone().ok_or_else(|| {
        anyhow::anyhow!("the manifest records rewritten rows but no write_back settings; restore the rows from the VACUUM INTO backup its records name")
    })?;
    let mut conn = connect(db, false)
        .map_err(|e| anyhow::anyhow!("cannot open {} to restore rows: {e}; check the path and its permissions, then run rollback again", db.display()))?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut restorer = Restorer {
        tx: &tx,
        s,
        wb: &wb,
        backups: BTreeMap::new(),
    };
    let out = rows.iter().map(|r| restorer.restore(r, dry_run)).collect();
    drop(restorer);
    tx.commit()?;
    Ok(out)
}

struct Restorer<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    s: &'a SqliteSettings,
    wb: &'a WriteBackConfig,
    /// Backup databases opened so far, by path.
    backups: BTreeMap<String, Connection>,
}

impl Restorer<'_> {
    fn restore(&mut self, r: &Rewritten<'_>, dry_run: bool) -> Result<(), String> {
        let (s, wb, info) = (self.s, self.wb, r.row);
        let id = id_value(&info.id, info.id_is_int);
        let (data, key_now, url_now) = read_row(self.tx, s, wb, &id)
            .map_err(|_| format!("row id={} no longer exists; left alone", info.id))?;
        let in_data_column = data_is_rewritten(s, wb);
        let changed = (wb.key_column.is_some() && key_now != serde_json::json!(r.target_key))
            || (wb.url_column.is_some()
                && info
                    .url
                    .as_ref()
                    .is_some_and(|u| url_now != serde_json::json!(u)))
            // The data column was checked above when it holds the key or URL now.
            || (!in_data_column
                && match (&data, info.cleared) {
                    (Some(_), true) => true,
                    (None, false) => true,
                    (Some(d), false) => hex::encode(sha256(d)) != info.original_sha256,
                    (None, true) => false,
                });
        if changed {
            return Err(format!(
                "row id={} changed since the migration; left alone",
                info.id
            ));
        }
        let original = self.original_text(info, &id)?;
        if dry_run {
            return Ok(());
        }
        // One value per column: the key/url "before" values, and the original text
        // (which is one of them when the data column was rewritten in place).
        let mut assignments: Vec<(&str, Value)> = Vec::new();
        if let Some(k) = &wb.key_column {
            assignments.push((k, from_json(&info.key_before)));
        }
        if let Some(u) = wb
            .url_column
            .as_deref()
            .filter(|u| wb.key_column.as_deref() != Some(*u))
        {
            assignments.push((u, from_json(&info.url_before)));
        }
        if let Some(text) = original {
            // Restored with the type it had: TEXT stays TEXT.
            let value = match String::from_utf8(text) {
                Ok(t) => Value::Text(t),
                Err(e) => Value::Blob(e.into_bytes()),
            };
            assignments.retain(|(c, _)| *c != s.data_column);
            assignments.push((&s.data_column, value));
        }
        update_row(self.tx, s, id, assignments)
            .map_err(|e| format!("row id={}: the restore failed: {e}", info.id))?;
        Ok(())
    }

    /// The original text to put back when it is not in the row's "before" values: from
    /// the backup database, when the write-back cleared it. Either way checked against
    /// the recorded SHA-256.
    fn original_text(&mut self, info: &RowRecord, id: &Value) -> Result<Option<Vec<u8>>, String> {
        let (s, wb) = (self.s, self.wb);
        // The original text: in the key/url "before" value when the write-back
        // replaced the data column, else in the backup when it was cleared.
        let before_in_data = [
            (&wb.key_column, &info.key_before),
            (&wb.url_column, &info.url_before),
        ]
        .into_iter()
        .find(|(c, _)| c.as_deref() == Some(s.data_column.as_str()))
        .map(|(_, v)| from_json(v));
        if let Some(v) = &before_in_data {
            if value_bytes(v).map(|b| hex::encode(sha256(&b))) != Some(info.original_sha256.clone())
            {
                return Err(format!(
                    "row id={}: the recorded original does not match its SHA-256; left alone",
                    info.id
                ));
            }
        }
        if !info.cleared || before_in_data.is_some() {
            return Ok(None);
        }
        let path = info.backup_db.clone().ok_or_else(|| {
            format!("row id={}: its original text is not kept anywhere (the run used --no-db-backup); left alone", info.id)
        })?;
        if !self.backups.contains_key(&path) {
            let c = connect(Path::new(&path), true).map_err(|e| {
                format!(
                    "row id={}: cannot open the backup database {path}: {e}",
                    info.id
                )
            })?;
            self.backups.insert(path.clone(), c);
        }
        let sql = format!(
            "SELECT {} FROM {} WHERE {} = ?1",
            quote(&s.data_column),
            quote(&s.table),
            quote(&s.id_column)
        );
        let text: Vec<u8> = self.backups[&path]
            .query_row(&sql, [id], |r| {
                Ok(match r.get_ref(0)? {
                    ValueRef::Text(t) | ValueRef::Blob(t) => t.to_vec(),
                    _ => Vec::new(),
                })
            })
            .map_err(|e| format!("row id={}: not in the backup database {path}: {e}", info.id))?;
        if hex::encode(sha256(&text)) != info.original_sha256 {
            return Err(format!(
                "row id={}: the backup's text does not match the recorded SHA-256; left alone",
                info.id
            ));
        }
        Ok(Some(text))
    }
}
