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

use super::db::{connect, id_value, quote, to_json};
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

/// `VACUUM INTO` a file created first with the database's own permissions: the copy
/// holds every row, so it must not be readable by more people than the database is.
pub fn private_copy(conn: &Connection, db: &Path, to: &Path) -> Result<Option<String>, String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mode = std::fs::metadata(db)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o600);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(to)
        .map_err(|e| e.to_string())?;
    // The umask may have narrowed the mode further; never widen it past the database's.
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))
        .map_err(|e| e.to_string())?;
    conn.execute("VACUUM INTO ?1", [to.to_string_lossy()])
        .map_err(|e| e.to_string())?;
    Ok(Some(to.to_string_lossy().into_owned()))
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
                Some(path) => private_copy(c, &self.db, path).map_err(|e| {
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
pub(super) fn read_row(
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
pub(super) fn update_row(
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
pub(super) fn data_is_rewritten(s: &SqliteSettings, wb: &WriteBackConfig) -> bool {
    [&wb.key_column, &wb.url_column]
        .into_iter()
        .any(|c| c.as_deref() == Some(s.data_column.as_str()))
}
