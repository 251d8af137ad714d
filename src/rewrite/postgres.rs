//! The PostgreSQL side of `rewrite-urls`, the same seam as [`super::sqlite`]: a table
//! paged by its id, changes applied in one transaction per batch (each row only while it
//! still holds what was read, the manifest flushed before the commit), values put back
//! by rollback. The password comes only from `PGPASSWORD` or the pgpass file, never from
//! the URL; `sslmode` is `disable`, `prefer`, `require` (encrypted, server not
//! authenticated, as libpq) or `verify-full` (chain and host name checked, against
//! `sslrootcert` or the system's roots).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, GenericClient};

use super::sqlite::{Change, Row, BATCH};
use super::{redact, OpenError};

/// A PostgreSQL table being rewritten.
pub struct PgTable {
    client: Client,
    table: String,
    id_column: String,
    /// The id column's type (`int4`, `uuid`, `text`…), to compare ids as the index does.
    id_type: String,
    columns: Vec<String>,
}

/// `"name"`, or `"schema"."name"` for a qualified name; embedded quotes doubled.
fn quote(ident: &str) -> String {
    ident
        .split('.')
        .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// The connection settings a `postgres://` URL gives, with the password from
/// `PGPASSWORD` or the pgpass file. A password in the URL is refused.
pub fn config_of(database: &str) -> Result<(tokio_postgres::Config, Tls), OpenError> {
    let url = url::Url::parse(database).map_err(|e| {
        OpenError::Usage(format!("{}: not a PostgreSQL URL ({e})", redact(database)))
    })?;
    if url.password().is_some() {
        return Err(OpenError::Usage(format!(
            "{}: a password in the database URL is refused (it would end up in shell history and logs); put it in PGPASSWORD or ~/.pgpass",
            redact(database)
        )));
    }
    let host = url.host_str().unwrap_or("localhost").to_string();
    let port = url.port().unwrap_or(5432);
    let user = if url.username().is_empty() {
        std::env::var("PGUSER").unwrap_or_else(|_| "postgres".into())
    } else {
        percent_encoding::percent_decode_str(url.username())
            .decode_utf8_lossy()
            .into_owned()
    };
    let dbname = url.path().trim_start_matches('/').to_string();
    let dbname = if dbname.is_empty() {
        user.clone()
    } else {
        dbname
    };
    let mut tls = Tls::Prefer;
    let mut root_cert: Option<PathBuf> = None;
    for (k, v) in url.query_pairs() {
        match (k.as_ref(), v.as_ref()) {
            ("sslmode", "disable") => tls = Tls::Disable,
            ("sslmode", "prefer" | "allow") => tls = Tls::Prefer,
            ("sslmode", "require") => tls = Tls::Require,
            ("sslmode", "verify-full") => tls = Tls::VerifyFull(None),
            ("sslmode", other) => {
                return Err(OpenError::Usage(format!(
                "{}: sslmode={other} is not supported; use disable, prefer, require or verify-full",
                redact(database)
            )))
            }
            ("sslrootcert", path) => root_cert = Some(PathBuf::from(path)),
            (other, _) => {
                return Err(OpenError::Usage(format!(
                    "{}: the parameter {other:?} is not supported (sslmode and sslrootcert are)",
                    redact(database)
                )))
            }
        }
    }
    if let Tls::VerifyFull(_) = tls {
        tls = Tls::VerifyFull(root_cert);
    }
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&host)
        .port(port)
        .user(&user)
        .dbname(&dbname)
        .application_name("r2migrate")
        .connect_timeout(std::time::Duration::from_secs(10));
    if let Some(pw) = password_for(&host, port, &dbname, &user) {
        cfg.password(pw);
    }
    cfg.ssl_mode(match tls {
        Tls::Disable => SslMode::Disable,
        Tls::Prefer => SslMode::Prefer,
        _ => SslMode::Require,
    });
    Ok((cfg, tls))
}

/// How the connection is encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    Disable,
    Prefer,
    Require,
    /// With the root certificates to trust (else the system's).
    VerifyFull(Option<PathBuf>),
}

/// `PGPASSWORD`, else the first matching line of `PGPASSFILE` or `~/.pgpass` (as libpq:
/// `host:port:database:user:password`, `*` matches anything, `\` escapes; a file others
/// can read is ignored).
fn password_for(host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    if let Ok(pw) = std::env::var("PGPASSWORD") {
        return Some(pw);
    }
    let file = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass")))?;
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).ok()?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            "{}: ignored, since others can read it (chmod 0600 it)",
            file.display()
        );
        return None;
    }
    let text = std::fs::read_to_string(&file).ok()?;
    let port = port.to_string();
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|line| {
            let f = pgpass_fields(line);
            let ok = |i: usize, want: &str| f.get(i).is_some_and(|v| v == "*" || v == want);
            (f.len() == 5 && ok(0, host) && ok(1, &port) && ok(2, db) && ok(3, user))
                .then(|| f[4].clone())
        })
}

fn pgpass_fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.last_mut().expect("one field").push(n);
                }
            }
            ':' => out.push(String::new()),
            c => out.last_mut().expect("one field").push(c),
        }
    }
    out
}

/// Connects as the settings say, TLS included.
async fn connect(
    cfg: &tokio_postgres::Config,
    tls: &Tls,
    shown: &str,
) -> Result<Client, OpenError> {
    let failed = |e: tokio_postgres::Error| {
        let mut words = e.to_string();
        let mut cur: &dyn std::error::Error = &e;
        while let Some(next) = cur.source() {
            words = format!("{words}: {next}");
            cur = next;
        }
        OpenError::Connect(format!(
            "{shown}: cannot connect ({words}); check the host, the user, and PGPASSWORD or ~/.pgpass"
        ))
    };
    if *tls == Tls::Disable {
        let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.map_err(failed)?;
        tokio::spawn(conn);
        return Ok(client);
    }
    let tls_cfg = client_config(tls).map_err(OpenError::Usage)?;
    let maker = tokio_postgres_rustls::MakeRustlsConnect::new(tls_cfg);
    let (client, conn) = cfg.connect(maker).await.map_err(failed)?;
    tokio::spawn(conn);
    Ok(client)
}

/// rustls settings: the system's roots (or `sslrootcert`) for verify-full; for prefer
/// and require, encryption without authenticating the server, as libpq does.
fn client_config(tls: &Tls) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match tls {
        Tls::VerifyFull(root) => {
            let mut roots = rustls::RootCertStore::empty();
            match root {
                Some(path) => {
                    use rustls::pki_types::pem::PemObject;
                    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                        .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                    for cert in certs {
                        let cert =
                            cert.map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                        roots.add(cert).map_err(|e| e.to_string())?;
                    }
                }
                None => {
                    for cert in rustls_native_certs::load_native_certs().certs {
                        let _ = roots.add(cert);
                    }
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth(),
    };
    Ok(config)
}

/// `sslmode=require`: the handshake's signatures are checked, the server's identity is
/// not (libpq's meaning; verify-full is the mode that authenticates the server).
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl PgTable {
    /// Connects and checks that the table and its columns exist (a usage error if not).
    pub async fn open(
        database: &str,
        table: &str,
        id_column: &str,
        columns: &[String],
    ) -> Result<PgTable, OpenError> {
        let shown = redact(database);
        let (cfg, tls) = config_of(database)?;
        let client = connect(&cfg, &tls, &shown).await?;
        let (schema, name) = match table.split_once('.') {
            Some((s, n)) => (s.to_string(), n.to_string()),
            None => ("public".to_string(), table.to_string()),
        };
        let rows = client
            .query(
                "SELECT column_name::text, udt_name::text FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
                &[&schema, &name],
            )
            .await
            .map_err(|e| OpenError::Connect(format!("{shown}: {e}")))?;
        let known: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        if known.is_empty() {
            return Err(OpenError::Usage(format!("{shown}: no table {table:?}")));
        }
        let type_of = |col: &str| known.iter().find(|(c, _)| c == col).map(|(_, t)| t.clone());
        for col in std::iter::once(id_column).chain(columns.iter().map(String::as_str)) {
            if type_of(col).is_none() {
                let names: Vec<&str> = known.iter().map(|(c, _)| c.as_str()).collect();
                return Err(OpenError::Usage(format!(
                    "{shown}: table {table:?} has no column {col:?} (it has {})",
                    names.join(", ")
                )));
            }
        }
        let id_type = type_of(id_column).expect("checked above");
        if !id_type
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(OpenError::Usage(format!(
                "{shown}: the id column {id_column:?} has a type r2migrate cannot page by ({id_type})"
            )));
        }
        Ok(PgTable {
            client,
            table: table.to_string(),
            id_column: id_column.to_string(),
            id_type,
            columns: columns.to_vec(),
        })
    }

    fn is_integer_id(&self) -> bool {
        matches!(self.id_type.as_str(), "int2" | "int4" | "int8")
    }

    /// The id as the manifest keeps it: a number for integer ids, else text.
    fn id_json(&self, text: String) -> serde_json::Value {
        if self.is_integer_id() {
            text.parse::<i64>()
                .map(serde_json::Value::from)
                .unwrap_or(serde_json::Value::String(text))
        } else {
            serde_json::Value::String(text)
        }
    }

    fn id_text(id: &serde_json::Value) -> String {
        match id {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    /// Up to [`BATCH`] rows with an id after `after`, in id order.
    pub async fn page(&self, after: Option<&serde_json::Value>) -> Result<Vec<Row>, String> {
        let id = quote(&self.id_column);
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{}::text", quote(c)))
            .collect();
        // Ordered by the column itself: the text of the id is selected under another
        // name, since an output column named like the id would order as text ("10"
        // before "9") while the next page starts after the id's value.
        let table = quote(&self.table);
        let select = format!(
            "SELECT {table}.{id}::text AS r2migrate_id, {} FROM {table}",
            cols.join(", ")
        );
        let rows = match after.map(Self::id_text) {
            None => {
                let sql = format!("{select} ORDER BY {table}.{id} LIMIT {BATCH}");
                self.client.query(&sql, &[]).await
            }
            Some(after) => {
                let sql = format!(
                    "{select} WHERE {table}.{id} > CAST($1::text AS {}) ORDER BY {table}.{id} LIMIT {BATCH}",
                    self.id_type
                );
                self.client.query(&sql, &[&after]).await
            }
        }
        .map_err(|e| e.to_string())?;
        Ok(rows
            .iter()
            .map(|r| Row {
                id: self.id_json(r.get(0)),
                values: (1..=self.columns.len()).map(|i| r.get(i)).collect(),
            })
            .collect())
    }

    fn update_sql(&self, column: &str) -> String {
        format!(
            "UPDATE {} SET {col} = $1 WHERE {} = CAST($2::text AS {}) AND {col}::text = $3",
            quote(&self.table),
            quote(&self.id_column),
            self.id_type,
            col = quote(column)
        )
    }

    /// The guarded update of each column the changes touch.
    fn update_sqls(&self, changes: &[Change]) -> HashMap<String, String> {
        let mut sqls = HashMap::new();
        for c in changes {
            sqls.entry(c.column.clone())
                .or_insert_with(|| self.update_sql(&c.column));
        }
        sqls
    }

    /// As [`super::sqlite::Table::apply`]: one transaction, `before_commit` inside it.
    pub async fn apply(
        &mut self,
        changes: Vec<Change>,
        before_commit: impl FnOnce(&[Change]) -> anyhow::Result<()>,
    ) -> anyhow::Result<Vec<Change>> {
        let sqls = self.update_sqls(&changes);
        let tx = self.client.transaction().await?;
        let written = write_holding(&tx, &sqls, &changes, false).await?;
        let applied = Change::only_written(changes, written);
        before_commit(&applied)?;
        tx.commit().await?;
        Ok(applied)
    }

    /// Opens the transaction rollback's restores are written in.
    pub async fn begin_restores(&mut self) -> Result<(), String> {
        self.client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| e.to_string())
    }

    /// Writes each change's `old` back where the row still holds its `new`, in the
    /// transaction [`PgTable::begin_restores`] opened; which it did.
    pub async fn put_back(&mut self, changes: &[Change]) -> Result<Vec<bool>, String> {
        let sqls = self.update_sqls(changes);
        write_holding(&self.client, &sqls, changes, true)
            .await
            .map_err(|e| e.to_string())
    }

    /// What each change's row holds now, in order (`None`: the row is gone, or NULL):
    /// one query per column for the whole batch.
    pub async fn values_now(&mut self, changes: &[Change]) -> Result<Vec<Option<Vec<u8>>>, String> {
        let mut now = vec![None; changes.len()];
        for (column, mine) in Change::by_column(changes) {
            let ids: Vec<String> = mine
                .iter()
                .map(|&i| Self::id_text(&changes[i].id))
                .collect();
            let sql = format!(
                "SELECT {id}::text, {}::text FROM {} WHERE {id} = ANY(CAST($1::text[] AS {}[]))",
                quote(column),
                quote(&self.table),
                self.id_type,
                id = quote(&self.id_column),
            );
            let rows = self
                .client
                .query(sql.as_str(), &[&ids])
                .await
                .map_err(|e| e.to_string())?;
            let found: HashMap<String, Option<String>> =
                rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            for (i, id) in mine.into_iter().zip(ids) {
                now[i] = found.get(&id).cloned().flatten().map(String::into_bytes);
            }
        }
        Ok(now)
    }

    /// Commits the restores written since [`PgTable::begin_restores`].
    pub async fn commit_restores(&mut self) -> Result<(), String> {
        self.client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| e.to_string())
    }
}

/// Each change's guarded update (`new` where the row still holds `old`, or the other
/// way round when putting `back`), one prepared statement per column and the batch's
/// updates sent together: the connection pipelines them, so a batch costs about one
/// round trip, not two per row. Which changes were written.
async fn write_holding<C: GenericClient + Sync>(
    client: &C,
    sqls: &HashMap<String, String>,
    changes: &[Change],
    back: bool,
) -> Result<Vec<bool>, tokio_postgres::Error> {
    let mut statements = HashMap::new();
    for (column, sql) in sqls {
        statements.insert(column.clone(), client.prepare(sql).await?);
    }
    let ids: Vec<String> = changes.iter().map(|c| PgTable::id_text(&c.id)).collect();
    type Param<'p> = &'p (dyn tokio_postgres::types::ToSql + Sync);
    let params: Vec<[Param<'_>; 3]> = changes
        .iter()
        .zip(&ids)
        .map(|(c, id)| {
            let (from, to) = if back {
                (&c.new, &c.old)
            } else {
                (&c.old, &c.new)
            };
            [to as Param<'_>, id, from]
        })
        .collect();
    let counts = futures::future::try_join_all(
        changes
            .iter()
            .zip(&params)
            .map(|(c, p)| client.execute(&statements[&c.column], p)),
    )
    .await?;
    Ok(counts.into_iter().map(|n| n > 0).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_url_is_refused_and_never_repeated() {
        let Err(OpenError::Usage(m)) = config_of("postgres://app:hunter2@db.test:5432/app") else {
            panic!("accepted a password in the URL");
        };
        assert!(m.contains("PGPASSWORD") && !m.contains("hunter2"), "{m}");
    }

    #[test]
    fn sslmodes_and_other_parameters() {
        let (_, tls) = config_of("postgres://app@db.test/app?sslmode=require").unwrap();
        assert_eq!(tls, Tls::Require);
        let (_, tls) =
            config_of("postgres://app@db.test/app?sslmode=verify-full&sslrootcert=/ca.pem")
                .unwrap();
        assert_eq!(tls, Tls::VerifyFull(Some(PathBuf::from("/ca.pem"))));
        assert!(matches!(
            config_of("postgres://app@db.test/app?sslmode=verify-ca"),
            Err(OpenError::Usage(_))
        ));
        assert!(matches!(
            config_of("postgres://app@db.test/app?options=x"),
            Err(OpenError::Usage(_))
        ));
    }

    #[test]
    fn pgpass_lines_are_read_as_libpq_reads_them() {
        assert_eq!(
            pgpass_fields(r"db\:1:5432:*:app:pa\:ss\\word"),
            vec!["db:1", "5432", "*", "app", r"pa:ss\word"]
        );
    }
}
