//! Stalls and faults in the middle of a transfer, from a proxy in front of real servers:
//! a server that accepts a request and never answers, a reply whose body stops halfway
//! or is cut by a reset, and 503s on a source's GET. `--io-timeout` abandons what moves
//! no byte; a body cut short is read again from the start; nothing is ever recorded
//! `copied` with bytes other than the source's.

mod common;

use std::time::{Duration, Instant};

use common::proxy::{Fault, FaultProxy};
use common::*;

const SRC_KEY: &str = "src-key";
const SRC_SECRET: &str = "src-secret";

/// An S3 source holding `objects`, reached through a fault proxy.
async fn s3_behind_proxy(objects: &[(&str, Vec<u8>)]) -> (S3Server, FaultProxy) {
    let source = S3Server::start_with_keys(SRC_KEY, SRC_SECRET);
    source.create_bucket("legacy");
    let client = s3_client_with(&source.endpoint(), SRC_KEY, SRC_SECRET);
    for (k, v) in objects {
        put_bytes(&client, "legacy", k, v).await;
    }
    let proxy = FaultProxy::start(source.port);
    (source, proxy)
}

fn from_s3(work: &std::path::Path, r2: &dyn PlaysR2, proxy: &FaultProxy) -> assert_cmd::Command {
    let mut cmd = r2migrate_to(work, r2);
    cmd.env("AWS_ACCESS_KEY_ID", SRC_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SRC_SECRET)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", proxy.endpoint());
    cmd
}

/// Every object in R2 holds exactly the bytes given, and a deep verify agrees.
async fn assert_landed(work: &std::path::Path, r2: &dyn PlaysR2, objects: &[(&str, Vec<u8>)]) {
    for (k, v) in objects {
        let got = get_bytes(&r2.r2_client(), "media", k).await;
        assert!(
            got == *v,
            "{k}: {} bytes in R2, not the source's",
            got.len()
        );
    }
    let out = r2migrate_to(work, r2)
        .args(["verify", "--deep", "--json"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
}

/// On R2 played by the strict server and by s3s-fs.
#[tokio::test]
async fn requests_that_hang_or_stall_on_either_side_are_abandoned_and_retried() {
    for (name, r2) in r2_stand_ins() {
        eprintln!("stalls on {name}");
        hang_and_stall(r2.as_ref()).await;
    }
}

async fn hang_and_stall(r2: &dyn PlaysR2) {
    let objects = vec![
        ("hang-get.bin", bytes_for(1, 70_000)),
        ("stall-body.bin", bytes_for(2, 300_000)),
        ("hang-put.bin", bytes_for(3, 50_000)),
        ("calm.bin", bytes_for(4, 10)),
    ];
    let (_source, src_proxy) = s3_behind_proxy(&objects).await;
    // Source side: a GET never answered, and a GET whose body stops halfway.
    src_proxy.inject("GET", "/legacy/hang-get.bin", "", 1, Fault::Hang);
    src_proxy.inject(
        "GET",
        "/legacy/stall-body.bin",
        "",
        1,
        Fault::StallReplyBody,
    );
    // R2 side: a PUT accepted and never answered.
    let r2_proxy = FaultProxy::start(r2.r2_port());
    r2_proxy.inject("PUT", "/media/hang-put.bin", "", 1, Fault::Hang);
    let work = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = from_s3(work.path(), r2, &src_proxy)
        .env("R2_ENDPOINT_URL", r2_proxy.endpoint())
        .args(["run", "--json", "--io-timeout", "2s"])
        .args(["--from", "s3://legacy/", "--to", "r2://media/"])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_exit(&out, 0);
    let doc = json_of(&out);
    assert_eq!(doc["counts"]["copied"], 4, "{doc}");
    assert!(doc["retries"].as_u64().unwrap() >= 3, "{doc}");
    // Three stalls of 2 s each, in parallel or not: well under the 60 s default.
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert!(src_proxy.count("GET", "/legacy/hang-get.bin") >= 2);
    assert!(src_proxy.count("GET", "/legacy/stall-body.bin") >= 2);
    assert_eq!(r2_proxy.count("PUT", "/media/hang-put.bin"), 2);
    assert_landed(work.path(), r2, &objects).await;
}

#[tokio::test]
async fn an_s3_body_cut_halfway_or_refused_with_503_is_read_again_from_the_start() {
    // One object above the 5 MiB multipart threshold: its parts come from ranged GETs.
    let objects = vec![
        ("cut.bin", bytes_for(5, 400_000)),
        ("busy.bin", bytes_for(6, 3_000)),
        ("big/cut-multipart.bin", bytes_for(7, 6 * 1024 * 1024 + 17)),
    ];
    let (_source, proxy) = s3_behind_proxy(&objects).await;
    let r2 = StrictR2::start();
    r2.create_bucket("media");
    proxy.inject("GET", "/legacy/cut.bin", "", 2, Fault::CutReplyBody);
    proxy.inject(
        "GET",
        "/legacy/busy.bin",
        "",
        2,
        Fault::Reply(503, "SlowDown"),
    );
    proxy.inject(
        "GET",
        "/legacy/big/cut-multipart.bin",
        "",
        1,
        Fault::CutReplyBody,
    );
    let work = tempfile::tempdir().unwrap();
    let out = from_s3(work.path(), &r2, &proxy)
        .args([
            "run",
            "--json",
            "--from",
            "s3://legacy/",
            "--to",
            "r2://media/",
        ])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let doc = json_of(&out);
    assert_eq!(doc["counts"]["copied"], 3, "{doc}");
    assert!(proxy.count("GET", "/legacy/cut.bin") >= 3);
    assert!(proxy.count("GET", "/legacy/busy.bin") >= 3);
    assert_landed(work.path(), &r2, &objects).await;
    // Each record's SHA-256 is the source's, not that of half a body.
    for rec in manifest_objects(&work.path().join("r2migrate-manifest.jsonl")) {
        let key = rec["source_key"].as_str().unwrap();
        let want = &objects.iter().find(|(k, _)| *k == key).unwrap().1;
        assert_eq!(rec["sha256"], sha256_hex(want), "{key}");
    }
}

#[tokio::test]
async fn a_gcs_body_cut_stalled_or_refused_with_503_is_read_again_from_the_start() {
    let gcs = FakeGcs::start();
    gcs.create_bucket("legacy").await;
    let objects = vec![
        ("cut.bin", bytes_for(8, 250_000)),
        ("stall.bin", bytes_for(9, 120_000)),
        ("busy.bin", bytes_for(10, 2_000)),
    ];
    for (k, v) in &objects {
        gcs.put_bytes("legacy", k, v).await;
    }
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let proxy = FaultProxy::start(gcs.port);
    proxy.inject("GET", "cut.bin", "alt=media", 2, Fault::CutReplyBody);
    proxy.inject("GET", "stall.bin", "alt=media", 1, Fault::StallReplyBody);
    proxy.inject(
        "GET",
        "busy.bin",
        "alt=media",
        2,
        Fault::Reply(503, "backendError"),
    );
    let work = tempfile::tempdir().unwrap();
    let out = r2migrate_to(work.path(), &r2)
        .args(["run", "--json", "--io-timeout", "2s"])
        .args(["--source-endpoint", &proxy.endpoint()])
        .args(["--from", "gs://legacy/", "--to", "r2://media/"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert_eq!(json_of(&out)["counts"]["copied"], 3);
    assert!(proxy.count("GET", "cut.bin") >= 3);
    assert!(proxy.count("GET", "stall.bin") >= 2);
    assert_landed(work.path(), &r2, &objects).await;
}

#[test]
fn io_timeout_must_be_a_positive_duration() {
    let work = tempfile::tempdir().unwrap();
    for bad in ["0s", "soon", "-3s", "5 parsecs"] {
        let out = r2migrate(work.path())
            .args(["plan", "--from", ".", "--to", "./out"])
            .arg(format!("--io-timeout={bad}"))
            .output()
            .unwrap();
        assert_exit(&out, 2);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--io-timeout"), "{bad}: {err}");
    }
}
