//! Credentials revoked in the middle of a run, as when a token is rolled: after some
//! successes every request is refused with 403. The run stops taking new work, records
//! what finished, exits 3 saying it can be resumed; a resume with working credentials
//! finishes without uploading any object twice.

mod common;

use common::proxy::{Fault, FaultProxy};
use common::*;

const FILES: usize = 40;
const SRC_KEY: &str = "src-key";
const SRC_SECRET: &str = "src-secret";

fn files() -> Vec<(String, Vec<u8>)> {
    (0..FILES)
        .map(|i| (format!("f{i:02}.bin"), bytes_for(i as u64, 1_000 + i * 37)))
        .collect()
}

/// What a stopped run left: every `copied` record is in R2 with the source's bytes.
async fn assert_records_honest(work: &std::path::Path, r2: &dyn PlaysR2) -> usize {
    let all = files();
    let mut copied = 0;
    for rec in manifest_objects(&work.join("r2migrate-manifest.jsonl")) {
        if rec["status"] == "copied" {
            copied += 1;
            let key = rec["target_key"].as_str().unwrap();
            let want = &all.iter().find(|(k, _)| k == key).unwrap().1;
            assert!(
                get_bytes(&r2.r2_client(), "media", key).await == *want,
                "{key} recorded copied but R2 does not hold its bytes"
            );
        }
    }
    copied
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// On R2 played by the strict server and by s3s-fs.
#[tokio::test]
async fn a_token_revoked_mid_run_stops_with_exit_3_and_a_resume_copies_nothing_twice() {
    for (name, r2) in r2_stand_ins() {
        eprintln!("revoked token on {name}");
        token_revoked(r2.as_ref()).await;
    }
}

async fn token_revoked(r2: &dyn PlaysR2) {
    let src = tempfile::tempdir().unwrap();
    for (k, v) in files() {
        write(src.path(), &k, &v);
    }
    let proxy = FaultProxy::start(r2.r2_port());
    // Two listings, then about a dozen objects (PUT + HEAD each) go through; then the
    // token is rolled and R2 refuses everything.
    proxy.inject_after(
        "*",
        "/media",
        "",
        26,
        1_000_000,
        Fault::Reply(403, "AccessDenied"),
    );
    let work = tempfile::tempdir().unwrap();
    let out = via_proxy(work.path(), &proxy)
        .args(["run", "--concurrency", "4", "--from"])
        .arg(src.path())
        .args(["--to", "r2://media/"])
        .output()
        .unwrap();
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(err.contains("AccessDenied"), "{err}");
    assert!(err.contains("revoked") && err.contains("resume"), "{err}");
    assert!(err.contains("r2migrate-manifest.jsonl"), "{err}");
    let copied = assert_records_honest(work.path(), r2).await;
    let present = list_keys(&r2.r2_client(), "media", "").await.len();
    assert!(
        copied >= 5 && present < FILES,
        "{copied} copied, {present} in R2"
    );
    // Fewer refused requests than objects: it stopped taking new work.
    let refused = proxy.count("PUT", "/media/") + proxy.count("HEAD", "/media/");
    assert!(
        refused < 2 * FILES,
        "{refused} writes and heads: it kept going"
    );

    // A new token: the resume uploads exactly what is not there yet.
    let fresh = FaultProxy::start(r2.r2_port());
    let out = via_proxy(work.path(), &fresh)
        .args(["run", "--json", "--from"])
        .arg(src.path())
        .args(["--to", "r2://media/"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert_eq!(
        fresh.count("PUT", "/media/"),
        FILES - present,
        "uploaded twice"
    );
    assert_eq!(list_keys(&r2.r2_client(), "media", "").await.len(), FILES);
    assert_eq!(assert_records_honest(work.path(), r2).await, FILES);
}

#[tokio::test]
async fn a_source_that_starts_refusing_mid_run_stops_with_exit_3_and_resumes() {
    let source = S3Server::start_with_keys(SRC_KEY, SRC_SECRET);
    source.create_bucket("legacy");
    let client = s3_client_with(&source.endpoint(), SRC_KEY, SRC_SECRET);
    for (k, v) in files() {
        put_bytes(&client, "legacy", &k, &v).await;
    }
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let proxy = FaultProxy::start(source.port);
    // The access probe and the listing, a dozen GETs; then every request is refused.
    proxy.inject_after(
        "*",
        "/legacy",
        "",
        14,
        1_000_000,
        Fault::Reply(403, "AccessDenied"),
    );
    let work = tempfile::tempdir().unwrap();
    let from_source = |endpoint: String| {
        let mut cmd = r2migrate_to(work.path(), &r2);
        cmd.env("AWS_ACCESS_KEY_ID", SRC_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SRC_SECRET)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", endpoint)
            .args(["run", "--json", "--concurrency", "4"])
            .args(["--from", "s3://legacy/", "--to", "r2://media/"]);
        cmd
    };
    let out = from_source(proxy.endpoint()).output().unwrap();
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(err.contains("revoked") && err.contains("resume"), "{err}");
    let copied = assert_records_honest(work.path(), &r2).await;
    assert!((4..FILES).contains(&copied), "{copied} copied");
    let gets = proxy.count("GET", "/legacy/f");
    assert!(gets < FILES, "{gets} GETs: it kept taking new work");

    let out = from_source(source.endpoint()).output().unwrap();
    assert_exit(&out, 0);
    assert_eq!(json_of(&out)["counts"]["copied"], (FILES - copied) as u64);
    assert_eq!(assert_records_honest(work.path(), &r2).await, FILES);
}

#[tokio::test]
async fn a_gcs_source_that_starts_refusing_mid_run_stops_with_exit_3_and_resumes() {
    let gcs = FakeGcs::start();
    gcs.create_bucket("legacy").await;
    for (k, v) in files() {
        gcs.put_bytes("legacy", &k, &v).await;
    }
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let proxy = FaultProxy::start(gcs.port);
    proxy.inject_after(
        "*",
        "legacy",
        "",
        14,
        1_000_000,
        Fault::Reply(403, "Forbidden"),
    );
    let work = tempfile::tempdir().unwrap();
    let run = |endpoint: String| {
        r2migrate_to(work.path(), &r2)
            .args(["run", "--json", "--concurrency", "4"])
            .args(["--source-endpoint", &endpoint])
            .args(["--from", "gs://legacy/", "--to", "r2://media/"])
            .output()
            .unwrap()
    };
    let out = run(proxy.endpoint());
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(err.contains("revoked") && err.contains("resume"), "{err}");
    let copied = assert_records_honest(work.path(), &r2).await;
    assert!((4..FILES).contains(&copied), "{copied} copied");

    let out = run(gcs.endpoint());
    assert_exit(&out, 0);
    assert_eq!(json_of(&out)["counts"]["copied"], (FILES - copied) as u64);
    assert_eq!(assert_records_honest(work.path(), &r2).await, FILES);
}
