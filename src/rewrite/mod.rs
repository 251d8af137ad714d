//! Rewriting the application's stored URLs (SPEC.md "Rewriting stored URLs"): which URLs
//! mean the source ([`urls`]), what each stored value becomes, and the database seam the
//! `rewrite-urls` command drives ([`sqlite`]). A URL is pointed at R2 only when the
//! manifests record its object `copied` or `identical`; one that names the source but an
//! object not migrated is left as it is and reported.

pub mod postgres;
pub mod sqlite;
pub mod urls;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::manifest::ManifestSet;
use crate::spill::SpillError;
use urls::{render, spans, Named, SourceUrls};

/// How a column holds URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The whole value is one URL.
    #[default]
    Url,
    /// URLs inside text (HTML, Markdown, JSON); the rest is kept byte for byte.
    Embedded,
}

/// One `[[rewrite]]` table of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub database: String,
    pub table: String,
    pub id_column: String,
    pub columns: Vec<String>,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub from: Vec<String>,
    pub to: String,
}

/// What one stored value becomes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rewritten {
    /// The new text, when at least one URL changed.
    pub new: Option<String>,
    /// URLs pointed at R2.
    pub changed: usize,
    /// URLs of the source whose object is not migrated (left as they are), as shown to
    /// the user: without a query string, which may hold a presigned URL's signature.
    pub not_migrated: Vec<String>,
}

/// Source key → R2 key, for every object recorded `copied` or `identical`: in memory,
/// or the manifests' records on disk for a migration of millions.
pub trait Migrated {
    fn target_key(&self, source_key: &str) -> Result<Option<String>, SpillError>;
}

impl Migrated for HashMap<String, String> {
    fn target_key(&self, source_key: &str) -> Result<Option<String>, SpillError> {
        Ok(self.get(source_key).cloned())
    }
}

impl Migrated for ManifestSet {
    fn target_key(&self, source_key: &str) -> Result<Option<String>, SpillError> {
        let record = self.get(source_key)?;
        Ok(record
            .filter(|r| r.status.is_verified())
            .map(|r| r.target_key))
    }
}

/// Turns stored values into their R2 form.
pub struct Rewriter<'a> {
    pub urls: SourceUrls,
    pub migrated: &'a dyn Migrated,
    pub mode: Mode,
    pub to: String,
}

impl Rewriter<'_> {
    pub fn rewrite(&self, value: &str) -> Result<Rewritten, SpillError> {
        let mut out = Rewritten::default();
        let ranges = match self.mode {
            Mode::Url => {
                let trimmed = value.trim();
                let start = value.len() - value.trim_start().len();
                std::iter::once(start..start + trimmed.len()).collect::<Vec<_>>()
            }
            Mode::Embedded => spans(value),
        };
        let mut text = String::with_capacity(value.len());
        let mut at = 0;
        for range in ranges {
            let url = &value[range.clone()];
            let replacement = match self.urls.name(url) {
                None => None,
                Some(Named::Key(key)) => match self.migrated.target_key(&key)? {
                    Some(target_key) => Some(render(&self.to, &target_key)),
                    None => {
                        out.not_migrated.push(shown(url));
                        None
                    }
                },
                Some(Named::OutsidePrefix(_)) => {
                    out.not_migrated.push(shown(url));
                    None
                }
            };
            if let Some(new_url) = replacement {
                if new_url != url {
                    text.push_str(&value[at..range.start]);
                    text.push_str(&new_url);
                    at = range.end;
                    out.changed += 1;
                }
            }
        }
        if out.changed > 0 {
            text.push_str(&value[at..]);
            out.new = Some(text);
        }
        Ok(out)
    }
}

/// The database a rule names: a SQLite file (`sqlite:///path` or a path) or a
/// PostgreSQL server (`postgres://user@host:port/db`).
pub enum Db {
    Sqlite(sqlite::Table),
    Postgres(postgres::PgTable),
}

impl Db {
    pub async fn open(
        database: &str,
        table: &str,
        id_column: &str,
        columns: &[String],
        read_only: bool,
    ) -> anyhow::Result<Db> {
        if database.starts_with("postgres://") || database.starts_with("postgresql://") {
            return match postgres::PgTable::open(database, table, id_column, columns).await {
                Ok(t) => Ok(Db::Postgres(t)),
                Err(postgres::PgError::Usage(m)) => Err(crate::error::usage(m)),
                Err(postgres::PgError::Connect(m)) => Err(anyhow::anyhow!(m)),
            };
        }
        let path = sqlite_path(database);
        sqlite::Table::open(&path, table, id_column, columns, read_only)
            .map(Db::Sqlite)
            .map_err(crate::error::usage)
    }

    /// The SQLite file, which `rewrite-urls` backs up before its first change.
    pub fn sqlite_file(&self) -> Option<&Path> {
        match self {
            Db::Sqlite(t) => Some(&t.path),
            Db::Postgres(_) => None,
        }
    }

    pub fn back_up(&self, to: &Path) -> Result<(), String> {
        match self {
            Db::Sqlite(t) => t.back_up(to),
            Db::Postgres(_) => Ok(()),
        }
    }

    pub async fn page(
        &self,
        after: Option<&serde_json::Value>,
    ) -> anyhow::Result<Vec<sqlite::Row>> {
        match self {
            Db::Sqlite(t) => t.page(after),
            Db::Postgres(t) => t.page(after).await,
        }
        .map_err(anyhow::Error::msg)
    }

    pub async fn apply(
        &mut self,
        changes: Vec<sqlite::Change>,
        before_commit: impl FnOnce(&[sqlite::Change]) -> anyhow::Result<()>,
    ) -> anyhow::Result<Vec<sqlite::Change>> {
        match self {
            Db::Sqlite(t) => t.apply(changes, before_commit),
            Db::Postgres(t) => t.apply(changes, before_commit).await,
        }
    }

    pub async fn restore(
        &mut self,
        change: &sqlite::Change,
        dry_run: bool,
    ) -> anyhow::Result<sqlite::Restore> {
        match self {
            Db::Sqlite(t) => t.restore(change, dry_run),
            Db::Postgres(t) => t.restore(change, dry_run).await,
        }
        .map_err(anyhow::Error::msg)
    }
}

impl Db {
    /// Commits what `restore` wrote (SQLite batches its restores; PostgreSQL commits each).
    pub fn finish(&mut self) -> anyhow::Result<()> {
        match self {
            Db::Sqlite(t) => t.finish_restores().map_err(anyhow::Error::msg),
            Db::Postgres(_) => Ok(()),
        }
    }
}

/// The SQLite file a `database` names (`sqlite:///path` or a plain path).
pub fn sqlite_path(database: &str) -> PathBuf {
    PathBuf::from(database.strip_prefix("sqlite://").unwrap_or(database))
}

/// A URL for messages: its query (a presigned URL's `X-Amz-Signature`) cut off.
fn shown(url: &str) -> String {
    match url.split_once('?') {
        Some((bare, _)) => format!("{bare}?…"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migrated() -> HashMap<String, String> {
        HashMap::from([
            ("42.png".to_string(), "avatars/42.png".to_string()),
            ("a b.jpg".to_string(), "avatars/a b.jpg".to_string()),
        ])
    }

    fn rewriter(map: &HashMap<String, String>, mode: Mode) -> Rewriter<'_> {
        Rewriter {
            urls: SourceUrls::s3("media", "avatars/", &[]),
            migrated: map,
            mode,
            to: "https://cdn.example.com/{key}".into(),
        }
    }

    #[test]
    fn a_url_value_is_replaced_only_when_its_object_is_migrated() {
        let map = migrated();
        let r = rewriter(&map, Mode::Url);
        let done = r
            .rewrite("https://media.s3.amazonaws.com/avatars/42.png")
            .unwrap();
        assert_eq!(
            done.new.as_deref(),
            Some("https://cdn.example.com/avatars/42.png")
        );
        let missing = r
            .rewrite("https://media.s3.amazonaws.com/avatars/7.png?X-Amz-Signature=s3cr3t")
            .unwrap();
        assert_eq!(missing.new, None);
        assert_eq!(
            missing.not_migrated,
            vec!["https://media.s3.amazonaws.com/avatars/7.png?…".to_string()],
            "listed without the signature"
        );
        let other = r.rewrite("https://example.com/avatars/42.png").unwrap();
        assert_eq!(other, Rewritten::default(), "other hosts are not counted");
        // Already rewritten: nothing to do (idempotent).
        assert_eq!(
            r.rewrite("https://cdn.example.com/avatars/42.png").unwrap(),
            Rewritten::default()
        );
    }

    #[test]
    fn embedded_urls_are_replaced_and_every_other_byte_is_kept() {
        let map = migrated();
        let r = rewriter(&map, Mode::Embedded);
        let html = "<p>Hi!</p><img src=\"https://media.s3.amazonaws.com/avatars/42.png\" alt='x'> \
                    [pic](https://media.s3.eu-west-1.amazonaws.com/avatars/a%20b.jpg). \
                    {\"u\": \"s3://media/avatars/42.png\"} https://example.com/avatars/42.png, \
                    https://media.s3.amazonaws.com/avatars/gone.png!";
        let done = r.rewrite(html).unwrap();
        assert_eq!(
            done.new.as_deref(),
            Some(
                "<p>Hi!</p><img src=\"https://cdn.example.com/avatars/42.png\" alt='x'> \
                 [pic](https://cdn.example.com/avatars/a%20b.jpg). \
                 {\"u\": \"https://cdn.example.com/avatars/42.png\"} https://example.com/avatars/42.png, \
                 https://media.s3.amazonaws.com/avatars/gone.png!"
            )
        );
        assert_eq!(done.changed, 3);
        assert_eq!(
            done.not_migrated,
            vec!["https://media.s3.amazonaws.com/avatars/gone.png".to_string()]
        );
    }
}
