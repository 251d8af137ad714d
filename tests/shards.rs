//! Scale-out as a Kubernetes Indexed Job runs it: N processes at once, each with its
//! `JOB_COMPLETION_INDEX` and `--shard auto/N`, in one working directory (a shared
//! volume). Each writes its own `r2migrate-manifest.shard-K-of-N.jsonl`; together they
//! copy every key once; `verify`, `report` and `rollback` take the set as a quoted glob,
//! and a set that mixes migrations is refused.

mod common;

use std::collections::HashSet;
use std::process::{Command, Stdio};

use common::*;

const N: usize = 3;
const FILES: usize = 90;

#[tokio::test]
async fn n_pods_split_one_migration_and_their_manifests_merge() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let src = tempfile::tempdir().unwrap();
    for i in 0..FILES {
        write(
            src.path(),
            &format!("p/{i:03}.jpg"),
            &bytes_for(i as u64, 500 + i),
        );
    }
    let work = tempfile::tempdir().unwrap();
    let pods: Vec<_> = (0..N)
        .map(|k| {
            Command::new(assert_cmd::cargo::cargo_bin("r2migrate"))
                .current_dir(work.path())
                .env("R2_ENDPOINT_URL", r2.endpoint())
                .env("R2_ACCESS_KEY_ID", ACCESS_KEY)
                .env("R2_SECRET_ACCESS_KEY", SECRET_KEY)
                .env("JOB_COMPLETION_INDEX", k.to_string())
                .args(["run", "--quiet", "--shard", &format!("auto/{N}"), "--from"])
                .arg(src.path())
                .args(["--to", "r2://media/"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for pod in pods {
        let out = pod.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut seen = HashSet::new();
    for k in 0..N {
        let path = work
            .path()
            .join(format!("r2migrate-manifest.shard-{k}-of-{N}.jsonl"));
        let recs = manifest_objects(&path);
        assert!(!recs.is_empty(), "shard {k} copied nothing");
        for r in recs {
            assert_eq!(r["status"], "copied");
            assert!(
                seen.insert(r["source_key"].to_string()),
                "{} twice",
                r["source_key"]
            );
        }
    }
    assert_eq!(seen.len(), FILES, "every key once");
    assert_eq!(list_keys(&r2.client(), "media", "").await.len(), FILES);

    // The set, as a quoted glob.
    let glob = "r2migrate-manifest.shard-*-of-3.jsonl";
    let verify = r2migrate_to(work.path(), &r2)
        .args(["verify", "--json", glob])
        .output()
        .unwrap();
    assert_exit(&verify, 0);
    assert_eq!(json_of(&verify)["checked"], FILES as u64);
    // Against the source, the set covers every key: no shard's keys read as deleted.
    let against = r2migrate_to(work.path(), &r2)
        .args(["verify", "--json", "--against-source", glob])
        .output()
        .unwrap();
    assert_exit(&against, 0);
    assert_eq!(json_of(&against)["against_source"], serde_json::json!([]));
    // One shard's manifest alone covers its own keys only: still no gaps.
    let one = r2migrate_to(work.path(), &r2)
        .args([
            "verify",
            "--against-source",
            "r2migrate-manifest.shard-1-of-3.jsonl",
        ])
        .output()
        .unwrap();
    assert_exit(&one, 0);
    let report = r2migrate(work.path())
        .args(["report", "--json", "--manifest", glob])
        .output()
        .unwrap();
    assert_exit(&report, 0);
    assert_eq!(json_of(&report)["counts"]["copied"], FILES as u64);
    let rollback = r2migrate_to(work.path(), &r2)
        .args(["rollback", "--yes", "--json", "--manifest", glob])
        .output()
        .unwrap();
    assert_exit(&rollback, 0);
    let doc = json_of(&rollback);
    assert_eq!(doc["manifests"].as_array().unwrap().len(), N, "{doc}");
    assert!(list_keys(&r2.client(), "media", "").await.is_empty());

    // A manifest of another migration in the set is refused.
    let other = tempfile::tempdir().unwrap();
    write(other.path(), "x.txt", b"x");
    let out = r2migrate_to(work.path(), &r2)
        .args([
            "run",
            "--manifest",
            "r2migrate-manifest.shard-9-of-3.jsonl",
            "--from",
        ])
        .arg(other.path())
        .args(["--to", "r2://media/other/"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let mixed = r2migrate_to(work.path(), &r2)
        .args(["verify", "r2migrate-manifest.shard-*.jsonl"])
        .output()
        .unwrap();
    assert_exit(&mixed, 2);
}

#[test]
fn auto_without_a_completion_index_or_a_pattern_matching_nothing_exit_2() {
    let work = tempfile::tempdir().unwrap();
    let out = r2migrate(work.path())
        .args(["plan", "--from", ".", "--to", "./out", "--shard", "auto/4"])
        .output()
        .unwrap();
    assert_exit(&out, 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("JOB_COMPLETION_INDEX"));
    let out = r2migrate(work.path())
        .args(["report", "nothing-*.jsonl"])
        .output()
        .unwrap();
    assert_exit(&out, 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing-*.jsonl"));
}
