//! Every command takes its settings from one place: the flags, else the config file, else
//! the defaults. `verify` and `rollback` once read raw flags only, so `[transfer] retries`
//! in the config file was silently ignored there; these tests fail if that comes back.

mod common;

use common::proxy::{Fault, FaultProxy};
use common::*;

/// A migration of three files to R2 (direct, no faults); returns the work directory.
fn migrated(r2: &S3Server) -> tempfile::TempDir {
    let src = tempfile::tempdir().unwrap();
    for k in ["a.txt", "b.txt", "c.txt"] {
        write(src.path(), k, k.as_bytes());
    }
    let work = tempfile::tempdir().unwrap();
    let out = run_to_r2(work.path(), r2, src.path(), "r2://media/");
    assert_exit(&out, 0);
    work
}

/// Moves the run's manifest away from the default path and writes `c.toml` naming it
/// (plus `more`), so only a command that reads the config file finds it.
fn manifest_named_in_config(work: &std::path::Path, more: &str) {
    std::fs::rename(
        work.join("r2migrate-manifest.jsonl"),
        work.join("elsewhere.jsonl"),
    )
    .unwrap();
    let text = format!("manifest = \"elsewhere.jsonl\"\n{more}");
    std::fs::write(work.join("c.toml"), text).unwrap();
}

#[test]
fn verify_takes_retries_from_the_config_file_and_from_its_flag() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let work = migrated(&r2);
    std::fs::write(
        work.path().join("no-retries.toml"),
        "[transfer]\nretries = 0\n",
    )
    .unwrap();
    let proxy = FaultProxy::start(r2.port);

    // Default: five retries ride out two 503s.
    proxy.inject("HEAD", "/media/b.txt", "", 2, Fault::Reply(503, "SlowDown"));
    let out = via_proxy(work.path(), &proxy)
        .args(["verify"])
        .output()
        .unwrap();
    assert_exit(&out, 0);

    // The config file says no retries: the first 503 is the answer.
    proxy.inject("HEAD", "/media/b.txt", "", 2, Fault::Reply(503, "SlowDown"));
    let out = via_proxy(work.path(), &proxy)
        .args(["--config", "no-retries.toml", "verify"])
        .output()
        .unwrap();
    assert_exit(&out, 1);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("b.txt") && text.contains("could not be checked"),
        "{text}"
    );

    // The flag wins over the file.
    let out = via_proxy(work.path(), &proxy)
        .args(["--config", "no-retries.toml", "verify", "--retries", "3"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    // And says the same on its own.
    proxy.inject("HEAD", "/media/b.txt", "", 1, Fault::Reply(503, "SlowDown"));
    let out = via_proxy(work.path(), &proxy)
        .args(["verify", "--retries", "0"])
        .output()
        .unwrap();
    assert_exit(&out, 1);
}

#[test]
fn rollback_takes_its_manifest_and_retries_from_the_config_file() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let work = migrated(&r2);
    manifest_named_in_config(work.path(), "[transfer]\nretries = 0\n");
    let proxy = FaultProxy::start(r2.port);
    let slow_delete = || {
        proxy.inject(
            "DELETE",
            "/media/a.txt",
            "",
            1,
            Fault::Reply(503, "SlowDown"),
        )
    };
    slow_delete();
    let out = via_proxy(work.path(), &proxy)
        .args(["--config", "c.toml", "rollback", "--yes"])
        .output()
        .unwrap();
    // No retry: a.txt stays (reported), the other two are removed.
    assert_exit(&out, 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("a.txt") || stderr.contains("a.txt"),
        "{stdout}\n{stderr}"
    );
    assert_eq!(proxy.count("DELETE", "/media/a.txt"), 1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let left = rt.block_on(list_keys(&r2.client(), "media", ""));
    assert_eq!(left, vec!["a.txt".to_string()]);

    // Resumed with the default retries (flag over file): a 503 is ridden out.
    slow_delete();
    let out = via_proxy(work.path(), &proxy)
        .args(["--config", "c.toml", "rollback", "--yes", "--retries", "5"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(rt.block_on(list_keys(&r2.client(), "media", "")).is_empty());
}

#[test]
fn report_takes_its_manifest_from_the_config_file() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let work = migrated(&r2);
    manifest_named_in_config(work.path(), "");
    let out = r2migrate(work.path())
        .args(["--config", "c.toml", "report", "--json"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert_eq!(json_of(&out)["counts"]["copied"], 3, "{}", json_of(&out));
}

#[test]
fn verify_against_an_s3_source_takes_a_source_region() {
    let (source, r2) = (S3Server::start(), S3Server::start());
    source.create_bucket("photos");
    r2.create_bucket("media");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(put_bytes(&source.client(), "photos", "x/1.jpg", b"one"));
    let work = tempfile::tempdir().unwrap();
    let out = r2migrate_s3(work.path(), &source, &r2, ACCESS_KEY, SECRET_KEY)
        .args(["run", "--from", "s3://photos/x/", "--to", "r2://media/"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    for extra in [&["--source-region", "eu-west-1"][..], &[]] {
        std::fs::write(
            work.path().join("c.toml"),
            "[source]\nregion = \"us-west-2\"\n",
        )
        .unwrap();
        let out = r2migrate_s3(work.path(), &source, &r2, ACCESS_KEY, SECRET_KEY)
            .env_remove("AWS_REGION")
            .args(["--config", "c.toml", "verify", "--against-source"])
            .args(extra)
            .output()
            .unwrap();
        assert_exit(&out, 0);
    }
}
