//! Raw flags over the config file → the one resolved, validated config each command
//! takes (ripgrep's low-args → high-args split). Flags win over the file, the file over
//! the defaults, and every default is decided here, once. The only module besides
//! `main` and `lib` that reads `cli`: nothing below the commands knows the command line.

use std::path::PathBuf;

use time::OffsetDateTime;

use crate::cli::{
    CopyArgs, ManifestArgs, PlanReportArgs, ReportArgs, RewriteArgs, RollbackArgs, SourceArgs,
    StoreArgs, VerifyArgs,
};
use crate::config::{
    check_concurrency, parse_duration, parse_size, parse_time, sqlite_settings, CopyConfig,
    FileConfig, OnConflict, PlanReport, ReportConfig, RewriteConfig, RollbackConfig, SizeValue,
    StoreSettings, VerifyConfig, DEFAULT_LIST_CONCURRENCY, DEFAULT_MULTIPART_THRESHOLD,
    DEFAULT_PART_SIZE, DEFAULT_RETRIES,
};
use crate::error::usage;
use crate::filter::Filter;
use crate::limits::{MAX_PART, MAX_SINGLE_PUT, MIN_PART};
use crate::location::{Location, Role};
use crate::shard::Shard;

/// A size from a flag, else from the file.
fn size(flag: Option<&str>, file: Option<&SizeValue>, what: &str) -> anyhow::Result<Option<u64>> {
    match flag
        .map(str::to_string)
        .or_else(|| file.map(SizeValue::text))
    {
        Some(t) => parse_size(&t, what).map(Some),
        None => Ok(None),
    }
}

/// A time from a flag, else from the file.
fn when(
    flag: Option<&str>,
    file: Option<&str>,
    what: &str,
) -> anyhow::Result<Option<OffsetDateTime>> {
    match flag.or(file) {
        Some(t) => parse_time(t, what).map(Some),
        None => Ok(None),
    }
}

/// The store settings: the flags a command has (`source` and `max_bandwidth` only where
/// it reads the source or uploads), else the file's, else the defaults.
fn stores(
    flags: &StoreArgs,
    source: &SourceArgs,
    max_bandwidth: Option<&str>,
    file: &FileConfig,
) -> anyhow::Result<StoreSettings> {
    let t = &file.transfer;
    let in_flight = crate::concurrency::Mode::resolve(
        flags.concurrency.or(t.concurrency),
        flags.max_concurrency.or(t.max_concurrency),
    )?;
    let concurrency = check_concurrency(in_flight.start())?;
    let max_bandwidth = size(max_bandwidth, t.max_bandwidth.as_ref(), "max_bandwidth")?;
    let source_endpoint = source
        .source_endpoint
        .clone()
        .or_else(|| file.source.endpoint.clone());
    let allow_http = flags.allow_http || t.allow_http.unwrap_or(false);
    let io_timeout = match flags
        .io_timeout
        .clone()
        .or_else(|| t.io_timeout.as_ref().map(SizeValue::text))
    {
        Some(text) => parse_duration(&text, "--io-timeout")?,
        None => crate::stall::DEFAULT_IO_TIMEOUT,
    };
    if let Some(ep) = &source_endpoint {
        crate::location::check_endpoint(ep, allow_http)?;
    }
    let list_concurrency = source
        .list_concurrency
        .or(file.source.list_concurrency)
        .unwrap_or(DEFAULT_LIST_CONCURRENCY);
    if !(1..=256).contains(&list_concurrency) {
        return Err(usage(format!(
            "--list-concurrency {list_concurrency}: use a number from 1 (one flat listing) to 256"
        )));
    }
    Ok(StoreSettings {
        list_concurrency,
        concurrency,
        in_flight,
        retries: flags.retries.or(t.retries).unwrap_or(DEFAULT_RETRIES),
        max_rate: flags.max_rate.or(t.max_rate).filter(|r| *r > 0),
        max_bandwidth: max_bandwidth.filter(|b| *b > 0),
        allow_http,
        io_timeout,
        source_endpoint,
        source_region: source
            .source_region
            .clone()
            .or_else(|| file.source.region.clone()),
    })
}

/// The manifests a reading command takes: positional and `--manifest` forms together,
/// else the config file's, else the default file.
/// The manifests named, a quoted glob expanded (`'r2migrate-manifest.shard-*.jsonl'`).
fn manifests(args: &ManifestArgs, file: &FileConfig) -> anyhow::Result<Vec<PathBuf>> {
    let mut all: Vec<PathBuf> = Vec::new();
    for p in args.manifests.iter().chain(&args.manifest_flags) {
        all.extend(expand_glob(p)?);
    }
    if all.is_empty() {
        all.push(manifest_or_default(None, file));
    }
    Ok(all)
}

/// A path whose file name holds `*`, `?` or `[`: the files in its folder that match, in
/// name order (none is an error naming the pattern). Any other path as it is.
fn expand_glob(path: &std::path::Path) -> anyhow::Result<Vec<PathBuf>> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.contains(['*', '?', '[']) {
        return Ok(vec![path.to_path_buf()]);
    }
    let matcher = globset::Glob::new(&name)
        .map_err(|e| {
            usage(format!(
                "manifest pattern {}: {e}; quote a glob such as 'r2migrate-manifest.shard-*.jsonl'",
                path.display()
            ))
        })?
        .compile_matcher();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| usage(format!("manifest pattern {}: {e}", path.display())))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| matcher.is_match(n) && !n.to_string_lossy().ends_with(".lock"))
        })
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(usage(format!(
            "no manifest matches {} (quote the pattern so the shell leaves it to r2migrate)",
            path.display()
        )));
    }
    Ok(found)
}

fn manifest_or_default(flag: Option<&PathBuf>, file: &FileConfig) -> PathBuf {
    flag.cloned()
        .or_else(|| file.manifest.clone())
        .unwrap_or_else(|| PathBuf::from(crate::manifest::DEFAULT_PATH))
}

fn filter(args: &CopyArgs, file: &FileConfig) -> anyhow::Result<Filter> {
    let f = &file.filter;
    let or_file = |flag: &Vec<String>, file: &Vec<String>| {
        if flag.is_empty() {
            file.clone()
        } else {
            flag.clone()
        }
    };
    Filter::new(
        &or_file(&args.include, &f.include),
        &or_file(&args.exclude, &f.exclude),
        size(args.min_size.as_deref(), f.min_size.as_ref(), "min_size")?,
        size(args.max_size.as_deref(), f.max_size.as_ref(), "max_size")?,
        when(
            args.modified_after.as_deref(),
            f.modified_after.as_deref(),
            "modified_after",
        )?,
        when(
            args.modified_before.as_deref(),
            f.modified_before.as_deref(),
            "modified_before",
        )?,
    )
}

/// Part size and multipart threshold, within R2's limits.
fn part_sizes(args: &CopyArgs, file: &FileConfig) -> anyhow::Result<(u64, u64)> {
    let t = &file.transfer;
    let part_size = size(args.part_size.as_deref(), t.part_size.as_ref(), "part_size")?
        .unwrap_or(DEFAULT_PART_SIZE);
    if !(MIN_PART..=MAX_PART).contains(&part_size) {
        return Err(usage(format!(
            "part_size {part_size} bytes: R2 parts must be from 5 MiB to 5 GiB"
        )));
    }
    let threshold = size(
        args.multipart_threshold.as_deref(),
        t.multipart_threshold.as_ref(),
        "multipart_threshold",
    )?
    .unwrap_or(DEFAULT_MULTIPART_THRESHOLD);
    if threshold < MIN_PART {
        return Err(usage(format!(
            "multipart_threshold {threshold} bytes: use at least 5MiB (R2's smallest part)"
        )));
    }
    if threshold > MAX_SINGLE_PUT {
        return Err(usage(
            "multipart_threshold: a single PUT to R2 must stay below 5 GiB - 5 MiB",
        ));
    }
    Ok((part_size, threshold))
}

fn locations(args: &CopyArgs, file: &FileConfig) -> anyhow::Result<(Location, Location)> {
    let source = args
        .from
        .clone()
        .or_else(|| file.source.url.clone())
        .ok_or_else(|| usage("no source: give --from URL or [source] url in the config file"))?;
    let target = args.to.clone().or_else(|| file.target.url.clone()).ok_or_else(|| {
        usage("no target: give --to r2://bucket/prefix (or file:///dir to rehearse), or [target] url in the config file")
    })?;
    Ok((
        Location::parse(&source, Role::Source)?,
        Location::parse(&target, Role::Target)?,
    ))
}

/// `[[target.headers]]` rules, then `--header-upload`.
fn header_rules(args: &CopyArgs, file: &FileConfig) -> anyhow::Result<crate::headers::HeaderRules> {
    let rules: Vec<(String, Vec<String>)> = file
        .target
        .headers
        .iter()
        .map(|h| (h.glob.clone(), h.set.clone()))
        .collect();
    crate::headers::HeaderRules::new(&rules, &args.header_upload)
}

/// `plan` and `run`.
pub fn copy(args: &CopyArgs, file: &FileConfig) -> anyhow::Result<CopyConfig> {
    let (source, target) = locations(args, file)?;
    let index = std::env::var("JOB_COMPLETION_INDEX").ok();
    let shard = match args.shard.clone().or_else(|| file.filter.shard.clone()) {
        Some(t) => Some(Shard::resolve(&t, index.as_deref())?),
        None => None,
    };
    let (part_size, multipart_threshold) = part_sizes(args, file)?;
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
        Some(sqlite_settings(&file.source, key_template.as_deref())?)
    } else {
        if let Some(tpl) = &key_template {
            crate::keymap::KeyMap::check_template(tpl)?;
        }
        None
    };
    let stores = stores(
        &args.stores,
        &args.source,
        args.max_bandwidth.as_deref(),
        file,
    )?;
    // With a shard, each shard has its own default manifest (SPEC.md).
    let manifest = match (args.manifest.as_ref().or(file.manifest.as_ref()), shard) {
        (None, Some(s)) => PathBuf::from(s.manifest_name()),
        _ => manifest_or_default(args.manifest.as_ref(), file),
    };
    Ok(CopyConfig {
        source,
        target,
        manifest,
        filter: filter(args, file)?,
        key_template,
        on_conflict: args
            .on_conflict
            .or(file.target.on_conflict)
            .unwrap_or(OnConflict::Fail),
        backup_prefix,
        part_size,
        multipart_threshold,
        shard,
        stores,
        sqlite,
        no_db_backup: args.no_db_backup,
        copy_links: args.copy_links || file.source.copy_links.unwrap_or(false),
        headers: header_rules(args, file)?,
        storage_class: (args.storage_class.as_deref())
            .or(file.target.storage_class.as_deref())
            .map(crate::headers::StorageClass::parse)
            .transpose()?,
        multipart_checksum: (args.multipart_checksum.as_deref())
            .or(file.transfer.multipart_checksum.as_deref())
            .map(crate::object::MultipartChecksum::parse)
            .transpose()?
            .unwrap_or_default(),
        resume_uploads: !args.no_resume_uploads && file.transfer.resume_uploads.unwrap_or(true),
        status_interval: match args.status_interval.as_deref() {
            Some(t) => parse_duration(t, "--status-interval")?,
            None => crate::progress::DEFAULT_STATUS_INTERVAL,
        },
    })
}

pub fn verify(args: &VerifyArgs, file: &FileConfig) -> anyhow::Result<VerifyConfig> {
    Ok(VerifyConfig {
        manifests: manifests(&args.manifests, file)?,
        deep: args.deep,
        against_source: args.against_source,
        stores: stores(&args.stores, &args.source, None, file)?,
    })
}

pub fn rollback(args: &RollbackArgs, file: &FileConfig) -> anyhow::Result<RollbackConfig> {
    let set = manifests(
        &ManifestArgs {
            manifests: Vec::new(),
            manifest_flags: args.manifest.clone(),
        },
        file,
    )?;
    Ok(RollbackConfig {
        manifest: set[0].clone(),
        manifests: set,
        dry_run: args.dry_run,
        yes: args.yes,
        stores: stores(&args.stores, &SourceArgs::default(), None, file)?,
    })
}

pub fn rewrite(args: &RewriteArgs, file: &FileConfig) -> anyhow::Result<RewriteConfig> {
    if file.rewrite.is_empty() {
        return Err(usage(
            "rewrite-urls needs [[rewrite]] tables in the config file (--config FILE): database, table, id_column, columns, to",
        ));
    }
    for rule in &file.rewrite {
        if rule.columns.is_empty() || !rule.to.contains("{key}") {
            return Err(usage(format!(
                "[[rewrite]] for table {:?}: give at least one column, and a `to` template with {{key}}",
                rule.table
            )));
        }
    }
    Ok(RewriteConfig {
        manifests: manifests(&args.manifests, file)?,
        rules: file.rewrite.clone(),
        dry_run: args.dry_run,
        no_db_backup: args.no_db_backup,
    })
}

pub fn report(args: &ReportArgs, file: &FileConfig) -> anyhow::Result<ReportConfig> {
    Ok(ReportConfig {
        manifests: manifests(&args.manifests, file)?,
    })
}

/// `plan --report FILE.md --source-egress-price USD`.
pub fn plan_report(args: &PlanReportArgs) -> anyhow::Result<PlanReport> {
    if let Some(price) = args.source_egress_price {
        if !price.is_finite() || price < 0.0 {
            return Err(usage(format!(
                "--source-egress-price {price}: give the source's price per GB read out, in US dollars (e.g. 0.09)"
            )));
        }
    }
    Ok(PlanReport {
        markdown: args.report.clone(),
        source_egress_per_gb: args.source_egress_price,
    })
}

/// `run` without `--dry-run` writes no plan: refuse its report flags rather than ignore them.
pub fn no_plan_report(args: &PlanReportArgs) -> anyhow::Result<()> {
    if args.report.is_some() || args.source_egress_price.is_some() {
        return Err(usage(
            "--report and --source-egress-price describe a plan: use them with `r2migrate plan` or `run --dry-run` (a finished run's report is `r2migrate report`)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
