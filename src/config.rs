//! The config file as written ([`FileConfig`]) and the resolved, validated config each
//! command takes ([`CopyConfig`], [`VerifyConfig`], [`RollbackConfig`], [`ReportConfig`]),
//! with the parsers and defaults they share. `resolve.rs` merges the flags over the file
//! into these; nothing here knows the command line. Unknown keys are refused with the
//! file and line. Secrets never come from here: only from the environment or the
//! credential chains.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use time::OffsetDateTime;

use crate::error::usage;
use crate::filter::Filter;
use crate::limits::MIB;
use crate::location::Location;
use crate::shard::Shard;
use crate::source::sqlite::{SqliteSettings, WriteBackConfig};

pub const DEFAULT_PART_SIZE: u64 = 16 * MIB;
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 64 * MIB;
pub const DEFAULT_RETRIES: u32 = 5;

/// The file as written. Every table refuses keys it does not know.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub manifest: Option<PathBuf>,
    #[serde(default)]
    pub source: SourceSection,
    #[serde(default)]
    pub target: TargetSection,
    #[serde(default)]
    pub filter: FilterSection,
    #[serde(default)]
    pub transfer: TransferSection,
    /// `[[rewrite]]` tables for `rewrite-urls`.
    #[serde(default)]
    pub rewrite: Vec<crate::rewrite::Rule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    pub url: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// S3 and GCS: folders under the prefix listed at the same time.
    pub list_concurrency: Option<usize>,
    /// SQLite sources: the table and columns (SPEC.md "SQLite sources").
    pub table: Option<String>,
    pub id_column: Option<String>,
    pub data_column: Option<String>,
    pub content_type_column: Option<String>,
    pub key_template: Option<String>,
    #[serde(rename = "where")]
    pub where_clause: Option<String>,
    pub write_back: Option<WriteBackConfig>,
    /// Local sources: follow symlinks out of the tree (`--copy-links`).
    pub copy_links: Option<bool>,
}

/// A sqlite:// source's settings from `[source]`, checked (the key and URL templates name
/// the columns the listing must read).
pub fn sqlite_settings(
    s: &SourceSection,
    key_template: Option<&str>,
) -> anyhow::Result<SqliteSettings> {
    let (Some(table), Some(data_column)) = (s.table.clone(), s.data_column.clone()) else {
        return Err(usage(
                "a sqlite:// source needs `table` and `data_column` in the [source] table of the config file (see migrate.example.toml)",
            ));
    };
    if let Some(wb) = &s.write_back {
        if wb.url_template.is_some() != wb.url_column.is_some() {
            return Err(usage(
                "[source.write_back]: url_column and url_template go together: set both, or neither",
            ));
        }
        if wb.clear_data && wb.key_column.is_none() && wb.url_column.is_none() {
            return Err(usage(
                    "[source.write_back]: clear_data needs key_column or url_column, or the rows would lose their image with no pointer to it",
                ));
        }
        if wb.key_column.is_none() && wb.url_column.is_none() && !wb.clear_data {
            return Err(usage(
                "[source.write_back] is empty: set key_column, url_column or clear_data",
            ));
        }
    }
    let mut template_columns = Vec::new();
    let templates = [
        key_template,
        s.write_back
            .as_ref()
            .and_then(|w| w.url_template.as_deref()),
    ];
    for tpl in templates.into_iter().flatten() {
        for name in crate::keymap::placeholders(tpl)? {
            if !crate::keymap::is_builtin(&name) && !template_columns.contains(&name) {
                template_columns.push(name);
            }
        }
    }
    Ok(SqliteSettings {
        table,
        id_column: s.id_column.clone().unwrap_or_else(|| "id".into()),
        data_column,
        content_type_column: s.content_type_column.clone(),
        where_clause: s.where_clause.clone().filter(|w| !w.trim().is_empty()),
        write_back: s.write_back.clone(),
        template_columns,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSection {
    pub url: Option<String>,
    pub key_template: Option<String>,
    pub on_conflict: Option<OnConflict>,
    pub backup_prefix: Option<String>,
    /// `STANDARD` or `STANDARD_IA`.
    pub storage_class: Option<String>,
    /// `[[target.headers]]`: headers for objects whose source key matches a glob.
    #[serde(default)]
    pub headers: Vec<HeadersSection>,
}

/// One `[[target.headers]]` rule: `glob = "*.css"`, `set = ["Cache-Control: max-age=60"]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadersSection {
    pub glob: String,
    pub set: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSection {
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    pub min_size: Option<SizeValue>,
    pub max_size: Option<SizeValue>,
    pub modified_after: Option<String>,
    pub modified_before: Option<String>,
    pub shard: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferSection {
    pub concurrency: Option<usize>,
    /// `--max-concurrency` in the file.
    pub max_concurrency: Option<usize>,
    pub part_size: Option<SizeValue>,
    pub multipart_threshold: Option<SizeValue>,
    pub max_rate: Option<u32>,
    pub max_bandwidth: Option<SizeValue>,
    pub retries: Option<u32>,
    pub allow_http: Option<bool>,
    /// `--io-timeout` in the file: "60s", "2m", or seconds.
    pub io_timeout: Option<SizeValue>,
    /// `--multipart-checksum` in the file: "crc64nvme" or "md5".
    pub multipart_checksum: Option<String>,
    /// `resume_uploads = false` in the file: `--no-resume-uploads`.
    pub resume_uploads: Option<bool>,
}

/// A size in the file: a number of bytes or a string such as "64 MiB".
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SizeValue {
    Bytes(u64),
    Text(String),
}

impl SizeValue {
    pub fn text(&self) -> String {
        match self {
            SizeValue::Bytes(n) => n.to_string(),
            SizeValue::Text(t) => t.clone(),
        }
    }
}

impl FileConfig {
    /// Reads and parses a config file; errors name the file and the line.
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| usage(format!("cannot read config file {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| {
            usage(format!(
                "config file {}: {e}every key is described in migrate.example.toml",
                path.display()
            ))
        })
    }
}

/// What to do when the target already holds different bytes at a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnConflict {
    /// Record the conflict, leave the target object alone, exit 1
    Fail,
    /// Record it as skipped, exit unaffected
    Skip,
    /// Back up the target object under --backup-prefix, then replace it
    Overwrite,
}

/// How every command reaches the stores and how hard it may push them: from the flags,
/// else `[transfer]` and `[source]` in the config file, else the defaults.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Objects in flight (or checked, or rolled back) at once: where an adaptive count
    /// starts, and what the memory budget goes by.
    pub concurrency: usize,
    /// Fixed (`--concurrency` alone), or found as the command goes (`--max-concurrency`).
    pub in_flight: crate::concurrency::Mode,
    pub retries: u32,
    /// Requests per second to each store.
    pub max_rate: Option<u32>,
    /// Bytes per second uploaded.
    pub max_bandwidth: Option<u64>,
    pub allow_http: bool,
    /// A request that moves no byte this long is abandoned and retried.
    pub io_timeout: std::time::Duration,
    pub source_endpoint: Option<String>,
    pub source_region: Option<String>,
    /// S3 and GCS sources: folders under the prefix listed at the same time.
    pub list_concurrency: usize,
}

/// Folders of an S3 or GCS source listed at the same time, by default.
pub const DEFAULT_LIST_CONCURRENCY: usize = 8;

/// Everything `plan` and `run` need, validated.
#[derive(Debug, Clone)]
pub struct CopyConfig {
    pub source: Location,
    pub target: Location,
    pub manifest: PathBuf,
    pub filter: Filter,
    pub key_template: Option<String>,
    pub on_conflict: OnConflict,
    pub backup_prefix: Option<String>,
    pub part_size: u64,
    pub multipart_threshold: u64,
    pub shard: Option<Shard>,
    pub stores: StoreSettings,
    /// Present for a sqlite:// source.
    pub sqlite: Option<SqliteSettings>,
    /// `--no-db-backup`: skip the VACUUM INTO copy before rewriting rows.
    pub no_db_backup: bool,
    /// `--copy-links`: follow symlinks out of a local source tree.
    pub copy_links: bool,
    /// Upload headers over the source's, by rule.
    pub headers: crate::headers::HeaderRules,
    /// `--storage-class`; `None`: the bucket's default.
    pub storage_class: Option<crate::headers::StorageClass>,
    /// `--multipart-checksum`: R2's CRC64NVME FULL_OBJECT, or Content-MD5 per part for an
    /// S3-compatible store that refuses it.
    pub multipart_checksum: crate::object::MultipartChecksum,
    /// Part-level resume of multipart uploads a crash left open (`--no-resume-uploads`).
    pub resume_uploads: bool,
    /// How often a status line is printed when stderr is not a terminal.
    pub status_interval: std::time::Duration,
}

/// Parses "64MiB", "64 MiB", "1.5GB", "1048576".
pub fn parse_size(text: &str, what: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Ok(n);
    }
    t.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|_| {
            usage(format!(
                "{what}: {text:?} is not a size (try 64MiB, 1.5GB or a number of bytes)"
            ))
        })
}

/// Parses "60s", "2s", "500ms", "5m", "1h", or a bare number of seconds; never zero.
pub fn parse_duration(text: &str, what: &str) -> anyhow::Result<std::time::Duration> {
    use std::time::Duration;
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad_duration(text, what))?;
    let d = match unit.trim() {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" | "min" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(bad_duration(text, what)),
    };
    if d.is_zero() {
        return Err(usage(format!(
            "{what}: {text:?} would abandon every request; give a positive duration such as 60s"
        )));
    }
    Ok(d)
}

fn bad_duration(text: &str, what: &str) -> anyhow::Error {
    usage(format!(
        "{what}: {text:?} is not a duration (try 60s, 500ms, 5m or a number of seconds)"
    ))
}

/// Parses RFC 3339 or a bare date (midnight UTC).
pub fn parse_time(text: &str, what: &str) -> anyhow::Result<OffsetDateTime> {
    let t = text.trim();
    if let Ok(dt) = OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339) {
        return Ok(dt);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(t, fmt)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| {
            usage(format!(
                "{what}: {text:?} is not a time (use 2024-05-01 or 2024-05-01T12:00:00Z)"
            ))
        })
}

pub fn check_concurrency(n: usize) -> anyhow::Result<usize> {
    if n == 0 || n > 4096 {
        return Err(usage(format!(
            "--concurrency {n}: use a number from 1 to 4096"
        )));
    }
    Ok(n)
}

/// `verify`: which manifests, how deep, and how to reach the stores.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    pub manifests: Vec<PathBuf>,
    pub deep: bool,
    pub against_source: bool,
    pub stores: StoreSettings,
}

/// `rollback`: which manifest, whether to change anything, and how to reach the stores.
#[derive(Debug, Clone)]
pub struct RollbackConfig {
    /// The manifest being rolled back.
    pub manifest: PathBuf,
    /// Every manifest of the set (`--manifest` repeated, or a quoted glob).
    pub manifests: Vec<PathBuf>,
    pub dry_run: bool,
    /// No confirmation prompt.
    pub yes: bool,
    pub stores: StoreSettings,
}

/// What a plan writes besides its summary.
#[derive(Debug, Clone, Default)]
pub struct PlanReport {
    /// `--report FILE.md`.
    pub markdown: Option<PathBuf>,
    /// `--source-egress-price`, US dollars per GB (10^9 bytes).
    pub source_egress_per_gb: Option<f64>,
}

/// `report`: which manifests.
#[derive(Debug, Clone)]
pub struct ReportConfig {
    pub manifests: Vec<PathBuf>,
}

/// Everything `rewrite-urls` needs, validated.
#[derive(Debug, Clone)]
pub struct RewriteConfig {
    pub manifests: Vec<PathBuf>,
    pub rules: Vec<crate::rewrite::Rule>,
    pub dry_run: bool,
    pub no_db_backup: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(
            &path,
            "[source]\nurl = \"/tmp\"\n\n[transfer]\nconcurency = 4\n",
        )
        .unwrap();
        let err = FileConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("m.toml"), "{err}");
        assert!(err.contains("line 5"), "{err}");
        assert!(err.contains("concurency"), "{err}");
    }

    #[test]
    fn sizes_and_times() {
        assert_eq!(parse_size("64MiB", "x").unwrap(), 64 * MIB);
        assert_eq!(parse_size("1 KiB", "x").unwrap(), 1024);
        assert_eq!(parse_size("1000", "x").unwrap(), 1000);
        assert!(parse_size("lots", "x").is_err());
        assert_eq!(
            parse_time("2024-05-01", "x").unwrap().unix_timestamp(),
            1714521600
        );
        assert!(parse_time("2024-05-01T00:00:00+02:00", "x").is_ok());
        assert!(parse_time("May 1st", "x").is_err());
    }
}
