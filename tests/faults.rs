//! Faults injected by a loopback proxy between the tool and the servers: throttling and
//! server errors are retried; AccessDenied and corrupted bodies are not; a failing
//! multipart upload is aborted; connection resets are retried.

mod common;

use common::proxy::{Fault, FaultProxy};
use common::*;

fn source_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (k, v) in files {
        write(dir.path(), k, v);
    }
    dir
}

#[tokio::test]
async fn throttling_server_errors_and_resets_are_retried() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let proxy = FaultProxy::start(r2.port);
    proxy.inject("PUT", "/media/a.txt", "", 2, Fault::Reply(503, "SlowDown"));
    proxy.inject(
        "PUT",
        "/media/b.txt",
        "",
        1,
        Fault::Reply(429, "TooManyRequests"),
    );
    // A PUT whose response proves the upload needs no HEAD: the 500 goes on the PUT.
    proxy.inject(
        "PUT",
        "/media/c.txt",
        "",
        1,
        Fault::Reply(500, "InternalError"),
    );
    proxy.inject("PUT", "/media/d.txt", "", 1, Fault::Reset);
    let src = source_with(&[
        ("a.txt", b"a"),
        ("b.txt", b"b"),
        ("c.txt", b"c"),
        ("d.txt", b"d"),
    ]);
    let work = tempfile::tempdir().unwrap();
    let out = run_via_proxy(work.path(), &proxy, src.path(), "r2://media/");
    assert_exit(&out, 0);
    let doc = json_of(&out);
    assert_eq!(doc["counts"]["copied"], 4);
    assert!(doc["retries"].as_u64().unwrap() >= 5, "{doc}");
    assert_eq!(proxy.count("PUT", "/media/a.txt"), 3);
    assert_eq!(get_bytes(&r2.client(), "media", "a.txt").await, b"a");
}

#[tokio::test]
async fn access_denied_on_one_source_object_fails_it_alone() {
    let source = S3Server::start_with_keys("src-key", "src-secret");
    source.create_bucket("legacy");
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let client = s3_client_with(&source.endpoint(), "src-key", "src-secret");
    put_bytes(&client, "legacy", "open.txt", b"open").await;
    put_bytes(&client, "legacy", "secret.txt", b"locked").await;
    let proxy = FaultProxy::start(source.port);
    proxy.inject(
        "GET",
        "/legacy/secret.txt",
        "",
        100,
        Fault::Reply(403, "AccessDenied"),
    );
    let work = tempfile::tempdir().unwrap();
    let out = r2migrate_to(work.path(), &r2)
        .env("AWS_ACCESS_KEY_ID", "src-key")
        .env("AWS_SECRET_ACCESS_KEY", "src-secret")
        .args([
            "run",
            "--json",
            "--source-endpoint",
            &proxy.endpoint(),
            "--from",
            "s3://legacy/",
            "--to",
            "r2://media/",
        ])
        .output()
        .unwrap();
    assert_exit(&out, 1);
    let doc = json_of(&out);
    assert_eq!(doc["counts"]["copied"], 1);
    assert_eq!(doc["problems"][0]["source_key"], "secret.txt");
    assert!(doc["problems"][0]["error"]
        .as_str()
        .unwrap()
        .contains("AccessDenied"));
    assert_eq!(
        proxy.count("GET", "/legacy/secret.txt"),
        1,
        "a 4xx is never retried"
    );
    assert_eq!(
        list_keys(&r2.client(), "media", "").await,
        vec!["open.txt".to_string()]
    );
}

#[tokio::test]
async fn a_body_corrupted_on_the_way_is_rejected_by_its_checksum_and_resent() {
    // The strict server stores nothing of a refused PUT, as R2 does (s3s-fs keeps the
    // body, which the conditional resend would then meet as someone else's object).
    let r2 = StrictR2::start();
    r2.create_bucket("media");
    let proxy = FaultProxy::start(r2.port);
    proxy.inject("PUT", "/media/flip.bin", "", 1, Fault::FlipBodyByte);
    let body = bytes_for(3, 2048);
    let src = source_with(&[("flip.bin", &body), ("fine.bin", b"fine")]);
    let work = tempfile::tempdir().unwrap();
    let out = run_via_proxy(work.path(), &proxy, src.path(), "r2://media/");
    let doc = json_of(&out);
    assert_eq!(out.status.code(), Some(0), "{doc}");
    // The server refused the corrupted body (its SHA-256 did not match the header we
    // sent), the pacer resent it from our buffer, and the stored bytes are the source's.
    assert_eq!(proxy.count("PUT", "/media/flip.bin"), 2);
    assert!(doc["retries"].as_u64().unwrap() >= 1);
    // The checksum alone caught it: the payload is not hashed a second time to sign it.
    assert_eq!(
        proxy.header_values("PUT", "/media/flip.bin", "x-amz-content-sha256"),
        vec!["UNSIGNED-PAYLOAD"; 2]
    );
    assert_eq!(get_bytes(&r2.client(), "media", "flip.bin").await, body);
    r2migrate_to(work.path(), &r2)
        .args(["verify", "--deep"])
        .assert()
        .code(0);
}

#[tokio::test]
async fn a_failing_multipart_upload_is_aborted() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let proxy = FaultProxy::start(r2.port);
    // Part 2 always fails: retries run out, the upload must be aborted.
    proxy.inject(
        "PUT",
        "/media/big.bin",
        "partNumber=2",
        100,
        Fault::Reply(500, "InternalError"),
    );
    let src = source_with(&[("big.bin", &bytes_for(4, 11 * 1024 * 1024))]);
    let work = tempfile::tempdir().unwrap();
    let out = via_proxy(work.path(), &proxy)
        .args([
            "run",
            "--json",
            "--retries",
            "1",
            "--multipart-threshold",
            "5MiB",
            "--part-size",
            "5MiB",
            "--from",
        ])
        .arg(src.path())
        .args(["--to", "r2://media/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_of(&out)["counts"]["failed"], 1);
    assert!(
        proxy.count("DELETE", "/media/big.bin") >= 1,
        "AbortMultipartUpload was called"
    );
    assert_eq!(r2.open_uploads(), 0, "no multipart upload left open");
    assert!(list_keys(&r2.client(), "media", "").await.is_empty());
}
