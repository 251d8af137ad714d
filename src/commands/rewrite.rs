//! `r2migrate rewrite-urls`: points the application's stored URLs at R2, table by table
//! as the config's `[[rewrite]]` entries say. Only objects the manifests record `copied`
//! or `identical` are pointed at R2; a URL of the source whose object is not migrated is
//! left as it is and listed (exit 1). Each batch of changes goes into the manifest, and
//! is flushed, before its transaction commits; `--dry-run` writes nothing.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use serde_json::json;

use super::Output;
use crate::config::RewriteConfig;
use crate::error::{usage, Exit};
use crate::location::{Location, Role};
use crate::manifest::lock::ManifestLock;
use crate::manifest::{
    now_rfc3339, Header, ManifestSet, ManifestWriter, RewriteLine, Word, VERSION,
};
use crate::rewrite::sqlite::Change;
use crate::rewrite::urls::SourceUrls;
use crate::rewrite::{Db, Rewriter, Rule};
use crate::tally::new_run_id;

/// At most this many not-migrated URLs are listed per table (all are counted).
const LISTED: usize = 100;

/// What one table's pass found and did.
#[derive(Default)]
struct TableTally {
    rows_read: u64,
    rows_changed: u64,
    urls_changed: u64,
    /// Rows the application changed between the read and the write: left as it wrote
    /// them (a later run rewrites them).
    rows_changed_by_others: u64,
    not_migrated: u64,
    listed: Vec<serde_json::Value>,
    backup: Option<String>,
}

pub async fn rewrite_urls(cfg: RewriteConfig, out: Output) -> anyhow::Result<Exit> {
    // A dry run writes nothing, so it needs no lock.
    let _lock = (!cfg.dry_run)
        .then(|| ManifestLock::acquire(&cfg.manifests[0], "rewrite-urls", |w| out.warn(w)))
        .transpose()?;
    let set = ManifestSet::read(&cfg.manifests, Word::Last, |_, _| Ok(()))?;
    let first = set.first_header().clone();
    let source = Location::parse(&first.source, Role::Source)?;
    let run_id = new_run_id();
    let manifest_path = cfg.manifests[0].clone();
    let mut writer = open_writer(&cfg, &manifest_path, &first, &run_id)?;
    let mut tables = Vec::new();
    let mut not_migrated = 0;
    // One backup per database, however many rules name it.
    let mut backed_up: HashSet<PathBuf> = HashSet::new();
    for rule in &cfg.rules {
        let urls = source_urls(&source, rule)?;
        let mut db = Db::open(
            &rule.database,
            &rule.table,
            &rule.id_column,
            &rule.columns,
            cfg.dry_run,
        )
        .await?;
        let rewriter = Rewriter {
            urls,
            migrated: &set, // the records on disk: one lookup per URL
            mode: rule.mode,
            to: rule.to.clone(),
        };
        let backup = db
            .sqlite_file()
            .filter(|f| !cfg.dry_run && !cfg.no_db_backup && !backed_up.contains(*f))
            .map(|f| crate::source::sqlite::writeback::backup_path(f, &run_id));
        let tally =
            rewrite_table(rule, &mut db, &rewriter, writer.as_mut(), backup, &run_id).await?;
        if let (Some(_), Some(f)) = (&tally.backup, db.sqlite_file()) {
            backed_up.insert(f.to_path_buf());
        }
        say_table(&out, rule, &tally, cfg.dry_run);
        not_migrated += tally.not_migrated;
        tables.push(table_doc(rule, &tally));
    }
    if let Some(w) = writer.as_mut() {
        w.sync()?;
    }
    let exit = if not_migrated > 0 {
        Exit::Partial
    } else {
        Exit::Ok
    };
    out.document(&json!({
        "command": "rewrite-urls",
        "dry_run": cfg.dry_run,
        "manifest": manifest_path,
        "tables": tables,
        "exit_code": exit as i32,
    }));
    Ok(exit)
}

/// The manifest writer for the changes (none on a dry run), its header first.
fn open_writer(
    cfg: &RewriteConfig,
    path: &std::path::Path,
    first: &Header,
    run_id: &str,
) -> anyhow::Result<Option<ManifestWriter>> {
    if cfg.dry_run {
        return Ok(None);
    }
    let header = Header {
        run_id: run_id.to_string(),
        started_at: now_rfc3339(),
        command: Some("rewrite-urls".into()),
        kind: "header".into(),
        version: VERSION,
        ..first.clone()
    };
    Ok(Some(ManifestWriter::open(path, &header)?))
}

fn table_doc(rule: &Rule, t: &TableTally) -> serde_json::Value {
    json!({
        "database": rule.database,
        "table": rule.table,
        "rows_read": t.rows_read,
        "rows_changed": t.rows_changed,
        "urls_changed": t.urls_changed,
        "rows_changed_by_others": t.rows_changed_by_others,
        "not_migrated": t.not_migrated,
        "not_migrated_urls": t.listed,
        "backup": t.backup,
    })
}

/// The URL forms that mean this migration's source.
fn source_urls(source: &Location, rule: &Rule) -> anyhow::Result<SourceUrls> {
    Ok(match source {
        Location::S3 { bucket, prefix } => SourceUrls::s3(bucket, prefix, &rule.from),
        Location::Gcs { bucket, prefix } => SourceUrls::gcs(bucket, prefix, &rule.from),
        _ if rule.from.is_empty() => {
            return Err(usage(format!(
                "[[rewrite]] for table {:?}: a {source} source has no URL of its own; list the bases its URLs start with in `from`",
                rule.table
            )))
        }
        _ => SourceUrls::bases(&rule.from),
    })
}

async fn rewrite_table(
    rule: &Rule,
    table: &mut Db,
    rewriter: &Rewriter<'_>,
    mut writer: Option<&mut ManifestWriter>,
    backup: Option<PathBuf>,
    run_id: &str,
) -> anyhow::Result<TableTally> {
    let mut tally = TableTally::default();
    let mut backup = backup;
    let mut after: Option<serde_json::Value> = None;
    loop {
        let rows = table.page(after.as_ref()).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id.clone());
        let (changes, urls): (Vec<Change>, Vec<u64>) =
            changes_in(&rows, rule, rewriter, table, &mut tally)?
                .into_iter()
                .unzip();
        let Some(w) = writer.as_deref_mut() else {
            tally.rows_changed += distinct_rows(&changes);
            tally.urls_changed += urls.iter().sum::<u64>();
            continue;
        };
        // A row the application changed since it was read is not written: count only
        // the URLs of the changes that applied.
        let urls_of: HashMap<(String, String), u64> = changes
            .iter()
            .zip(urls)
            .map(|(c, n)| ((c.id.to_string(), c.column.clone()), n))
            .collect();
        if changes.is_empty() {
            continue;
        }
        if let Some(to) = backup.take() {
            table.back_up(&to).map_err(|e| {
                anyhow::anyhow!(
                    "backing up {} to {} failed ({e}); nothing was changed. Free space there or pass --no-db-backup",
                    rule.database,
                    to.display()
                )
            })?;
            tally.backup = Some(to.display().to_string());
        }
        crate::testhooks::before_rewrite_apply();
        let applied = table
            .apply(changes, |applied| {
                for c in applied {
                    w.append_line(&RewriteLine {
                        kind: "rewrite".into(),
                        database: rule.database.clone(),
                        table: rule.table.clone(),
                        id_column: rule.id_column.clone(),
                        id: c.id.clone(),
                        column: c.column.clone(),
                        old: c.old.clone(),
                        new: c.new.clone(),
                        run_id: run_id.to_string(),
                        at: now_rfc3339(),
                    })?;
                }
                w.sync()
            })
            .await?;
        crate::testhooks::after_rewrite_batch();
        tally.rows_changed += distinct_rows(&applied);
        tally.urls_changed += applied
            .iter()
            .map(|c| urls_of[&(c.id.to_string(), c.column.clone())])
            .sum::<u64>();
        let written: HashSet<(String, String)> = applied
            .iter()
            .map(|c| (c.id.to_string(), c.column.clone()))
            .collect();
        let mut left: Vec<&String> = urls_of
            .keys()
            .filter(|k| !written.contains(*k))
            .map(|(id, _)| id)
            .collect();
        left.sort();
        left.dedup();
        tally.rows_changed_by_others += left.len() as u64;
    }
    Ok(tally)
}

/// What one page of rows becomes, each change with how many URLs it points at R2;
/// rows read and URLs left as they are counted into `tally`.
fn changes_in(
    rows: &[crate::rewrite::sqlite::Row],
    rule: &Rule,
    rewriter: &Rewriter<'_>,
    table: &Db,
    tally: &mut TableTally,
) -> Result<Vec<(Change, u64)>, crate::spill::SpillError> {
    let mut changes = Vec::new();
    for row in rows {
        tally.rows_read += 1;
        for (column, value) in rule.columns.iter().zip(&row.values) {
            let Some(value) = value else { continue };
            let done = rewriter.rewrite(value)?;
            let why = done.broken.then(|| {
                "PHP-serialized data that does not unserialize (a length prefix is wrong): left as it is; repair the value, then run again".to_string()
            });
            tally.list(&row.id, column, done.not_migrated, why);
            if let Some(new) = done.new {
                if let Some(why) = table.refuses(column, &new) {
                    // The column cannot store it: the row stays as it is, its URLs
                    // still at the source, and says why.
                    tally.list(&row.id, column, done.changed, Some(why));
                    continue;
                }
                let change = Change {
                    id: row.id.clone(),
                    column: column.clone(),
                    old: value.clone(),
                    new,
                };
                changes.push((change, done.changed.len() as u64));
            }
        }
    }
    Ok(changes)
}

impl TableTally {
    /// Counts URLs of the source left as they are, listing the first [`LISTED`].
    fn list(
        &mut self,
        id: &serde_json::Value,
        column: &str,
        urls: Vec<String>,
        reason: Option<String>,
    ) {
        self.not_migrated += urls.len() as u64;
        for url in urls {
            if self.listed.len() < LISTED {
                let mut item = json!({"id": id, "column": column, "url": url});
                if let Some(why) = &reason {
                    item["reason"] = json!(why);
                }
                self.listed.push(item);
            }
        }
    }
}

fn distinct_rows(changes: &[Change]) -> u64 {
    let mut ids: Vec<String> = changes.iter().map(|c| c.id.to_string()).collect();
    ids.sort();
    ids.dedup();
    ids.len() as u64
}

fn say_table(out: &Output, rule: &Rule, t: &TableTally, dry_run: bool) {
    let verb = if dry_run { "would change" } else { "changed" };
    out.say(&format!(
        "rewrite-urls {} {}: read {} rows; {verb} {} rows ({} URLs); URLs of the source not migrated (left as they are): {}",
        rule.database, rule.table, t.rows_read, t.rows_changed, t.urls_changed, t.not_migrated
    ));
    if t.rows_changed_by_others > 0 {
        out.say(&format!(
            "  {} rows changed by the application between the read and the write were left as it wrote them; run rewrite-urls again to rewrite them",
            t.rows_changed_by_others
        ));
    }
    for item in &t.listed {
        let why = item["reason"]
            .as_str()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        out.say(&format!(
            "  not migrated: id {} {}: {}{why}",
            item["id"],
            item["column"].as_str().unwrap_or(""),
            item["url"].as_str().unwrap_or("")
        ));
    }
    if let Some(b) = &t.backup {
        out.say(&format!(
            "  backup of the database before the first change: {b}"
        ));
    }
}
