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
    // 40 objects at 20 requests/s (a PUT and a HEAD each): about 4 s.
    let out = r2migrate_to(work.path(), &r2)
        .args([
            "run",
            "--max-rate",
            "20",
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
            .all(|l| l.contains("failed") && l.contains("B/s)")),
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
