//! Endpoints with a path: gateways and reverse proxies in front of S3-compatible stores
//! serve the S3 API under a path, and so does Cloudflare's own local R2
//! (`http://127.0.0.1:P/cdn-cgi/local/r2/s3`). Given as `R2_ENDPOINT_URL` or as
//! `--source-endpoint`, with or without a trailing slash, every request goes to
//! `<path>/<bucket>/…` — never the bucket glued to the path. And an endpoint that answers
//! something other than the S3 API says what it answered.

mod common;

use common::proxy::FaultProxy;
use common::*;

const GATEWAY: &str = "/cdn-cgi/local/r2/s3";

fn tree() -> tempfile::TempDir {
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "a.txt", b"alpha");
    write(src.path(), "photos/b c.jpg", &bytes_for(3, 4000));
    src
}

// Moto plays the store behind the gateway: it checks no signature, and the signature
// covers the path the client sent, which a store behind a path-stripping proxy never sees.

/// Every request the gateway saw went under its path, to the bucket.
fn all_under(gw: &FaultProxy, bucket: &str) {
    let seen = gw.requests();
    assert!(!seen.is_empty(), "no request reached the gateway");
    let want = format!("{GATEWAY}/{bucket}");
    for line in &seen {
        let path = line.split_once(' ').map(|(_, p)| p).unwrap_or("");
        assert!(path.starts_with(&want), "{line}: not under {want}");
    }
}

#[test]
fn r2_behind_a_gateway_path_is_written_under_that_path() {
    let server = Moto::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(server.create_bucket("dest"));
    let gw = FaultProxy::start_under(server.port, GATEWAY);
    let src = tree();
    for (i, endpoint) in [
        format!("{}{GATEWAY}", gw.endpoint()),
        format!("{}{GATEWAY}/", gw.endpoint()),
    ]
    .into_iter()
    .enumerate()
    {
        let work = tempfile::tempdir().unwrap();
        let mut cmd = r2migrate(work.path());
        cmd.env("R2_ENDPOINT_URL", &endpoint)
            .env("R2_ACCESS_KEY_ID", ACCESS_KEY)
            .env("R2_SECRET_ACCESS_KEY", SECRET_KEY)
            .args(["run", "--json"])
            .arg("--from")
            .arg(src.path())
            .args(["--to", &format!("r2://dest/fx{i}/")]);
        let out = cmd.output().unwrap();
        assert_exit(&out, 0);
        let keys = rt.block_on(list_keys(&server.client(), "dest", &format!("fx{i}/")));
        assert_eq!(
            keys,
            ["a.txt", "photos/b c.jpg"].map(|k| format!("fx{i}/{k}")),
            "{endpoint}"
        );
    }
    all_under(&gw, "dest");
}

#[test]
fn an_s3_source_behind_a_gateway_path_is_read_under_that_path() {
    let server = Moto::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(server.create_bucket("src"));
    rt.block_on(put_bytes(&server.client(), "src", "docs/a.txt", b"alpha"));
    rt.block_on(put_bytes(
        &server.client(),
        "src",
        "docs/b.bin",
        &bytes_for(9, 70_000),
    ));
    let gw = FaultProxy::start_under(server.port, GATEWAY);
    for endpoint in [
        format!("{}{GATEWAY}", gw.endpoint()),
        format!("{}{GATEWAY}/", gw.endpoint()),
    ] {
        let work = tempfile::tempdir().unwrap();
        let out = r2migrate(work.path())
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_REGION", "us-east-1")
            .args([
                "run",
                "--json",
                "--from",
                "s3://src/docs/",
                "--to",
                "./rehearsal",
            ])
            .args(["--source-endpoint", &endpoint])
            .output()
            .unwrap();
        assert_exit(&out, 0);
        assert_eq!(
            std::fs::read(work.path().join("rehearsal/a.txt")).unwrap(),
            b"alpha"
        );
        assert_eq!(
            std::fs::read(work.path().join("rehearsal/b.bin")).unwrap(),
            bytes_for(9, 70_000)
        );
    }
    all_under(&gw, "src");
}

/// A URL that reaches a web page instead of the S3 API (a wrong path on a gateway) is
/// refused before any copy, and the message says what was asked, what came back and
/// what to check — not an empty code.
#[test]
fn an_endpoint_that_answers_a_web_page_says_what_came_back() {
    let server = Moto::start();
    let gw = FaultProxy::start_under(server.port, GATEWAY);
    let src = tree();
    let work = tempfile::tempdir().unwrap();
    let out = r2migrate(work.path())
        .env("R2_ENDPOINT_URL", format!("{}/not/the/api", gw.endpoint()))
        .env("R2_ACCESS_KEY_ID", ACCESS_KEY)
        .env("R2_SECRET_ACCESS_KEY", SECRET_KEY)
        .args(["run", "--from"])
        .arg(src.path())
        .args(["--to", "r2://dest/fx/"])
        .output()
        .unwrap();
    assert_exit(&out, 3);
    let err = String::from_utf8_lossy(&out.stderr);
    for part in [
        "r2://dest/fx/",
        "HTTP 200",
        "text/html",
        "<!DOCTYPE html>",
        "R2_ENDPOINT_URL",
    ] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
    assert!(!err.contains(":  ("), "an empty code in: {err}");
    assert!(!err.contains(SECRET_KEY));
}
