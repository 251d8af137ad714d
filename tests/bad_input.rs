//! Bad input beyond the usage errors: items R2 cannot store (a key over 1,024 bytes, an
//! object over R2's largest), a file the OS will not let us read, a manifest written by a
//! newer r2migrate. Each gets one message naming the item and what to do, the right exit
//! code, and nothing half-written in the target.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn problem_for<'a>(doc: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["source_key"].as_str().is_some_and(|k| k.ends_with(key)))
        .unwrap_or_else(|| panic!("no problem recorded for {key}: {doc}"))
}

#[tokio::test]
async fn a_key_longer_than_r2_allows_fails_alone_and_says_how_to_shorten_it() {
    let src = tempfile::tempdir().unwrap();
    // Five folders of 230 bytes: a 1,170-byte key (each part within the OS's 255).
    let deep: String = (0..5)
        .map(|i| format!("{}/", format!("{i}").repeat(230)))
        .collect();
    write(src.path(), &format!("{deep}photo.jpg"), b"far down");
    write(src.path(), "short.jpg", b"fine");
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let work = tempfile::tempdir().unwrap();
    let out = run_to_r2(work.path(), &r2, src.path(), "r2://media/");
    assert_exit(&out, 1);
    let doc = json_of(&out);
    assert_eq!(doc["counts"]["copied"], 1, "{doc}");
    let why = problem_for(&doc, "photo.jpg")["error"].as_str().unwrap();
    assert!(
        why.contains("1024") && why.contains("--key-template"),
        "{why}"
    );
    assert_eq!(
        list_keys(&r2.client(), "media", "").await,
        vec!["short.jpg".to_string()]
    );
}

#[tokio::test]
async fn an_object_larger_than_r2_accepts_fails_before_a_byte_is_sent() {
    let src = tempfile::tempdir().unwrap();
    // A sparse 5 TiB file: R2 takes at most about 4.995 TiB. Nothing may read it.
    let huge = std::fs::File::create(src.path().join("disk.img")).unwrap();
    huge.set_len(5 * 1024 * 1024 * 1024 * 1024).unwrap();
    write(src.path(), "small.txt", b"small");
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let work = tempfile::tempdir().unwrap();
    // The plan says so before anything runs.
    let plan = r2migrate_to(work.path(), &r2)
        .args(["plan", "--json", "--from"])
        .arg(src.path())
        .args(["--to", "r2://media/"])
        .output()
        .unwrap();
    assert_exit(&plan, 1);
    let planned = json_of(&plan);
    assert_eq!(planned["counts"]["unstorable"], 1, "{planned}");
    assert_eq!(planned["counts"]["to_copy"], 1, "{planned}");
    assert!(
        planned["unstorable"].to_string().contains("disk.img"),
        "{planned}"
    );
    let started = std::time::Instant::now();
    let out = run_to_r2(work.path(), &r2, src.path(), "r2://media/");
    assert!(started.elapsed().as_secs() < 30, "it read the file");
    assert_exit(&out, 1);
    let doc = json_of(&out);
    assert_eq!(doc["counts"]["copied"], 1);
    let why = problem_for(&doc, "disk.img")["error"].as_str().unwrap();
    assert!(
        why.contains("larger than R2") && why.contains("--max-size"),
        "{why}"
    );
    assert_eq!(r2.open_uploads(), 0);
    assert_eq!(
        list_keys(&r2.client(), "media", "").await,
        vec!["small.txt".to_string()]
    );
}

/// Whether the tests run as root, who reads any file whatever its mode.
fn is_root() -> bool {
    let out = std::process::Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

fn open_up(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
}

#[test]
fn a_file_the_os_will_not_let_us_read_fails_with_the_os_reason() {
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "readable.txt", b"open");
    write(src.path(), "locked.txt", b"private");
    let locked = src.path().join("locked.txt");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let work = tempfile::tempdir().unwrap();
    open_up(src.path());
    open_up(work.path());
    // A copy of the binary where any user may run it (a clone may sit in a private dir).
    let bin_dir = tempfile::tempdir().unwrap();
    open_up(bin_dir.path());
    let bin = bin_dir.path().join("r2migrate");
    std::fs::copy(assert_cmd::cargo::cargo_bin("r2migrate"), &bin).unwrap();
    let mut cmd = std::process::Command::new(&bin);
    cmd.current_dir(work.path())
        .args(["run", "--json", "--from"])
        .arg(src.path())
        .args(["--to", "./rehearsal"]);
    if is_root() {
        // As "nobody", so the file's mode is what decides.
        use std::os::unix::process::CommandExt;
        cmd.uid(65534).gid(65534).env("HOME", work.path());
    }
    let out = cmd.output().unwrap();
    assert_exit(&out, 1);
    let doc = json_of(&out);
    assert_eq!(doc["counts"]["copied"], 1, "{doc}");
    let why = problem_for(&doc, "locked.txt")["error"].as_str().unwrap();
    assert!(
        why.contains("ermission denied") && why.contains("locked.txt"),
        "{why}"
    );
    assert!(!work.path().join("rehearsal/locked.txt").exists());
}

#[tokio::test]
async fn a_manifest_written_by_a_newer_version_is_refused_with_exit_2_by_every_command() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let work = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "a.txt", b"a");
    let source = format!("file://{}/", src.path().display());
    std::fs::write(
        work.path().join("r2migrate-manifest.jsonl"),
        format!(
            "{{\"type\":\"header\",\"version\":99,\"run_id\":\"r\",\"source\":\"{source}\",\"target\":\"r2://media/\",\"started_at\":\"2030-01-01T00:00:00Z\",\"selection\":{{}}}}\n"
        ),
    )
    .unwrap();
    let mut run = r2migrate_to(work.path(), &r2);
    run.args(["run", "--from"])
        .arg(src.path())
        .args(["--to", "r2://media/"]);
    let mut verify = r2migrate_to(work.path(), &r2);
    verify.arg("verify");
    let mut report = r2migrate_to(work.path(), &r2);
    report.arg("report");
    let mut rollback = r2migrate_to(work.path(), &r2);
    rollback.args(["rollback", "--yes"]);
    for (name, mut cmd) in [
        ("run", run),
        ("verify", verify),
        ("report", report),
        ("rollback", rollback),
    ] {
        let out = cmd.output().unwrap();
        assert_exit(&out, 2);
        let err = stderr(&out);
        assert!(
            err.contains("newer r2migrate") && err.contains("upgrade"),
            "{name}: {err}"
        );
    }
    assert!(list_keys(&r2.client(), "media", "").await.is_empty());
}
