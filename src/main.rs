//! Parses the command line, runs the command, prints an error once (with its causes),
//! and maps the outcome to SPEC.md's exit codes. Nothing else.

use clap::Parser;
use r2migrate::cli::Cli;
use r2migrate::error::{exit_for, Exit};

// Tens of allocations per object from the SDK and hyper, on two threads: glibc's
// allocator spent about a tenth of the client's CPU on them (perf, 5,000 small objects).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // No transparent huge pages: mimalloc asks for them on its arenas, and with a heap
    // per thread (tokio runs each file operation on a thread of its own) every touched
    // 4 KiB became 2 MiB of RSS — 238 MiB for a 50,000-object local run, 55 MiB without.
    // SAFETY: prctl with plain integer arguments changes only this process's flags.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    // The MySQL driver keeps up to 128 spent packet buffers (each up to 4 MiB) for
    // reuse: a batch of rewritten rows is ~1 MiB a packet, so rewrite-urls grew to
    // 69 MiB over 100,000 rows. Four are enough for one connection at a time. Set here,
    // before any thread starts, and only when the user has not set it.
    if std::env::var_os("MYSQL_ASYNC_BUFFER_POOL_CAP").is_none() {
        std::env::set_var("MYSQL_ASYNC_BUFFER_POOL_CAP", "4");
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return std::process::ExitCode::from(if e.use_stderr() {
                Exit::Usage as u8
            } else {
                0
            });
        }
    };
    init_logging(cli.verbose, cli.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(64)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(Exit::Fatal as u8);
        }
    };
    let result = runtime.block_on(r2migrate::execute(cli));
    // In-flight uploads have been aborted or finished; don't wait on stuck reads.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(exit) => std::process::ExitCode::from(exit as u8),
        Err(err) => {
            let exit = exit_for(&err);
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(exit as u8)
        }
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    // Our own crate at the chosen level; the SDK's chatter only at -vv.
    let filter = if verbose >= 2 {
        level.to_string()
    } else {
        // The SDK warns that it cannot check a composite (part-level) checksum: we do,
        // over the part sizes (source/s3_digests.rs), so that warning says nothing true.
        format!("warn,aws_sdk_s3::http_response_checksum=error,r2migrate={level}")
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("R2MIGRATE_LOG")
                .unwrap_or_else(|_| filter.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
