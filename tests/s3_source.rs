//! S3 (an s3s-fs server with credentials of its own) → R2 (another s3s-fs server), and
//! moto for keys s3s-fs cannot store and for storage classes.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::StorageClass;
use common::*;
use futures::StreamExt;

const SRC_KEY: &str = "source-access-key";
const SRC_SECRET: &str = "source-secret-9c1e";

struct Pair {
    source: S3Server,
    r2: S3Server,
    work: tempfile::TempDir,
}

fn pair() -> Pair {
    let source = S3Server::start_with_keys(SRC_KEY, SRC_SECRET);
    source.create_bucket("legacy");
    let r2 = S3Server::start();
    r2.create_bucket("media");
    Pair {
        source,
        r2,
        work: tempfile::tempdir().unwrap(),
    }
}

impl Pair {
    fn src_client(&self) -> aws_sdk_s3::Client {
        s3_client_with(&self.source.endpoint(), SRC_KEY, SRC_SECRET)
    }

    fn cmd(&self) -> assert_cmd::Command {
        r2migrate_s3(
            self.work.path(),
            &self.source,
            &self.r2,
            SRC_KEY,
            SRC_SECRET,
        )
    }

    fn run(&self, from: &str, to: &str, extra: &[&str]) -> std::process::Output {
        self.cmd()
            .args(["run", "--json"])
            .args(extra)
            .args(["--from", from, "--to", to])
            .output()
            .unwrap()
    }
}

async fn put_many(client: &aws_sdk_s3::Client, bucket: &str, items: Vec<(String, Vec<u8>)>) {
    futures::stream::iter(items)
        .map(|(k, v)| {
            let client = client.clone();
            async move { put_bytes(&client, bucket, &k, &v).await }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
}

#[tokio::test]
async fn thousands_of_keys_cross_pages_and_verify_against_the_source() {
    let p = pair();
    let n = 2600;
    let items: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            (
                format!("photos/{:02}/img-{i:05}.jpg", i % 50),
                bytes_for(i as u64, 64 + i % 200),
            )
        })
        .collect();
    put_many(&p.src_client(), "legacy", items.clone()).await;
    // Outside the prefix: a sibling that merely starts with the same letters.
    put_bytes(
        &p.src_client(),
        "legacy",
        "photos-2020/old.jpg",
        b"not under photos/",
    )
    .await;

    let started = std::time::Instant::now();
    let out = p.run("s3://legacy/photos", "r2://media/imported", &[]);
    let secs = started.elapsed().as_secs_f64();
    assert_exit(&out, 0);
    let doc = json_of(&out);
    assert_eq!(doc["counts"]["copied"], n as u64);
    eprintln!(
        "S3 → R2: {n} objects in {secs:.2}s = {:.0} objects/s",
        n as f64 / secs
    );

    let keys = list_keys(&p.r2.client(), "media", "").await;
    assert_eq!(keys.len(), n);
    assert!(keys
        .iter()
        .all(|k| k.starts_with("imported/") && !k.contains("photos-2020")));
    // Every record carries the source's MD5 (a plain single-part ETag), checked on read.
    let recs = manifest_objects(&p.work.path().join("r2migrate-manifest.jsonl"));
    assert!(recs
        .iter()
        .all(|r| r["source_md5"].as_str().is_some_and(|m| m.len() == 32)));

    // Resume: delete one object from R2; the next run copies just that one.
    delete(&p.r2.client(), "media", "imported/07/img-00007.jpg").await;
    let against = p
        .cmd()
        .args(["verify", "--json", "--against-source"])
        .output()
        .unwrap();
    assert_eq!(against.status.code(), Some(1));
    let doc = json_of(&against);
    let gaps = doc["against_source"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0]["source_key"], "07/img-00007.jpg");
    assert_eq!(doc["problems"].as_array().unwrap().len(), 1);

    let again = p.run("s3://legacy/photos", "r2://media/imported", &[]);
    let doc = json_of(&again);
    assert_eq!(doc["counts"]["copied"], 1);
    assert_eq!(doc["already_verified"], (n - 1) as u64);
    p.cmd()
        .args(["verify", "--against-source"])
        .assert()
        .code(0);
}

#[tokio::test]
async fn metadata_and_content_type_round_trip() {
    let p = pair();
    let body = bytes_for(9, 5000);
    p.src_client()
        .put_object()
        .bucket("legacy")
        .key("assets/app.js.gz")
        .body(ByteStream::from(body.clone()))
        .content_type("application/javascript")
        .content_encoding("gzip")
        .cache_control("public, max-age=31536000, immutable")
        .content_disposition("inline; filename=\"app.js\"")
        .content_language("en")
        .expires(aws_smithy_types::DateTime::from_secs(1_900_000_000))
        .metadata("owner", "web-team")
        .metadata("build", "1234")
        .send()
        .await
        .unwrap();
    put_bytes(&p.src_client(), "legacy", "assets/empty", b"").await;
    let out = p.run("s3://legacy/assets/", "r2://media/", &[]);
    assert_exit(&out, 0);
    let h = head(&p.r2.client(), "media", "app.js.gz").await.unwrap();
    assert_eq!(h.content_type(), Some("application/javascript"));
    assert_eq!(h.content_encoding(), Some("gzip"));
    assert_eq!(
        h.cache_control(),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(h.content_disposition(), Some("inline; filename=\"app.js\""));
    assert_eq!(h.content_language(), Some("en"));
    assert_eq!(h.expires_string(), Some("Sun, 17 Mar 2030 17:46:40 GMT"));
    let meta = h.metadata().unwrap();
    assert_eq!(meta.get("owner").map(String::as_str), Some("web-team"));
    assert_eq!(meta.get("build").map(String::as_str), Some("1234"));
    assert_eq!(
        get_bytes(&p.r2.client(), "media", "app.js.gz").await,
        body,
        "stored bytes, not decompressed"
    );
    assert_eq!(
        head(&p.r2.client(), "media", "empty")
            .await
            .unwrap()
            .content_length(),
        Some(0)
    );
}

#[tokio::test]
async fn source_errors_are_fatal_with_one_message() {
    let p = pair();
    // No such bucket.
    let out = p.run("s3://nope-bucket/x", "r2://media/", &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope-bucket"));
    // Wrong secret for the source.
    let out = r2migrate_s3(
        p.work.path(),
        &p.source,
        &p.r2,
        SRC_KEY,
        "wrong-source-secret",
    )
    .args(["run", "--from", "s3://legacy/", "--to", "r2://media/"])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("credentials refused") && !err.contains("wrong-source-secret"),
        "{err}"
    );
    // No credentials at all (and no instance metadata to ask).
    let out = r2migrate_to(p.work.path(), &p.r2)
        .env("AWS_ENDPOINT_URL", p.source.endpoint())
        .args(["run", "--from", "s3://legacy/", "--to", "r2://media/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no AWS credentials"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(list_keys(&p.r2.client(), "media", "").await.is_empty());
}

#[tokio::test]
async fn odd_and_long_keys_keep_their_spelling() {
    let moto = Moto::start();
    moto.create_bucket("legacy").await;
    moto.create_bucket("media").await;
    let client = moto.client();
    let long = format!("long/{}", "k".repeat(1000 - 5));
    assert_eq!(long.len(), 1000);
    let keys = vec![
        "odd/with space.txt".to_string(),
        "odd/ünïcödé/日本.txt".to_string(),
        "odd/100%.txt".to_string(),
        "odd/a+b.txt".to_string(),
        "odd/#hash.txt".to_string(),
        "odd/zero.bin".to_string(),
        long.clone(),
    ];
    for (i, k) in keys.iter().enumerate() {
        let body = if k.ends_with("zero.bin") {
            Vec::new()
        } else {
            bytes_for(i as u64, 100)
        };
        put_bytes(&client, "legacy", k, &body).await;
    }
    let work = tempfile::tempdir().unwrap();
    let out = r2migrate(work.path())
        .env("AWS_ACCESS_KEY_ID", "moto")
        .env("AWS_SECRET_ACCESS_KEY", "moto")
        .env("AWS_REGION", "us-east-1")
        .env("R2_ENDPOINT_URL", moto.endpoint())
        .env("R2_ACCESS_KEY_ID", ACCESS_KEY)
        .env("R2_SECRET_ACCESS_KEY", SECRET_KEY)
        .args([
            "run",
            "--json",
            "--source-endpoint",
            &moto.endpoint(),
            "--from",
            "s3://legacy/",
            "--to",
            "r2://media/",
        ])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let mut want = keys.clone();
    want.sort();
    assert_eq!(list_keys(&client, "media", "").await, want);
    for k in &keys {
        assert_eq!(
            get_bytes(&client, "media", k).await,
            get_bytes(&client, "legacy", k).await,
            "{k}"
        );
    }
}

#[tokio::test]
async fn archived_objects_are_reported_not_copied() {
    let moto = Moto::start();
    moto.create_bucket("legacy").await;
    moto.create_bucket("media").await;
    let client = moto.client();
    put_bytes(&client, "legacy", "hot.txt", b"hot").await;
    client
        .put_object()
        .bucket("legacy")
        .key("cold.txt")
        .body(ByteStream::from_static(b"cold"))
        .storage_class(StorageClass::Glacier)
        .send()
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| {
        r2migrate(work.path())
            .env("AWS_ACCESS_KEY_ID", "moto")
            .env("AWS_SECRET_ACCESS_KEY", "moto")
            .env("AWS_ENDPOINT_URL", moto.endpoint())
            .env("R2_ENDPOINT_URL", moto.endpoint())
            .env("R2_ACCESS_KEY_ID", ACCESS_KEY)
            .env("R2_SECRET_ACCESS_KEY", SECRET_KEY)
            .args(args)
            .args(["--json", "--from", "s3://legacy/", "--to", "r2://media/"])
            .output()
            .unwrap()
    };
    let plan = cmd(&["plan"]);
    assert_eq!(plan.status.code(), Some(1));
    let doc = json_of(&plan);
    assert_eq!(doc["counts"]["unreadable"], 1);
    assert!(doc["unreadable"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("restore it first"));
    assert_eq!(doc["counts"]["by_storage_class"]["STANDARD"]["objects"], 1);

    let run = cmd(&["run"]);
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(json_of(&run)["counts"]["copied"], 1);
    assert_eq!(
        list_keys(&client, "media", "").await,
        vec!["hot.txt".to_string()]
    );
}

/// The shared Source conformance suite, run on the S3 source with tiny pages.
#[tokio::test]
async fn s3_source_passes_the_conformance_suite() {
    let server = S3Server::start_with_keys(SRC_KEY, SRC_SECRET);
    server.create_bucket("conf");
    let client = s3_client_with(&server.endpoint(), SRC_KEY, SRC_SECRET);
    let source = conformance_source(&client, &server.endpoint(), 3, 1).await;
    conformance::check(&source).await;
}

/// The same suite with the prefix walked by delimiter: 4 at a time (the top level is
/// wide enough to share out) and 8 (it is not: the walk goes one level down first) —
/// the same items, in the same order, as one flat listing.
#[tokio::test]
async fn s3_source_listing_folders_at_once_passes_the_conformance_suite() {
    let server = S3Server::start_with_keys(SRC_KEY, SRC_SECRET);
    server.create_bucket("conf");
    let client = s3_client_with(&server.endpoint(), SRC_KEY, SRC_SECRET);
    let flat = conformance_source(&client, &server.endpoint(), 3, 1).await;
    for at_once in [4, 8] {
        let walked = conformance_source(&client, &server.endpoint(), 3, at_once).await;
        conformance::check(&walked).await;
        conformance::same_listing(&walked, &flat).await;
    }
}

/// The suite's fixture under `root/` of bucket `conf` (and a sibling outside it), and
/// an S3 source on it with small pages.
async fn conformance_source(
    client: &aws_sdk_s3::Client,
    endpoint: &str,
    page_size: i32,
    list_concurrency: usize,
) -> r2migrate::source::s3::S3Source {
    for (k, v) in conformance::fixture() {
        put_bytes(client, "conf", &format!("root/{k}"), &v).await;
    }
    put_bytes(client, "conf", "root-sibling/x.txt", b"outside").await;
    // moto takes any keys: both servers get these, so tests setting them never race.
    std::env::set_var("AWS_ACCESS_KEY_ID", SRC_KEY);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", SRC_SECRET);
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let opts = r2migrate::source::SourceOptions {
        endpoint: Some(endpoint.to_string()),
        region: Some("us-east-1".into()),
        allow_http: false,
        list_concurrency,
        ..Default::default()
    };
    let pacer = std::sync::Arc::new(r2migrate::pacer::Pacer::new(2, None, None));
    r2migrate::source::s3::S3Source::new("conf", "root/", &opts, pacer)
        .await
        .unwrap()
        .with_page_size(page_size)
}

/// The same suite on moto, which lists ETags (the S3 source's `source_version`) and
/// stores what s3s-fs cannot.
#[tokio::test]
async fn s3_source_on_moto_passes_the_conformance_suite() {
    let moto = Moto::start();
    moto.create_bucket("conf").await;
    let source = conformance_source(&moto.client(), &moto.endpoint(), 4, 3).await;
    conformance::check(&source).await;
    // moto lists ETags: the version is the ETag, as on S3.
    use r2migrate::source::Source;
    let first = source.list().next().await.unwrap().unwrap();
    let r2migrate::source::ListItem::Object(info) = first else {
        panic!("unreadable")
    };
    assert_eq!(info.version, info.digests.etag);
}

mod conformance {
    include!("conformance/suite.rs");
}

#[tokio::test]
async fn bytes_that_do_not_match_the_source_digest_fail_and_leave_nothing() {
    let p = pair();
    let body = bytes_for(5, 4000);
    put_bytes(&p.src_client(), "legacy", "rot/bitrot.bin", &body).await;
    put_bytes(&p.src_client(), "legacy", "rot/fine.bin", b"fine").await;
    // Rot one byte on the source's disk: it still states the MD5 of the original bytes.
    let on_disk = p.source.root.path().join("legacy/rot/bitrot.bin");
    let mut rotten = std::fs::read(&on_disk).unwrap();
    rotten[100] ^= 0x01;
    std::fs::write(&on_disk, rotten).unwrap();

    let out = p.run("s3://legacy/rot", "r2://media/", &[]);
    assert_eq!(out.status.code(), Some(1));
    let doc = json_of(&out);
    assert_eq!(doc["counts"]["copied"], 1);
    assert_eq!(doc["counts"]["failed"], 1);
    let problem = &doc["problems"][0];
    assert_eq!(problem["source_key"], "bitrot.bin");
    assert!(problem["error"]
        .as_str()
        .unwrap()
        .contains("source bytes did not match the source's digest"));
    assert_eq!(
        list_keys(&p.r2.client(), "media", "").await,
        vec!["fine.bin".to_string()]
    );
}

#[tokio::test]
async fn metadata_r2_cannot_store_fails_that_object_only() {
    let p = pair();
    p.src_client()
        .put_object()
        .bucket("legacy")
        .key("meta/huge.txt")
        .body(ByteStream::from_static(b"x"))
        .metadata("notes", "n".repeat(9000))
        .send()
        .await
        .unwrap();
    put_bytes(&p.src_client(), "legacy", "meta/ok.txt", b"ok").await;
    let out = p.run("s3://legacy/meta", "r2://media/", &[]);
    assert_eq!(out.status.code(), Some(1));
    let doc = json_of(&out);
    assert_eq!(doc["counts"]["copied"], 1);
    assert!(
        doc["problems"][0]["error"]
            .as_str()
            .unwrap()
            .contains("8 KiB"),
        "{doc}"
    );
    assert_eq!(
        list_keys(&p.r2.client(), "media", "").await,
        vec!["ok.txt".to_string()]
    );
}
