//! Requests per object, counted by the proxy in front of the server playing R2: a PUT
//! whose response states the SHA-256 the server computed, equal to ours, is the proof
//! (`verified_by: "response"`) and no HEAD follows; where the response states none (a
//! multipart upload completed on s3s-fs), the HEAD is still made (`verified_by: "head"`).
//! A resume uploads nothing again.

mod common;

use common::*;

#[test]
fn a_put_that_echoes_our_checksum_needs_no_head() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let proxy = common::proxy::FaultProxy::start(r2.port);
    let small = 25;
    let src = small_files_and_a_video(small, 6 * 1024 * 1024 + 7);
    let work = tempfile::tempdir().unwrap();
    let run = || run_with_5mib_parts(work.path(), &proxy, src.path());
    let out = run();
    assert_exit(&out, 0);

    assert_eq!(proxy.count("PUT", "/media/small/"), small as usize);
    assert_eq!(
        proxy.count("HEAD", "/media/small/"),
        0,
        "the PUT response proved them"
    );
    // s3s-fs completes a multipart upload without a checksum: that one is HEADed.
    assert_eq!(proxy.count("HEAD", "/media/big/video.mp4"), 1);
    // Complete carries the whole object's CRC64NVME as a FULL_OBJECT checksum, for R2 to
    // check against what it assembles (s3s-fs ignores it: the proxy shows it was sent).
    let big = bytes_for(99, 6 * 1024 * 1024 + 7);
    let mut h = r2migrate::checksum::Hasher::new();
    h.update(&big);
    let crc = r2migrate::checksum::crc64nvme_b64(h.finish().crc64nvme);
    let complete = |name| proxy.header_values("POST", "/media/big/video.mp4?uploadId", name);
    assert_eq!(complete("x-amz-checksum-crc64nvme"), vec![crc.clone()]);
    assert_eq!(
        complete("x-amz-checksum-type"),
        vec!["FULL_OBJECT".to_string()]
    );

    let records = manifest_objects(&work.path().join("r2migrate-manifest.jsonl"));
    assert_eq!(records.len(), small as usize + 1);
    for r in &records {
        let by = if r["source_key"] == "big/video.mp4" {
            "head"
        } else {
            "response"
        };
        assert_eq!(r["status"], "copied", "{r}");
        assert_eq!(r["verified_by"], by, "{r}");
    }
    let big_record = records
        .iter()
        .find(|r| r["source_key"] == "big/video.mp4")
        .unwrap();
    assert_eq!(
        big_record["target_crc64nvme"],
        crc.as_str(),
        "recorded for verify"
    );

    // verify proves a multipart object from the CRC64NVME a HEAD reports (R2 keeps it;
    // here the proxy adds it to s3s-fs's answer): the right one passes, another fails.
    let crc_static: &'static str = Box::leak(crc.clone().into_boxed_str());
    for (stated, code) in [(crc_static, 0), ("AAAAAAAAAAA=", 1)] {
        proxy.inject(
            "HEAD",
            "/media/big/video.mp4",
            "",
            1,
            common::proxy::Fault::SetReplyHeader("x-amz-checksum-crc64nvme", stated),
        );
        let verify = via_proxy(work.path(), &proxy)
            .arg("verify")
            .output()
            .unwrap();
        assert_exit(&verify, code);
        if code == 1 {
            let text = String::from_utf8_lossy(&verify.stdout);
            assert!(
                text.contains("big/video.mp4") && text.contains("CRC64NVME differs"),
                "{text}"
            );
        }
    }

    // The bytes R2 holds are the bytes read.
    let client = s3_client(&r2.endpoint());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let got = rt.block_on(get_bytes(&client, "media", "small/07.bin"));
    assert_eq!(got, bytes_for(7, 1007));

    // Resumed: nothing is sent again. R2's listing carries each ETag, which proves the
    // record without a request; s3s-fs lists none, so each object costs one HEAD here.
    let (puts, heads) = (
        proxy.count("PUT", "/media/"),
        proxy.count("HEAD", "/media/"),
    );
    assert_exit(&run(), 0);
    assert_eq!(
        proxy.count("PUT", "/media/"),
        puts,
        "nothing uploaded again"
    );
    assert_eq!(proxy.count("HEAD", "/media/"), heads + records.len());
}

/// On the strict R2 server, which states the stored checksum as R2 does: one PUT per
/// small object, Create + parts + Complete per large one, no HEAD at all (Complete's
/// CRC64NVME is the proof); a resume lists ETags and sends no request per object.
#[test]
fn on_the_strict_r2_every_object_is_proven_by_its_response() {
    let r2 = StrictR2::start();
    r2.create_bucket("media");
    let proxy = common::proxy::FaultProxy::start(r2.port);
    let small = 25;
    let src = small_files_and_a_video(small, 11 * 1024 * 1024 + 7);
    let work = tempfile::tempdir().unwrap();
    let run = || run_with_5mib_parts(work.path(), &proxy, src.path());
    assert_exit(&run(), 0);
    assert_eq!(proxy.count("PUT", "/media/small/"), small as usize);
    assert_eq!(
        proxy.count("PUT", "/media/big/video.mp4?"),
        3,
        "three parts"
    );
    assert_eq!(
        proxy.count("POST", "/media/big/video.mp4?"),
        2,
        "Create, Complete"
    );
    assert_eq!(
        proxy.count("HEAD", "/media/"),
        0,
        "every object proven by its response"
    );
    for r in manifest_objects(&work.path().join("r2migrate-manifest.jsonl")) {
        assert_eq!(
            (&r["status"], &r["verified_by"]),
            (&"copied".into(), &"response".into()),
            "{r}"
        );
    }
    let before = proxy.requests().len();
    assert_exit(&run(), 0);
    let resumed: Vec<String> = proxy.requests()[before..]
        .iter()
        .filter(|r| !r.starts_with("GET /media?") && !r.starts_with("GET /media/?"))
        .cloned()
        .collect();
    assert!(
        resumed.len() <= 2,
        "a resume sends only listings and the access probe: {resumed:?}"
    );
}

/// A response that states another SHA-256 than the bytes sent fails the object, and the
/// write is undone — never recorded `copied`.
#[test]
fn a_put_response_with_another_checksum_fails_the_object() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let proxy = common::proxy::FaultProxy::start(r2.port);
    proxy.inject(
        "PUT",
        "/media/a.txt",
        "",
        1,
        common::proxy::Fault::SetReplyHeader(
            "x-amz-checksum-sha256",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ),
    );
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "a.txt", b"alpha");
    write(src.path(), "b.txt", b"beta");
    let work = tempfile::tempdir().unwrap();
    let out = run_via_proxy(work.path(), &proxy, src.path(), "r2://media/");
    assert_exit(&out, 1);
    let records = manifest_objects(&work.path().join("r2migrate-manifest.jsonl"));
    let a = records.iter().find(|r| r["source_key"] == "a.txt").unwrap();
    assert_eq!(a["status"], "failed", "{a}");
    assert!(
        a["error"].as_str().unwrap().contains("another checksum"),
        "{a}"
    );
    let b = records.iter().find(|r| r["source_key"] == "b.txt").unwrap();
    assert_eq!(b["verified_by"], "response", "{b}");
    let client = s3_client(&r2.endpoint());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let keys = rt.block_on(list_keys(&client, "media", ""));
    assert_eq!(keys, vec!["b.txt".to_string()], "the bad write was undone");
}

/// Where Complete states no checksum, the HEAD after upload decides, by the same verdict
/// `verify` uses: a HEAD that reports another full-object CRC64NVME fails the object,
/// and the write is undone.
#[test]
fn a_head_after_upload_with_another_crc64nvme_fails_the_object() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let proxy = common::proxy::FaultProxy::start(r2.port);
    proxy.inject(
        "HEAD",
        "/media/big.bin",
        "",
        1,
        common::proxy::Fault::SetReplyHeader("x-amz-checksum-crc64nvme", "AAAAAAAAAAA="),
    );
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "big.bin", &bytes_for(5, 6 * 1024 * 1024 + 3));
    write(src.path(), "small.txt", b"small");
    let work = tempfile::tempdir().unwrap();
    let out = run_with_5mib_parts(work.path(), &proxy, src.path());
    assert_exit(&out, 1);
    let records = manifest_objects(&work.path().join("r2migrate-manifest.jsonl"));
    let big = records
        .iter()
        .find(|r| r["source_key"] == "big.bin")
        .unwrap();
    assert_eq!(big["status"], "failed", "{big}");
    let why = big["error"].as_str().unwrap();
    assert!(
        why.contains("big.bin") && why.contains("after upload, CRC64NVME differs"),
        "{big}"
    );
    let client = s3_client(&r2.endpoint());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let keys = rt.block_on(list_keys(&client, "media", ""));
    assert_eq!(
        keys,
        vec!["small.txt".to_string()],
        "the bad write was undone"
    );
}

/// `small` files of about 1 KB under `small/`, and `big/video.mp4` of `video` bytes.
fn small_files_and_a_video(small: u64, video: usize) -> tempfile::TempDir {
    let src = tempfile::tempdir().unwrap();
    for i in 0..small {
        write(
            src.path(),
            &format!("small/{i:02}.bin"),
            &bytes_for(i, 1000 + i as usize),
        );
    }
    write(src.path(), "big/video.mp4", &bytes_for(99, video));
    src
}

/// `run --json` from `src` into r2://media/ through the proxy, multipart from 5 MiB on,
/// in 5 MiB parts (the smallest R2 takes).
fn run_with_5mib_parts(
    work: &std::path::Path,
    proxy: &common::proxy::FaultProxy,
    src: &std::path::Path,
) -> std::process::Output {
    via_proxy(work, proxy)
        .args(["run", "--json", "--from"])
        .arg(src)
        .args(["--to", "r2://media/", "--multipart-threshold", "5MiB"])
        .args(["--part-size", "5MiB"])
        .output()
        .unwrap()
}
