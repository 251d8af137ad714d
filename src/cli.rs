//! The raw command line (clap). Nothing here is validated beyond its type: `resolve.rs`
//! merges these flags over the config file into each command's checked configuration.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use crate::config::OnConflict;

#[derive(Debug, Parser)]
#[command(
    name = "r2migrate",
    version,
    about = "Move objects into Cloudflare R2 from S3, GCS, local disk and SQLite blobs, and prove every byte arrived",
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Print one JSON document on stdout at the end (human text and progress go to stderr)
    #[arg(long, global = true)]
    pub json: bool,

    /// Print only errors
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// More detail on stderr (-v: info, -vv: debug)
    #[arg(long, short, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// TOML config file (see migrate.example.toml); flags override it
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Dry run: list, filter, map keys, check the target, report counts, conflicts and cost
    Plan(PlanArgs),
    /// Copy, verify each object after upload, record every outcome in the manifest
    Run(RunArgs),
    /// Check every object a manifest records as copied or identical against the target
    Verify(VerifyArgs),
    /// Undo what a manifest records: delete what we wrote, restore what we overwrote
    Rollback(RollbackArgs),
    /// Summarise one or more manifests
    Report(ReportArgs),
    /// Point the application's stored URLs at R2 ([[rewrite]] tables of the config file)
    #[command(name = "rewrite-urls")]
    RewriteUrls(RewriteArgs),
    /// Print a shell completion script: r2migrate completions bash > /etc/bash_completion.d/r2migrate
    Completions {
        /// bash, zsh, fish, elvish or powershell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): r2migrate man | man -l -
    Man,
}

#[derive(Debug, Clone, Args)]
pub struct RewriteArgs {
    #[command(flatten)]
    pub manifests: ManifestArgs,

    /// Count the rows and URLs that would change and list those not migrated; write nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Do not copy SQLite databases with VACUUM INTO before the first change
    #[arg(long)]
    pub no_db_backup: bool,
}

#[derive(Debug, Clone, Args, Default)]
pub struct CopyArgs {
    /// Source URL: s3://bucket/prefix, gs://bucket/prefix, file:///dir or a path, sqlite:///app.db
    #[arg(long, value_name = "URL")]
    pub from: Option<String>,

    /// Target URL: r2://bucket/prefix, or file:///dir for a local rehearsal
    #[arg(long, value_name = "URL")]
    pub to: Option<String>,

    /// Manifest file (JSON Lines) [default: r2migrate-manifest.jsonl]
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,

    /// Only keys matching this glob (repeatable)
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,

    /// Leave out keys matching this glob (repeatable)
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,

    /// Only objects at least this big (e.g. 1KiB, 10MB)
    #[arg(long, value_name = "SIZE")]
    pub min_size: Option<String>,

    /// Only objects at most this big
    #[arg(long, value_name = "SIZE")]
    pub max_size: Option<String>,

    /// Only objects modified after this time (RFC 3339 or YYYY-MM-DD, UTC)
    #[arg(long, value_name = "TIME")]
    pub modified_after: Option<String>,

    /// Only objects modified before this time
    #[arg(long, value_name = "TIME")]
    pub modified_before: Option<String>,

    /// Target key template: {key} {basename} {ext} {id} and SQLite columns
    #[arg(long, value_name = "TEMPLATE")]
    pub key_template: Option<String>,

    /// What to do when the target already holds different bytes at a key
    #[arg(long, value_enum)]
    pub on_conflict: Option<OnConflict>,

    /// Set this header on every object, over the source's (repeatable): "Cache-Control: max-age=86400"
    #[arg(long, value_name = "NAME: VALUE")]
    pub header_upload: Vec<String>,

    /// R2 storage class: STANDARD or STANDARD_IA (Infrequent Access) [default: the bucket's]
    #[arg(long, value_name = "CLASS")]
    pub storage_class: Option<String>,

    /// When stderr is not a terminal (CI, a pod), print a status line this often [default: 10s]
    #[arg(long, value_name = "DURATION")]
    pub status_interval: Option<String>,

    /// Where overwritten objects are backed up [default: _r2migrate/backup/<run_id>/]
    #[arg(long, value_name = "PREFIX")]
    pub backup_prefix: Option<String>,

    /// Multipart part size [default: 16MiB, raised for objects that would need >10,000 parts]
    #[arg(long, value_name = "SIZE")]
    pub part_size: Option<String>,

    /// Objects at least this big are uploaded in parts [default: 64MiB]
    #[arg(long, value_name = "SIZE")]
    pub multipart_threshold: Option<String>,

    /// How multipart uploads are checked: crc64nvme (R2: each part's and the whole object's CRC64NVME, FULL_OBJECT) or md5 (each part's Content-MD5 and the multipart ETag, for S3-compatible stores that refuse the first) [default: crc64nvme]
    #[arg(long, value_name = "SCHEME")]
    pub multipart_checksum: Option<String>,

    /// At most this many bytes per second uploaded (e.g. 50MiB)
    #[arg(long, value_name = "SIZE")]
    pub max_bandwidth: Option<String>,

    /// Only keys whose stable hash falls in shard K of N (K from 0 to N-1)
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,

    /// SQLite sources: do not copy the database (VACUUM INTO) before rewriting rows
    #[arg(long)]
    pub no_db_backup: bool,

    /// Start every large object over after a crash instead of going on with the multipart upload it left open (no part lines are written)
    #[arg(long)]
    pub no_resume_uploads: bool,

    /// Local sources: follow symlinks that point outside the source tree (rclone's name)
    #[arg(long)]
    pub copy_links: bool,

    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub stores: StoreArgs,
}

/// Where an S3-compatible source is, beyond its URL (`run`, `plan`, `verify --against-source`).
#[derive(Debug, Clone, Args, Default)]
pub struct SourceArgs {
    /// Endpoint of an S3-compatible source store (or AWS_ENDPOINT_URL)
    #[arg(long, value_name = "URL")]
    pub source_endpoint: Option<String>,

    /// Region of the S3 source bucket (or AWS_REGION)
    #[arg(long, value_name = "REGION")]
    pub source_region: Option<String>,

    /// S3 and GCS: walk the prefix by delimiter, this many folders at once, in key order [default: 8; 1: one flat listing, fewest requests]
    #[arg(long, value_name = "N")]
    pub list_concurrency: Option<usize>,
}

/// The manifests a reading command takes: positional, `--manifest` (repeatable), or both.
#[derive(Debug, Clone, Args, Default)]
pub struct ManifestArgs {
    /// Manifests to read [default: r2migrate-manifest.jsonl]
    #[arg(value_name = "MANIFEST")]
    pub manifests: Vec<PathBuf>,

    /// Manifest to read (repeatable; same as the positional form)
    #[arg(long = "manifest", value_name = "FILE")]
    pub manifest_flags: Vec<PathBuf>,
}

/// How hard a command may push the stores: the same flags on every command that talks
/// to them.
#[derive(Debug, Clone, Args, Default)]
pub struct StoreArgs {
    /// Objects in flight at once, fixed (without it, found as the command goes from 32 up to --max-concurrency) [default: 32]
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,

    /// Find how many objects to keep in flight, up to N [default: 512; from --concurrency if given, else 32]
    #[arg(long, value_name = "N")]
    pub max_concurrency: Option<usize>,

    /// At most this many requests per second to each store
    #[arg(long, value_name = "N")]
    pub max_rate: Option<u32>,

    /// Retries per request on 5xx, 429/SlowDown, timeouts and resets [default: 5]
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,

    /// Accept plain http:// endpoints that are not on this machine
    #[arg(long)]
    pub allow_http: bool,

    /// Abandon (and retry) a request that moves no byte for this long: 60s, 500ms, 5m [default: 60s]
    #[arg(long, value_name = "DURATION")]
    pub io_timeout: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub copy: CopyArgs,

    #[command(flatten)]
    pub report: PlanReportArgs,
}

/// What a plan writes besides its summary (`plan`, `run --dry-run`).
#[derive(Debug, Clone, Args, Default)]
pub struct PlanReportArgs {
    /// Also write the plan as Markdown to FILE: the summary tables, the R2 cost estimate
    /// and every object listed by key (plan, or run --dry-run)
    #[arg(long, value_name = "FILE.md")]
    pub report: Option<PathBuf>,

    /// What the source charges per GB read out (e.g. 0.09 for S3 to the internet): the
    /// plan prices the migration's one read and the egress R2 saves per full read after it
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    pub source_egress_price: Option<f64>,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub copy: CopyArgs,

    /// Plan only: the same as `r2migrate plan`
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub report: PlanReportArgs,
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub manifests: ManifestArgs,

    /// Download every object and re-hash it
    #[arg(long)]
    pub deep: bool,

    /// Also re-list the source and report objects missing from the target or the manifest
    #[arg(long)]
    pub against_source: bool,

    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub stores: StoreArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    /// Manifest whose work to undo (repeatable, or a quoted glob such as
    /// 'r2migrate-manifest.shard-*.jsonl') [default: r2migrate-manifest.jsonl]
    #[arg(long, value_name = "FILE")]
    pub manifest: Vec<PathBuf>,

    /// Show what would be done, change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Do not ask for confirmation
    #[arg(long, short)]
    pub yes: bool,

    #[command(flatten)]
    pub stores: StoreArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub manifests: ManifestArgs,
}
