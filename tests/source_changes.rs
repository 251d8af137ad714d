//! A source object that changes while r2migrate reads it is never copied torn: every copy
//! is exactly one version of the source object, the one recorded. Local files are
//! checked by size, modification time and inode before the first byte and after the
//! last; the application keeps writing to its media folder until the switch (the user
//! stories' Django site), so a file rewritten in place, appended to, truncated or
//! replaced by rename in the middle of a run is recorded `failed` ("changed at the
//! source while it was read"), nothing is left in R2, and the next run copies the new
//! version.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::time::Duration;

use common::*;

const MIB: usize = 1024 * 1024;
/// Large enough to be read in 6 parts of 5 MiB, and slowed by `--max-bandwidth` so the
/// changes below land while it is being read.
const SIZE: usize = 30 * MIB;

/// What the application does to a file in the middle of the run (`new`: the bytes it
/// writes, made beforehand so the change itself is quick).
fn change(path: &std::path::Path, how: &str, new: &[u8]) {
    match how {
        "rewritten" => {
            let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            f.write_all(new).unwrap();
        }
        "appended" => {
            let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
            f.write_all(b"one more line\n").unwrap();
        }
        "truncated" => {
            let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            f.set_len((SIZE / 2) as u64).unwrap();
        }
        "renamed-over" => {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, new).unwrap();
            std::fs::rename(&tmp, path).unwrap();
        }
        "touched-middle" => {
            // One byte in the middle, same size: only the modification time tells.
            let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            f.seek(SeekFrom::Start((SIZE / 2) as u64)).unwrap();
            f.write_all(b"!").unwrap();
        }
        other => panic!("no change {other}"),
    }
}

const CHANGES: [&str; 5] = [
    "rewritten",
    "appended",
    "truncated",
    "renamed-over",
    "touched-middle",
];

/// Each change to its own file, in its own run, all at once: one object at a time,
/// uploads capped at 6 MiB/s, so its 6 parts are read over about 5 s and the change
/// lands at 1.5 s, between two parts.
#[test]
fn a_local_file_changed_while_read_is_never_copied_torn() {
    let r2 = StrictR2::start();
    r2.create_bucket("media");
    std::thread::scope(|s| {
        for (i, how) in CHANGES.iter().enumerate() {
            let r2 = &r2;
            s.spawn(move || changed_while_read(r2, i as u64, how));
        }
    });
    assert_eq!(r2.open_uploads(), 0);
}

fn changed_while_read(r2: &StrictR2, seed: u64, how: &'static str) {
    let src = tempfile::tempdir().unwrap();
    let key = format!("{how}.bin");
    write(src.path(), &key, &bytes_for(seed, SIZE));
    let work = tempfile::tempdir().unwrap();
    let to = format!("r2://media/{how}/");
    let run = |capped: bool| {
        let mut run = r2migrate_to(work.path(), r2);
        run.args(["run", "--json", "--concurrency", "1", "--from"])
            .arg(src.path())
            .args(["--to", &to])
            .args(["--multipart-threshold", "5MiB", "--part-size", "5MiB"]);
        if capped {
            run.args(["--max-bandwidth", "6MiB"]);
        }
        run.output().unwrap()
    };
    let path = src.path().join(&key);
    let new = bytes_for(seed + 900, SIZE);
    let app = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        change(&path, how, &new);
    });
    let out = run(true);
    app.join().unwrap();
    assert_exit(&out, 1);
    let doc = json_of(&out);
    assert_eq!(doc["counts"]["failed"], 1, "{how}: {doc}");
    let rec = &manifest_objects(&work.path().join("r2migrate-manifest.jsonl"))[0];
    assert_eq!(rec["status"], "failed", "{rec}");
    let error = rec["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("changed at the source while it was read; run again")
            || (how == "truncated" && error.contains("re-run to copy the new version")),
        "{how}: {error}"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = r2.client();
    let target_key = format!("{how}/{key}");
    assert!(
        rt.block_on(head(&c, "media", &target_key)).is_none(),
        "{how}: nothing of it may be left in R2"
    );

    // The next run copies the file as it is now, whole; both verifications agree.
    let out = run(false);
    assert_exit(&out, 0);
    let now = std::fs::read(src.path().join(&key)).unwrap();
    assert!(
        rt.block_on(get_bytes(&c, "media", &target_key)) == now,
        "{how}: R2 holds the file as it is now"
    );
    for flag in ["--deep", "--against-source"] {
        let v = r2migrate_to(work.path(), r2)
            .args(["verify", flag, "--json"])
            .output()
            .unwrap();
        assert_exit(&v, 0);
    }
}

/// The record of an object replaced at the source between its listing and its read.
fn assert_failed_as_changed(rec: &serde_json::Value) {
    assert_eq!(rec["status"], "failed", "{rec}");
    let error = rec["error"].as_str().unwrap();
    assert!(
        error.contains("changed at the source") && error.contains("run again"),
        "{error}"
    );
}

/// An S3 object overwritten between its listing and its read: every GET carries
/// `If-Match` with the ETag listed, so the new version is not taken for the one listed
/// (S3 answers 412). Recorded failed with what to do; the next run copies the new one,
/// recorded with its own ETag. Before, the new bytes were recorded `copied` under the
/// listed (old) version. Sources: the strict server (412 as S3) and moto.
#[tokio::test]
async fn an_s3_object_overwritten_after_listing_is_not_copied_as_the_listed_version() {
    let strict = StrictR2::start();
    strict.create_bucket("legacy");
    overwritten_after_listing(&strict.endpoint(), strict.port, ACCESS_KEY, SECRET_KEY).await;
    let moto = Moto::start();
    moto.create_bucket("legacy").await;
    overwritten_after_listing(&moto.endpoint(), moto.port, "moto", "moto").await;
}

async fn overwritten_after_listing(endpoint: &str, port: u16, key: &str, secret: &str) {
    let c = s3_client_with(endpoint, key, secret);
    let old = bytes_for(1, 300_000);
    let new = bytes_for(2, 300_000);
    put_bytes(&c, "legacy", "avatar.png", &old).await;
    // The strict server takes one write per second to a key, as R2 does.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r2 = StrictR2::start();
    r2.create_bucket("media");
    let proxy = common::proxy::FaultProxy::start(port);
    proxy.inject(
        "GET",
        "/legacy/avatar.png",
        "",
        1,
        common::proxy::Fault::Delay(Duration::from_millis(1500)),
    );
    let work = tempfile::tempdir().unwrap();
    let run = |proxy_endpoint: String| {
        let mut cmd = from_s3_at(
            r2migrate_to(work.path(), &r2),
            &proxy_endpoint,
            (key, secret),
        );
        cmd.args([
            "run",
            "--json",
            "--from",
            "s3://legacy/",
            "--to",
            "r2://media/",
        ]);
        std::thread::spawn(move || cmd.output().unwrap())
    };
    let running = run(proxy.endpoint());
    // Listed by now; its GET is held by the proxy while the application replaces it.
    tokio::time::sleep(Duration::from_millis(700)).await;
    put_bytes(&c, "legacy", "avatar.png", &new).await;
    let out = running.join().unwrap();
    assert_exit(&out, 1);
    let manifest = work.path().join("r2migrate-manifest.jsonl");
    assert_failed_as_changed(&manifest_objects(&manifest)[0]);
    assert!(head(&r2.client(), "media", "avatar.png").await.is_none());

    let out = run(proxy.endpoint()).join().unwrap();
    assert_exit(&out, 0);
    assert!(get_bytes(&r2.client(), "media", "avatar.png").await == new);
    let rec = manifest_objects(&manifest).pop().unwrap();
    let listed = head(&c, "legacy", "avatar.png").await.unwrap();
    assert_eq!(
        rec["source_version"].as_str(),
        listed.e_tag().map(|e| e.trim_matches('"')),
        "recorded under the version copied: {rec}"
    );
}

/// A GCS object overwritten between its listing and its read: the read asks for the
/// generation listed (`generation=`; gone once replaced), so a newer one is recorded failed, not
/// copied as the listed one; the next run copies it under its own generation.
#[tokio::test]
async fn a_gcs_object_overwritten_after_listing_is_not_copied_as_the_listed_version() {
    let gcs = FakeGcs::start();
    gcs.create_bucket("legacy").await;
    let (old, new) = (bytes_for(3, 200_000), bytes_for(4, 200_000));
    gcs.put_bytes("legacy", "avatar.png", &old).await;
    let r2 = StrictR2::start();
    r2.create_bucket("media");
    let proxy = common::proxy::FaultProxy::start(gcs.port);
    proxy.inject(
        "GET",
        "avatar.png",
        "alt=media",
        1,
        common::proxy::Fault::Delay(Duration::from_millis(1500)),
    );
    let work = tempfile::tempdir().unwrap();
    let run = |endpoint: String| {
        let mut cmd = r2migrate_to(work.path(), &r2);
        cmd.args(["run", "--json", "--source-endpoint", &endpoint])
            .args(["--from", "gs://legacy/", "--to", "r2://media/"]);
        std::thread::spawn(move || cmd.output().unwrap())
    };
    let running = run(proxy.endpoint());
    tokio::time::sleep(Duration::from_millis(700)).await;
    gcs.put_bytes("legacy", "avatar.png", &new).await;
    let out = running.join().unwrap();
    assert_exit(&out, 1);
    let manifest = work.path().join("r2migrate-manifest.jsonl");
    assert_failed_as_changed(&manifest_objects(&manifest)[0]);

    let out = run(gcs.endpoint()).join().unwrap();
    assert_exit(&out, 0);
    assert!(get_bytes(&r2.client(), "media", "avatar.png").await == new);
}
