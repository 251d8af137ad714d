//! The strict R2 test server enforces R2's documented rules (crates/r2-strict/README.md
//! lists each with its source): checked here with a plain S3 client, then r2migrate runs
//! against it end to end. The first test is the bug this server exists to catch: a
//! SHA-256 (COMPOSITE) upload completed with a FULL_OBJECT CRC64NVME, which every large
//! object of r2migrate sent until December 2026, is refused here as S3 and R2 refuse it.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumType, CompletedMultipartUpload, CompletedPart, StorageClass,
};
use common::*;

const MIB: usize = 1024 * 1024;

fn code<E: aws_sdk_s3::error::ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("").to_string()
}

fn b64(bytes: &[u8]) -> String {
    r2migrate::checksum::b64(bytes)
}

fn crc(bytes: &[u8]) -> String {
    r2migrate::checksum::crc64nvme_b64(r2migrate::checksum::crc64nvme(bytes))
}

#[tokio::test]
async fn a_composite_upload_completed_as_full_object_is_refused() {
    let r2 = StrictR2::start();
    r2.create_bucket("bkt");
    let c = r2.client();
    let body = bytes_for(1, 6 * MIB);
    let up = c
        .create_multipart_upload()
        .bucket("bkt")
        .key("k")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let sha = b64(&r2migrate::checksum::sha256(&body));
    let part = c
        .upload_part()
        .bucket("bkt")
        .key("k")
        .upload_id(id)
        .part_number(1)
        .checksum_sha256(&sha)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let done = CompletedMultipartUpload::builder()
        .parts(
            CompletedPart::builder()
                .part_number(1)
                .set_e_tag(part.e_tag().map(str::to_string))
                .checksum_sha256(&sha)
                .build(),
        )
        .build();
    let complete = |kind: Option<ChecksumType>, crc64: Option<String>| {
        c.complete_multipart_upload()
            .bucket("bkt")
            .key("k")
            .upload_id(id)
            .multipart_upload(done.clone())
            .set_checksum_type(kind)
            .set_checksum_crc64_nvme(crc64)
            .send()
    };
    let e = complete(Some(ChecksumType::FullObject), Some(crc(&body)))
        .await
        .unwrap_err();
    assert_eq!(code(&e), "BadDigest", "another type than Create's");
    let e = complete(None, Some(crc(&body))).await.unwrap_err();
    assert_eq!(code(&e), "InvalidRequest", "a value of another algorithm");
    // R2's table: SHA-256 is COMPOSITE only, CRC64NVME FULL_OBJECT only.
    let e = c
        .create_multipart_upload()
        .bucket("bkt")
        .key("k2")
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .checksum_type(ChecksumType::Composite)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequest");
    // The same upload completed as it was created lands, with a composite checksum.
    let ok = complete(None, None).await.unwrap();
    assert!(ok.checksum_sha256().unwrap().ends_with("-1"), "{ok:?}");
}

#[tokio::test]
async fn puts_are_checked_and_refused_puts_store_nothing() {
    let r2 = StrictR2::start();
    r2.create_bucket("bkt");
    let c = r2.client();
    let wrong = c
        .put_object()
        .bucket("bkt")
        .key("bad")
        .checksum_sha256(b64(&[7u8; 32]))
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&wrong), "BadDigest");
    let md5 = c
        .put_object()
        .bucket("bkt")
        .key("bad")
        .content_md5(b64(&[1u8; 16]))
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&md5), "BadDigest");
    assert!(head(&c, "bkt", "bad").await.is_none(), "nothing stored");
    // Metadata over 8,192 bytes, storage classes R2 lacks, tagging.
    let big = "x".repeat(8200);
    let e = c
        .put_object()
        .bucket("bkt")
        .key("m")
        .metadata("a", &big)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "MetadataTooLarge");
    let e = c
        .put_object()
        .bucket("bkt")
        .key("g")
        .storage_class(StorageClass::Glacier)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidStorageClass");
    let e = c
        .put_object()
        .bucket("bkt")
        .key("t")
        .tagging("a=b")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NotImplemented");
    // ACLs: `private` (what every R2 bucket is) is taken, another canned ACL is not.
    let e = c
        .put_object()
        .bucket("bkt")
        .key("acl")
        .acl(aws_sdk_s3::types::ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NotImplemented");
    c.put_object()
        .bucket("bkt")
        .key("acl")
        .acl(aws_sdk_s3::types::ObjectCannedAcl::Private)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("x-amz-acl: private is taken");
    // STANDARD_IA is stored and shown.
    c.put_object()
        .bucket("bkt")
        .key("ia")
        .storage_class(StorageClass::StandardIa)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let h = head(&c, "bkt", "ia").await.unwrap();
    assert_eq!(h.storage_class(), Some(&StorageClass::StandardIa));
    // A conditional write that does not hold, and a second write within a second.
    let e = c
        .put_object()
        .bucket("bkt")
        .key("ia")
        .if_none_match("*")
        .body(ByteStream::from_static(b"y"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "PreconditionFailed");
    let e = c
        .put_object()
        .bucket("bkt")
        .key("ia")
        .body(ByteStream::from_static(b"y"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(429));
    // Keys: 1,024 bytes at most; NFC-normalised, so either spelling reads the object.
    let long = "k".repeat(1025);
    let e = c
        .put_object()
        .bucket("bkt")
        .key(&long)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "KeyTooLongError");
    put_bytes(&c, "bkt", "cafe\u{301}.txt", b"nfd").await;
    assert_eq!(get_bytes(&c, "bkt", "caf\u{e9}.txt").await, b"nfd");
}

#[test]
fn wrong_credentials_are_refused() {
    let r2 = StrictR2::start();
    r2.create_bucket("bkt");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = s3_client_with(&r2.endpoint(), ACCESS_KEY, "not-the-secret");
    let e = rt
        .block_on(c.list_objects_v2().bucket("bkt").send())
        .unwrap_err();
    assert_eq!(code(&e), "SignatureDoesNotMatch");
}

/// r2migrate end to end on the strict server, with sizes around the multipart
/// boundaries: every object lands, `verify` and `verify --deep` pass.
#[test]
fn a_run_around_the_multipart_boundaries_is_accepted_and_verified() {
    let r2 = StrictR2::start();
    r2.create_bucket("media");
    let src = tempfile::tempdir().unwrap();
    let sizes = [
        0,
        1,
        5 * MIB - 1,
        5 * MIB,
        5 * MIB + 1,
        10 * MIB,
        10 * MIB + 1,
        15 * MIB + 7,
    ];
    for (i, size) in sizes.iter().enumerate() {
        write(
            src.path(),
            &format!("s/{i}.bin"),
            &bytes_for(i as u64, *size),
        );
    }
    let work = tempfile::tempdir().unwrap();
    let env = |cmd: &mut assert_cmd::Command| {
        cmd.env("R2_ENDPOINT_URL", r2.endpoint())
            .env("R2_ACCESS_KEY_ID", ACCESS_KEY)
            .env("R2_SECRET_ACCESS_KEY", SECRET_KEY);
    };
    let mut run = r2migrate(work.path());
    env(&mut run);
    let out = run
        .args(["run", "--from"])
        .arg(src.path())
        .args([
            "--to",
            "r2://media/",
            "--multipart-threshold",
            "5MiB",
            "--part-size",
            "5MiB",
        ])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let records = manifest_objects(&work.path().join("r2migrate-manifest.jsonl"));
    assert_eq!(records.len(), sizes.len());
    for r in &records {
        // The strict server states the checksum it stored: every upload proven by the
        // response, no HEAD.
        assert_eq!(r["verified_by"], "response", "{r}");
    }
    for deep in [false, true] {
        let mut verify = r2migrate(work.path());
        env(&mut verify);
        verify.arg("verify");
        if deep {
            verify.arg("--deep");
        }
        assert_exit(&verify.output().unwrap(), 0);
    }
    assert_eq!(r2.open_uploads(), 0);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// GET of an object stored with `Content-Encoding: gzip`, as the SDK sends it (no
/// Accept-Encoding) or saying `Accept-Encoding: gzip`.
async fn get_encoded(c: &aws_sdk_s3::Client, bucket: &str, key: &str, gzip: bool) -> Vec<u8> {
    let out = c
        .get_object()
        .bucket(bucket)
        .key(key)
        .customize()
        .mutate_request(move |req| {
            if gzip {
                req.headers_mut().insert("accept-encoding", "gzip");
            }
        })
        .send()
        .await
        .unwrap();
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

/// R2 serves an object stored with `Content-Encoding: gzip` decompressed unless the GET
/// accepts gzip (rclone#8137). r2migrate reads sources and the target asking for the
/// stored bytes: the copy is the gzip bytes with their header, and `verify --deep`
/// hashes them. Before, the source read came back decompressed: the run refused the
/// object (its MD5 ETag is the stored bytes'), and `verify --deep` would have failed.
#[tokio::test]
async fn gzip_encoded_objects_are_copied_and_verified_as_stored() {
    let source = StrictR2::start();
    source.create_bucket("legacy");
    let r2 = StrictR2::start();
    r2.create_bucket("media");
    let text = "console.log('r2migrate');\n".repeat(2000);
    let stored = gzip(text.as_bytes());
    let c = source.client();
    c.put_object()
        .bucket("legacy")
        .key("site/app.js")
        .content_encoding("gzip")
        .content_type("text/javascript")
        .body(ByteStream::from(stored.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        get_encoded(&c, "legacy", "site/app.js", false).await,
        text.as_bytes(),
        "decompressed for a client without gzip"
    );
    assert_eq!(
        get_encoded(&c, "legacy", "site/app.js", true).await,
        stored,
        "as stored for a client with gzip"
    );

    let work = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| {
        let mut cmd = r2migrate_to(work.path(), &r2);
        cmd.env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", source.endpoint())
            .args(args)
            .output()
            .unwrap()
    };
    let out = cmd(&[
        "run",
        "--json",
        "--from",
        "s3://legacy/site",
        "--to",
        "r2://media/",
    ]);
    assert_exit(&out, 0);
    assert_eq!(json_of(&out)["counts"]["copied"], 1);
    let t = r2.client();
    assert_eq!(get_encoded(&t, "media", "app.js", true).await, stored);
    let h = head(&t, "media", "app.js").await.unwrap();
    assert_eq!(h.content_encoding(), Some("gzip"));
    assert_eq!(h.content_length(), Some(stored.len() as i64));
    for flag in ["--deep", "--against-source"] {
        let v = cmd(&["verify", flag, "--json"]);
        assert_exit(&v, 0);
        assert_eq!(json_of(&v)["checked"], 1, "verify {flag}");
    }
}

/// ListParts (R2 implements it; resume reads it): the parts so far, in order, with ETag,
/// size and the upload's checksum, in pages; an unknown upload is NoSuchUpload.
#[tokio::test]
async fn list_parts_shows_each_part_uploaded() {
    let r2 = StrictR2::start();
    r2.create_bucket("bkt");
    let c = r2.client();
    let up = c
        .create_multipart_upload()
        .bucket("bkt")
        .key("big")
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .checksum_type(ChecksumType::FullObject)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let parts: Vec<Vec<u8>> = (0..3).map(|i| bytes_for(40 + i, 5 * MIB)).collect();
    let mut etags = Vec::new();
    for (n, body) in [(3, &parts[2]), (1, &parts[0]), (2, &parts[1])] {
        let out = c
            .upload_part()
            .bucket("bkt")
            .key("big")
            .upload_id(id)
            .part_number(n)
            .checksum_crc64_nvme(crc(body))
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        etags.push((n, out.e_tag().unwrap().to_string()));
    }
    etags.sort();
    let page = c
        .list_parts()
        .bucket("bkt")
        .key("big")
        .upload_id(id)
        .max_parts(2)
        .send()
        .await
        .unwrap();
    assert_eq!(page.is_truncated(), Some(true));
    let mut listed: Vec<_> = page.parts().to_vec();
    let rest = c
        .list_parts()
        .bucket("bkt")
        .key("big")
        .upload_id(id)
        .part_number_marker(page.next_part_number_marker().unwrap().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.is_truncated(), Some(false));
    listed.extend(rest.parts().to_vec());
    assert_eq!(listed.len(), 3);
    for (i, p) in listed.iter().enumerate() {
        assert_eq!(p.part_number(), Some(i as i32 + 1));
        assert_eq!(p.e_tag(), Some(etags[i].1.as_str()));
        assert_eq!(p.size(), Some(5 * MIB as i64));
        assert_eq!(p.checksum_crc64_nvme(), Some(crc(&parts[i]).as_str()));
    }
    let e = c
        .list_parts()
        .bucket("bkt")
        .key("big")
        .upload_id("no-such-upload")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
}

/// Every key S3 stores is stored and listed (`a//b`, a leading `/`, `x` beside `x/y`,
/// a 1,024-byte UTF-8 key); listings come in pages of at most 1,000 however many are
/// asked for, with continuation tokens, folders by delimiter and `encoding-type=url`.
#[tokio::test]
async fn keys_s3_stores_are_kept_and_listed_in_pages_of_at_most_1000() {
    let r2 = StrictR2::start();
    r2.create_bucket("bkt");
    let c = r2.client();
    let long = format!("{}{}", "é".repeat(511), "ab"); // 1,024 bytes
    assert_eq!(long.len(), 1024);
    let odd = [
        "a//b",
        "/lead",
        "x",
        "x/y",
        "sp ace+plus%.txt",
        long.as_str(),
    ];
    for k in odd {
        put_bytes(&c, "bkt", k, k.as_bytes()).await;
    }
    for k in odd {
        assert_eq!(get_bytes(&c, "bkt", k).await, k.as_bytes(), "{k}");
    }
    let mut want: Vec<String> = odd.iter().map(|k| k.to_string()).collect();
    for i in 0..1005 {
        let k = format!("many/{i:04}");
        put_bytes(&c, "bkt", &k, b"m").await;
        want.push(k);
    }
    want.sort();
    let first = c
        .list_objects_v2()
        .bucket("bkt")
        .max_keys(5000)
        .send()
        .await
        .unwrap();
    assert_eq!(first.key_count(), Some(1000), "capped at 1,000");
    assert_eq!(first.is_truncated(), Some(true));
    assert!(first
        .contents()
        .iter()
        .all(|o| o.e_tag().is_some() && o.storage_class().is_some()));
    assert_eq!(list_keys(&c, "bkt", "").await, want);
    let folders = c
        .list_objects_v2()
        .bucket("bkt")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let prefixes: Vec<&str> = folders
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["/", "a/", "many/", "x/"]);
    // encoding-type=url: keys come percent-encoded (the SDK hands them on as sent).
    let encoded = c
        .list_objects_v2()
        .bucket("bkt")
        .prefix("sp ")
        .encoding_type(aws_sdk_s3::types::EncodingType::Url)
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = encoded.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["sp%20ace%2Bplus%25.txt"]);
}

/// The server counts what it answers, by kind, as the benchmarks read it: a run of three
/// small files is one listing of the target and three PUTs, nothing more.
#[test]
fn the_server_counts_the_requests_it_answers() {
    let r2 = StrictR2::start();
    r2.create_bucket("media");
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    for i in 0..3 {
        write(&src, &format!("f{i}.txt"), &bytes_for(i, 100));
    }
    let before = r2.requests();
    let out = run_to_r2(work.path(), &r2, &src, "r2://media/");
    assert_exit(&out, 0);
    let after = r2.requests();
    let n = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    assert_eq!(n("PUT"), 3, "{after:?}");
    assert!((1..=2).contains(&n("LIST")), "{after:?}"); // access check + the target's listing
    assert_eq!(n("GET") + n("POST") + n("DELETE"), 0, "{after:?}");
}
