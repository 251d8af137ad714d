//! Every command's `--json` document matches its schema in `docs/schemas/`, in the
//! situations that fill its optional parts: a clean pass and one with conflicts,
//! collisions and too-large objects; a delta plan; a SQLite source; verify with problems
//! and against the source; a partly failed run's report; rewrite-urls; rollback of one
//! manifest and of several. The schemas forbid unknown fields, so a document that grows
//! a field fails here until docs/json.md and its schema say what the field means.

mod common;

use std::path::Path;

use common::*;

fn schema(command: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/schemas")
        .join(format!("{command}.schema.json"));
    let text = std::fs::read_to_string(&path).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&value)
        .unwrap_or_else(|e| panic!("{} is not a valid schema: {e}", path.display()))
}

/// Runs the command with `--json` in `work` and checks its document; returns it.
fn checked(work: &Path, command: &str, args: &[&str], exit: i32) -> serde_json::Value {
    let out = r2migrate(work)
        .arg(command)
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert_exit(&out, exit);
    let doc = json_of(&out);
    let errors: Vec<String> = schema(command)
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "`{command} {args:?}` does not match docs/schemas/{command}.schema.json:\n{}\n{doc:#}",
        errors.join("\n")
    );
    doc
}

fn fixtures(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
        .display()
        .to_string()
}

#[test]
fn every_schema_is_a_valid_json_schema() {
    for command in [
        "plan",
        "run",
        "verify",
        "rollback",
        "report",
        "rewrite-urls",
    ] {
        schema(command);
    }
}

#[test]
fn the_fixtures_lifecycle_matches_the_schemas() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let media = fixtures("media");
    let to = ["--from", &media, "--to", "./rehearsal"];
    let plan = checked(
        w,
        "plan",
        &[&to[..], &["--source-egress-price", "0.09"]].concat(),
        0,
    );
    assert!(plan["delta"].is_null() && plan["source_egress"].is_object());
    // The schemas are strict: a field they do not describe is an error.
    let mut grown = plan.clone();
    grown["counts"]["surprise"] = 1.into();
    assert!(
        !schema("plan").is_valid(&grown),
        "unknown fields must not pass"
    );
    checked(w, "run", &to, 0);
    // With a manifest: the delta part.
    let delta = checked(w, "plan", &to, 0);
    assert_eq!(delta["delta"]["unchanged"], 11, "{delta}");
    checked(w, "verify", &["--deep"], 0);
    let against = checked(w, "verify", &["--against-source"], 0);
    assert!(against["against_source"].is_array());
    // A problem for verify: one object gone from the target.
    std::fs::remove_file(w.join("rehearsal/docs/readme.md")).unwrap();
    let bad = checked(w, "verify", &[], 1);
    assert_eq!(bad["problems"].as_array().unwrap().len(), 1, "{bad}");
    checked(w, "report", &[], 0);
    // The site's URLs, dry and real, then the whole migration rolled back.
    std::fs::copy(fixtures("site.db"), w.join("site.db")).unwrap();
    let site = fixtures("site.toml");
    checked(w, "rewrite-urls", &["--config", &site, "--dry-run"], 1);
    checked(w, "rewrite-urls", &["--config", &site], 1);
    checked(w, "rollback", &["--dry-run"], 0);
    let rolled = checked(w, "rollback", &["--yes"], 0);
    assert!(!rolled["urls"].as_array().unwrap().is_empty(), "{rolled}");
}

#[test]
fn documents_with_problems_match_the_schemas() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let src = w.join("src");
    write(&src, "a.txt", b"alpha");
    write(&src, "clash.txt", b"source bytes");
    write(&src, "caf\u{e9}.txt", b"composed");
    write(&src, "cafe\u{301}.txt", b"decomposed");
    write(&src, "boom.txt", b"explodes");
    std::fs::File::create(src.join("disk.img"))
        .unwrap()
        .set_len(5 << 40)
        .unwrap();
    write(&w.join("rehearsal"), "clash.txt", b"someone else's");
    let to = ["--from", "./src", "--to", "./rehearsal"];
    let plan = checked(w, "plan", &to, 1);
    assert_eq!(plan["collisions"][0]["collides_with"], "cafe\u{301}.txt");
    let out = r2migrate(w)
        .env("R2MIGRATE_TEST_PANIC_KEY", "boom")
        .args(["run", "--json"])
        .args(to)
        .output()
        .unwrap();
    assert_exit(&out, 1);
    let run = json_of(&out);
    let errors: Vec<String> = schema("run")
        .iter_errors(&run)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}\n{run:#}");
    assert!(run["problems"].as_array().unwrap().len() >= 3, "{run}");
    let report = checked(w, "report", &[], 0);
    assert!(
        report["failures_by_reason"].as_array().unwrap().len() >= 3,
        "{report}"
    );
}

#[test]
fn a_sqlite_plan_and_a_sharded_rollback_match_the_schemas() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::copy(fixtures("app.db"), w.join("app.db")).unwrap();
    let from = format!("sqlite://{}", w.join("app.db").display());
    let app = fixtures("app.toml");
    let plan = checked(
        w,
        "plan",
        &["--config", &app, "--from", &from, "--to", "./rehearsal"],
        1, // two rows do not decode
    );
    assert_eq!(plan["sqlite"]["rows"], 7, "{plan}");
    // Two shards of the media: two manifests, rolled back together.
    let media = fixtures("media");
    for shard in ["0/2", "1/2"] {
        checked(
            w,
            "run",
            &["--from", &media, "--to", "./media-copy", "--shard", shard],
            0,
        );
    }
    let both = checked(
        w,
        "rollback",
        &[
            "--yes",
            "--manifest",
            "r2migrate-manifest.shard-*-of-2.jsonl",
        ],
        0,
    );
    assert_eq!(both["manifests"].as_array().unwrap().len(), 2, "{both}");
}
