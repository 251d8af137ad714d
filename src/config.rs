//! The config file (TOML) and the flags, merged into one validated [`CopyConfig`].
//! Flags win over the file. Unknown keys are refused with the file and line. Secrets
//! never come from here: only from the environment or the credential chains.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::cli::{CopyArgs, OnConflict};
use crate::error::usage;
use crate::filter::Filter;
use crate::location::{Location, Role};
use crate::shard::Shard;

pub const DEFAULT_CONCURRENCY: usize = 32;
pub const DEFAULT_PART_SIZE: u64 = 16 * MIB;
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 64 * MIB;
pub const DEFAULT_RETRIES: u32 = 5;
pub const MIB: u64 = 1024 * 1024;
/// R2's smallest part (all but the last) and largest part.
pub const MIN_PART: u64 = 5 * MIB;
pub const MAX_PART: u64 = 5 * 1024 * MIB;

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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    pub url: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// SQLite sources: the table and columns (SPEC.md "SQLite sources").
    pub table: Option<String>,
    pub id_column: Option<String>,
    pub data_column: Option<String>,
    pub content_type_column: Option<String>,
    pub key_template: Option<String>,
    #[serde(rename = "where")]
    pub where_clause: Option<String>,
    pub write_back: Option<WriteBackConfig>,
}

/// `[source.write_back]`: rewrite rows after a verified upload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WriteBackConfig {
    pub key_column: Option<String>,
    pub url_column: Option<String>,
    pub url_template: Option<String>,
    #[serde(default)]
    pub clear_data: bool,
}

/// A SQLite source's table and columns, validated against the database when opened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct SqliteSettings {
    pub table: String,
    pub id_column: String,
    pub data_column: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type_column: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "where")]
    pub where_clause: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_back: Option<WriteBackConfig>,
    /// Columns a key or URL template names (beyond the built-in placeholders).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub template_columns: Vec<String>,
}

impl SqliteSettings {
    fn from_file(s: &SourceSection, key_template: Option<&str>) -> anyhow::Result<SqliteSettings> {
        let (Some(table), Some(data_column)) = (s.table.clone(), s.data_column.clone()) else {
            return Err(usage(
                "a sqlite:// source needs `table` and `data_column` in the [source] table of the config file (see migrate.example.toml)",
            ));
        };
        if let Some(wb) = &s.write_back {
            if wb.url_template.is_some() != wb.url_column.is_some() {
                return Err(usage(
                    "[source.write_back]: url_column and url_template go together",
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSection {
    pub url: Option<String>,
    pub key_template: Option<String>,
    pub on_conflict: Option<OnConflict>,
    pub backup_prefix: Option<String>,
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
    pub part_size: Option<SizeValue>,
    pub multipart_threshold: Option<SizeValue>,
    pub max_rate: Option<u32>,
    pub max_bandwidth: Option<SizeValue>,
    pub retries: Option<u32>,
    pub allow_http: Option<bool>,
}

/// A size in the file: a number of bytes or a string such as "64 MiB".
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SizeValue {
    Bytes(u64),
    Text(String),
}

impl SizeValue {
    fn text(&self) -> String {
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
        toml::from_str(&text).map_err(|e| usage(format!("config file {}: {e}", path.display())))
    }
}

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
    pub concurrency: usize,
    pub part_size: u64,
    pub multipart_threshold: u64,
    pub max_rate: Option<u32>,
    pub max_bandwidth: Option<u64>,
    pub retries: u32,
    pub shard: Option<Shard>,
    pub source_endpoint: Option<String>,
    pub source_region: Option<String>,
    pub allow_http: bool,
    /// Present for a sqlite:// source.
    pub sqlite: Option<SqliteSettings>,
    /// `--no-db-backup`: skip the VACUUM INTO copy before rewriting rows.
    pub no_db_backup: bool,
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

impl CopyConfig {
    pub fn resolve(args: &CopyArgs, file: &FileConfig) -> anyhow::Result<CopyConfig> {
        let source_text = args
            .from
            .clone()
            .or_else(|| file.source.url.clone())
            .ok_or_else(|| {
                usage("no source: give --from URL or [source] url in the config file")
            })?;
        let target_text = args.to.clone().or_else(|| file.target.url.clone()).ok_or_else(|| {
            usage("no target: give --to r2://bucket/prefix (or file:///dir to rehearse), or [target] url in the config file")
        })?;
        let source = Location::parse(&source_text, Role::Source)?;
        let target = Location::parse(&target_text, Role::Target)?;

        let size = |flag: &Option<String>,
                    file: &Option<SizeValue>,
                    what: &str|
         -> anyhow::Result<Option<u64>> {
            match flag.clone().or_else(|| file.as_ref().map(SizeValue::text)) {
                Some(t) => parse_size(&t, what).map(Some),
                None => Ok(None),
            }
        };
        let when = |flag: &Option<String>,
                    file: &Option<String>,
                    what: &str|
         -> anyhow::Result<Option<OffsetDateTime>> {
            match flag.clone().or_else(|| file.clone()) {
                Some(t) => parse_time(&t, what).map(Some),
                None => Ok(None),
            }
        };
        let f = &file.filter;
        let include = if args.include.is_empty() {
            f.include.clone()
        } else {
            args.include.clone()
        };
        let exclude = if args.exclude.is_empty() {
            f.exclude.clone()
        } else {
            args.exclude.clone()
        };
        let filter = Filter::new(
            &include,
            &exclude,
            size(&args.min_size, &f.min_size, "min_size")?,
            size(&args.max_size, &f.max_size, "max_size")?,
            when(&args.modified_after, &f.modified_after, "modified_after")?,
            when(&args.modified_before, &f.modified_before, "modified_before")?,
        )?;
        let shard = match args.shard.clone().or_else(|| f.shard.clone()) {
            Some(t) => Some(Shard::parse(&t)?),
            None => None,
        };

        let t = &file.transfer;
        let concurrency = check_concurrency(
            args.concurrency
                .or(t.concurrency)
                .unwrap_or(DEFAULT_CONCURRENCY),
        )?;
        let part_size =
            size(&args.part_size, &t.part_size, "part_size")?.unwrap_or(DEFAULT_PART_SIZE);
        if !(MIN_PART..=MAX_PART).contains(&part_size) {
            return Err(usage(format!(
                "part_size {part_size} bytes: R2 parts must be from 5 MiB to 5 GiB"
            )));
        }
        let multipart_threshold = size(
            &args.multipart_threshold,
            &t.multipart_threshold,
            "multipart_threshold",
        )?
        .unwrap_or(DEFAULT_MULTIPART_THRESHOLD);
        if multipart_threshold < MIN_PART {
            return Err(usage(format!(
                "multipart_threshold {multipart_threshold} bytes: use at least 5MiB (R2's smallest part)"
            )));
        }
        if multipart_threshold > MAX_PART - MIN_PART {
            return Err(usage(
                "multipart_threshold: a single PUT to R2 must stay below 5 GiB - 5 MiB",
            ));
        }
        let max_bandwidth = size(&args.max_bandwidth, &t.max_bandwidth, "max_bandwidth")?;
        let backup_prefix = args
            .backup_prefix
            .clone()
            .or_else(|| file.target.backup_prefix.clone())
            .map(|p| crate::location::folder_prefix(&p));
        if backup_prefix.as_deref() == Some("") {
            return Err(usage(
                "backup_prefix must not be empty: backups would land on top of the migrated keys",
            ));
        }
        let is_sqlite = matches!(source, Location::Sqlite { .. });
        let key_template = args
            .key_template
            .clone()
            .or_else(|| file.target.key_template.clone())
            .or_else(|| file.source.key_template.clone())
            // Rows have no path: name them by id and content type unless told otherwise.
            .or_else(|| is_sqlite.then(|| "{id}.{ext}".to_string()));
        let sqlite = if is_sqlite {
            Some(SqliteSettings::from_file(
                &file.source,
                key_template.as_deref(),
            )?)
        } else {
            if let Some(tpl) = &key_template {
                crate::keymap::KeyMap::check_template(tpl)?;
            }
            None
        };
        let source_endpoint = args
            .source_endpoint
            .clone()
            .or_else(|| file.source.endpoint.clone());
        let allow_http = args.allow_http || t.allow_http.unwrap_or(false);
        if let Some(ep) = &source_endpoint {
            crate::location::check_endpoint(ep, allow_http)?;
        }
        Ok(CopyConfig {
            source,
            target,
            manifest: args
                .manifest
                .clone()
                .or_else(|| file.manifest.clone())
                .unwrap_or_else(|| PathBuf::from(crate::manifest::DEFAULT_PATH)),
            filter,
            key_template,
            on_conflict: args
                .on_conflict
                .or(file.target.on_conflict)
                .unwrap_or(OnConflict::Fail),
            backup_prefix,
            concurrency,
            part_size,
            multipart_threshold,
            max_rate: args.max_rate.or(t.max_rate).filter(|r| *r > 0),
            max_bandwidth: max_bandwidth.filter(|b| *b > 0),
            retries: args.retries.or(t.retries).unwrap_or(DEFAULT_RETRIES),
            shard,
            source_endpoint,
            source_region: args
                .source_region
                .clone()
                .or_else(|| file.source.region.clone()),
            allow_http,
            sqlite,
            no_db_backup: args.no_db_backup,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses_and_resolves() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrate.example.toml");
        let file = FileConfig::load(&path).unwrap();
        let cfg = CopyConfig::resolve(&CopyArgs::default(), &file).unwrap();
        assert!(matches!(cfg.target, Location::R2 { .. }));
        assert_eq!(cfg.concurrency, 32);
        assert!(cfg.filter.is_active());
    }

    #[test]
    fn the_sqlite_fixture_config_parses_every_sqlite_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/app.toml");
        let file = FileConfig::load(&path).unwrap();
        let args = CopyArgs {
            from: Some("sqlite:///tmp/app.db".into()),
            to: Some("file:///tmp/out".into()),
            ..Default::default()
        };
        let cfg = CopyConfig::resolve(&args, &file).unwrap();
        let s = cfg.sqlite.unwrap();
        assert_eq!(
            (s.table.as_str(), s.data_column.as_str()),
            ("images", "image_data")
        );
        assert_eq!(s.template_columns, vec!["user_id".to_string()]);
        assert!(s.write_back.unwrap().clear_data);
        assert_eq!(
            cfg.key_template.as_deref(),
            Some("images/{user_id}/{id}.{ext}")
        );
    }

    #[test]
    fn sqlite_sources_need_a_table_and_sane_write_back() {
        let args = CopyArgs {
            from: Some("sqlite:///tmp/app.db".into()),
            to: Some("file:///tmp/out".into()),
            ..Default::default()
        };
        for text in [
            "[source]\ndata_column = \"d\"\n",
            "[source]\ntable = \"t\"\ndata_column = \"d\"\n[source.write_back]\nclear_data = true\n",
            "[source]\ntable = \"t\"\ndata_column = \"d\"\n[source.write_back]\nurl_column = \"u\"\n",
        ] {
            let file: FileConfig = toml::from_str(text).unwrap();
            let err = CopyConfig::resolve(&args, &file).unwrap_err();
            assert!(err.downcast_ref::<crate::error::UsageError>().is_some(), "{text}: {err}");
        }
    }

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
    fn flags_override_the_file() {
        let file: FileConfig = toml::from_str(
            "[source]\nurl = \"/data\"\n[target]\nurl = \"r2://b-1/x\"\n[transfer]\nconcurrency = 4\npart_size = \"8 MiB\"\n",
        )
        .unwrap();
        let args = CopyArgs {
            concurrency: Some(9),
            to: Some("file:///tmp/rehearse".into()),
            ..Default::default()
        };
        let cfg = CopyConfig::resolve(&args, &file).unwrap();
        assert_eq!(cfg.concurrency, 9);
        assert_eq!(cfg.part_size, 8 * MIB);
        assert_eq!(
            cfg.target,
            Location::Local {
                root: "/tmp/rehearse".into()
            }
        );
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

    #[test]
    fn bad_values_are_usage_errors() {
        let file = FileConfig::default();
        let base = CopyArgs {
            from: Some("/data".into()),
            to: Some("r2://bucket/x".into()),
            ..Default::default()
        };
        for bad in [
            CopyArgs {
                concurrency: Some(0),
                ..base.clone()
            },
            CopyArgs {
                part_size: Some("1MiB".into()),
                ..base.clone()
            },
            CopyArgs {
                shard: Some("4/4".into()),
                ..base.clone()
            },
            CopyArgs {
                key_template: Some("{nope}".into()),
                ..base.clone()
            },
            CopyArgs {
                from: None,
                ..base.clone()
            },
        ] {
            let err = CopyConfig::resolve(&bad, &file).unwrap_err();
            assert!(
                err.downcast_ref::<crate::error::UsageError>().is_some(),
                "{err}"
            );
        }
    }
}
