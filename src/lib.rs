//! r2migrate: move objects into Cloudflare R2 and prove every byte arrived.
//! `main.rs` parses flags and maps errors to exit codes; everything else lives here.

pub mod checksum;
pub mod cli;
pub mod commands;
pub mod config;
pub mod delta;
pub mod error;
pub mod filter;
pub mod keymap;
pub mod location;
pub mod manifest;
pub mod pacer;
pub mod paging;
pub mod pricing;
pub mod progress;
pub mod s3api;
pub mod selection;
pub mod shard;
pub mod source;
pub mod tally;
pub mod target;
pub mod testhooks;
pub mod transfer;
pub mod writeback;

use cli::{Cli, Command};
use commands::Output;
use config::{CopyConfig, FileConfig};
use error::Exit;

/// Runs one command to completion and says how the process should exit.
pub async fn execute(cli: Cli) -> anyhow::Result<Exit> {
    let out = Output {
        json: cli.json,
        quiet: cli.quiet,
    };
    let file = match &cli.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    match cli.command {
        Command::Plan(args) => commands::plan::plan(CopyConfig::resolve(&args, &file)?, out).await,
        Command::Run(args) if args.dry_run => {
            commands::plan::plan(CopyConfig::resolve(&args.copy, &file)?, out).await
        }
        Command::Run(args) => {
            commands::run::run(CopyConfig::resolve(&args.copy, &file)?, out).await
        }
        Command::Verify(mut args) => {
            if args.manifests.is_empty() && args.manifest_flags.is_empty() {
                if let Some(m) = file.manifest.clone() {
                    args.manifest_flags.push(m);
                }
            }
            if args.source_endpoint.is_none() {
                args.source_endpoint = file.source.endpoint.clone();
            }
            commands::verify::verify(args, out).await
        }
        Command::Rollback(mut args) => {
            args.manifest = args.manifest.or(file.manifest.clone());
            commands::rollback::rollback(args, out).await
        }
        Command::Report(mut args) => {
            if args.manifests.is_empty() && args.manifest_flags.is_empty() {
                if let Some(m) = file.manifest.clone() {
                    args.manifest_flags.push(m);
                }
            }
            commands::report::report(args, out)
        }
    }
}
