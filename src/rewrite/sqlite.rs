//! The SQLite side of `rewrite-urls`: a table paged by its id (keyset, so rows the
//! application adds meanwhile are neither skipped nor read twice), and changes applied in
//! one transaction per batch, each row only while it still holds what was read. The
//! caller's `before_commit` runs inside the transaction, after the updates: that is where
//! the manifest gets the changes and is flushed, so a crash can never leave a rewritten
//! row the manifest does not know.

use std::path::{Path, PathBuf};

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, OptionalExtension, TransactionBehavior};

use crate::source::sqlite::db::{connect, from_json, quote, to_json};

/// Rows read per page, and changes written per transaction.
pub const BATCH: usize = 256;

/// One stored value and what it becomes.
#[derive(Debug, Clone)]
pub struct Change {
    /// The row's id as the manifest keeps it.
    pub id: serde_json::Value,
    pub column: String,
    pub old: String,
    pub new: String,
}

impl Change {
    /// The indices of `changes` grouped by column, columns in name order: a batch's
    /// statements go one column at a time.
    pub fn by_column(changes: &[Change]) -> Vec<(&str, Vec<usize>)> {
        let mut groups: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
        for (i, c) in changes.iter().enumerate() {
            groups.entry(c.column.as_str()).or_default().push(i);
        }
        groups.into_iter().collect()
    }

    /// The changes whose flag in `written` is set, in order.
    pub fn only_written(changes: Vec<Change>, written: Vec<bool>) -> Vec<Change> {
        changes
            .into_iter()
            .zip(written)
            .filter(|(_, w)| *w)
            .map(|(c, _)| c)
            .collect()
    }
}

/// A row as read: its id and the text of each rewritten column (`None`: NULL or not text).
pub struct Row {
    pub id: serde_json::Value,
    pub values: Vec<Option<String>>,
}

/// What putting a value back found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// The row held what we wrote; it holds the original again.
    Restored,
    /// It already holds the original (restored before, or never committed).
    AsBefore,
    /// Someone changed it since: left alone.
    Changed,
}

impl Restore {
    /// What a row found holding `now` (`None`: gone, or NULL) means for a value the
    /// restore did not write: already the original, or changed by someone since.
    pub fn judged(now: Option<&[u8]>, c: &Change, dry_run: bool) -> Restore {
        match now {
            Some(v) if v == c.old.as_bytes() => Restore::AsBefore,
            Some(v) if dry_run && v == c.new.as_bytes() => Restore::Restored,
            _ => Restore::Changed,
        }
    }
}

pub struct Table {
    conn: Connection,
    pub path: PathBuf,
    table: String,
    id_column: String,
    columns: Vec<String>,
}

impl Table {
    /// Opens the table and checks that it and its columns exist (a usage error if not).
    pub fn open(
        path: &Path,
        table: &str,
        id_column: &str,
        columns: &[String],
        read_only: bool,
    ) -> Result<Table, String> {
        if !path.exists() {
            return Err(format!("database {} does not exist: check `database` in the [[rewrite]] table (sqlite:///abs/path.db or a path)", path.display()));
        }
        let conn = connect(path, read_only).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut stmt = conn
            .prepare(&format!(
                "SELECT name FROM pragma_table_info({})",
                sql_text(table)
            ))
            .map_err(|e| e.to_string())?;
        let known: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| e.to_string())?;
        drop(stmt);
        if known.is_empty() {
            return Err(format!(
                "{}: no table {table:?}; check `table` in the [[rewrite]] table",
                path.display()
            ));
        }
        for col in std::iter::once(&id_column.to_string()).chain(columns) {
            if !known.contains(col) {
                return Err(format!(
                    "{}: table {table:?} has no column {col:?} (it has {}); check `columns` and `id_column` in the [[rewrite]] table",
                    path.display(),
                    known.join(", ")
                ));
            }
        }
        Ok(Table {
            conn,
            path: path.to_path_buf(),
            table: table.to_string(),
            id_column: id_column.to_string(),
            columns: columns.to_vec(),
        })
    }

    /// Up to [`BATCH`] rows with an id after `after`, in id order.
    pub fn page(&self, after: Option<&serde_json::Value>) -> Result<Vec<Row>, String> {
        let sql = self.page_sql(after.is_some());
        let params: Vec<Value> = after.map(from_json).into_iter().collect();
        let mut stmt = self.conn.prepare(&sql).map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map(params_from_iter(params), |r| {
                let id = to_json(r.get_ref(0)?);
                let values = (1..=self.columns.len())
                    .map(|i| r.get::<_, Option<String>>(i).ok().flatten())
                    .collect();
                Ok(Row { id, values })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| e.to_string())?;
        Ok(rows)
    }

    /// The page query: the first page, or the one after ?1. Two queries, not one with
    /// `?1 IS NULL OR id > ?1`, which SQLite cannot answer from the index (every page
    /// then scanned the table from its start).
    fn page_sql(&self, after: bool) -> String {
        let cols: Vec<String> = self.columns.iter().map(|c| quote(c)).collect();
        let id = quote(&self.id_column);
        let from = if after {
            format!("WHERE {id} > ?1 ")
        } else {
            String::new()
        };
        format!(
            "SELECT {id}, {} FROM {} {from}ORDER BY {id} LIMIT {BATCH}",
            cols.join(", "),
            quote(&self.table)
        )
    }

    /// Copies the database with `VACUUM INTO` beside it, as private as the database.
    pub fn back_up(&self, to: &Path) -> Result<(), String> {
        crate::source::sqlite::writeback::private_copy(&self.conn, &self.path, to).map(|_| ())
    }

    /// Applies `changes` in one transaction: each only where the row still holds `old`.
    /// `before_commit` gets the changes that applied and must make them durable (the
    /// manifest); if it fails, nothing is committed. Returns the changes applied.
    pub fn apply(
        &mut self,
        changes: Vec<Change>,
        before_commit: impl FnOnce(&[Change]) -> anyhow::Result<()>,
    ) -> anyhow::Result<Vec<Change>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let written = write_holding(&tx, &self.table, &self.id_column, &changes, false)?;
        let applied = Change::only_written(changes, written);
        before_commit(&applied)?;
        tx.commit()?;
        Ok(applied)
    }

    /// Opens the transaction rollback's restores are written in.
    pub fn begin_restores(&mut self) -> Result<(), String> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| e.to_string())
    }

    /// Writes each change's `old` back where the row still holds its `new`; which it did.
    pub fn put_back(&mut self, changes: &[Change]) -> Result<Vec<bool>, String> {
        write_holding(&self.conn, &self.table, &self.id_column, changes, true)
            .map_err(|e| e.to_string())
    }

    /// What each change's row holds now, in order (`None`: gone, or NULL).
    pub fn values_now(&self, changes: &[Change]) -> Result<Vec<Option<Vec<u8>>>, String> {
        changes.iter().map(|c| self.value_now(c)).collect()
    }

    /// The value the row holds now (`None`: the row is gone, or NULL).
    fn value_now(&self, c: &Change) -> Result<Option<Vec<u8>>, String> {
        let now: Option<Option<String>> = self
            .conn
            .query_row(
                &format!(
                    "SELECT {} FROM {} WHERE {} = ?1",
                    quote(&c.column),
                    quote(&self.table),
                    quote(&self.id_column)
                ),
                [from_json(&c.id)],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| e.to_string())?;
        Ok(now.flatten().map(String::into_bytes))
    }
}

impl Table {
    /// Commits the restores written since [`Table::begin_restores`].
    pub fn commit_restores(&mut self) -> Result<(), String> {
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.conn.execute_batch("COMMIT").map_err(|e| e.to_string())
    }
}

/// Each change's guarded update (`new` where the row still holds `old`, or the other
/// way round when putting `back`); which changes were written.
fn write_holding(
    conn: &Connection,
    table: &str,
    id_column: &str,
    changes: &[Change],
    back: bool,
) -> rusqlite::Result<Vec<bool>> {
    changes
        .iter()
        .map(|c| {
            let (from, to) = if back {
                (&c.new, &c.old)
            } else {
                (&c.old, &c.new)
            };
            let params = [
                Value::Text(to.clone()),
                from_json(&c.id),
                Value::Text(from.clone()),
            ];
            let mut st = conn.prepare_cached(&update_sql(table, id_column, &c.column))?;
            Ok(st.execute(params_from_iter(params))? > 0)
        })
        .collect()
}

/// The guarded update: `column` becomes ?1 in row ?2 only while it still holds ?3.
fn update_sql(table: &str, id_column: &str, column: &str) -> String {
    format!(
        "UPDATE {} SET {col} = ?1 WHERE {} = ?2 AND {col} = ?3",
        quote(table),
        quote(id_column),
        col = quote(column)
    )
}

/// A string literal for SQL (table names passed to a pragma function).
fn sql_text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each page starts where the last ended, found through the key's index: a page that
    /// scanned the table from its start made a 100,000-row rewrite quadratic.
    #[test]
    fn a_page_seeks_to_its_first_row_through_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE posts (ID INTEGER PRIMARY KEY, body TEXT);
             CREATE TABLE pages (slug TEXT PRIMARY KEY, body TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
             INSERT INTO posts SELECT i, 'x' FROM n;
             INSERT INTO pages SELECT printf('p%04d', ID), body FROM posts;",
        )
        .unwrap();
        drop(conn);
        for (table, id, after) in [
            ("posts", "ID", serde_json::json!(900)),
            ("pages", "slug", serde_json::json!("p0900")),
        ] {
            let t = Table::open(&path, table, id, &["body".to_string()], true).unwrap();
            let rows = t.page(Some(&after)).unwrap();
            assert_eq!(rows.len(), 100, "{table}");
            let mut stmt = t.conn.prepare(&t.page_sql(true)).unwrap();
            let _ = stmt
                .query_map([from_json(&after)], |_| Ok(()))
                .unwrap()
                .count();
            let steps = stmt.get_status(rusqlite::StatementStatus::FullscanStep);
            let sorts = stmt.get_status(rusqlite::StatementStatus::Sort);
            assert_eq!(
                (steps, sorts),
                (0, 0),
                "{table}: the page scanned or sorted the table"
            );
        }
    }
}
