//! Base64 blobs in a SQLite table as a source. Rows are read in keyset pages by the id
//! column (integer or text ids), a row at a time, on a blocking thread — never the whole
//! table. The database is opened read-only with a busy timeout, so the application keeps
//! running. Each row becomes one object keyed `row:<id>`; a row that is empty or does not
//! decode is reported with its id and the reason. Identifiers are quoted and values bound:
//! no SQL is built from row data.

pub mod blob;
pub mod db;
pub mod restore;
pub mod row;
pub mod writeback;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;

use super::{ListItem, ObjectInfo, Opened, Problem, Source};
use crate::checksum::sha256;
use crate::error::{usage, StoreError};
use crate::object::ByteRange;
use blob::{content_type_of, decode, ext_for, is_reference};
use db::{connect, id_text, id_value, quote, text_of};
pub use row::{RowRecord, RowRef, SqliteSettings, WriteBackConfig};

/// Rows per keyset page: small, so a read never holds the table for long.
const PAGE: usize = 64;

pub struct SqliteSource {
    path: PathBuf,
    settings: SqliteSettings,
}

/// Checks that the table, columns and `where` exist and parse: exit 2 otherwise.
fn validate(conn: &Connection, path: &Path, s: &SqliteSettings) -> anyhow::Result<()> {
    let db = path.display();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type IN ('table','view') ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if !tables.iter().any(|t| t == &s.table) {
        return Err(usage(format!(
            "table {:?} not found in {db} (tables: {}); fix `table` in the config",
            s.table,
            tables.join(", ")
        )));
    }
    let columns: Vec<String> = conn
        .prepare(&format!("PRAGMA table_info({})", quote(&s.table)))?
        .query_map([], |r| r.get(1))?
        .collect::<Result<_, _>>()?;
    let mut wanted: Vec<(&str, &str)> =
        vec![("id_column", &s.id_column), ("data_column", &s.data_column)];
    if let Some(c) = &s.content_type_column {
        wanted.push(("content_type_column", c));
    }
    if let Some(wb) = &s.write_back {
        if let Some(c) = &wb.key_column {
            wanted.push(("write_back.key_column", c));
        }
        if let Some(c) = &wb.url_column {
            wanted.push(("write_back.url_column", c));
        }
    }
    for c in &s.template_columns {
        wanted.push(("a template placeholder", c));
    }
    let rowid = |c: &str| matches!(c.to_ascii_lowercase().as_str(), "rowid" | "oid" | "_rowid_");
    for (what, col) in wanted {
        if !columns.iter().any(|c| c == col) && !rowid(col) {
            return Err(usage(format!(
                "column {col:?} ({what}) not found in table {:?} of {db} (columns: {})",
                s.table,
                columns.join(", ")
            )));
        }
    }
    if let Some(w) = &s.where_clause {
        let sql = format!("SELECT 1 FROM {} WHERE ({w}) LIMIT 0", quote(&s.table));
        conn.prepare(&sql).map_err(|e| {
            usage(format!(
                "`where = {w:?}` does not parse against table {:?}: {e}",
                s.table
            ))
        })?;
    }
    Ok(())
}

impl SqliteSource {
    pub async fn open(path: PathBuf, settings: SqliteSettings) -> anyhow::Result<SqliteSource> {
        if !path.is_file() {
            return Err(usage(format!(
                "database {} does not exist: check the sqlite:///abs/path/app.db URL",
                path.display()
            )));
        }
        let (p, s) = (path.clone(), settings.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let conn = connect(&p, true).map_err(|e| {
                usage(format!(
                    "cannot open database {}: {e}; check its permissions (it is opened read-only)",
                    p.display()
                ))
            })?;
            validate(&conn, &p, &s)
        })
        .await??;
        Ok(SqliteSource { path, settings })
    }

    fn select_sql(&self, after: bool) -> String {
        let s = &self.settings;
        let mut cols = vec![quote(&s.id_column), quote(&s.data_column)];
        cols.push(
            s.content_type_column
                .as_deref()
                .map(quote)
                .unwrap_or_else(|| "NULL".into()),
        );
        cols.extend(s.template_columns.iter().map(|c| quote(c)));
        let mut sql = format!(
            "SELECT {} FROM {} WHERE {} IS NOT NULL",
            cols.join(", "),
            quote(&s.table),
            quote(&s.data_column)
        );
        if let Some(w) = &s.where_clause {
            sql.push_str(&format!(" AND ({w})"));
        }
        if after {
            sql.push_str(&format!(" AND {} > ?1", quote(&s.id_column)));
        }
        sql.push_str(&format!(" ORDER BY {} LIMIT {PAGE}", quote(&s.id_column)));
        sql
    }
}

/// One row turned into a list item (its decoded bytes are hashed, then dropped); `None`
/// for a row whose column holds a URL or a path instead of a blob (never touched).
fn row_item(
    row: &rusqlite::Row<'_>,
    s: &SqliteSettings,
) -> rusqlite::Result<(Value, Option<ListItem>)> {
    let id: Value = row.get(0)?;
    let Some((id_str, is_int)) = id_text(&id) else {
        let item = ListItem::Unreadable {
            key: "row:?".into(),
            problem: Problem::BadId,
            reason: format!(
                "id column {:?} holds a value that is neither integer nor text",
                s.id_column
            ),
        };
        return Ok((id, Some(item)));
    };
    let key = format!("row:{id_str}");
    let raw = match row.get_ref(1)? {
        ValueRef::Text(t) | ValueRef::Blob(t) => t.to_vec(),
        _ => {
            let reason =
                format!("row id={id_str}: the data column holds a number, not base64 text");
            let problem = Problem::NotText;
            return Ok((
                id,
                Some(ListItem::Unreadable {
                    key,
                    problem,
                    reason,
                }),
            ));
        }
    };
    let decoded = match decode(&raw) {
        Ok(d) => d,
        Err(_) if is_reference(&raw) => return Ok((id, None)),
        Err(why) => {
            return Ok((
                id,
                Some(ListItem::Unreadable {
                    key,
                    problem: why.problem,
                    reason: format!("row id={id_str}: {}", why.reason),
                }),
            ))
        }
    };
    let column_type = text_of(row.get_ref(2)?).filter(|t| !t.trim().is_empty());
    let declared = decoded
        .form
        .data_uri_type
        .clone()
        .filter(|t| !t.is_empty())
        .or(column_type);
    let (content_type, declared_disagrees) = content_type_of(declared, &decoded.bytes);
    let mut vars = BTreeMap::new();
    vars.insert("id".to_string(), id_str.clone());
    vars.insert("ext".to_string(), ext_for(content_type.as_deref()));
    for (i, col) in s.template_columns.iter().enumerate() {
        vars.insert(
            col.clone(),
            text_of(row.get_ref(3 + i)?).unwrap_or_default(),
        );
    }
    let mut info = ObjectInfo::new(key, decoded.bytes.len() as u64);
    info.digests.sha256 = Some(sha256(&decoded.bytes));
    info.version = Some(hex::encode(sha256(&raw)));
    info.meta.content_type = content_type;
    info.declared_content_type = declared_disagrees;
    info.row = Some(RowRef {
        id: id_str,
        id_is_int: is_int,
        original_sha256: hex::encode(sha256(&raw)),
        original_len: raw.len() as u64,
        form: Some(decoded.form),
        vars,
    });
    Ok((id, Some(ListItem::Object(info))))
}

fn list_rows(
    source: (PathBuf, String, String, SqliteSettings),
    tx: tokio::sync::mpsc::Sender<Result<ListItem, StoreError>>,
) {
    let (path, first_sql, next_sql, settings) = source;
    let fail = |e: rusqlite::Error| StoreError::Fatal(format!("reading {}: {e}", path.display()));
    let conn = match connect(&path, true) {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.blocking_send(Err(fail(e)));
            return;
        }
    };
    let mut last: Option<Value> = None;
    loop {
        // Collect one page, then release the statement before handing items on, so a
        // slow consumer never holds a read transaction open against the app's writers.
        let page: rusqlite::Result<Vec<(Value, Option<ListItem>)>> = (|| {
            let mut stmt = conn.prepare_cached(if last.is_some() {
                &next_sql
            } else {
                &first_sql
            })?;
            let mut rows = match &last {
                Some(v) => stmt.query([v])?,
                None => stmt.query([])?,
            };
            let mut out: Vec<(Value, Option<ListItem>)> = Vec::with_capacity(PAGE);
            while let Some(row) = rows.next()? {
                out.push(row_item(row, &settings)?);
            }
            Ok(out)
        })();
        let page = match page {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.blocking_send(Err(fail(e)));
                return;
            }
        };
        let full = page.len() == PAGE;
        for (id, item) in page {
            last = Some(id);
            let Some(item) = item else { continue };
            if tx.blocking_send(Ok(item)).is_err() {
                return;
            }
        }
        if !full {
            return;
        }
    }
}

#[async_trait]
impl Source for SqliteSource {
    fn list(&self) -> BoxStream<'_, Result<ListItem, StoreError>> {
        let (tx, rx) = tokio::sync::mpsc::channel(PAGE);
        let job = (
            self.path.clone(),
            self.select_sql(false),
            self.select_sql(true),
            self.settings.clone(),
        );
        tokio::task::spawn_blocking(move || list_rows(job, tx));
        crate::object::channel_stream(rx)
    }

    async fn open(&self, obj: &ObjectInfo, range: Option<ByteRange>) -> Result<Opened, StoreError> {
        let row = obj.row.clone().ok_or_else(|| {
            StoreError::Object(format!("{}: not a row of this database", obj.key))
        })?;
        let s = self.settings.clone();
        let path = self.path.clone();
        let bytes = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, StoreError> {
            let conn = connect(&path, true)
                .map_err(|e| StoreError::Transient(format!("opening {}: {e}", path.display())))?;
            let sql = format!(
                "SELECT {} FROM {} WHERE {} = ?1",
                quote(&s.data_column),
                quote(&s.table),
                quote(&s.id_column)
            );
            let raw: Option<Vec<u8>> = conn
                .query_row(&sql, [id_value(&row.id, row.id_is_int)], |r| {
                    Ok(match r.get_ref(0)? {
                        ValueRef::Text(t) | ValueRef::Blob(t) => Some(t.to_vec()),
                        _ => None,
                    })
                })
                .map_err(|e| {
                    StoreError::Object(format!(
                        "row id={}: cannot be read again: {e}; re-run to retry",
                        row.id
                    ))
                })?;
            let raw = raw.ok_or_else(|| {
                StoreError::Object(format!(
                    "row id={}: its data was removed while migrating; re-run",
                    row.id
                ))
            })?;
            decode(&raw)
                .map(|d| d.bytes)
                .map_err(|why| StoreError::Object(format!("row id={}: {}", row.id, why.reason)))
        })
        .await
        .map_err(|e| StoreError::Object(format!("{}: {e}", obj.key)))??;
        let bytes = match range {
            Some(r) => bytes
                [(r.start as usize).min(bytes.len())..(r.end as usize).min(bytes.len())]
                .to_vec(),
            None => bytes,
        };
        let chunk: Result<Bytes, StoreError> = Ok(Bytes::from(bytes));
        Ok(Opened::body(crate::object::fused(futures::stream::iter([
            chunk,
        ]))))
    }

    async fn check_access(&self) -> Result<(), StoreError> {
        Ok(()) // validated when opened: a missing table or column is a usage error (exit 2)
    }
}
