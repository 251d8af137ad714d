//! One writer per manifest, and signals: a second `run` or `rollback` on a manifest in
//! use is refused (exit 2) and names the holder; the lock and the manifest are private
//! (0600); SIGTERM stops a run like Ctrl-C (exit 130, manifest flushed, resumable); a
//! second signal exits at once, leaving a readable manifest.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A run into R2 that takes a while: `--max-rate` paces it, `--max-bandwidth` slows PUTs.
fn slow_run(work: &Path, src: &Path, r2: &S3Server, extra: &[&str]) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("r2migrate"))
        .current_dir(work)
        .env("R2_ENDPOINT_URL", r2.endpoint())
        .env("R2_ACCESS_KEY_ID", ACCESS_KEY)
        .env("R2_SECRET_ACCESS_KEY", SECRET_KEY)
        .args(["run", "--concurrency", "1", "--from"])
        .arg(src)
        .args(["--to", "r2://media/"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn records_in(manifest: &Path) -> usize {
    std::fs::read_to_string(manifest)
        .map(|t| {
            t.lines()
                .filter(|l| l.contains("\"type\":\"object\""))
                .count()
        })
        .unwrap_or(0)
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, name: &str) {
    Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
}

/// A server playing R2 with an empty `media` bucket, and a source of `n` small files.
fn r2_and_files(n: usize) -> (S3Server, tempfile::TempDir) {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let src = tempfile::tempdir().unwrap();
    for i in 0..n {
        write(
            src.path(),
            &format!("f{i:02}.txt"),
            format!("file {i}").as_bytes(),
        );
    }
    (r2, src)
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_second_writer_is_refused_naming_the_holder_and_sigterm_stops_the_first() {
    let (r2, src) = r2_and_files(40);
    let work = tempfile::tempdir().unwrap();
    let manifest = work.path().join("r2migrate-manifest.jsonl");
    let lock = work.path().join("r2migrate-manifest.jsonl.lock");
    let first = slow_run(work.path(), src.path(), &r2, &["--max-rate", "8"]);
    wait_for("the first records", || records_in(&manifest) >= 2);
    assert_eq!(mode(&lock), 0o600);
    assert_eq!(mode(&manifest), 0o600);

    for command in [&["run", "--from"][..], &["rollback", "--yes", "--from"][..]] {
        let mut cmd = r2migrate_to(work.path(), &r2);
        if command[0] == "run" {
            cmd.args(command)
                .arg(src.path())
                .args(["--to", "r2://media/"]);
        } else {
            cmd.args(["rollback", "--yes"]);
        }
        let out = cmd.output().unwrap();
        assert_exit(&out, 2);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("in use by `r2migrate run`")
                && err.contains(&format!("pid {}", first.id())),
            "{err}"
        );
    }

    // SIGTERM (what Kubernetes sends) stops it like Ctrl-C.
    signal(&first, "TERM");
    let done = first.wait_with_output().unwrap();
    assert_eq!(
        done.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(!lock.exists(), "the lock goes with its holder");
    let recorded = records_in(&manifest);
    assert!((2..40).contains(&recorded), "recorded {recorded}");

    // Resume finishes the job; every object is recorded once as copied.
    let out = run_to_r2(work.path(), &r2, src.path(), "r2://media/");
    assert_exit(&out, 0);
    let doc = json_of(&out);
    assert_eq!(
        doc["counts"]["copied"].as_u64().unwrap() + doc["already_verified"].as_u64().unwrap(),
        40
    );
}

#[test]
fn a_stale_lock_is_taken_over_with_a_warning() {
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "a.txt", b"a");
    let work = tempfile::tempdir().unwrap();
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    std::fs::write(
        work.path().join("r2migrate-manifest.jsonl.lock"),
        format!(
            r#"{{"host":"{}","pid":{pid},"command":"run","since":"2026-01-01T00:00:00Z"}}"#,
            host.trim()
        ),
    )
    .unwrap();
    let out = to_rehearsal(work.path(), &["run"], src.path());
    assert_exit(&out, 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stale lock") && err.contains(&format!("pid {pid}")),
        "{err}"
    );
    assert!(!work.path().join("r2migrate-manifest.jsonl.lock").exists());
}

#[test]
fn a_second_interrupt_exits_at_once_leaving_a_readable_manifest() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "a.txt", b"first");
    // Sorted after a.txt: its PUT, at 64 KiB/s, takes half a minute.
    write(src.path(), "b.bin", &bytes_for(1, 2 * 1024 * 1024));
    let work = tempfile::tempdir().unwrap();
    let manifest = work.path().join("r2migrate-manifest.jsonl");
    let run = slow_run(work.path(), src.path(), &r2, &["--max-bandwidth", "64KiB"]);
    wait_for("a.txt recorded", || records_in(&manifest) >= 1);
    std::thread::sleep(Duration::from_millis(300)); // b.bin's PUT is under way
    signal(&run, "INT");
    std::thread::sleep(Duration::from_millis(300));
    let second = Instant::now();
    signal(&run, "INT");
    let done = run.wait_with_output().unwrap();
    assert!(
        second.elapsed() < Duration::from_secs(2),
        "{:?}",
        second.elapsed()
    );
    assert_eq!(done.status.code(), Some(130));
    assert!(String::from_utf8_lossy(&done.stderr).contains("interrupted twice"));
    let out = r2migrate(work.path())
        .args(["report", "--json"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert_eq!(json_of(&out)["counts"]["copied"], 1);
}

#[test]
fn a_rollback_killed_halfway_finishes_when_run_again_and_keeps_what_changed() {
    let (r2, src) = r2_and_files(30);
    let work = tempfile::tempdir().unwrap();
    let out = run_to_r2(work.path(), &r2, src.path(), "r2://media/");
    assert_exit(&out, 0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The application changed one object after the migration: rollback must keep it.
    rt.block_on(put_bytes(
        &r2.client(),
        "media",
        "f29.txt",
        b"changed by the app",
    ));
    let keys = || rt.block_on(list_keys(&r2.client(), "media", ""));

    let first = Command::new(assert_cmd::cargo::cargo_bin("r2migrate"))
        .current_dir(work.path())
        .env("R2_ENDPOINT_URL", r2.endpoint())
        .env("R2_ACCESS_KEY_ID", ACCESS_KEY)
        .env("R2_SECRET_ACCESS_KEY", SECRET_KEY)
        .args(["rollback", "--yes", "--max-rate", "6", "--concurrency", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("a few deletes", || keys().len() <= 25);
    signal(&first, "KILL");
    let mut first = first;
    first.wait().unwrap();
    let left = keys().len();
    assert!(left > 1 && left < 30, "{left} left when killed");

    // Run again: the stale lock is taken over and the job finished; the changed one stays.
    let out = r2migrate_to(work.path(), &r2)
        .args(["rollback", "--yes", "--json"])
        .output()
        .unwrap();
    assert_exit(&out, 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("stale lock"));
    assert_eq!(json_of(&out)["kept"], 1);
    assert_eq!(keys(), vec!["f29.txt".to_string()]);
    assert_eq!(
        rt.block_on(get_bytes(&r2.client(), "media", "f29.txt")),
        b"changed by the app"
    );
}

#[test]
fn multipart_uploads_a_kill_9_left_open_are_aborted_by_the_next_run() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let src = tempfile::tempdir().unwrap();
    // Above a 5 MiB threshold: three parts each.
    let files: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| {
            (
                format!("video-{i}.mp4"),
                bytes_for(i, 11 * 1024 * 1024 + i as usize),
            )
        })
        .collect();
    for (k, v) in &files {
        write(src.path(), k, v);
    }
    let work = tempfile::tempdir().unwrap();
    let manifest = work.path().join("r2migrate-manifest.jsonl");
    // slow_run's one-at-a-time, paced by bandwidth: some parts sent, none complete.
    let first = slow_run(
        work.path(),
        src.path(),
        &r2,
        &[
            "--max-bandwidth",
            "4MiB",
            "--multipart-threshold",
            "5MiB",
            "--part-size",
            "5MiB",
        ],
    );
    // Killed once uploads have started and before they can all finish.
    wait_for("a multipart upload in flight", || r2.open_uploads() >= 1);
    signal(&first, "KILL");
    let mut first = first;
    first.wait().unwrap();
    assert!(r2.open_uploads() >= 1, "nothing left open to clean up");
    let started = std::fs::read_to_string(&manifest)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"upload_id\""))
        .count();
    assert!(started >= 1, "upload ids are recorded as uploads start");

    let out = r2migrate_to(work.path(), &r2)
        .args([
            "run",
            "--multipart-threshold",
            "5MiB",
            "--part-size",
            "5MiB",
        ])
        .arg("--from")
        .arg(src.path())
        .args(["--to", "r2://media/"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert_eq!(r2.open_uploads(), 0, "an upload of ours is still open");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("left open"), "{said}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (k, v) in &files {
        assert!(
            rt.block_on(get_bytes(&r2.client(), "media", k)) == *v,
            "{k}"
        );
    }
}
