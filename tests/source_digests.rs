//! Every byte read from an S3 source is checked against what the source states, multipart
//! objects included: the multipart ETag (MD5 of the parts' MD5s) and COMPOSITE checksums
//! over the part sizes a HEAD per part gives (`partNumber`), FULL_OBJECT checksums
//! directly. A proxy flips one byte of every GET body from the source: each object must
//! be refused, none recorded `copied`. Before, the three multipart kinds were copied with
//! the flipped byte (only the single-part object was caught). Where a store states
//! nothing checkable, the record says so (`source_checked: false`).

mod common;

use aws_sdk_s3::types::ChecksumAlgorithm;
use common::proxy::{Fault, FaultProxy};
use common::*;

const MIB: usize = 1024 * 1024;

fn parts(seed: u64) -> Vec<Vec<u8>> {
    vec![
        bytes_for(seed, 5 * MIB),
        bytes_for(seed + 1, 5 * MIB),
        bytes_for(seed + 2, MIB + 3),
    ]
}

/// The kinds of object S3 holds, under `legacy/`.
async fn fill(c: &aws_sdk_s3::Client) -> Vec<(&'static str, Vec<u8>)> {
    let mut all = Vec::new();
    let single = bytes_for(1, 300_000);
    put_bytes(c, "legacy", "single.bin", &single).await;
    all.push(("single.bin", single));
    for (i, (key, alg)) in [
        ("etag-only.bin", None),
        ("sha256-composite.bin", Some(ChecksumAlgorithm::Sha256)),
        ("crc32c-composite.bin", Some(ChecksumAlgorithm::Crc32C)),
        ("crc64nvme-full.bin", Some(ChecksumAlgorithm::Crc64Nvme)),
    ]
    .into_iter()
    .enumerate()
    {
        let p = parts(10 * i as u64 + 10);
        put_in_parts(c, "legacy", key, alg, &p).await;
        all.push((key, p.concat()));
    }
    all
}

fn run(work: &std::path::Path, r2: &StrictR2, endpoint: &str) -> std::process::Output {
    from_s3_at(r2migrate_to(work, r2), endpoint, ("moto", "moto"))
        .args([
            "run",
            "--json",
            "--from",
            "s3://legacy/",
            "--to",
            "r2://media/",
        ])
        .args(["--multipart-threshold", "5MiB", "--part-size", "5MiB"])
        .output()
        .unwrap()
}

#[tokio::test]
async fn a_byte_flipped_on_the_way_from_s3_is_caught_for_every_kind_of_object() {
    let moto = Moto::start();
    moto.create_bucket("legacy").await;
    let all = fill(&moto.client()).await;
    let r2 = StrictR2::start();
    r2.create_bucket("media");
    // plan counts what will be checked over part sizes, and the HEADs that costs.
    let plan_dir = tempfile::tempdir().unwrap();
    let plan = from_s3_at(
        r2migrate_to(plan_dir.path(), &r2),
        &moto.endpoint(),
        ("moto", "moto"),
    )
    .args([
        "plan",
        "--json",
        "--from",
        "s3://legacy/",
        "--to",
        "r2://media/",
    ])
    .output()
    .unwrap();
    let counts = &json_of(&plan)["counts"];
    assert_eq!(
        (&counts["multipart_at_source"], &counts["multipart_parts"]),
        (&4.into(), &12.into()),
        "{counts}"
    );
    let proxy = FaultProxy::start(moto.port);
    proxy.inject("GET", ".bin", "", 1_000, Fault::FlipReplyByte);
    let work = tempfile::tempdir().unwrap();
    let out = run(work.path(), &r2, &proxy.endpoint());
    assert_exit(&out, 1);
    let manifest = work.path().join("r2migrate-manifest.jsonl");
    for rec in manifest_objects(&manifest) {
        let key = rec["source_key"].as_str().unwrap();
        assert_eq!(
            rec["status"], "failed",
            "{key} was copied with a flipped byte: {rec}"
        );
        let error = rec["error"].as_str().unwrap();
        assert!(
            error.contains("did not match the source's digest"),
            "{key}: {error}"
        );
        assert!(head(&r2.client(), "media", key).await.is_none(), "{key}");
    }
    assert_eq!(manifest_objects(&manifest).len(), all.len());

    // Untouched on the way: every kind is copied, each recorded as checked.
    let out = run(work.path(), &r2, &moto.endpoint());
    assert_exit(&out, 0);
    for (key, bytes) in &all {
        assert!(
            get_bytes(&r2.client(), "media", key).await == *bytes,
            "{key}"
        );
    }
    let latest = manifest_objects(&manifest);
    for rec in &latest[latest.len() - all.len()..] {
        assert_eq!(rec["status"], "copied", "{rec}");
        assert_eq!(rec["source_checked"], true, "{rec}");
    }
}

/// s3s-fs states no part sizes (it ignores `partNumber`): its multipart objects are
/// copied, recorded `source_checked: false`; a byte flipped there is not caught at the
/// source — the record says so, and the target's own checks still hold.
#[tokio::test]
async fn a_store_without_part_sizes_is_recorded_unchecked() {
    let source = S3Server::start_with_keys("moto", "moto");
    source.create_bucket("legacy");
    let c = s3_client_with(&source.endpoint(), "moto", "moto");
    let p = parts(50);
    put_in_parts(&c, "legacy", "etag-only.bin", None, &p).await;
    put_bytes(&c, "legacy", "single.bin", b"small and plain").await;
    let r2 = StrictR2::start();
    r2.create_bucket("media");
    let work = tempfile::tempdir().unwrap();
    let out = run(work.path(), &r2, &source.endpoint());
    assert_exit(&out, 0);
    let records = manifest_objects(&work.path().join("r2migrate-manifest.jsonl"));
    let single = records
        .iter()
        .find(|r| r["source_key"] == "single.bin")
        .unwrap();
    assert_eq!(single["source_checked"], true, "{single}");
    let multi = records
        .iter()
        .find(|r| r["source_key"] == "etag-only.bin")
        .unwrap();
    assert!(
        multi["source_etag"].as_str().unwrap().ends_with("-3"),
        "s3s-fs states a multipart ETag: {multi}"
    );
    assert_eq!(multi["source_checked"], false, "{multi}");
    // verify and report name it; it is no problem (exit 0): R2 holds what was read.
    for command in ["verify", "report"] {
        let out = r2migrate_to(work.path(), &r2)
            .args([command, "--json"])
            .output()
            .unwrap();
        assert_exit(&out, 0);
        assert_eq!(
            json_of(&out)["source_unchecked"],
            serde_json::json!(["etag-only.bin"]),
            "{command}"
        );
    }
    let text = r2migrate_to(work.path(), &r2)
        .arg("verify")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&text.stdout);
    assert!(
        said.contains("1 copied without a source digest") && said.contains("etag-only.bin"),
        "{said}"
    );
}

/// An SSE-KMS object's ETag is not a digest of its bytes: it is copied, recorded
/// `source_checked: false` and named by verify — never checked against its ETag (which
/// would fail every such object) nor silently counted as checked.
#[tokio::test]
async fn an_sse_kms_object_is_copied_and_recorded_unchecked() {
    let moto = Moto::start();
    moto.create_bucket("legacy").await;
    let c = moto.client();
    let body = bytes_for(70, 200_000);
    c.put_object()
        .bucket("legacy")
        .key("kms.bin")
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
        .body(aws_sdk_s3::primitives::ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let r2 = StrictR2::start();
    r2.create_bucket("media");
    let work = tempfile::tempdir().unwrap();
    let out = run(work.path(), &r2, &moto.endpoint());
    assert_exit(&out, 0);
    let rec = &manifest_objects(&work.path().join("r2migrate-manifest.jsonl"))[0];
    assert_eq!(
        (&rec["status"], &rec["source_checked"]),
        (&"copied".into(), &false.into()),
        "{rec}"
    );
    assert!(get_bytes(&r2.client(), "media", "kms.bin").await == body);
    let v = r2migrate_to(work.path(), &r2)
        .args(["verify", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        json_of(&v)["source_unchecked"],
        serde_json::json!(["kms.bin"])
    );
}
