//! `--max-rate` and `--max-bandwidth` hold: counted by the proxy in front of the server
//! playing R2, over a 10-second window after the first second (the limiter's first burst),
//! the requests and the uploaded bytes stay within 10% of the cap.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::proxy::FaultProxy;
use common::*;

const WINDOW_START: Duration = Duration::from_secs(1);
const WINDOW_END: Duration = Duration::from_secs(11);

/// Runs into R2 through a proxy with `cap`, long enough to fill the window, then stops
/// it; returns the proxy and when the run started.
fn capped_run(files: usize, size: usize, cap: &[&str]) -> (FaultProxy, Instant, S3Server) {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let src = tempfile::tempdir().unwrap();
    for i in 0..files {
        write(
            src.path(),
            &format!("f{i:04}.bin"),
            &bytes_for(i as u64, size),
        );
    }
    let proxy = FaultProxy::start(r2.port);
    let work = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("r2migrate"))
        .current_dir(work.path())
        .env("R2_ENDPOINT_URL", proxy.endpoint())
        .env("R2_ACCESS_KEY_ID", ACCESS_KEY)
        .env("R2_SECRET_ACCESS_KEY", SECRET_KEY)
        .args(["run", "--concurrency", "16", "--from"])
        .arg(src.path())
        .args(["--to", "r2://media/"])
        .args(cap)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(WINDOW_END + Duration::from_millis(300));
    let still_running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        still_running,
        "the run ended before the window did: make it longer"
    );
    (proxy, started, r2)
}

fn within_10_percent(measured: f64, cap: f64, what: &str) {
    let ratio = measured / cap;
    eprintln!(
        "{what}: {measured:.0} against a cap of {cap:.0} ({:.1}%)",
        ratio * 100.0
    );
    assert!(
        (0.9..=1.1).contains(&ratio),
        "{what}: {measured:.0} measured against a cap of {cap:.0} ({:.1}%)",
        ratio * 100.0
    );
}

#[test]
fn max_rate_holds_within_10_percent_over_10_seconds() {
    const RATE: usize = 20;
    // Each small file is a PUT and a HEAD: far more than 10 s of work at 20/s.
    let (proxy, started, _r2) = capped_run(600, 100, &["--max-rate", &RATE.to_string()]);
    let (requests, _) = proxy.traffic("*", started, WINDOW_START, WINDOW_END);
    let secs = (WINDOW_END - WINDOW_START).as_secs_f64();
    within_10_percent(requests as f64, RATE as f64 * secs, "requests");
}

#[test]
fn max_bandwidth_holds_within_10_percent_over_10_seconds() {
    const BPS: usize = 2 * 1024 * 1024;
    // 160 files of 256 KiB: 40 MiB, twice what the window allows.
    let (proxy, started, _r2) = capped_run(160, 256 * 1024, &["--max-bandwidth", "2MiB"]);
    let (_, bytes) = proxy.traffic("PUT", started, WINDOW_START, WINDOW_END);
    let secs = (WINDOW_END - WINDOW_START).as_secs_f64();
    within_10_percent(bytes as f64, BPS as f64 * secs, "uploaded bytes");
}
