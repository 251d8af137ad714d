//! r2migrate: move objects into Cloudflare R2 and prove every byte arrived.
//! `main.rs` parses flags and maps errors to exit codes; everything else lives here.

pub mod checksum;
pub mod cli;
pub mod commands;
pub mod composite;
pub mod concurrency;
pub mod config;
pub mod delta;
pub mod error;
pub mod filter;
pub mod hash_state;
pub mod headers;
pub mod keymap;
pub mod limits;
pub mod location;
pub mod manifest;
pub mod object;
pub mod output;
pub mod pacer;
pub mod paging;
pub mod pricing;
pub mod progress;
pub mod resolve;
pub mod rewrite;
pub mod s3api;
pub mod selection;
pub mod shard;
pub mod source;
pub mod spill;
pub mod stall;
pub mod table;
pub mod tally;
pub mod target;
pub mod terminal;
pub mod testhooks;
pub mod transfer;

use cli::{Cli, Command};
use commands::Output;
use config::FileConfig;
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
        Command::Plan(args) => {
            let report = resolve::plan_report(&args.report)?;
            commands::plan::plan(resolve::copy(&args.copy, &file)?, report, out).await
        }
        Command::Run(args) if args.dry_run => {
            let report = resolve::plan_report(&args.report)?;
            commands::plan::plan(resolve::copy(&args.copy, &file)?, report, out).await
        }
        Command::Run(args) => {
            resolve::no_plan_report(&args.report)?;
            commands::run::run(resolve::copy(&args.copy, &file)?, out).await
        }
        Command::Verify(args) => {
            commands::verify::verify(resolve::verify(&args, &file)?, out).await
        }
        Command::Rollback(args) => {
            commands::rollback::rollback(resolve::rollback(&args, &file)?, out).await
        }
        Command::Report(args) => commands::report::report(resolve::report(&args, &file)?, out),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "r2migrate", &mut std::io::stdout());
            Ok(Exit::Ok)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut page)?;
            // A pager closed early (`| head`) is no error.
            match std::io::Write::write_all(&mut std::io::stdout(), &page) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(Exit::Ok),
            }
        }
        Command::RewriteUrls(args) => {
            commands::rewrite::rewrite_urls(resolve::rewrite(&args, &file)?, out).await
        }
    }
}
