//! GCS (fake-gcs-server on loopback) → R2 (s3s-fs). The emulator is reached through
//! STORAGE_EMULATOR_HOST or --source-endpoint, anonymously, as real users reach theirs.

mod common;

use std::io::Write as _;

use common::proxy::{Fault, FaultProxy};
use common::*;
use futures::StreamExt;
use gcloud_storage::http::objects::Object;

struct Pair {
    gcs: FakeGcs,
    r2: S3Server,
    work: tempfile::TempDir,
}

async fn pair() -> Pair {
    let gcs = FakeGcs::start();
    gcs.create_bucket("legacy").await;
    let r2 = S3Server::start();
    r2.create_bucket("media");
    Pair {
        gcs,
        r2,
        work: tempfile::tempdir().unwrap(),
    }
}

impl Pair {
    /// The binary with the emulator named the way the GCS client libraries name it.
    fn cmd(&self) -> assert_cmd::Command {
        let mut cmd = r2migrate_to(self.work.path(), &self.r2);
        cmd.env("STORAGE_EMULATOR_HOST", self.gcs.host());
        cmd
    }

    fn run(&self, from: &str, to: &str) -> std::process::Output {
        self.cmd()
            .args(["run", "--json", "--from", from, "--to", to])
            .output()
            .unwrap()
    }
}

async fn put_many(gcs: &FakeGcs, bucket: &str, items: Vec<(String, Vec<u8>)>) {
    futures::stream::iter(items)
        .map(|(k, v)| async move { gcs.put_bytes(bucket, &k, &v).await })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
}

fn gzip(data: &[u8]) -> Vec<u8> {
    // A hand-made gzip member with a stored (uncompressed) deflate block: real gzip bytes
    // without another dependency. What matters is that they are not decompressed.
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let len = data.len() as u16;
    out.push(1);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32fast(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// CRC-32 (IEEE) for the gzip trailer.
fn crc32fast(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[tokio::test]
async fn more_than_a_page_of_objects_copy_resume_and_verify_against_the_source() {
    let p = pair().await;
    // The listing pages at 1,000: 1,150 objects cross a page boundary.
    let n = 1150;
    let items: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            (
                format!("images/{:02}/img-{i:05}.png", i % 40),
                bytes_for(i as u64, 32 + i % 300),
            )
        })
        .collect();
    put_many(&p.gcs, "legacy", items.clone()).await;
    // A sibling that only starts with the same letters is not under the prefix.
    p.gcs
        .put_bytes("legacy", "images-old/x.png", b"outside")
        .await;

    let plan = p
        .cmd()
        .args([
            "plan",
            "--json",
            "--from",
            "gs://legacy/images",
            "--to",
            "r2://media/img",
        ])
        .output()
        .unwrap();
    assert_exit(&plan, 0);
    let doc = json_of(&plan);
    let total: u64 = items.iter().map(|(_, v)| v.len() as u64).sum();
    assert_eq!(doc["counts"]["selected"], n as u64);
    assert_eq!(doc["counts"]["selected_bytes"], total);
    assert_eq!(
        doc["counts"]["by_storage_class"]["STANDARD"]["objects"],
        n as u64
    );
    assert!(doc["estimate"].is_object(), "{doc}");
    assert!(
        list_keys(&p.r2.client(), "media", "").await.is_empty(),
        "plan copies nothing"
    );

    let started = std::time::Instant::now();
    let out = p.run("gs://legacy/images", "r2://media/img");
    let secs = started.elapsed().as_secs_f64();
    assert_exit(&out, 0);
    assert_eq!(json_of(&out)["counts"]["copied"], n as u64);
    eprintln!(
        "GCS → R2: {n} objects in {secs:.2}s = {:.0} objects/s",
        n as f64 / secs
    );

    let keys = list_keys(&p.r2.client(), "media", "").await;
    assert_eq!(keys.len(), n);
    assert!(keys
        .iter()
        .all(|k| k.starts_with("img/") && !k.contains("images-old")));
    assert_eq!(
        get_bytes(&p.r2.client(), "media", "img/07/img-00007.png").await,
        items[7].1
    );
    // Every record carries GCS's md5Hash and crc32c, checked against the bytes read.
    let recs = manifest_objects(&p.work.path().join("r2migrate-manifest.jsonl"));
    assert_eq!(recs.len(), n);
    assert!(
        recs.iter()
            .all(|r| r["source_md5"].as_str().is_some_and(|m| m.len() == 32)
                && r["source_crc32c"].is_string()),
        "{}",
        recs[0]
    );

    delete(&p.r2.client(), "media", "img/07/img-00007.png").await;
    let against = p
        .cmd()
        .args(["verify", "--json", "--against-source"])
        .output()
        .unwrap();
    assert_eq!(against.status.code(), Some(1));
    let doc = json_of(&against);
    let gaps = doc["against_source"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0]["source_key"], "07/img-00007.png");

    let again = p.run("gs://legacy/images", "r2://media/img");
    let doc = json_of(&again);
    assert_eq!(doc["counts"]["copied"], 1);
    assert_eq!(doc["already_verified"], (n - 1) as u64);
    p.cmd()
        .args(["verify", "--against-source"])
        .assert()
        .code(0);
}

#[tokio::test]
async fn gzip_objects_copy_byte_exact_with_metadata_and_odd_keys() {
    let p = pair().await;
    let text = b"body { color: #333; } ".repeat(40);
    let stored = gzip(&text);
    p.gcs
        .put(
            "legacy",
            Object {
                name: "site/app.css".into(),
                content_type: Some("text/css".into()),
                content_encoding: Some("gzip".into()),
                cache_control: Some("public, max-age=31536000, immutable".into()),
                content_disposition: Some("inline; filename=\"app.css\"".into()),
                content_language: Some("en".into()),
                metadata: Some(
                    [
                        ("Owner".to_string(), "web-team".to_string()),
                        ("build".to_string(), "1234".to_string()),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
            stored.clone(),
        )
        .await;
    let odd = [
        "site/with space.txt",
        "site/ünïcödé/日本.txt",
        "site/100%.txt",
        "site/a+b.txt",
        "site/#hash.txt",
    ];
    for (i, k) in odd.iter().enumerate() {
        p.gcs
            .put_bytes("legacy", k, &bytes_for(i as u64, 100))
            .await;
    }
    p.gcs.put_bytes("legacy", "site/zero.bin", b"").await;

    let out = p.run("gs://legacy/site/", "r2://media/");
    assert_exit(&out, 0);
    assert_eq!(json_of(&out)["counts"]["copied"], (odd.len() + 2) as u64);

    let r2 = p.r2.client();
    // Stored bytes, not transcoded: the gzip member as uploaded, still marked gzip.
    assert_eq!(get_bytes(&r2, "media", "app.css").await, stored);
    let h = head(&r2, "media", "app.css").await.unwrap();
    assert_eq!(h.content_length(), Some(stored.len() as i64));
    assert_eq!(h.content_encoding(), Some("gzip"));
    assert_eq!(h.content_type(), Some("text/css"));
    assert_eq!(
        h.cache_control(),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(
        h.content_disposition(),
        Some("inline; filename=\"app.css\"")
    );
    assert_eq!(h.content_language(), Some("en"));
    let meta = h.metadata().unwrap();
    assert_eq!(meta.get("owner").map(String::as_str), Some("web-team"));
    assert_eq!(meta.get("build").map(String::as_str), Some("1234"));

    for (i, k) in odd.iter().enumerate() {
        let key = k.strip_prefix("site/").unwrap();
        assert_eq!(
            get_bytes(&r2, "media", key).await,
            bytes_for(i as u64, 100),
            "{key}"
        );
    }
    assert_eq!(
        head(&r2, "media", "zero.bin")
            .await
            .unwrap()
            .content_length(),
        Some(0)
    );
    p.cmd().args(["verify", "--deep"]).assert().code(0);
}

#[tokio::test]
async fn bytes_that_do_not_match_md5hash_fail_and_leave_nothing() {
    let p = pair().await;
    p.gcs
        .put_bytes("legacy", "rot/bitrot.bin", &bytes_for(5, 4000))
        .await;
    p.gcs.put_bytes("legacy", "rot/fine.bin", b"fine").await;
    // Every read of one object comes back with a bit flipped on the way.
    let proxy = FaultProxy::start(p.gcs.port);
    proxy.inject(
        "GET",
        "rot/bitrot.bin",
        "alt=media",
        1000,
        Fault::FlipReplyByte,
    );
    let out = r2migrate_to(p.work.path(), &p.r2)
        .args(["run", "--json", "--source-endpoint", &proxy.endpoint()])
        .args(["--from", "gs://legacy/rot", "--to", "r2://media/"])
        .output()
        .unwrap();
    assert_exit(&out, 1);
    let doc = json_of(&out);
    assert_eq!(doc["counts"]["copied"], 1);
    assert_eq!(doc["counts"]["failed"], 1);
    let problem = &doc["problems"][0];
    assert_eq!(problem["source_key"], "bitrot.bin");
    assert!(
        problem["error"]
            .as_str()
            .unwrap()
            .contains("source bytes did not match the source's digest"),
        "{problem}"
    );
    assert_eq!(
        list_keys(&p.r2.client(), "media", "").await,
        vec!["fine.bin".to_string()]
    );
}

#[tokio::test]
async fn source_errors_are_fatal_with_one_message() {
    let p = pair().await;
    p.gcs.put_bytes("legacy", "a.txt", b"a").await;

    // A bucket that does not exist.
    let out = p.run("gs://no-such-bucket/", "r2://media/");
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-such-bucket") && err.contains("does not exist"),
        "{err}"
    );

    // Permission denied on the listing.
    let proxy = FaultProxy::start(p.gcs.port);
    proxy.inject(
        "GET",
        "/b/legacy/o",
        "",
        100,
        Fault::Reply(403, "Forbidden"),
    );
    // Runs the binary as set up by `cmd` and returns what it said on stderr: exit 3.
    let fatal = |cmd: &mut assert_cmd::Command| -> String {
        let out = cmd
            .args(["run", "--from", "gs://legacy/", "--to", "r2://media/"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = fatal(
        r2migrate_to(p.work.path(), &p.r2)
            .env("STORAGE_EMULATOR_HOST", format!("127.0.0.1:{}", proxy.port)),
    );
    assert!(
        err.contains("permission denied") && err.contains("roles/storage.objectViewer"),
        "{err}"
    );

    // Production auth with a service-account key file that cannot produce a token (the key
    // is not a valid RSA key; the token endpoint is a closed loopback port anyway). The key
    // never appears in the message.
    let key_file = p.work.path().join("sa.json");
    let secret =
        "-----BEGIN PRIVATE KEY-----\\nTm90QVJlYWxLZXlEb05vdExvZw==\\n-----END PRIVATE KEY-----\\n";
    let mut f = std::fs::File::create(&key_file).unwrap();
    write!(
        f,
        r#"{{"type":"service_account","project_id":"p","private_key_id":"k1","private_key":"{secret}","client_email":"migrator@p.iam.gserviceaccount.com","client_id":"1","token_uri":"http://127.0.0.1:1/token"}}"#
    )
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    // At every log level, the SDKs' debug output included: the failing token request must
    // not carry the key into a log line.
    for verbosity in [None, Some("-vvv")] {
        let mut cmd = r2migrate_to(p.work.path(), &p.r2);
        cmd.env("HOME", home.path())
            .env("GOOGLE_APPLICATION_CREDENTIALS", &key_file);
        if let Some(v) = verbosity {
            cmd.arg(v);
        }
        let err = fatal(&mut cmd);
        assert!(err.contains("GOOGLE_APPLICATION_CREDENTIALS"), "{err}");
        for part in ["Tm90QVJlYWxLZXlEb05vdExvZw", "BEGIN PRIVATE KEY"] {
            assert!(
                !err.contains(part),
                "the key leaked at {verbosity:?}: {err}"
            );
        }
    }

    // No credentials anywhere: no key file, no gcloud login, no metadata server.
    let err = fatal(r2migrate_to(p.work.path(), &p.r2).env("HOME", home.path()));
    assert!(
        err.contains("gcloud auth application-default login"),
        "{err}"
    );

    assert!(list_keys(&p.r2.client(), "media", "").await.is_empty());
}

/// The shared Source conformance suite, run on the GCS source with tiny pages.
#[tokio::test]
async fn gcs_source_passes_the_conformance_suite() {
    let gcs = FakeGcs::start();
    gcs.create_bucket("conf").await;
    for (k, v) in conformance::fixture() {
        gcs.put_bytes("conf", &format!("root/{k}"), &v).await;
    }
    gcs.put_bytes("conf", "root-sibling/x.txt", b"outside")
        .await;
    let source = |list_concurrency| {
        let opts = r2migrate::source::SourceOptions {
            endpoint: Some(gcs.endpoint()),
            list_concurrency,
            ..Default::default()
        };
        let pacer = std::sync::Arc::new(r2migrate::pacer::Pacer::new(2, None, None));
        async move {
            r2migrate::source::gcs::GcsSource::new("conf", "root/", &opts, pacer)
                .await
                .unwrap()
                .with_page_size(3)
        }
    };
    let flat = source(1).await;
    conformance::check(&flat).await;
    // Walked by delimiter, 4 folders at a time (the top level is shared out) and 8
    // (the walk goes a level down first): the same items in the same order.
    for at_once in [4, 8] {
        let walked = source(at_once).await;
        conformance::check(&walked).await;
        conformance::same_listing(&walked, &flat).await;
    }
}

mod conformance {
    include!("conformance/suite.rs");
}
