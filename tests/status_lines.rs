//! A run whose stderr is not a terminal (CI, a pod's log) prints a plain status line every
//! `--status-interval` with counts, bytes and rate (percent and ETA once the listing is
//! complete) — and no terminal escape codes.

mod common;

use common::*;

#[test]
fn a_long_run_in_a_log_prints_plain_status_lines() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let src = tempfile::tempdir().unwrap();
    for i in 0..40 {
        write(src.path(), &format!("f{i:02}.txt"), b"some bytes");
    }
    let work = tempfile::tempdir().unwrap();
    // 40 objects at 10 requests/s (one PUT each: its response proves it): about 4 s.
    let out = r2migrate_to(work.path(), &r2)
        .args([
            "run",
            "--max-rate",
            "10",
            "--concurrency",
            "2",
            "--status-interval",
            "500ms",
        ])
        .arg("--from")
        .arg(src.path())
        .args(["--to", "r2://media/"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("status run"))
        .collect();
    assert!(lines.len() >= 3, "status lines: {err}");
    // The listing runs just ahead of the copies, so it completes near the end: percent
    // and ETA are the unit tests' to check; here, counts, bytes and rate in every line.
    assert!(
        lines
            .iter()
            .all(|l| l.contains("failed") && l.contains("conflicts") && l.contains("B/s, ")),
        "{err}"
    );
    // How many objects are in flight, and the limit (fixed here at 2).
    assert!(
        lines
            .iter()
            .all(|l| l.contains(" in flight (of 2)") && !l.contains(", 3 in flight")),
        "{err}"
    );
    assert!(!err.contains('\u{1b}'), "escape codes in a log: {err:?}");
    let quiet = r2migrate_to(work.path(), &r2)
        .args(["run", "--quiet", "--status-interval", "100ms", "--from"])
        .arg(src.path())
        .args(["--to", "r2://media/"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("status run"));
}

#[test]
fn status_lines_name_the_large_object_being_uploaded_and_its_parts() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "big.bin", &bytes_for(3, 40 << 20));
    let work = tempfile::tempdir().unwrap();
    // 8 parts of 5 MiB at 16 MiB/s: about 2.5 s, a status line every 300 ms.
    let out = r2migrate_to(work.path(), &r2)
        .args([
            "run",
            "--max-bandwidth",
            "16MiB",
            "--part-size",
            "5MiB",
            "--multipart-threshold",
            "8MiB",
            "--status-interval",
            "300ms",
        ])
        .arg("--from")
        .arg(src.path())
        .args(["--to", "r2://media/"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let err = String::from_utf8_lossy(&out.stderr);
    let parts: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("status run") && l.contains("uploading big.bin: part "))
        .collect();
    assert!(parts.len() >= 2, "{err}");
    assert!(parts.iter().all(|l| l.contains(" of 8, ")), "{err}");
    // Once the listing is done (one object), percent and ETA move with the parts.
    assert!(
        parts
            .iter()
            .any(|l| l.contains("of 40.0 MiB (") && l.contains("ETA")),
        "{err}"
    );
}

#[test]
fn a_short_run_ends_at_once_not_at_the_next_status_tick() {
    let src = tempfile::tempdir().unwrap();
    for i in 0..3 {
        write(src.path(), &format!("f{i}.txt"), b"bytes");
    }
    let work = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = to_rehearsal(
        work.path(),
        &["run", "--json", "--status-interval", "30s"],
        src.path(),
    );
    assert_exit(&out, 0);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the run waited for its status ticker: {:?}",
        started.elapsed()
    );
    let doc = json_of(&out);
    assert!(doc["elapsed_seconds"].as_f64().unwrap() < 5.0, "{doc}");
}
