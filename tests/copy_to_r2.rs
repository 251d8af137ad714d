//! Local directory → R2 (an s3s-fs server on loopback): keys, bytes, metadata, multipart,
//! filters, templates, collisions, and the copy's own checks.

mod common;

use common::*;

const BUCKET: &str = "media";

fn odd_tree(root: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let files: Vec<(String, Vec<u8>)> = vec![
        ("a b/c d.txt".into(), b"spaces".to_vec()),
        ("unicode/日本語/ファイル.txt".into(), b"nihongo".to_vec()),
        ("unicode/caf\u{e9}.txt".into(), b"cafe".to_vec()),
        ("pct/100%.txt".into(), b"percent".to_vec()),
        ("plus/a+b.txt".into(), b"plus".to_vec()),
        ("hash/#1.txt".into(), b"hash".to_vec()),
        ("zero/empty.bin".into(), Vec::new()),
        ("deep/1/2/3/4/5/leaf.bin".into(), bytes_for(7, 3000)),
    ];
    for (k, v) in &files {
        write(root, k, v);
    }
    files
}

#[tokio::test]
async fn odd_keys_zero_bytes_and_nested_folders_arrive_intact() {
    let r2 = S3Server::start();
    r2.create_bucket(BUCKET);
    let src = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let files = odd_tree(src.path());

    let out = r2migrate_to(work.path(), &r2)
        .args(["run", "--json", "--from"])
        .arg(src.path())
        .args(["--to", "r2://media/migrated"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let doc = json_of(&out);
    assert_eq!(doc["counts"]["copied"], files.len() as u64);

    let client = r2.client();
    let mut expected: Vec<String> = files.iter().map(|(k, _)| format!("migrated/{k}")).collect();
    expected.sort();
    assert_eq!(list_keys(&client, BUCKET, "").await, expected);
    for (k, v) in &files {
        assert_eq!(
            &get_bytes(&client, BUCKET, &format!("migrated/{k}")).await,
            v,
            "{k}"
        );
    }
    // Every record carries the SHA-256 of the bytes and the checksum R2 reported.
    for rec in manifest_objects(&work.path().join("r2migrate-manifest.jsonl")) {
        let (_, body) = files.iter().find(|(k, _)| *k == rec["source_key"]).unwrap();
        assert_eq!(
            rec["sha256"],
            hex::encode(r2migrate::checksum::sha256(body))
        );
        assert_eq!(rec["status"], "copied");
    }
}

#[tokio::test]
async fn content_type_comes_from_extension_then_magic_bytes() {
    let r2 = S3Server::start();
    r2.create_bucket(BUCKET);
    let work = tempfile::tempdir().unwrap();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/media");
    r2migrate_to(work.path(), &r2)
        .args(["run", "--from"])
        .arg(&fixtures)
        .args(["--to", "r2://media/"])
        .assert()
        .code(0);
    let client = r2.client();
    for (key, ct) in [
        ("avatars/user_42.png", "image/png"),
        ("avatars/user_44", "image/png"), // no extension: magic bytes
        ("photos/2024/summer trip/beach sunset.jpg", "image/jpeg"),
        ("photos/café/crème brûlée.webp", "image/webp"),
        ("docs/logo.svg", "image/svg+xml"),
    ] {
        let h = head(&client, BUCKET, key)
            .await
            .unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(h.content_type(), Some(ct), "{key}");
        assert!(h.checksum_sha256().is_some(), "{key}: no SHA-256 stored");
    }
}

#[tokio::test]
async fn large_objects_go_in_equal_parts_and_verify() {
    let r2 = S3Server::start();
    r2.create_bucket(BUCKET);
    let src = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let big = bytes_for(1, 12 * 1024 * 1024 + 12345);
    write(src.path(), "video/big.mp4", &big);
    write(src.path(), "small.txt", b"small");
    let out = r2migrate_to(work.path(), &r2)
        .args([
            "run",
            "--json",
            "--multipart-threshold",
            "6MiB",
            "--part-size",
            "5MiB",
            "--from",
        ])
        .arg(src.path())
        .args(["--to", "r2://media/"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let client = r2.client();
    assert_eq!(get_bytes(&client, BUCKET, "video/big.mp4").await, big);
    let h = head(&client, BUCKET, "video/big.mp4").await.unwrap();
    assert!(
        h.e_tag().unwrap().ends_with("-3\""),
        "three parts expected, etag {:?}",
        h.e_tag()
    );
    assert_eq!(r2.open_uploads(), 0, "no multipart upload may stay open");
    let recs = manifest_objects(&work.path().join("r2migrate-manifest.jsonl"));
    let rec = recs
        .iter()
        .find(|r| r["source_key"] == "video/big.mp4")
        .unwrap();
    let mut crc = r2migrate::checksum::Hasher::new();
    crc.update(&big);
    assert_eq!(
        rec["target_crc64nvme"],
        r2migrate::checksum::crc64nvme_b64(crc.finish().crc64nvme).as_str(),
        "the whole object's CRC64NVME, sent with Complete"
    );
    assert_eq!(
        rec["sha256"],
        hex::encode(r2migrate::checksum::sha256(&big))
    );
    r2migrate_to(work.path(), &r2)
        .args(["verify", "--deep"])
        .assert()
        .code(0);
}

#[tokio::test]
async fn filters_and_templates_choose_keys() {
    let r2 = S3Server::start();
    r2.create_bucket(BUCKET);
    let src = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    write(src.path(), "a/keep.jpg", &bytes_for(1, 2000));
    write(src.path(), "a/thumbs/skip.jpg", &bytes_for(2, 2000));
    write(src.path(), "b/tiny.jpg", b"x");
    write(src.path(), "b/doc.pdf", &bytes_for(3, 2000));
    r2migrate_to(work.path(), &r2)
        .args([
            "run",
            "--include",
            "*.jpg",
            "--exclude",
            "**/thumbs/**",
            "--min-size",
            "1KiB",
        ])
        .args(["--key-template", "img/{stem}.{ext}", "--from"])
        .arg(src.path())
        .args(["--to", "r2://media/p"])
        .assert()
        .code(0);
    assert_eq!(
        list_keys(&r2.client(), BUCKET, "").await,
        vec!["p/img/keep.jpg".to_string()]
    );
}

#[tokio::test]
async fn nfc_collisions_copy_one_and_fail_the_other() {
    let r2 = S3Server::start();
    r2.create_bucket(BUCKET);
    let src = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    write(src.path(), "caf\u{e9}.txt", b"composed");
    write(src.path(), "cafe\u{301}.txt", b"decomposed");
    write(src.path(), "other.txt", b"fine");

    let plan = r2migrate_to(work.path(), &r2)
        .args(["plan", "--json", "--from"])
        .arg(src.path())
        .args(["--to", "r2://media/"])
        .output()
        .unwrap();
    assert_eq!(plan.status.code(), Some(1));
    assert_eq!(json_of(&plan)["counts"]["collisions"], 1);

    let out = r2migrate_to(work.path(), &r2)
        .args(["run", "--json", "--from"])
        .arg(src.path())
        .args(["--to", "r2://media/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc = json_of(&out);
    assert_eq!(doc["counts"]["copied"], 2);
    assert_eq!(doc["counts"]["failed"], 1);
    let recs = manifest_objects(&work.path().join("r2migrate-manifest.jsonl"));
    let failed: Vec<_> = recs.iter().filter(|r| r["status"] == "failed").collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["error"].as_str().unwrap().contains("collision"));
    assert_eq!(list_keys(&r2.client(), BUCKET, "").await.len(), 2);
}

#[cfg(unix)]
#[tokio::test]
async fn unreadable_files_and_symlink_loops_fail_alone() {
    let r2 = S3Server::start();
    r2.create_bucket(BUCKET);
    let src = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    write(src.path(), "ok.txt", b"fine");
    write(src.path(), "d/inner.txt", b"inner");
    std::os::unix::fs::symlink(src.path(), src.path().join("d/loop")).unwrap();
    let out = r2migrate_to(work.path(), &r2)
        .args(["run", "--json", "--from"])
        .arg(src.path())
        .args(["--to", "r2://media/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc = json_of(&out);
    assert_eq!(doc["counts"]["copied"], 2);
    let recs = manifest_objects(&work.path().join("r2migrate-manifest.jsonl"));
    let looped = recs
        .iter()
        .find(|r| r["source_key"] == "d/loop")
        .expect("the loop is recorded");
    assert_eq!(looped["status"], "failed");
    assert!(looped["error"].as_str().unwrap().contains("symlink loop"));
}

#[tokio::test]
async fn plan_writes_nothing_and_reports_cost() {
    let r2 = S3Server::start();
    r2.create_bucket(BUCKET);
    let work = tempfile::tempdir().unwrap();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/media");
    for args in [vec!["plan"], vec!["run", "--dry-run"]] {
        let out = r2migrate_to(work.path(), &r2)
            .args(&args)
            .args(["--json", "--from"])
            .arg(&fixtures)
            .args(["--to", "r2://media/x"])
            .output()
            .unwrap();
        assert_exit(&out, 0);
        let doc = json_of(&out);
        assert_eq!(doc["counts"]["to_copy"], 11);
        assert_eq!(doc["estimate"]["class_a_operations"].as_u64().unwrap(), 12);
        assert!(doc["estimate"]["storage_usd_per_month"].as_f64().unwrap() > 0.0);
    }
    assert!(list_keys(&r2.client(), BUCKET, "").await.is_empty());
    assert!(!work.path().join("r2migrate-manifest.jsonl").exists());
}
