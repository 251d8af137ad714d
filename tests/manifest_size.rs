//! A finished run's manifest stays small — at most 400 bytes per small object — because a
//! run that ends cleanly compacts the intents its outcomes answered, and records leave
//! out what a reader gets otherwise (the header's run, a single PUT's checksum that is
//! the record's own SHA-256). What the manifest makes later commands decide is the same:
//! a re-run copies nothing, `verify` proves every object, a crash's intents survive.

mod common;

use common::*;

/// Keys shaped like the benchmarks' (`0042/obj-004242.bin`), small bodies.
fn tree(n: usize) -> tempfile::TempDir {
    let src = tempfile::tempdir().unwrap();
    for i in 0..n {
        let key = format!("{:04}/obj-{i:06}.bin", i / 100);
        write(src.path(), &key, &bytes_for(i as u64, 100 + i % 50));
    }
    src
}

fn verify_json(work: &std::path::Path, r2: &StrictR2) -> std::process::Output {
    r2migrate_to(work, r2)
        .args(["verify", "--json"])
        .output()
        .unwrap()
}

fn lines_of_type(manifest: &std::path::Path, kind: &str) -> usize {
    manifest_lines(manifest)
        .iter()
        .filter(|l| l["type"] == kind)
        .count()
}

fn manifest_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_finished_run_writes_at_most_400_bytes_per_small_object_and_decides_as_before() {
    const N: usize = 600;
    let r2 = StrictR2::start();
    r2.create_bucket("media");
    let src = tree(N);
    let work = tempfile::tempdir().unwrap();
    let manifest = work.path().join("r2migrate-manifest.jsonl");
    let out = run_to_r2(work.path(), &r2, src.path(), "r2://media/");
    assert_exit(&out, 0);

    let bytes = std::fs::metadata(&manifest).unwrap().len();
    let per_object = bytes / N as u64;
    println!("{bytes} bytes for {N} objects: {per_object} per object");
    assert!(per_object <= 400, "{per_object} bytes per object");
    assert_eq!(
        lines_of_type(&manifest, "intent"),
        0,
        "answered intents stay"
    );
    let records = manifest_objects(&manifest);
    assert_eq!(records.len(), N);
    for r in &records {
        // Left to the header above, and to the record's own SHA-256.
        assert!(r.get("run_id").is_none(), "{r}");
        assert!(r.get("target_checksum").is_none(), "{r}");
        assert_eq!(r["verified_by"], "response", "{r}");
    }

    // Read back, each record still names its run, and the later commands decide as
    // they did: verify proves each object by the SHA-256 R2 reports, report counts them
    // under their run, a re-run finds them done.
    let verify = verify_json(work.path(), &r2);
    assert_exit(&verify, 0);
    assert_eq!(json_of(&verify)["checked"], N);
    let report = r2migrate(work.path())
        .args(["report", "--json"])
        .output()
        .unwrap();
    let doc = json_of(&report);
    assert_eq!(doc["runs"][0]["objects"], N, "{}", doc["runs"]);
    let again = run_to_r2(work.path(), &r2, src.path(), "r2://media/");
    assert_exit(&again, 0);
    assert_eq!(json_of(&again)["counts"]["copied"], 0);
    // A delta run that writes little leaves the manifest as it was, plus its lines.
    write(src.path(), "0000/obj-000000.bin", b"changed");
    let delta = run_to_r2(work.path(), &r2, src.path(), "r2://media/");
    assert_exit(&delta, 0);
    assert_eq!(json_of(&delta)["counts"]["copied"], 1);
    assert_eq!(
        lines_of_type(&manifest, "intent"),
        1,
        "not worth compacting"
    );
    let verify = verify_json(work.path(), &r2);
    assert_exit(&verify, 0);
}

#[test]
fn a_run_that_does_not_end_cleanly_keeps_every_intent_and_the_next_one_compacts() {
    const N: usize = 60;
    let r2 = StrictR2::start();
    r2.create_bucket("media");
    let src = tree(N);
    let work = tempfile::tempdir().unwrap();
    let manifest = work.path().join("r2migrate-manifest.jsonl");
    // Dies (kill -9) right after its 20th upload landed: intents with no outcome.
    let crashed = r2migrate_to(work.path(), &r2)
        .env("R2MIGRATE_TEST_DIE_AFTER_UPLOADS", "20")
        .args(["run", "--concurrency", "4", "--from"])
        .arg(src.path())
        .args(["--to", "r2://media/"])
        .output()
        .unwrap();
    assert!(!crashed.status.success());
    let intents = lines_of_type(&manifest, "intent");
    let outcomes = lines_of_type(&manifest, "object");
    assert!(intents > outcomes, "{intents} intents, {outcomes} outcomes");

    let resumed = run_to_r2(work.path(), &r2, src.path(), "r2://media/");
    assert_exit(&resumed, 0);
    assert_eq!(lines_of_type(&manifest, "intent"), 0);
    let latest: std::collections::HashMap<String, serde_json::Value> = manifest_objects(&manifest)
        .into_iter()
        .map(|r| (r["source_key"].as_str().unwrap().to_string(), r))
        .collect();
    assert_eq!(latest.len(), N);
    assert!(latest.values().all(|r| r["status"] == "copied"));
    // Rollback still knows every object is ours, compacted or not.
    let rollback = r2migrate_to(work.path(), &r2)
        .args(["rollback", "--yes", "--json"])
        .output()
        .unwrap();
    assert_exit(&rollback, 0);
    assert_eq!(json_of(&rollback)["rolled_back"], N);
}
