//! A migration's life against a server playing R2: resume after an interruption,
//! identical objects, each --on-conflict mode, verify catching changes behind our back,
//! rollback (delete, keep, restore), report.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const BUCKET: &str = "media";

fn tree(root: &Path, n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let key = format!("dir{}/file-{i:03}.bin", i % 4);
            let body = bytes_for(i as u64 + 1, 500 + i * 7);
            write(root, &key, &body);
            (key, body)
        })
        .collect()
}

fn copied_keys(manifest: &Path) -> Vec<String> {
    manifest_objects(manifest)
        .into_iter()
        .filter(|r| r["status"] == "copied")
        .map(|r| r["source_key"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn interrupted_run_exits_130_and_resume_copies_only_what_is_missing() {
    let r2 = S3Server::start();
    r2.create_bucket(BUCKET);
    let src = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let files = tree(src.path(), 60);
    let manifest = work.path().join("m.jsonl");

    // A slow run (10 requests/s) interrupted with SIGINT after a few objects.
    let child = Command::new(assert_cmd::cargo::cargo_bin("r2migrate"))
        .current_dir(work.path())
        .env("R2_ENDPOINT_URL", r2.endpoint())
        .env("R2_ACCESS_KEY_ID", ACCESS_KEY)
        .env("R2_SECRET_ACCESS_KEY", SECRET_KEY)
        .args([
            "run",
            "--max-rate",
            "10",
            "--concurrency",
            "2",
            "--manifest",
            "m.jsonl",
            "--from",
        ])
        .arg(src.path())
        .args(["--to", "r2://media/"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while copied_keys_len(&manifest) < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let done = child.wait_with_output().unwrap();
    assert_eq!(
        done.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let first = copied_keys(&manifest);
    assert!(
        first.len() >= 5 && first.len() < files.len(),
        "copied {} before the interrupt",
        first.len()
    );

    // Resume: only what is missing is copied; nothing recorded before is uploaded again.
    let out = r2migrate_to(work.path(), &r2)
        .args(["run", "--json", "--manifest", "m.jsonl", "--from"])
        .arg(src.path())
        .args(["--to", "r2://media/"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let doc = json_of(&out);
    assert_eq!(
        doc["counts"]["copied"].as_u64().unwrap() as usize,
        files.len() - first.len()
    );
    assert_eq!(
        doc["already_verified"].as_u64().unwrap() as usize,
        first.len()
    );
    let all = copied_keys(&manifest);
    assert_eq!(
        all.len(),
        files.len(),
        "each object copied exactly once across both runs"
    );
    assert_eq!(list_keys(&r2.client(), BUCKET, "").await.len(), files.len());
    assert_eq!(r2.open_uploads(), 0);
}

fn copied_keys_len(manifest: &Path) -> usize {
    if manifest.exists() {
        copied_keys(manifest).len()
    } else {
        0
    }
}

#[tokio::test]
async fn objects_gone_from_the_target_are_copied_again_on_resume() {
    let r2 = S3Server::start();
    r2.create_bucket(BUCKET);
    let src = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    tree(src.path(), 10);
    let run = || {
        r2migrate_to(work.path(), &r2)
            .args(["run", "--json", "--from"])
            .arg(src.path())
            .args(["--to", "r2://media/"])
            .output()
            .unwrap()
    };
    assert_eq!(run().status.code(), Some(0));
    delete(&r2.client(), BUCKET, "dir1/file-001.bin").await;
    let doc = json_of(&run());
    assert_eq!(doc["counts"]["copied"], 1);
    assert_eq!(doc["already_verified"], 9);
}

#[tokio::test]
async fn identical_objects_are_recorded_not_copied() {
    let r2 = S3Server::start();
    r2.create_bucket(BUCKET);
    let src = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let files = tree(src.path(), 6);
    let client = r2.client();
    // Another tool already put two of them there, byte for byte.
    for (k, v) in &files[..2] {
        put_bytes(&client, BUCKET, &format!("x/{k}"), v).await;
    }
    let out = r2migrate_to(work.path(), &r2)
        .args(["run", "--json", "--from"])
        .arg(src.path())
        .args(["--to", "r2://media/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let doc = json_of(&out);
    assert_eq!(doc["counts"]["identical"], 2);
    assert_eq!(doc["counts"]["copied"], 4);

    // Rollback never deletes what was already there.
    r2migrate_to(work.path(), &r2)
        .args(["rollback", "--yes"])
        .assert()
        .code(0);
    let left = list_keys(&client, BUCKET, "").await;
    assert_eq!(
        left,
        vec![format!("x/{}", files[0].0), format!("x/{}", files[1].0)]
    );
}

/// A source of three files; the target already holds different bytes at one key.
async fn conflict_setup(r2: &S3Server) -> (tempfile::TempDir, tempfile::TempDir) {
    r2.create_bucket(BUCKET);
    let src = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    write(src.path(), "a.txt", b"new a");
    write(src.path(), "b.txt", b"new b");
    write(src.path(), "c.txt", b"new c");
    put_bytes(&r2.client(), BUCKET, "b.txt", b"someone else's b").await;
    (src, work)
}

fn run_with(work: &Path, src: &Path, r2: &S3Server, mode: &str) -> std::process::Output {
    r2migrate_to(work, r2)
        .args(["run", "--json", "--on-conflict", mode, "--from"])
        .arg(src)
        .args(["--to", "r2://media/"])
        .output()
        .unwrap()
}

#[tokio::test]
async fn on_conflict_fail_records_and_leaves_the_object() {
    let r2 = S3Server::start();
    let (src, work) = conflict_setup(&r2).await;
    let out = run_with(work.path(), src.path(), &r2, "fail");
    assert_eq!(out.status.code(), Some(1));
    let doc = json_of(&out);
    assert_eq!(doc["counts"]["conflict"], 1);
    assert_eq!(doc["counts"]["copied"], 2);
    assert_eq!(
        get_bytes(&r2.client(), BUCKET, "b.txt").await,
        b"someone else's b"
    );
}

#[tokio::test]
async fn on_conflict_skip_records_skipped_and_exits_0() {
    let r2 = S3Server::start();
    let (src, work) = conflict_setup(&r2).await;
    let out = run_with(work.path(), src.path(), &r2, "skip");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json_of(&out)["counts"]["skipped"], 1);
    assert_eq!(
        get_bytes(&r2.client(), BUCKET, "b.txt").await,
        b"someone else's b"
    );
}

#[tokio::test]
async fn on_conflict_overwrite_backs_up_and_rollback_restores() {
    let r2 = S3Server::start();
    let (src, work) = conflict_setup(&r2).await;
    let client = r2.client();
    let out = run_with(work.path(), src.path(), &r2, "overwrite");
    assert_exit(&out, 0);
    let run_id = json_of(&out)["run_id"].as_str().unwrap().to_string();
    let backup = format!("_r2migrate/backup/{run_id}/b.txt");
    assert_eq!(get_bytes(&client, BUCKET, "b.txt").await, b"new b");
    assert_eq!(
        get_bytes(&client, BUCKET, &backup).await,
        b"someone else's b"
    );
    let recs = manifest_objects(&work.path().join("r2migrate-manifest.jsonl"));
    assert_eq!(
        recs.iter().find(|r| r["source_key"] == "b.txt").unwrap()["backup_key"],
        backup.as_str()
    );

    // Someone edits c.txt after the migration: rollback must leave it alone.
    put_bytes(&client, BUCKET, "c.txt", b"edited after migration").await;

    // --dry-run changes nothing and exits as the real rollback would.
    let dry = r2migrate_to(work.path(), &r2)
        .args(["rollback", "--dry-run", "--json"])
        .output()
        .unwrap();
    assert_eq!(dry.status.code(), Some(1));
    assert_eq!(json_of(&dry)["kept"], 1);
    assert_eq!(get_bytes(&client, BUCKET, "a.txt").await, b"new a");

    let real = r2migrate_to(work.path(), &r2)
        .args(["rollback", "--yes", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        real.status.code(),
        Some(1),
        "kept objects make rollback exit 1"
    );
    let doc = json_of(&real);
    assert_eq!(doc["rolled_back"], 2);
    assert_eq!(doc["kept"], 1);
    assert_eq!(
        list_keys(&client, BUCKET, "").await,
        vec!["b.txt".to_string(), "c.txt".to_string()],
        "a.txt deleted, the backup removed after restoring b.txt"
    );
    assert_eq!(
        get_bytes(&client, BUCKET, "b.txt").await,
        b"someone else's b"
    );
    assert_eq!(
        get_bytes(&client, BUCKET, "c.txt").await,
        b"edited after migration"
    );
    let recs = manifest_objects(&work.path().join("r2migrate-manifest.jsonl"));
    let last_c = recs
        .iter()
        .rev()
        .find(|r| r["source_key"] == "c.txt")
        .unwrap();
    assert_eq!(last_c["status"], "kept");

    // Resumable: a second rollback has nothing left to do but the kept object, which it
    // still reports (and exits 1 for), however the first one ended.
    let again = r2migrate_to(work.path(), &r2)
        .args(["rollback", "--yes", "--json"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(json_of(&again)["rolled_back"], 0);
    assert_eq!(json_of(&again)["kept"], 1);
}

#[tokio::test]
async fn verify_catches_deleted_and_changed_objects() {
    let r2 = S3Server::start();
    r2.create_bucket(BUCKET);
    let src = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let files = tree(src.path(), 8);
    r2migrate_to(work.path(), &r2)
        .args(["run", "--from"])
        .arg(src.path())
        .args(["--to", "r2://media/"])
        .assert()
        .code(0);
    r2migrate_to(work.path(), &r2)
        .args(["verify"])
        .assert()
        .code(0);

    let client = r2.client();
    delete(&client, BUCKET, &files[0].0).await;
    let mut changed = files[1].1.clone();
    changed[0] ^= 0xff; // same size, different bytes
    put_bytes(&client, BUCKET, &files[1].0, &changed).await;

    let out = r2migrate_to(work.path(), &r2)
        .args(["verify", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc = json_of(&out);
    let problems: Vec<(String, String)> = doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["target_key"].as_str().unwrap().to_string(),
                p["problem"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems
        .iter()
        .any(|(k, p)| *k == files[0].0 && p.contains("missing")));
    assert!(problems
        .iter()
        .any(|(k, p)| *k == files[1].0 && p.contains("differs")));
    let human = r2migrate_to(work.path(), &r2)
        .args(["verify", "--deep"])
        .output()
        .unwrap();
    assert_eq!(human.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&human.stdout).contains(&files[0].0));

    // --against-source finds the deleted object too, by its source key.
    let against = r2migrate_to(work.path(), &r2)
        .args(["verify", "--json", "--against-source"])
        .output()
        .unwrap();
    let gaps = json_of(&against)["against_source"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        gaps.iter().any(|g| g["source_key"] == files[0].0.as_str()),
        "{gaps:?}"
    );
}

#[tokio::test]
async fn report_summarises_counts_bytes_failures_and_throughput() {
    let r2 = S3Server::start();
    let (src, work) = conflict_setup(&r2).await;
    run_with(work.path(), src.path(), &r2, "fail");
    let out = r2migrate(work.path())
        .args(["report", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let doc = json_of(&out);
    assert_eq!(doc["counts"]["copied"], 2);
    assert_eq!(doc["counts"]["conflict"], 1);
    assert_eq!(doc["bytes_verified"], 10);
    assert_eq!(doc["failures"].as_array().unwrap().len(), 1);
    assert_eq!(doc["runs"][0]["objects"], 3);
    let human = r2migrate(work.path()).args(["report"]).output().unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    let conflict_row = text
        .lines()
        .find(|l| l.trim_start().starts_with("conflict "))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        conflict_row.split_whitespace().nth(1),
        Some("1"),
        "{conflict_row}"
    );
}

#[tokio::test]
async fn shards_split_one_migration_and_verify_reads_both_manifests() {
    let r2 = S3Server::start();
    r2.create_bucket(BUCKET);
    let src = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let files = tree(src.path(), 40);
    let mut copied = 0;
    for k in 0..2 {
        let out = r2migrate_to(work.path(), &r2)
            .args([
                "run",
                "--json",
                "--shard",
                &format!("{k}/2"),
                "--manifest",
                &format!("m{k}.jsonl"),
                "--from",
            ])
            .arg(src.path())
            .args(["--to", "r2://media/"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let n = json_of(&out)["counts"]["copied"].as_u64().unwrap();
        assert!(n > 0 && n < 40, "shard {k} copied {n}");
        copied += n;
    }
    assert_eq!(copied as usize, files.len());
    assert_eq!(list_keys(&r2.client(), BUCKET, "").await.len(), files.len());
    let out = r2migrate_to(work.path(), &r2)
        .args(["verify", "--json", "m0.jsonl", "m1.jsonl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json_of(&out)["checked"], 40);
    let report = r2migrate(work.path())
        .args(["report", "--json", "m0.jsonl", "m1.jsonl"])
        .output()
        .unwrap();
    assert_eq!(json_of(&report)["counts"]["copied"], 40);
}
