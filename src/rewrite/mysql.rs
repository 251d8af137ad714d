//! The MySQL / MariaDB side of `rewrite-urls`, the same seam as [`super::postgres`]: a
//! table paged by its id, changes applied in one transaction per batch (each row only
//! while its bytes are still what was read, the manifest flushed before the commit),
//! values put back by rollback. Text travels as utf8mb4 and the server converts each
//! column's own character set both ways, which loses nothing for the sets in
//! [`CHARSETS`]; a value a column cannot hold (a character outside latin1, a URL longer
//! than its VARCHAR) is refused for that row, never stored with `?` or cut short.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, SslOpts, TxOpts, Value};

use super::mysql_settings::{holds, password, settings_of, Settings, SslMode, CHARSETS};
use super::sqlite::{Change, Row, BATCH};
use super::OpenError;

/// A rewritten column: its name, character set and longest value in characters.
struct Column {
    name: String,
    charset: String,
    max_chars: Option<u64>,
}

/// A MySQL or MariaDB table being rewritten.
pub struct MyTable {
    conn: Conn,
    shown: String,
    table: String,
    id_column: String,
    integer_id: bool,
    columns: Vec<Column>,
}

/// `` `name` ``, or `` `db`.`name` `` for a qualified name; embedded backticks doubled.
fn quote(ident: &str) -> String {
    ident
        .split('.')
        .map(|p| format!("`{}`", p.replace('`', "``")))
        .collect::<Vec<_>>()
        .join(".")
}

/// Connects as the settings say: TLS per `ssl-mode`, never the server's Unix socket
/// (which would bypass it), utf8mb4 on the wire, strict mode so that a value a column
/// cannot hold is an error rather than a silently mangled row.
async fn connect(s: &Settings) -> Result<Conn, OpenError> {
    // Two rustls providers are compiled in (ring, and aws-lc-rs for the AWS SDK); the
    // driver asks for the process default.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let base = OptsBuilder::default()
        .ip_or_hostname(s.host.clone())
        .tcp_port(s.port)
        .user(Some(s.user.clone()))
        .pass(password())
        .db_name(Some(s.database.clone()))
        .prefer_socket(false)
        .init(vec![
            "SET NAMES utf8mb4",
            "SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, IF(@@SESSION.sql_mode = '', '', ','), 'STRICT_ALL_TABLES')",
        ]);
    let tls = |verify_chain: bool, verify_host: bool| {
        let mut o = SslOpts::default()
            .with_danger_accept_invalid_certs(!verify_chain)
            .with_danger_skip_domain_validation(!verify_host);
        if let Some(ca) = &s.ssl_ca {
            o = o
                .with_root_certs(vec![ca.clone().into()])
                .with_disable_built_in_roots(true);
        }
        o
    };
    let attempt = |ssl: Option<SslOpts>| {
        let opts = base.clone().ssl_opts(ssl);
        async move {
            tokio::time::timeout(Duration::from_secs(10), Conn::new(opts))
                .await
                .unwrap_or_else(|_| {
                    Err(mysql_async::Error::Other(
                        "no answer in 10 seconds".to_string().into(),
                    ))
                })
        }
    };
    let result = match s.ssl_mode {
        SslMode::Disabled => attempt(None).await,
        SslMode::Preferred => match attempt(Some(tls(false, false))).await {
            Err(mysql_async::Error::Driver(
                mysql_async::DriverError::NoClientSslFlagFromServer,
            )) => attempt(None).await,
            other => other,
        },
        SslMode::Required => attempt(Some(tls(false, false))).await,
        SslMode::VerifyCa => attempt(Some(tls(true, false))).await,
        SslMode::VerifyIdentity => attempt(Some(tls(true, true))).await,
    };
    result.map_err(|e| {
        let mut words = e.to_string();
        let mut cur: &dyn std::error::Error = &e;
        while let Some(next) = cur.source() {
            words = format!("{words}: {next}");
            cur = next;
        }
        OpenError::Connect(format!(
            "{}: cannot connect ({words}); check the host, the user, and MYSQL_PWD or the [client] password in ~/.my.cnf",
            s.shown
        ))
    })
}

impl MyTable {
    /// Connects and checks the table (InnoDB, so each batch is one transaction) and its
    /// columns (text, in a character set r2migrate converts without loss).
    pub async fn open(
        database: &str,
        table: &str,
        id_column: &str,
        columns: &[String],
    ) -> Result<MyTable, OpenError> {
        let s = settings_of(database)?;
        let shown = s.shown.clone();
        let mut conn = connect(&s).await?;
        let (schema, name) = match table.split_once('.') {
            Some((d, n)) => (d.to_string(), n.to_string()),
            None => (s.database.clone(), table.to_string()),
        };
        let failed = |e: mysql_async::Error| OpenError::Connect(format!("{shown}: {e}"));
        let engine: Option<Option<String>> = conn
            .exec_first(
                "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&schema, &name),
            )
            .await
            .map_err(failed)?;
        let engine = match engine {
            None => return Err(OpenError::Usage(format!("{shown}: no table {table:?}"))),
            Some(e) => e.unwrap_or_else(|| "none (a view)".into()),
        };
        if !engine.eq_ignore_ascii_case("InnoDB") {
            return Err(OpenError::Usage(format!(
                "{shown}: table {table:?} uses the {engine} engine, which has no transactions, so r2migrate cannot commit a batch only after the manifest holds it; convert it first (ALTER TABLE {} ENGINE=InnoDB)",
                quote(table)
            )));
        }
        type ColumnInfo = (String, String, Option<String>, Option<u64>);
        let known: Vec<ColumnInfo> = conn
            .exec(
                "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_SET_NAME, CHARACTER_MAXIMUM_LENGTH FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (&schema, &name),
            )
            .await
            .map_err(failed)?;
        let find = |col: &str| known.iter().find(|(c, ..)| c == col);
        let mut wanted = Vec::new();
        for col in std::iter::once(id_column).chain(columns.iter().map(String::as_str)) {
            if find(col).is_none() {
                let names: Vec<&str> = known.iter().map(|(c, ..)| c.as_str()).collect();
                return Err(OpenError::Usage(format!(
                    "{shown}: table {table:?} has no column {col:?} (it has {})",
                    names.join(", ")
                )));
            }
        }
        for col in columns {
            let (_, data_type, charset, max) = find(col).expect("checked above");
            let Some(charset) = charset.clone() else {
                return Err(OpenError::Usage(format!(
                    "{shown}: column {col:?} of {table:?} is {data_type}, not text; rewrite-urls rewrites text columns"
                )));
            };
            if !CHARSETS.contains(&charset.as_str()) {
                return Err(OpenError::Usage(format!(
                    "{shown}: column {col:?} of {table:?} is in the {charset} character set; rewrite-urls rewrites {} columns only, so convert it or leave it out",
                    CHARSETS.join(", ")
                )));
            }
            wanted.push(Column {
                name: col.clone(),
                charset,
                max_chars: *max,
            });
        }
        let id_type = &find(id_column).expect("checked above").1;
        let integer_id = [
            "tinyint",
            "smallint",
            "mediumint",
            "int",
            "integer",
            "bigint",
        ]
        .contains(&id_type.to_ascii_lowercase().as_str());
        Ok(MyTable {
            conn,
            shown,
            table: table.to_string(),
            id_column: id_column.to_string(),
            integer_id,
            columns: wanted,
        })
    }

    /// Why `column` cannot hold `new` (a character its set lacks, or too long), if so.
    pub fn refuses(&self, column: &str, new: &str) -> Option<String> {
        let c = self.columns.iter().find(|c| c.name == column)?;
        if !holds(&c.charset, new) {
            let lacking: String = new
                .chars()
                .filter(|ch| !holds(&c.charset, &ch.to_string()))
                .take(3)
                .collect();
            return Some(format!(
                "the new value has characters ({lacking}) the column's {} character set cannot hold: left as it is; use a `to` it can hold",
                c.charset
            ));
        }
        let chars = new.chars().count() as u64;
        match c.max_chars {
            Some(max) if chars > max => Some(format!(
                "the new value is {chars} characters and the column holds {max}: left as it is; widen the column or use a shorter `to`"
            )),
            _ => None,
        }
    }

    /// The id as the manifest keeps it: a number for integer ids, else text.
    fn id_json(integer_id: bool, v: Value) -> Result<serde_json::Value, String> {
        Ok(match v {
            Value::Int(n) => n.into(),
            Value::UInt(n) => n.into(),
            Value::Bytes(b) => {
                let text = String::from_utf8(b).map_err(|e| e.to_string())?;
                match text.parse::<i64>() {
                    Ok(n) if integer_id => n.into(),
                    _ => text.into(),
                }
            }
            other => return Err(format!("an id r2migrate cannot keep: {other:?}")),
        })
    }

    fn id_param(id: &serde_json::Value) -> Value {
        match id {
            serde_json::Value::Number(n) => n
                .as_i64()
                .map(Value::Int)
                .or_else(|| n.as_u64().map(Value::UInt))
                .unwrap_or_else(|| Value::Bytes(n.to_string().into_bytes())),
            serde_json::Value::String(s) => Value::Bytes(s.clone().into_bytes()),
            other => Value::Bytes(other.to_string().into_bytes()),
        }
    }

    /// Up to [`BATCH`] rows with an id after `after`, in id order.
    pub async fn page(&mut self, after: Option<&serde_json::Value>) -> Result<Vec<Row>, String> {
        let id = quote(&self.id_column);
        let cols: Vec<String> = self.columns.iter().map(|c| quote(&c.name)).collect();
        let select = format!(
            "SELECT {id}, {} FROM {}",
            cols.join(", "),
            quote(&self.table)
        );
        let rows: Vec<mysql_async::Row> = match after {
            None => {
                let sql = format!("{select} ORDER BY {id} LIMIT {BATCH}");
                self.conn.exec(sql, ()).await
            }
            Some(a) => {
                let sql = format!("{select} WHERE {id} > ? ORDER BY {id} LIMIT {BATCH}");
                self.conn.exec(sql, (Self::id_param(a),)).await
            }
        }
        .map_err(|e| format!("{}: reading {}: {e}", self.shown, self.table))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut values = row.unwrap().into_iter();
            let id = Self::id_json(self.integer_id, values.next().unwrap_or(Value::NULL))?;
            let values = values
                .map(|v| match v {
                    Value::Bytes(b) => String::from_utf8(b).map(Some).map_err(|e| e.to_string()),
                    _ => Ok(None),
                })
                .collect::<Result<_, _>>()?;
            out.push(Row { id, values });
        }
        Ok(out)
    }

    /// As [`super::sqlite::Table::apply`]: one transaction, `before_commit` inside it;
    /// the rows still holding the bytes first read are written (see [`swap_holding`]).
    pub async fn apply(
        &mut self,
        changes: Vec<Change>,
        before_commit: impl FnOnce(&[Change]) -> anyhow::Result<()>,
    ) -> anyhow::Result<Vec<Change>> {
        let shape = self.shape();
        let mut tx = self.conn.start_transaction(TxOpts::default()).await?;
        let written = swap_holding(&mut tx, &shape, &changes, Way::Forward).await?;
        let applied = Change::only_written(changes, written);
        before_commit(&applied)?;
        tx.commit().await?;
        Ok(applied)
    }

    fn shape(&self) -> Shape {
        Shape {
            table: quote(&self.table),
            id: quote(&self.id_column),
            integer_id: self.integer_id,
        }
    }

    /// Opens the transaction rollback's restores are written in.
    pub async fn begin_restores(&mut self) -> Result<(), String> {
        self.conn
            .query_drop("START TRANSACTION")
            .await
            .map_err(|e| e.to_string())
    }

    /// Writes each change's `old` back where the row still holds its `new` (compared as
    /// bytes), in the transaction [`MyTable::begin_restores`] opened; which it did.
    pub async fn put_back(&mut self, changes: &[Change]) -> Result<Vec<bool>, String> {
        let shape = self.shape();
        swap_holding(&mut self.conn, &shape, changes, Way::Back)
            .await
            .map_err(|e| e.to_string())
    }

    /// What each change's row holds now, as utf8mb4 bytes, in order (`None`: gone, or
    /// NULL): one query per column for the whole batch.
    pub async fn values_now(&mut self, changes: &[Change]) -> Result<Vec<Option<Vec<u8>>>, String> {
        let mut now = vec![None; changes.len()];
        let (table, id) = (quote(&self.table), quote(&self.id_column));
        for (column, mine) in Change::by_column(changes) {
            let (marks, ids) = ids_of(changes, &mine);
            let rows: Vec<(Value, Option<Vec<u8>>)> = self
                .conn
                .exec(
                    format!(
                        "SELECT {id}, {} FROM {table} WHERE {id} IN ({marks})",
                        quote(column)
                    ),
                    ids,
                )
                .await
                .map_err(|e| e.to_string())?;
            let mut found = std::collections::HashMap::new();
            for (row_id, value) in rows {
                found.insert(Self::id_json(self.integer_id, row_id)?.to_string(), value);
            }
            for i in mine {
                now[i] = found.get(&changes[i].id.to_string()).cloned().flatten();
            }
        }
        Ok(now)
    }

    /// Commits the restores written since [`MyTable::begin_restores`].
    pub async fn commit_restores(&mut self) -> Result<(), String> {
        self.conn
            .query_drop("COMMIT")
            .await
            .map_err(|e| e.to_string())
    }
}

/// What [`swap_holding`] needs of a table: its quoted name and id.
struct Shape {
    table: String,
    id: String,
    integer_id: bool,
}

/// `?, ?, …` for the ids of `changes` at `at`, and those ids as parameters.
fn ids_of(changes: &[Change], at: &[usize]) -> (String, Vec<Value>) {
    let marks = vec!["?"; at.len()].join(", ");
    let ids = at
        .iter()
        .map(|&i| MyTable::id_param(&changes[i].id))
        .collect();
    (marks, ids)
}

/// Which way a change goes: `old` to `new` (rewrite-urls), or back (rollback).
#[derive(Clone, Copy)]
enum Way {
    Forward,
    Back,
}

impl Way {
    fn from(self, c: &Change) -> &str {
        match self {
            Way::Forward => &c.old,
            Way::Back => &c.new,
        }
    }

    fn to(self, c: &Change) -> &str {
        match self {
            Way::Forward => &c.new,
            Way::Back => &c.old,
        }
    }
}

/// Per column, locks and reads the changes' rows (`SELECT … FOR UPDATE`), then writes
/// the value each change ends at into the rows still holding the value it starts from,
/// in one `UPDATE … CASE`: a few round trips for a whole batch, and no one can change
/// a row in between. Values are compared byte for byte as read (utf8mb4, which every
/// set in [`CHARSETS`] converts to and from without loss), never by the column's
/// collation, so a case-only edit or trailing spaces never look unchanged. Which
/// changes were written, in order.
async fn swap_holding<Q: Queryable>(
    q: &mut Q,
    shape: &Shape,
    changes: &[Change],
    way: Way,
) -> anyhow::Result<Vec<bool>> {
    let (table, id) = (&shape.table, &shape.id);
    let mut written = vec![false; changes.len()];
    for (column, mine) in Change::by_column(changes) {
        let col = quote(column);
        let (marks, ids) = ids_of(changes, &mine);
        let rows: Vec<(Value, Option<Vec<u8>>)> = q
            .exec(
                format!("SELECT {id}, {col} FROM {table} WHERE {id} IN ({marks}) FOR UPDATE"),
                ids,
            )
            .await?;
        let mut now = std::collections::HashMap::new();
        for (row_id, value) in rows {
            let row_id = MyTable::id_json(shape.integer_id, row_id).map_err(anyhow::Error::msg)?;
            now.insert(row_id.to_string(), value);
        }
        let holding: Vec<usize> = mine
            .into_iter()
            .filter(|&i| {
                let c = &changes[i];
                now.get(&c.id.to_string()).and_then(|v| v.as_deref())
                    == Some(way.from(c).as_bytes())
            })
            .collect();
        if holding.is_empty() {
            continue;
        }
        let mut params = Vec::with_capacity(holding.len() * 3);
        for &i in &holding {
            params.push(MyTable::id_param(&changes[i].id));
            params.push(Value::from(way.to(&changes[i])));
        }
        let (marks, ids) = ids_of(changes, &holding);
        params.extend(ids);
        let whens = "WHEN ? THEN ? ".repeat(holding.len());
        q.exec_drop(
            format!("UPDATE {table} SET {col} = CASE {id} {whens}ELSE {col} END WHERE {id} IN ({marks})"),
            params,
        )
        .await?;
        for i in holding {
            written[i] = true;
        }
    }
    Ok(written)
}
