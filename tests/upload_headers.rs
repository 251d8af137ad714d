//! Upload headers and storage class, read back from a server that keeps them (moto):
//! `--header-upload` on every object and `[[target.headers]]` by glob, over what the
//! source carried; `--storage-class STANDARD_IA` on single PUTs (read back) and multipart
//! uploads (seen by the proxy); a
//! header R2 does not store, or an unknown class, is refused with exit 2; `plan` prices
//! both classes.

mod common;

use common::*;

const CONFIG: &str = r#"
[[target.headers]]
glob = "*.css"
set = ["Content-Type: text/css; charset=utf-8", "Cache-Control: max-age=60"]
"#;

#[tokio::test]
async fn headers_and_storage_class_land_on_every_object() {
    let moto = Moto::start();
    moto.create_bucket("media").await;
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "site/app.css", b"body{}");
    write(src.path(), "site/logo.png", &bytes_for(1, 2_000));
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("h.toml"), CONFIG).unwrap();
    let out = r2migrate(work.path())
        .env("R2_ENDPOINT_URL", moto.endpoint())
        .env("R2_ACCESS_KEY_ID", "moto")
        .env("R2_SECRET_ACCESS_KEY", "moto")
        .args(["run", "--json", "--config", "h.toml", "--from"])
        .arg(src.path())
        .args(["--to", "r2://media/"])
        .args(["--storage-class", "STANDARD_IA"])
        .args(["--header-upload", "Cache-Control: public, max-age=31536000"])
        .args(["--header-upload", "x-amz-meta-migrated-by: r2migrate"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let client = moto.client();
    for key in ["site/app.css", "site/logo.png"] {
        let h = head(&client, "media", key).await.unwrap();
        assert_eq!(
            h.storage_class().map(|c| c.as_str()),
            Some("STANDARD_IA"),
            "{key}"
        );
        // The flag wins over the file's rule, which wins over the source.
        assert_eq!(h.cache_control(), Some("public, max-age=31536000"), "{key}");
        assert_eq!(
            h.metadata()
                .and_then(|m| m.get("migrated-by"))
                .map(String::as_str),
            Some("r2migrate"),
            "{key}"
        );
    }
    let css = head(&client, "media", "site/app.css").await.unwrap();
    assert_eq!(css.content_type(), Some("text/css; charset=utf-8"));
    let png = head(&client, "media", "site/logo.png").await.unwrap();
    assert_ne!(png.content_type(), Some("text/css; charset=utf-8"));
}

/// moto cannot complete our multipart uploads (a known gap, see the target suite), and
/// s3s-fs keeps no storage class: the proxy shows what a multipart upload asked for.
#[tokio::test]
async fn a_multipart_upload_asks_for_the_class_and_headers_when_it_starts() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let proxy = common::proxy::FaultProxy::start(r2.port);
    let src = tempfile::tempdir().unwrap();
    write(
        src.path(),
        "video/big.mp4",
        &bytes_for(2, 6 * 1024 * 1024 + 3),
    );
    let work = tempfile::tempdir().unwrap();
    let out = via_proxy(work.path(), &proxy)
        .args(["run", "--from"])
        .arg(src.path())
        .args(["--to", "r2://media/", "--multipart-threshold", "5MiB"])
        .args(["--storage-class", "STANDARD_IA"])
        .args(["--header-upload", "Cache-Control: max-age=600"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let created = |name| proxy.header_values("POST", "video/big.mp4?uploads", name);
    assert_eq!(created("x-amz-storage-class"), vec!["STANDARD_IA"]);
    assert_eq!(created("cache-control"), vec!["max-age=600"]);
    // Each part is proven by its CRC64NVME, which R2 checks; not hashed again to sign it.
    let signed = proxy.header_values("PUT", "partNumber=", "x-amz-content-sha256");
    assert!(
        !signed.is_empty() && signed.iter().all(|v| v == "UNSIGNED-PAYLOAD"),
        "{signed:?}"
    );
}

#[test]
fn headers_r2_does_not_store_and_unknown_classes_exit_2() {
    let work = tempfile::tempdir().unwrap();
    for extra in [
        vec!["--header-upload", "X-Frame-Options: DENY"],
        vec!["--header-upload", "Cache-Control"],
        vec!["--storage-class", "GLACIER"],
    ] {
        let out = r2migrate(work.path())
            .args(["plan", "--from", ".", "--to", "./out"])
            .args(&extra)
            .output()
            .unwrap();
        assert_exit(&out, 2);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(extra[1]), "{extra:?}: {err}");
    }
}

#[test]
fn plan_prices_both_storage_classes() {
    let work = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "a.bin", &bytes_for(3, 100_000));
    let plan = |extra: &[&str]| {
        let out = r2migrate(work.path())
            .args(["plan", "--json", "--from"])
            .arg(src.path())
            .args(["--to", "./out"])
            .args(extra)
            .output()
            .unwrap();
        assert_exit(&out, 0);
        json_of(&out)["estimate"].clone()
    };
    let standard = plan(&[]);
    assert_eq!(standard["storage_class"], "Standard");
    let ia = &standard["infrequent_access"];
    assert_eq!(ia["minimum_storage_days"], 30);
    assert!(ia["retrieval_usd_per_full_read"].as_f64().unwrap() > 0.0);
    assert!(
        ia["storage_usd_per_month"].as_f64().unwrap()
            < standard["standard"]["storage_usd_per_month"]
                .as_f64()
                .unwrap()
    );
    let chosen = plan(&["--storage-class", "STANDARD_IA"]);
    assert_eq!(chosen["storage_class"], "Infrequent Access");
    assert_eq!(chosen["storage_usd_per_month"], ia["storage_usd_per_month"]);
}
