//! Bad input gets one clear message, the right exit code, and nothing half-written in
//! the target: bad config, missing or refused credentials, an unreachable endpoint, a
//! missing bucket, foreign or corrupted manifests. And no secret in any output.

mod common;

use common::*;

fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/media")
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn malformed_config_names_file_and_line_and_exits_2() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("bad.toml"),
        "[source]\nurl = \"/tmp\"\n[target\nurl = 1\n",
    )
    .unwrap();
    std::fs::write(
        work.path().join("unknown.toml"),
        "[source]\nurl = \"/tmp\"\nbucket = \"x\"\n",
    )
    .unwrap();
    for (file, line) in [("bad.toml", "line 3"), ("unknown.toml", "line 3")] {
        let out = r2migrate(work.path())
            .args(["plan", "--config", file])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{file}");
        let err = stderr(&out);
        assert!(err.contains(file) && err.contains(line), "{file}: {err}");
    }
    let missing = r2migrate(work.path())
        .args(["plan", "--config", "nope.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("nope.toml"));
}

#[test]
fn usage_errors_exit_2() {
    let work = tempfile::tempdir().unwrap();
    for args in [
        vec!["run"],                                            // no source or target
        vec!["run", "--from", "/tmp", "--to", "s3://bucket/x"], // S3 is not a target
        vec![
            "run",
            "--from",
            "/tmp",
            "--to",
            "r2://b/x",
            "--concurrency",
            "0",
        ],
        vec![
            "run",
            "--from",
            "/tmp",
            "--to",
            "r2://bucket/x",
            "--shard",
            "2/2",
        ],
        vec![
            "run",
            "--from",
            "/tmp",
            "--to",
            "r2://bucket/x",
            "--on-conflict",
            "maybe",
        ],
        vec!["frobnicate"],
    ] {
        let out = r2migrate(work.path()).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).is_empty());
    }
}

#[test]
fn missing_credentials_exit_3_before_anything_is_written() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let work = tempfile::tempdir().unwrap();
    let out = r2migrate(work.path())
        .env("R2_ENDPOINT_URL", r2.endpoint())
        .args(["run", "--from"])
        .arg(fixtures())
        .args(["--to", "r2://media/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("R2_ACCESS_KEY_ID"),
        "{}",
        stderr(&out)
    );
    assert!(!work.path().join("r2migrate-manifest.jsonl").exists());
}

#[tokio::test]
async fn refused_credentials_exit_3_and_the_secret_is_never_printed() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let work = tempfile::tempdir().unwrap();
    let wrong_secret = "wrong-secret-VALUE-that-must-not-appear";
    let out = r2migrate(work.path())
        .env("R2_ENDPOINT_URL", r2.endpoint())
        .env("R2_ACCESS_KEY_ID", ACCESS_KEY)
        .env("R2_SECRET_ACCESS_KEY", wrong_secret)
        .args(["run", "-vv", "--from"])
        .arg(fixtures())
        .args(["--to", "r2://media/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let all = format!("{}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
    assert!(
        all.contains("credentials refused") || all.contains("SignatureDoesNotMatch"),
        "{all}"
    );
    assert!(
        !all.contains(wrong_secret),
        "the secret leaked into the output"
    );
    assert!(list_keys(&r2.client(), "media", "").await.is_empty());
}

#[tokio::test]
async fn a_good_run_never_writes_a_secret_anywhere() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let work = tempfile::tempdir().unwrap();
    let out = r2migrate_to(work.path(), &r2)
        .args(["run", "-vv", "--json", "--from"])
        .arg(fixtures())
        .args(["--to", "r2://media/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let manifest = std::fs::read_to_string(work.path().join("r2migrate-manifest.jsonl")).unwrap();
    let report = r2migrate(work.path())
        .args(["report", "--json"])
        .output()
        .unwrap();
    for text in [
        stderr(&out),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        manifest,
        String::from_utf8_lossy(&report.stdout).into_owned(),
    ] {
        assert!(!text.contains(SECRET_KEY), "a secret leaked");
    }
}

/// A panic (the supervisor's path, switched on by a debug-only hook) at -vvv with full
/// backtraces, while the source and the target both hold credentials: neither secret is
/// in anything the run prints or writes.
#[tokio::test]
async fn a_panic_at_full_verbosity_prints_no_secret() {
    let source = S3Server::start_with_keys("src-key", "src-very-secret-value");
    source.create_bucket("legacy");
    let client = s3_client_with(&source.endpoint(), "src-key", "src-very-secret-value");
    put_bytes(&client, "legacy", "boom.txt", b"hits the bug").await;
    put_bytes(&client, "legacy", "fine.txt", b"fine").await;
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let work = tempfile::tempdir().unwrap();
    let out = r2migrate_s3(
        work.path(),
        &source,
        &r2,
        "src-key",
        "src-very-secret-value",
    )
    .env("R2MIGRATE_TEST_PANIC_KEY", "boom")
    .env("RUST_BACKTRACE", "full")
    .args([
        "run",
        "-vvv",
        "--json",
        "--from",
        "s3://legacy/",
        "--to",
        "r2://media/",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("panicked") || err.contains("internal error"),
        "{err}"
    );
    let manifest = std::fs::read_to_string(work.path().join("r2migrate-manifest.jsonl")).unwrap();
    for text in [
        err,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        manifest,
    ] {
        for secret in [SECRET_KEY, "src-very-secret-value"] {
            assert!(!text.contains(secret), "a secret leaked: {secret}");
        }
    }
}

#[test]
fn unreachable_endpoint_exits_3_with_a_message() {
    let work = tempfile::tempdir().unwrap();
    let port = free_port(); // nothing listens here
    let out = r2migrate(work.path())
        .env("R2_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("R2_ACCESS_KEY_ID", ACCESS_KEY)
        .env("R2_SECRET_ACCESS_KEY", SECRET_KEY)
        .args(["run", "--retries", "1", "--from"])
        .arg(fixtures())
        .args(["--to", "r2://media/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("could not reach"), "{}", stderr(&out));
}

#[tokio::test]
async fn missing_bucket_exits_3_and_creates_nothing() {
    let r2 = S3Server::start();
    let work = tempfile::tempdir().unwrap();
    let out = r2migrate_to(work.path(), &r2)
        .args(["run", "--from"])
        .arg(fixtures())
        .args(["--to", "r2://no-such-bucket/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.contains("no-such-bucket") && err.contains("does not exist"),
        "{err}"
    );
    assert!(
        !r2.root.path().join("no-such-bucket").exists(),
        "the bucket must not be created"
    );
}

#[test]
fn plain_http_to_a_remote_endpoint_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let out = r2migrate(work.path())
        .env("R2_ENDPOINT_URL", "http://192.0.2.10:9000")
        .env("R2_ACCESS_KEY_ID", ACCESS_KEY)
        .env("R2_SECRET_ACCESS_KEY", SECRET_KEY)
        .args(["plan", "--from"])
        .arg(fixtures())
        .args(["--to", "r2://media/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--allow-http"));
}

#[tokio::test]
async fn foreign_or_corrupted_manifests_are_refused_with_exit_2() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let work = tempfile::tempdir().unwrap();
    let other_src = tempfile::tempdir().unwrap();
    write(other_src.path(), "x.txt", b"x");
    r2migrate_to(work.path(), &r2)
        .args(["run", "--from"])
        .arg(other_src.path())
        .args(["--to", "r2://media/one"])
        .assert()
        .code(0);
    // Same manifest, another migration: refused before anything is copied.
    let out = r2migrate_to(work.path(), &r2)
        .args(["run", "--from"])
        .arg(fixtures())
        .args(["--to", "r2://media/two"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("belongs to another migration"),
        "{}",
        stderr(&out)
    );
    assert!(list_keys(&r2.client(), "media", "two/").await.is_empty());

    std::fs::write(work.path().join("notes.txt"), "not a manifest\n").unwrap();
    std::fs::write(
        work.path().join("broken.jsonl"),
        "{\"type\":\"header\",\"version\":1}\n",
    )
    .unwrap();
    for name in ["notes.txt", "broken.jsonl", "absent.jsonl"] {
        for cmd in [
            vec!["verify"],
            vec!["report"],
            vec!["rollback", "--yes", "--manifest"],
        ] {
            let out = r2migrate_to(work.path(), &r2)
                .args(&cmd)
                .arg(name)
                .output()
                .unwrap();
            assert_eq!(
                out.status.code(),
                Some(2),
                "{cmd:?} {name}: {}",
                stderr(&out)
            );
            assert!(
                stderr(&out).contains(name),
                "{cmd:?} {name}: {}",
                stderr(&out)
            );
        }
    }
}

#[test]
fn every_command_prints_one_json_document() {
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("rehearsal");
    let to = format!("file://{}", target.display());
    let run = |args: &[&str], code: i32| {
        let out = r2migrate(work.path()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        json_of(&out)
    };
    let f = fixtures();
    let f = f.to_str().unwrap();
    assert_eq!(
        run(&["plan", "--json", "--from", f, "--to", &to], 0)["command"],
        "plan"
    );
    assert_eq!(
        run(&["run", "--json", "--from", f, "--to", &to], 0)["command"],
        "run"
    );
    assert_eq!(run(&["verify", "--json"], 0)["command"], "verify");
    assert_eq!(run(&["report", "--json"], 0)["command"], "report");
    assert_eq!(
        run(&["rollback", "--json", "--dry-run"], 0)["command"],
        "rollback"
    );
    assert_eq!(run(&["rollback", "--json", "--yes"], 0)["rolled_back"], 11);
}
