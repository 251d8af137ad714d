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

/// The caps are promises about the user's link and the stores, so they hold for a
/// rehearsal too (a `file://` target), from a local source and from S3: the time a capped
/// run takes is at least what the cap allows, less the limiter's first second. Before,
/// a local → `file://` rehearsal under `--max-bandwidth 20MiB` wrote at 63 MiB/s.
#[test]
fn both_caps_hold_on_the_rehearsal_target_from_every_source() {
    const MIB: usize = 1024 * 1024;
    let s3 = S3Server::start();
    s3.create_bucket("legacy");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let src = tempfile::tempdir().unwrap();
    // 24 MiB in 48 files: at 4 MiB/s, at least 5 s after the first second's 4 MiB.
    for i in 0..48 {
        let body = bytes_for(100 + i as u64, MIB / 2);
        write(src.path(), &format!("f{i:02}.bin"), &body);
        rt.block_on(put_bytes(
            &s3.client(),
            "legacy",
            &format!("f{i:02}.bin"),
            &body,
        ));
    }
    let from_local = src.path().display().to_string();
    for (from, cap, least) in [
        (from_local.as_str(), ["--max-bandwidth", "4MiB"], 5.0),
        ("s3://legacy/", ["--max-bandwidth", "4MiB"], 5.0),
        // 48 writes at 12 a second: at least 3 s after the first second's 12.
        (from_local.as_str(), ["--max-rate", "12"], 3.0),
    ] {
        let work = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let out = from_s3_at(
            r2migrate(work.path()),
            &s3.endpoint(),
            (ACCESS_KEY, SECRET_KEY),
        )
        .args([
            "run",
            "--from",
            from,
            "--to",
            "./rehearsal",
            "--concurrency",
            "16",
        ])
        .args(cap)
        .output()
        .unwrap();
        let took = started.elapsed().as_secs_f64();
        assert_exit(&out, 0);
        eprintln!("{from} {cap:?} into file://: {took:.2} s");
        assert!(
            took >= least * 0.9,
            "{from} {cap:?}: {took:.2} s, faster than the cap allows ({least} s)"
        );
        assert!(
            took < least * 3.0,
            "{from} {cap:?}: {took:.2} s, far slower than the cap"
        );
    }
}
