//! The matrix: every source (local, S3 on s3s-fs, S3 on moto, GCS on fake-gcs-server,
//! SQLite) × every target (R2 on the strict R2 test server and on s3s-fs, the `file://`
//! rehearsal; local and S3 also into Cloudflare's local R2, miniflare) × sizes around the
//! multipart boundaries (threshold = part size = 5 MiB here: 0, 1, T−1, T, T+1, 2 parts,
//! 2 parts + 1 byte). Each object is read back by a client that is not ours — boto3 for
//! R2, the file itself for the rehearsal — and compared with the source's bytes; then
//! `verify --deep` and `verify --against-source` must be clean.

mod common;

use std::collections::BTreeMap;
use std::process::Output;

use base64::Engine;
use common::*;
use sha2::Digest;

const MIB: usize = 1024 * 1024;
const T: usize = 5 * MIB;
const PARTS: [&str; 4] = ["--multipart-threshold", "5MiB", "--part-size", "5MiB"];

/// The sizes every source × target pair carries, by name.
fn objects() -> Vec<(String, Vec<u8>)> {
    [0, 1, T - 1, T, T + 1, 2 * T, 2 * T + 1]
        .into_iter()
        .enumerate()
        .map(|(i, n)| (format!("size-{n}.bin"), bytes_for(i as u64 + 11, n)))
        .collect()
}

fn sha_hex(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

/// Every key under `prefix` in the R2 bucket with its size and SHA-256, as boto3 reads it.
fn boto3_digests(r2: &dyn PlaysR2, prefix: &str) -> BTreeMap<String, (u64, String)> {
    let script = r#"
import boto3, hashlib, json, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id=sys.argv[2],
                  aws_secret_access_key=sys.argv[3], region_name="us-east-1")
out = {}
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="media", Prefix=sys.argv[4]):
    for o in page.get("Contents", []):
        body = s3.get_object(Bucket="media", Key=o["Key"])["Body"].read()
        out[o["Key"]] = [len(body), hashlib.sha256(body).hexdigest()]
print(json.dumps(out))
"#;
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            &r2.r2_endpoint(),
            ACCESS_KEY,
            SECRET_KEY,
            prefix,
        ])
        .output()
        .expect("python3 with boto3 (installed with moto by .ci/install-test-servers)");
    assert!(
        out.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let map: BTreeMap<String, (u64, String)> = serde_json::from_slice(&out.stdout).unwrap();
    map
}

/// How the binary reaches one source.
struct Src {
    url: String,
    env: Vec<(String, String)>,
    /// A config file (SQLite's table and columns); keys map to themselves everywhere.
    config: Option<String>,
}

/// The servers playing R2 in one row of the matrix, by name.
struct R2s {
    strict: StrictR2,
    s3s_fs: S3Server,
    miniflare: Option<miniflare::Miniflare>,
}

impl R2s {
    /// The strict server and s3s-fs; `with_miniflare` adds Cloudflare's local R2 (slow
    /// to start and heavy, so only for the local and S3 rows).
    fn start(with_miniflare: bool) -> R2s {
        let strict = StrictR2::start();
        strict.create_bucket("media");
        let s3s_fs = S3Server::start();
        s3s_fs.create_bucket("media");
        let miniflare = with_miniflare.then(|| miniflare::Miniflare::start(&["media"]));
        R2s {
            strict,
            s3s_fs,
            miniflare,
        }
    }

    fn all(&self) -> Vec<(&'static str, &dyn PlaysR2)> {
        let mut all: Vec<(&'static str, &dyn PlaysR2)> =
            vec![("strict-r2", &self.strict), ("s3s-fs", &self.s3s_fs)];
        if let Some(m) = &self.miniflare {
            all.push(("miniflare", m));
        }
        all
    }
}

fn run_matrix(name: &str, src: &Src, want: &[(String, Vec<u8>)], r2s: &R2s) {
    for (server, r2) in r2s.all() {
        run_one(name, src, want, Some((server, r2)));
    }
    run_one(name, src, want, None);
}

/// One source into one target: a server playing R2, or (None) the rehearsal directory.
fn run_one(name: &str, src: &Src, want: &[(String, Vec<u8>)], r2: Option<(&str, &dyn PlaysR2)>) {
    let work = tempfile::tempdir().unwrap();
    if let Some(c) = &src.config {
        std::fs::write(work.path().join("src.toml"), c).unwrap();
    }
    let cmd = |args: &[&str], manifest: &str| -> Output {
        let mut c = match r2 {
            Some((_, r2)) => r2migrate_to(work.path(), r2),
            None => r2migrate(work.path()),
        };
        for (k, v) in &src.env {
            c.env(k, v);
        }
        if src.config.is_some() {
            c.args(["--config", "src.toml"]);
        }
        c.args(args)
            .args(["--manifest", manifest])
            .output()
            .unwrap()
    };
    {
        let target = r2.map_or("rehearsal", |(server, _)| server);
        let to = match r2 {
            Some(_) => format!("r2://media/{name}/"),
            None => format!("file://{}", work.path().join("rehearsal").display()),
        };
        let manifest = format!("{target}.jsonl");
        let out = cmd(
            &[
                &["run", "--json", "--from", &src.url, "--to", &to][..],
                &PARTS[..],
            ]
            .concat(),
            &manifest,
        );
        assert_exit(&out, 0);
        let doc = json_of(&out);
        let n = want.len() as u64;
        assert_eq!(doc["counts"]["copied"], n, "{name} → {target}: {doc}");
        assert_eq!(
            (doc["listed"].as_u64(), doc["recorded"].as_u64()),
            (Some(n), Some(n)),
            "{name} → {target}"
        );

        // Read back by a client that is not ours.
        match r2 {
            Some((_, r2)) => {
                let got = boto3_digests(r2, &format!("{name}/"));
                let expect: BTreeMap<String, (u64, String)> = want
                    .iter()
                    .map(|(k, v)| (format!("{name}/{k}"), (v.len() as u64, sha_hex(v))))
                    .collect();
                assert_eq!(got, expect, "{name} → {target}: what boto3 reads back");
            }
            None => {
                for (k, v) in want {
                    let path = work.path().join("rehearsal").join(k);
                    let bytes =
                        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    assert!(bytes == *v, "{name} → rehearsal: {k} differs");
                }
            }
        }
        for flag in ["--deep", "--against-source"] {
            let v = cmd(&["verify", flag, "--json"], &manifest);
            assert_exit(&v, 0);
            assert_eq!(json_of(&v)["checked"], n, "{name} → {target} verify {flag}");
        }
    }
}

#[tokio::test]
async fn local_source_across_targets_and_sizes() {
    let r2 = R2s::start(true);
    let dir = tempfile::tempdir().unwrap();
    let want = objects();
    for (k, v) in &want {
        write(dir.path(), k, v);
    }
    let src = Src {
        url: dir.path().display().to_string(),
        env: vec![],
        config: None,
    };
    run_matrix("local", &src, &want, &r2);
}

#[tokio::test]
async fn s3_source_on_s3s_fs_across_targets_and_sizes() {
    let r2 = R2s::start(true);
    let source = S3Server::start_with_keys("matrix-src", "matrix-src-secret");
    source.create_bucket("legacy");
    let client = s3_client_with(&source.endpoint(), "matrix-src", "matrix-src-secret");
    let keys = ("matrix-src", "matrix-src-secret");
    s3_matrix("s3s-fs", &client, &source.endpoint(), keys, &r2).await;
}

#[tokio::test]
async fn s3_source_on_moto_across_targets_and_sizes() {
    let r2 = R2s::start(false);
    let moto = Moto::start();
    moto.create_bucket("legacy").await;
    s3_matrix(
        "moto",
        &moto.client(),
        &moto.endpoint(),
        ("moto", "moto"),
        &r2,
    )
    .await;
}

/// The sizes under `s3://legacy/sizes/` of an S3 server, through the matrix.
async fn s3_matrix(
    name: &str,
    client: &aws_sdk_s3::Client,
    endpoint: &str,
    (key, secret): (&str, &str),
    r2: &R2s,
) {
    let want = objects();
    for (k, v) in &want {
        put_bytes(client, "legacy", &format!("sizes/{k}"), v).await;
    }
    let src = Src {
        url: "s3://legacy/sizes".into(),
        env: s3_env(endpoint, key, secret),
        config: None,
    };
    run_matrix(name, &src, &want, r2);
}

fn s3_env(endpoint: &str, key: &str, secret: &str) -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", key),
        ("AWS_SECRET_ACCESS_KEY", secret),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", endpoint),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[tokio::test]
async fn gcs_source_across_targets_and_sizes() {
    let r2 = R2s::start(false);
    let gcs = FakeGcs::start();
    gcs.create_bucket("legacy").await;
    let want = objects();
    for (k, v) in &want {
        gcs.put_bytes("legacy", &format!("sizes/{k}"), v).await;
    }
    let src = Src {
        url: "gs://legacy/sizes".into(),
        env: vec![("STORAGE_EMULATOR_HOST".into(), gcs.host())],
        config: None,
    };
    run_matrix("gcs", &src, &want, &r2);
}

/// SQLite holds no empty blob (an empty row is recorded `failed`, see
/// `tests/sqlite_source.rs`), so its column of the matrix starts at 1 byte.
#[tokio::test]
async fn sqlite_source_across_targets_and_sizes() {
    let r2 = R2s::start(false);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("blobs.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("CREATE TABLE blobs (name TEXT PRIMARY KEY, data TEXT)")
        .unwrap();
    let want: Vec<(String, Vec<u8>)> = objects()
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    for (k, v) in &want {
        conn.execute(
            "INSERT INTO blobs VALUES (?1, ?2)",
            (k, base64::engine::general_purpose::STANDARD.encode(v)),
        )
        .unwrap();
    }
    drop(conn);
    let src = Src {
        url: format!("sqlite://{}", db.display()),
        env: vec![],
        config: Some(
            "[source]\ntable = \"blobs\"\nid_column = \"name\"\ndata_column = \"data\"\nkey_template = \"{id}\"\n".into(),
        ),
    };
    run_matrix("sqlite", &src, &want, &r2);
}
