//! One checksum scheme per multipart upload (SPEC "Multipart checksums"): created with
//! algorithm CRC64NVME and type FULL_OBJECT, each part sent with its own CRC64NVME, and
//! completed with the whole object's CRC64NVME as FULL_OBJECT, each part's checksum in
//! the part list. R2 allows CRC64NVME only as FULL_OBJECT and SHA-256 only as COMPOSITE
//! (its S3 API compatibility page, "Checksum Types"); in S3's model the algorithm and type
//! are fixed at CreateMultipartUpload and a Complete that names another is refused (AWS,
//! "Checking object integrity"). The requests are read off the proxy in front of the
//! server playing R2, so this holds whatever that server checks.

mod common;

use common::*;

const MIB: usize = 1024 * 1024;

fn crc64nvme_b64(bytes: &[u8]) -> String {
    let mut h = r2migrate::checksum::Hasher::new();
    h.update(bytes);
    r2migrate::checksum::crc64nvme_b64(h.finish().crc64nvme)
}

#[test]
fn a_multipart_upload_keeps_one_checksum_scheme_from_create_to_complete() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let proxy = common::proxy::FaultProxy::start(r2.port);
    let src = tempfile::tempdir().unwrap();
    let body = bytes_for(12, 12 * MIB + 3);
    write(src.path(), "big.bin", &body);
    write(src.path(), "small.txt", b"one PUT");
    let work = tempfile::tempdir().unwrap();
    let out = via_proxy(work.path(), &proxy)
        .args(["run", "--json", "--from"])
        .arg(src.path())
        .args(["--to", "r2://media/", "--multipart-threshold", "5MiB"])
        .args(["--part-size", "5MiB"])
        .output()
        .unwrap();
    assert_exit(&out, 0);

    // CreateMultipartUpload fixes the algorithm and the type.
    let create = |name| proxy.header_values("POST", "/media/big.bin?uploads", name);
    assert_eq!(create("x-amz-checksum-algorithm"), vec!["CRC64NVME"]);
    assert_eq!(create("x-amz-checksum-type"), vec!["FULL_OBJECT"]);

    // Each part carries its own CRC64NVME, and nothing of another algorithm.
    let parts: Vec<&[u8]> = body.chunks(5 * MIB).collect();
    assert_eq!(parts.len(), 3);
    for (i, part) in parts.iter().enumerate() {
        let fragment = format!("partNumber={}&", i + 1);
        assert_eq!(
            proxy.header_values("PUT", &fragment, "x-amz-checksum-crc64nvme"),
            vec![crc64nvme_b64(part)],
            "part {}",
            i + 1
        );
        for other in ["sha256", "sha1", "crc32", "crc32c"] {
            let name = format!("x-amz-checksum-{other}");
            assert!(
                proxy.header_values("PUT", &fragment, &name).is_empty(),
                "part {} also sent {name}",
                i + 1
            );
        }
    }

    // Complete names the same type, with the whole object's value of the same algorithm,
    // and lists each part with its CRC64NVME.
    let complete = |name| proxy.header_values("POST", "/media/big.bin?uploadId", name);
    assert_eq!(
        complete("x-amz-checksum-crc64nvme"),
        vec![crc64nvme_b64(&body)]
    );
    assert_eq!(complete("x-amz-checksum-type"), vec!["FULL_OBJECT"]);
    assert!(complete("x-amz-checksum-sha256").is_empty());
    let list = proxy.small_bodies("POST", "/media/big.bin?uploadId");
    assert_eq!(list.len(), 1, "one Complete");
    for (i, part) in parts.iter().enumerate() {
        let entry = format!(
            "<ChecksumCRC64NVME>{}</ChecksumCRC64NVME>",
            crc64nvme_b64(part)
        );
        assert!(list[0].contains(&entry), "part {} in {}", i + 1, list[0]);
    }
    assert!(!list[0].contains("ChecksumSHA256"), "{}", list[0]);

    // A single PUT keeps SHA-256.
    let put = proxy.header_values("PUT", "/media/small.txt", "x-amz-checksum-sha256");
    assert_eq!(put.len(), 1);

    // The manifest keeps the whole object's SHA-256 and the CRC64NVME sent.
    let records = manifest_objects(&work.path().join("r2migrate-manifest.jsonl"));
    let big = records
        .iter()
        .find(|r| r["source_key"] == "big.bin")
        .unwrap();
    assert_eq!(big["status"], "copied", "{big}");
    assert_eq!(big["sha256"], sha256_hex(&body));
    assert_eq!(big["target_crc64nvme"], crc64nvme_b64(&body).as_str());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let got = rt.block_on(get_bytes(&s3_client(&r2.endpoint()), "media", "big.bin"));
    assert!(got == body, "the object is whole");
}

/// For an S3-compatible store that refuses full-object CRC64NVME checksums:
/// `--multipart-checksum md5` sends each part with its Content-MD5 and nothing else, and
/// proves the object by the multipart ETag Complete answers. `verify` then passes.
#[test]
fn multipart_checksum_md5_sends_content_md5_and_proves_by_the_etag() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let proxy = common::proxy::FaultProxy::start(r2.port);
    let src = tempfile::tempdir().unwrap();
    let body = bytes_for(13, 11 * MIB + 5);
    write(src.path(), "big.bin", &body);
    let work = tempfile::tempdir().unwrap();
    let out = via_proxy(work.path(), &proxy)
        .args(["run", "--json", "--from"])
        .arg(src.path())
        .args(["--to", "r2://media/", "--multipart-threshold", "5MiB"])
        .args(["--part-size", "5MiB", "--multipart-checksum", "md5"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let create = |name| proxy.header_values("POST", "/media/big.bin?uploads", name);
    assert!(create("x-amz-checksum-algorithm").is_empty());
    assert!(create("x-amz-checksum-type").is_empty());
    let md5s: Vec<[u8; 16]> = body.chunks(5 * MIB).map(r2migrate::checksum::md5).collect();
    for (i, md5) in md5s.iter().enumerate() {
        let fragment = format!("partNumber={}&", i + 1);
        assert_eq!(
            proxy.header_values("PUT", &fragment, "content-md5"),
            vec![r2migrate::checksum::b64(md5)]
        );
        assert!(proxy
            .header_values("PUT", &fragment, "x-amz-checksum-crc64nvme")
            .is_empty());
    }
    let complete = |name| proxy.header_values("POST", "/media/big.bin?uploadId", name);
    assert!(complete("x-amz-checksum-crc64nvme").is_empty());
    assert!(complete("x-amz-checksum-type").is_empty());
    let records = manifest_objects(&work.path().join("r2migrate-manifest.jsonl"));
    assert_eq!(records[0]["status"], "copied");
    assert_eq!(
        records[0]["target_etag"],
        r2migrate::checksum::multipart_etag(&md5s).as_str()
    );
    let verify = via_proxy(work.path(), &proxy)
        .arg("verify")
        .output()
        .unwrap();
    assert_exit(&verify, 0);

    // A scheme that does not exist is a usage error.
    let bad = via_proxy(work.path(), &proxy)
        .args(["run", "--from"])
        .arg(src.path())
        .args(["--to", "r2://media/", "--multipart-checksum", "sha256"])
        .output()
        .unwrap();
    assert_exit(&bad, 2);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("crc64nvme"));
}

/// The rehearsal target enforces R2's scheme as R2 does, so a rehearsal cannot pass what
/// R2 would refuse: a run into a local directory goes through the same parts, and both
/// schemes land whole.
#[test]
fn the_rehearsal_target_takes_both_schemes() {
    let src = tempfile::tempdir().unwrap();
    let body = bytes_for(14, 10 * MIB + 1);
    write(src.path(), "v/big.bin", &body);
    for scheme in ["crc64nvme", "md5"] {
        let work = tempfile::tempdir().unwrap();
        let out = r2migrate(work.path())
            .args(["run", "--from"])
            .arg(src.path())
            .args(["--to", "./rehearsal", "--multipart-threshold", "5MiB"])
            .args(["--part-size", "5MiB", "--multipart-checksum", scheme])
            .output()
            .unwrap();
        assert_exit(&out, 0);
        assert!(std::fs::read(work.path().join("rehearsal/v/big.bin")).unwrap() == body);
        let verify = r2migrate(work.path())
            .args(["verify", "--deep"])
            .output()
            .unwrap();
        assert_exit(&verify, 0);
    }
}
