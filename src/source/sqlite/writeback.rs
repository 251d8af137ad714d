//! SQLite write-back: after an object is verified in R2, its row gets the target key and
//! URL (and, with `clear_data`, loses its base64 text). One thread owns the read-write
//! connection; rows are written in batched transactions. Before the first write the
//! database is copied with `VACUUM INTO` (unless `--no-db-backup`). A row whose text
//! changed since it was read is not touched.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, TransactionBehavior};

use super::db::{connect, from_json, id_value, quote, to_json};
use super::{RowRecord, RowRef, SqliteSettings, WriteBackConfig};
use crate::checksum::sha256;
use crate::keymap::render_values;

/// Rows written per transaction at most.
const BATCH: usize = 256;

/// One verified object whose row is to be rewritten, with the row as just listed. `item`
/// is the caller's own (the run's manifest record); it comes back untouched in [`Written`].
pub struct Job<T> {
    pub item: T,
    pub target_key: String,
    pub row: RowRef,
}

/// A job's outcome: the row as the manifest should record it (`written` or not), and why
/// it was not rewritten.
pub struct Written<T> {
    pub item: T,
    pub row: RowRecord,
    pub error: Option<String>,
}

/// Where the `VACUUM INTO` copy goes: beside the database, named for the run.
pub fn backup_path(db: &Path, run_id: &str) -> PathBuf {
    let name = db
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    db.with_file_name(format!("{name}.r2migrate-{run_id}.bak"))
}

pub struct Writer {
    pub db: PathBuf,
    pub settings: SqliteSettings,
    pub backup: Option<PathBuf>,
}

impl Writer {
    /// Runs on its own thread until `jobs` closes; every job comes back as a record.
    pub fn run<T>(self, jobs: Receiver<Job<T>>, results: tokio::sync::mpsc::Sender<Written<T>>) {
        let mut conn: Option<Connection> = None;
        let mut backed_up: Option<Result<Option<String>, String>> = None;
        while let Ok(first) = jobs.recv() {
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match jobs.recv_timeout(Duration::from_millis(200)) {
                    Ok(j) => batch.push(j),
                    Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            let out = self.write_batch(&mut conn, &mut backed_up, batch);
            for rec in out {
                if results.blocking_send(rec).is_err() {
                    return;
                }
            }
        }
    }

    fn write_batch<T>(
        &self,
        conn: &mut Option<Connection>,
        backed_up: &mut Option<Result<Option<String>, String>>,
        batch: Vec<Job<T>>,
    ) -> Vec<Written<T>> {
        let fail_all = |batch: Vec<Job<T>>, why: String| -> Vec<Written<T>> {
            batch.into_iter().map(|j| not_written(j, &why)).collect()
        };
        if conn.is_none() {
            match connect(&self.db, false) {
                Ok(c) => *conn = Some(c),
                Err(e) => {
                    return fail_all(
                        batch,
                        format!("cannot open {} for writing: {e}", self.db.display()),
                    )
                }
            }
        }
        let c = conn.as_mut().expect("just opened");
        if backed_up.is_none() {
            *backed_up = Some(match &self.backup {
                None => Ok(None),
                Some(path) => c
                    .execute("VACUUM INTO ?1", [path.to_string_lossy()])
                    .map(|_| Some(path.to_string_lossy().into_owned()))
                    .map_err(|e| {
                        format!(
                            "could not back up the database to {} ({e}); free the space or pass --no-db-backup",
                            path.display()
                        )
                    }),
            });
        }
        let backup_db = match backed_up.as_ref().expect("set above") {
            Ok(p) => p.clone(),
            Err(why) => return fail_all(batch, why.clone()),
        };
        let tx = match c.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => return fail_all(batch, format!("cannot start a write transaction: {e}")),
        };
        let mut out = Vec::with_capacity(batch.len());
        for job in batch {
            out.push(
                match write_row(&tx, &self.settings, &job, backup_db.clone()) {
                    Ok(row) => Written {
                        item: job.item,
                        row,
                        error: None,
                    },
                    Err(why) => not_written(job, &why),
                },
            );
        }
        if let Err(e) = tx.commit() {
            let why = format!("the write transaction failed to commit: {e}");
            return out
                .into_iter()
                .map(|mut w| {
                    w.row.written = false;
                    w.error = Some(why.clone());
                    w
                })
                .collect();
        }
        out
    }
}

fn not_written<T>(job: Job<T>, why: &str) -> Written<T> {
    Written {
        row: RowRecord::from(&job.row),
        error: Some(format!("row id={} not rewritten: {why}", job.row.id)),
        item: job.item,
    }
}

/// A row's text and its key/url columns as they are now (JSON null where absent).
fn read_row(
    conn: &Connection,
    s: &SqliteSettings,
    wb: &WriteBackConfig,
    id: &Value,
) -> rusqlite::Result<(Option<Vec<u8>>, serde_json::Value, serde_json::Value)> {
    let col = |c: &Option<String>| c.as_deref().map(quote).unwrap_or_else(|| "NULL".into());
    let sql = format!(
        "SELECT {}, {}, {} FROM {} WHERE {} = ?1",
        quote(&s.data_column),
        col(&wb.key_column),
        col(&wb.url_column),
        quote(&s.table),
        quote(&s.id_column)
    );
    conn.query_row(&sql, [id], |r| {
        let data = match r.get_ref(0)? {
            ValueRef::Text(t) | ValueRef::Blob(t) => Some(t.to_vec()),
            _ => None,
        };
        Ok((data, to_json(r.get_ref(1)?), to_json(r.get_ref(2)?)))
    })
}

/// `UPDATE table SET col = ?, … WHERE id = ?`, every value bound, in one statement.
fn update_row(
    conn: &Connection,
    s: &SqliteSettings,
    id: Value,
    assignments: Vec<(&str, Value)>,
) -> rusqlite::Result<usize> {
    if assignments.is_empty() {
        return Ok(0);
    }
    let sets: Vec<String> = assignments
        .iter()
        .enumerate()
        .map(|(i, (col, _))| format!("{} = ?{}", quote(col), i + 1))
        .collect();
    let sql = format!(
        "UPDATE {} SET {} WHERE {} = ?{}",
        quote(&s.table),
        sets.join(", "),
        quote(&s.id_column),
        assignments.len() + 1
    );
    let values = assignments.into_iter().map(|(_, v)| v).chain([id]);
    conn.execute(&sql, rusqlite::params_from_iter(values))
}

fn write_row<T>(
    tx: &rusqlite::Transaction<'_>,
    s: &SqliteSettings,
    job: &Job<T>,
    backup_db: Option<String>,
) -> Result<RowRecord, String> {
    let wb = s.write_back.as_ref().ok_or("no write_back configured")?;
    let id = id_value(&job.row.id, job.row.id_is_int);
    let current = read_row(tx, s, wb, &id).map_err(|e| format!("cannot read it back: {e}"))?;
    let (data, key_before, url_before) = current;
    let data = data.ok_or("its data is gone (changed since it was read); re-run")?;
    if hex::encode(sha256(&data)) != job.row.original_sha256 {
        return Err("its data changed since it was read; re-run to migrate the new content".into());
    }
    let mut vars: BTreeMap<String, String> = job.row.vars.clone();
    vars.insert("key".into(), job.target_key.clone());
    let url = wb.url_template.as_deref().map(|t| render_values(t, &vars));
    let mut assignments: Vec<(&str, Value)> = Vec::new();
    if let Some(k) = &wb.key_column {
        assignments.push((k, Value::Text(job.target_key.clone())));
    }
    if let (Some(u), Some(url)) = (&wb.url_column, &url) {
        assignments.push((u, Value::Text(url.clone())));
    }
    // The text goes in the same statement that sets the key/url — unless the key or url
    // lands in the data column itself (`data_column = url_column`): that replaces it.
    let cleared = wb.clear_data && !data_is_rewritten(s, wb);
    if cleared {
        assignments.push((&s.data_column, Value::Null));
    }
    update_row(tx, s, id, assignments).map_err(|e| format!("the update failed: {e}"))?;
    Ok(RowRecord {
        written: true,
        cleared,
        key_before,
        url_before,
        url,
        backup_db,
        ..RowRecord::from(&job.row)
    })
}

/// Whether the write-back puts the key or the URL into the data column itself (one
/// column holding the `data:` URI before and the public URL after).
fn data_is_rewritten(s: &SqliteSettings, wb: &WriteBackConfig) -> bool {
    [&wb.key_column, &wb.url_column]
        .into_iter()
        .any(|c| c.as_deref() == Some(s.data_column.as_str()))
}

/// A recorded SQL value's bytes, to check it against the original text's SHA-256.
fn value_bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::Text(t) => Some(t.as_bytes().to_vec()),
        Value::Blob(b) => Some(b.clone()),
        _ => None,
    }
}

/// A row the write-back rewrote, as the manifest recorded it.
#[derive(Clone, Copy)]
pub struct Rewritten<'a> {
    pub target_key: &'a str,
    pub row: &'a RowRecord,
}

/// Rollback of rewritten rows: each row must still hold exactly what the write-back
/// left (key, url, and no text if it was cleared); then its original text (from the
/// `VACUUM INTO` copy, checked against the recorded SHA-256) and its original key/url
/// values are put back. Returns, per row in order, `Ok` or why it was left alone.
pub fn restore_rows(
    db: &Path,
    s: &SqliteSettings,
    rows: &[Rewritten<'_>],
    dry_run: bool,
) -> anyhow::Result<Vec<Result<(), String>>> {
    let wb = s.write_back.clone().ok_or_else(|| {
        anyhow::anyhow!("the manifest records rewritten rows but no write_back settings")
    })?;
    let mut conn = connect(db, false)
        .map_err(|e| anyhow::anyhow!("cannot open {} to restore rows: {e}", db.display()))?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut backups: BTreeMap<String, Connection> = BTreeMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for &Rewritten {
        target_key,
        row: info,
    } in rows
    {
        let outcome = (|| -> Result<(), String> {
            let id = id_value(&info.id, info.id_is_int);
            let current = read_row(&tx, s, &wb, &id)
                .map_err(|_| format!("row id={} no longer exists; left alone", info.id))?;
            let (data, key_now, url_now) = current;
            let in_data_column = data_is_rewritten(s, &wb);
            let changed = (wb.key_column.is_some() && key_now != serde_json::json!(target_key))
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
                if value_bytes(v).map(|b| hex::encode(sha256(&b)))
                    != Some(info.original_sha256.clone())
                {
                    return Err(format!(
                        "row id={}: the recorded original does not match its SHA-256; left alone",
                        info.id
                    ));
                }
            }
            let original: Option<Vec<u8>> = if info.cleared && before_in_data.is_none() {
                let path = info.backup_db.clone().ok_or_else(|| {
                    format!("row id={}: its original text is not kept anywhere (the run used --no-db-backup); left alone", info.id)
                })?;
                if !backups.contains_key(&path) {
                    let c = connect(Path::new(&path), true).map_err(|e| {
                        format!(
                            "row id={}: cannot open the backup database {path}: {e}",
                            info.id
                        )
                    })?;
                    backups.insert(path.clone(), c);
                }
                let sql = format!(
                    "SELECT {} FROM {} WHERE {} = ?1",
                    quote(&s.data_column),
                    quote(&s.table),
                    quote(&s.id_column)
                );
                let text: Vec<u8> = backups[&path]
                    .query_row(&sql, [&id], |r| {
                        Ok(match r.get_ref(0)? {
                            ValueRef::Text(t) | ValueRef::Blob(t) => t.to_vec(),
                            _ => Vec::new(),
                        })
                    })
                    .map_err(|e| {
                        format!("row id={}: not in the backup database {path}: {e}", info.id)
                    })?;
                if hex::encode(sha256(&text)) != info.original_sha256 {
                    return Err(format!("row id={}: the backup's text does not match the recorded SHA-256; left alone", info.id));
                }
                Some(text)
            } else {
                None
            };
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
            update_row(&tx, s, id, assignments)
                .map_err(|e| format!("row id={}: the restore failed: {e}", info.id))?;
            Ok(())
        })();
        out.push(outcome);
    }
    tx.commit()?;
    Ok(out)
}
