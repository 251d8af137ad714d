//! The database seam `rewrite-urls` and `rollback` drive: a table of a SQLite file, a
//! PostgreSQL server or a MySQL / MariaDB server, opened from the rule's `database`
//! URL. Each adapter pages, applies a batch and puts a batch of values back; how restores
//! are grouped into transactions is decided here, once for all three.

use std::path::Path;

use super::sqlite::{Change, Restore, Row};
use super::{mysql, mysql_settings, postgres, sqlite, sqlite_path, OpenError};

/// Values rollback puts back per transaction: one transaction per value would be a sync
/// (SQLite) or a commit round trip (servers) per value, hours for a million.
const RESTORES_PER_COMMIT: usize = 1000;

/// The database a rule names: a SQLite file (`sqlite:///path` or a path), a PostgreSQL
/// server (`postgres://user@host:port/db`) or a MySQL / MariaDB server
/// (`mysql://user@host:3306/db`, `mariadb://…`).
pub struct Db {
    table: Table,
    /// Restores written in the open transaction.
    restores_open: usize,
}

enum Table {
    Sqlite(sqlite::Table),
    Postgres(postgres::PgTable),
    Mysql(mysql::MyTable),
}

impl Db {
    pub async fn open(
        database: &str,
        table: &str,
        id_column: &str,
        columns: &[String],
        read_only: bool,
    ) -> anyhow::Result<Db> {
        let opened = if database.starts_with("postgres://") || database.starts_with("postgresql://")
        {
            postgres::PgTable::open(database, table, id_column, columns)
                .await
                .map(Table::Postgres)
        } else if mysql_settings::is_mysql(database) {
            mysql::MyTable::open(database, table, id_column, columns)
                .await
                .map(Table::Mysql)
        } else {
            let path = sqlite_path(database);
            sqlite::Table::open(&path, table, id_column, columns, read_only)
                .map(Table::Sqlite)
                .map_err(OpenError::Usage)
        };
        match opened {
            Ok(table) => Ok(Db {
                table,
                restores_open: 0,
            }),
            Err(OpenError::Usage(m)) => Err(crate::error::usage(m)),
            Err(OpenError::Connect(m)) => Err(anyhow::anyhow!(m)),
        }
    }

    /// The SQLite file, which `rewrite-urls` backs up before its first change.
    pub fn sqlite_file(&self) -> Option<&Path> {
        match &self.table {
            Table::Sqlite(t) => Some(&t.path),
            Table::Postgres(_) | Table::Mysql(_) => None,
        }
    }

    /// Why `column` cannot store `new` as it is, if so (a MySQL column's character set
    /// or length; SQLite and PostgreSQL text hold any value).
    pub fn refuses(&self, column: &str, new: &str) -> Option<String> {
        match &self.table {
            Table::Mysql(t) => t.refuses(column, new),
            Table::Sqlite(_) | Table::Postgres(_) => None,
        }
    }

    pub fn back_up(&self, to: &Path) -> Result<(), String> {
        match &self.table {
            Table::Sqlite(t) => t.back_up(to),
            Table::Postgres(_) | Table::Mysql(_) => Ok(()),
        }
    }

    pub async fn page(&mut self, after: Option<&serde_json::Value>) -> anyhow::Result<Vec<Row>> {
        match &mut self.table {
            Table::Sqlite(t) => t.page(after),
            Table::Postgres(t) => t.page(after).await,
            Table::Mysql(t) => t.page(after).await,
        }
        .map_err(anyhow::Error::msg)
    }

    pub async fn apply(
        &mut self,
        changes: Vec<Change>,
        before_commit: impl FnOnce(&[Change]) -> anyhow::Result<()>,
    ) -> anyhow::Result<Vec<Change>> {
        match &mut self.table {
            Table::Sqlite(t) => t.apply(changes, before_commit),
            Table::Postgres(t) => t.apply(changes, before_commit).await,
            Table::Mysql(t) => t.apply(changes, before_commit).await,
        }
    }

    /// Puts each change's `old` back where the row still holds its `new` (with
    /// `dry_run`, only says whether it would), a batch at a time (one change per row and
    /// column). Restores are committed about [`RESTORES_PER_COMMIT`] at a time;
    /// [`Db::finish`] commits the rest.
    pub async fn restore(
        &mut self,
        changes: &[Change],
        dry_run: bool,
    ) -> anyhow::Result<Vec<Restore>> {
        let put_back = if dry_run || changes.is_empty() {
            vec![false; changes.len()]
        } else {
            if self.restores_open == 0 {
                self.begin_restores().await?;
            }
            let put_back = match &mut self.table {
                Table::Sqlite(t) => t.put_back(changes),
                Table::Postgres(t) => t.put_back(changes).await,
                Table::Mysql(t) => t.put_back(changes).await,
            }
            .map_err(anyhow::Error::msg)?;
            self.restores_open += changes.len();
            if self.restores_open >= RESTORES_PER_COMMIT {
                self.finish().await?;
            }
            put_back
        };
        // Those not written: already as before, or changed by the application since.
        let pending: Vec<Change> = changes
            .iter()
            .zip(&put_back)
            .filter(|(_, put)| !**put)
            .map(|(c, _)| c.clone())
            .collect();
        let now = match &mut self.table {
            Table::Sqlite(t) => t.values_now(&pending),
            Table::Postgres(t) => t.values_now(&pending).await,
            Table::Mysql(t) => t.values_now(&pending).await,
        }
        .map_err(anyhow::Error::msg)?;
        let mut now = now.into_iter();
        let mut outcomes = Vec::with_capacity(changes.len());
        for (change, put) in changes.iter().zip(put_back) {
            outcomes.push(if put {
                Restore::Restored
            } else {
                let value = now.next().flatten();
                Restore::judged(value.as_deref(), change, dry_run)
            });
        }
        Ok(outcomes)
    }

    async fn begin_restores(&mut self) -> anyhow::Result<()> {
        match &mut self.table {
            Table::Sqlite(t) => t.begin_restores(),
            Table::Postgres(t) => t.begin_restores().await,
            Table::Mysql(t) => t.begin_restores().await,
        }
        .map_err(anyhow::Error::msg)
    }

    /// Commits the restores written since the last commit.
    pub async fn finish(&mut self) -> anyhow::Result<()> {
        if self.restores_open == 0 {
            return Ok(());
        }
        self.restores_open = 0;
        match &mut self.table {
            Table::Sqlite(t) => t.commit_restores(),
            Table::Postgres(t) => t.commit_restores().await,
            Table::Mysql(t) => t.commit_restores().await,
        }
        .map_err(anyhow::Error::msg)
    }
}
