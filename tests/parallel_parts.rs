//! Parts of one large object travel at the same time: with part 1 hanging at the server,
//! the next parts are already on their way (one part at a time would send nothing more
//! until part 1 timed out), and the object still lands whole, in order, proven.

mod common;

use common::proxy::{Fault, FaultProxy};
use common::*;

#[test]
fn a_hung_part_does_not_hold_up_the_parts_after_it() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let proxy = FaultProxy::start(r2.port);
    proxy.inject("PUT", "/media/big.bin", "partNumber=1&", 1, Fault::Hang);
    let src = tempfile::tempdir().unwrap();
    let body = bytes_for(5, 8 * 5 * 1024 * 1024 + 123);
    write(src.path(), "big.bin", &body);
    let work = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = via_proxy(work.path(), &proxy)
        .args(["run", "--json", "--from"])
        .arg(src.path())
        .args(["--to", "r2://media/", "--multipart-threshold", "5MiB"])
        .args([
            "--part-size",
            "5MiB",
            "--concurrency",
            "4",
            "--io-timeout",
            "3s",
        ])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    // Before part 1's timeout: part 1 and the three after it were all sent.
    let (early, _) = proxy.traffic(
        "PUT",
        started,
        std::time::Duration::ZERO,
        std::time::Duration::from_millis(2500),
    );
    assert!(early >= 4, "parts sent while part 1 hung: {early}");
    assert_eq!(
        proxy.count("PUT", "/media/big.bin"),
        9 + 1,
        "9 parts, part 1 twice"
    );
    let records = manifest_objects(&work.path().join("r2migrate-manifest.jsonl"));
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["status"], "copied");
    assert_eq!(records[0]["sha256"], sha256_hex(&body));
    // Part 1 finished last, yet Complete lists the parts in order, each with its own
    // CRC64NVME, and the whole object's CRC64NVME is the one recorded.
    let crcs: Vec<String> = body
        .chunks(5 * 1024 * 1024)
        .map(|p| r2migrate::checksum::crc64nvme_b64(r2migrate::checksum::crc64nvme(p)))
        .collect();
    assert_eq!(crcs.len(), 9);
    let list = proxy.small_bodies("POST", "/media/big.bin?uploadId");
    let listed: Vec<&str> = list[0]
        .split("<ChecksumCRC64NVME>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap())
        .collect();
    assert_eq!(listed, crcs, "the parts in order");
    assert_eq!(
        records[0]["target_crc64nvme"],
        r2migrate::checksum::crc64nvme_b64(r2migrate::checksum::crc64nvme(&body)).as_str()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let got = rt.block_on(get_bytes(&s3_client(&r2.endpoint()), "media", "big.bin"));
    assert!(got == body, "the object is whole and in order");
}

/// The rehearsal target takes parts in any order too, and joins them in order.
#[test]
fn the_rehearsal_target_joins_parts_sent_at_once_in_order() {
    let src = tempfile::tempdir().unwrap();
    let body = bytes_for(6, 6 * 5 * 1024 * 1024 + 5);
    write(src.path(), "video/big.mp4", &body);
    let work = tempfile::tempdir().unwrap();
    let out = r2migrate(work.path())
        .args(["run", "--from"])
        .arg(src.path())
        .args(["--to", "./rehearsal", "--multipart-threshold", "5MiB"])
        .args(["--part-size", "5MiB", "--concurrency", "8"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let got = std::fs::read(work.path().join("rehearsal/video/big.mp4")).unwrap();
    assert!(got == body, "joined in order");
    let leftovers: Vec<_> = std::fs::read_dir(work.path().join("rehearsal/.r2migrate/tmp"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "no part files left: {leftovers:?}");
    let verify = r2migrate(work.path())
        .args(["verify", "--deep"])
        .output()
        .unwrap();
    assert_exit(&verify, 0);
}
