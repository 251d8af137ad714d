//! A refusal that repeats is fatal (SPEC "A refusal that repeats"): when the target
//! refuses the same kind of request with the same error for 3 objects in a row, the run
//! stops with exit 3, open uploads aborted, what finished recorded, and one message that
//! names the request, what it sent and the answer — instead of uploading every large
//! object once more to learn the same thing. A BadDigest on CompleteMultipartUpload is
//! the target disagreeing with the checksum, not a body corrupted on its way: Complete is
//! not sent again, and the object is not uploaded again.

mod common;

use common::proxy::{Fault, FaultProxy};
use common::*;

const LARGE: usize = 8;

fn large_tree() -> tempfile::TempDir {
    let src = tempfile::tempdir().unwrap();
    for i in 0..LARGE {
        write(
            src.path(),
            &format!("video/{i}.mp4"),
            &bytes_for(i as u64, 6 * 1024 * 1024 + i),
        );
    }
    src
}

fn run_one_at_a_time(
    work: &std::path::Path,
    proxy: &FaultProxy,
    src: &std::path::Path,
) -> std::process::Output {
    via_proxy(work, proxy)
        .args(["run", "--concurrency", "1", "--from"])
        .arg(src)
        .args(["--to", "r2://media/", "--multipart-threshold", "5MiB"])
        .args(["--part-size", "5MiB"])
        .output()
        .unwrap()
}

#[test]
fn a_complete_refused_for_three_objects_in_a_row_stops_the_run() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let proxy = FaultProxy::start(r2.port);
    proxy.inject(
        "POST",
        "/media/video/",
        "uploadId=",
        1_000,
        Fault::Reply(400, "InvalidRequest"),
    );
    let src = large_tree();
    let work = tempfile::tempdir().unwrap();
    let out = run_one_at_a_time(work.path(), &proxy, src.path());
    assert_exit(&out, 3);
    let err = String::from_utf8_lossy(&out.stderr);
    for part in [
        "CompleteMultipartUpload",
        "3 objects in a row",
        "InvalidRequest",
        "HTTP 400",
        "x-amz-checksum-type: FULL_OBJECT",
        "x-amz-checksum-algorithm: CRC64NVME",
        "--multipart-checksum",
        "resume",
    ] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
    // Three objects were tried, not eight; each Complete once, each part once.
    assert_eq!(proxy.count("POST", "uploadId="), 3, "Completes sent");
    assert_eq!(proxy.count("PUT", "partNumber="), 3 * 2, "parts sent");
    assert_eq!(r2.open_uploads(), 0, "the refused uploads were aborted");
    let records = manifest_objects(&work.path().join("r2migrate-manifest.jsonl"));
    let failed = records.iter().filter(|r| r["status"] == "failed").count();
    assert_eq!(failed, 3, "{records:?}");
    assert!(records.iter().all(|r| r["status"] != "copied"));
    assert!(!err.contains(SECRET_KEY));
}

#[test]
fn a_bad_digest_on_complete_is_not_sent_again_nor_the_object_uploaded_again() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let proxy = FaultProxy::start(r2.port);
    // Only the first object's Complete is refused: the rest land.
    proxy.inject(
        "POST",
        "/media/video/0.mp4",
        "uploadId=",
        1_000,
        Fault::Reply(400, "BadDigest"),
    );
    let src = large_tree();
    let work = tempfile::tempdir().unwrap();
    let out = run_one_at_a_time(work.path(), &proxy, src.path());
    assert_exit(&out, 1);
    assert_eq!(
        proxy.count("POST", "/media/video/0.mp4?uploadId="),
        1,
        "Complete sent once"
    );
    assert_eq!(
        proxy.count("PUT", "/media/video/0.mp4?"),
        2,
        "its two parts sent once"
    );
    let records = manifest_objects(&work.path().join("r2migrate-manifest.jsonl"));
    let first = records
        .iter()
        .find(|r| r["source_key"] == "video/0.mp4")
        .unwrap();
    assert_eq!(first["status"], "failed");
    assert!(
        first["error"].as_str().unwrap().contains("BadDigest"),
        "{first}"
    );
    let copied = records.iter().filter(|r| r["status"] == "copied").count();
    assert_eq!(copied, LARGE - 1);
}

/// Refusals of different requests, or interleaved with successes of the same request,
/// are not a repetition: one object refused now and then does not stop a migration.
#[test]
fn refusals_between_successes_fail_only_their_objects() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let proxy = FaultProxy::start(r2.port);
    for i in [0, 2, 4, 6] {
        proxy.inject(
            "POST",
            &format!("/media/video/{i}.mp4"),
            "uploadId=",
            1,
            Fault::Reply(400, "InvalidPart"),
        );
    }
    let src = large_tree();
    let work = tempfile::tempdir().unwrap();
    let out = run_one_at_a_time(work.path(), &proxy, src.path());
    assert_exit(&out, 1);
    let records = manifest_objects(&work.path().join("r2migrate-manifest.jsonl"));
    assert_eq!(records.len(), LARGE);
    let failed = records.iter().filter(|r| r["status"] == "failed").count();
    assert_eq!(failed, 4);
}
