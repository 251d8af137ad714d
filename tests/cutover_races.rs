//! Cutover while the application writes: every write r2migrate makes states what it
//! expects at the key (`If-None-Match: *` for a key found absent, `If-Match: <etag>` for
//! one it replaces), so an object the application wrote in between is never
//! overwritten. The strict R2 server makes the race on demand: the application's write
//! lands just before r2migrate's is looked at. A 412 is never resent blindly: the key is
//! looked at again and classed as any object found there.

mod common;

use common::*;

const MIB: usize = 1024 * 1024;

struct Case {
    r2: StrictR2,
    src: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Case {
    fn new(files: &[(&str, Vec<u8>)]) -> Case {
        let r2 = StrictR2::start();
        r2.create_bucket("media");
        let src = tempfile::tempdir().unwrap();
        for (k, v) in files {
            write(src.path(), k, v);
        }
        Case {
            r2,
            src,
            work: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, extra: &[&str]) -> std::process::Output {
        r2migrate_to(self.work.path(), &self.r2)
            .args(["run", "--json", "--from"])
            .arg(self.src.path())
            .args(["--to", "r2://media/"])
            .args(["--multipart-threshold", "5MiB", "--part-size", "5MiB"])
            .args(extra)
            .output()
            .unwrap()
    }

    fn latest(&self, key: &str) -> serde_json::Value {
        manifest_objects(&self.work.path().join("r2migrate-manifest.jsonl"))
            .into_iter()
            .rfind(|r| r["source_key"] == key)
            .unwrap()
    }

    fn target(&self, key: &str) -> Vec<u8> {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(get_bytes(&self.r2.client(), "media", key))
    }

    fn command(&self, args: &[&str]) -> std::process::Output {
        r2migrate_to(self.work.path(), &self.r2)
            .args(args)
            .output()
            .unwrap()
    }
}

/// The application's object stays, the record says why, verify finds nothing of ours
/// missing, and rollback leaves the application's object alone.
fn assert_left_to_the_application(case: &Case, key: &str, app: &[u8]) {
    let rec = case.latest(key);
    assert_eq!(rec["status"], "conflict", "{rec}");
    let error = rec["error"].as_str().unwrap();
    assert!(
        error.contains("written by someone else during the run"),
        "{error}"
    );
    assert!(
        case.target(key) == app,
        "{key}: the application's bytes stay"
    );
    assert_exit(&case.command(&["verify"]), 0);
    assert_exit(&case.command(&["rollback"]), 0);
    assert!(case.target(key) == app, "{key}: rollback leaves it alone");
    assert_eq!(case.r2.open_uploads(), 0);
}

#[test]
fn a_new_key_written_by_the_application_first_is_a_conflict_never_overwritten() {
    let ours = bytes_for(1, 20_000);
    let case = Case::new(&[("avatar.png", ours)]);
    let app = bytes_for(2, 30_000);
    case.r2.race("media", "avatar.png", &app);
    let out = case.run(&[]);
    assert_exit(&out, 1);
    let counts = &json_of(&out)["counts"];
    assert_eq!(
        (&counts["conflict"], &counts["written_by_others"]),
        (&1.into(), &1.into())
    );
    let text = case.command(&["report"]);
    let said = String::from_utf8_lossy(&text.stdout);
    assert!(
        said.contains("written by someone else during a run: 1"),
        "{said}"
    );
    assert_left_to_the_application(&case, "avatar.png", &app);
}

#[test]
fn a_large_new_object_raced_during_its_upload_is_not_completed_over_it() {
    let case = Case::new(&[("video.mp4", bytes_for(3, 11 * MIB))]);
    let app = bytes_for(4, 1000);
    case.r2.race("media", "video.mp4", &app);
    let out = case.run(&[]);
    assert_exit(&out, 1);
    assert_left_to_the_application(&case, "video.mp4", &app);
}

#[test]
fn with_skip_a_raced_key_is_recorded_skipped() {
    let case = Case::new(&[("a.txt", b"ours".to_vec())]);
    case.r2.race("media", "a.txt", b"theirs");
    let out = case.run(&["--on-conflict", "skip"]);
    assert_exit(&out, 0);
    let rec = case.latest("a.txt");
    assert_eq!(rec["status"], "skipped", "{rec}");
    assert!(rec["error"]
        .as_str()
        .unwrap()
        .contains("written by someone else during the run"));
    assert_eq!(case.target("a.txt"), b"theirs");
}

/// `--on-conflict overwrite`: the application's object is backed up, then replaced with
/// `If-Match` of exactly what was backed up; rollback restores it.
#[test]
fn with_overwrite_the_raced_object_is_backed_up_then_replaced() {
    let ours = bytes_for(5, 4000);
    let case = Case::new(&[("a.bin", ours.clone())]);
    let app = bytes_for(6, 5000);
    case.r2.race("media", "a.bin", &app);
    let out = case.run(&["--on-conflict", "overwrite"]);
    assert_exit(&out, 0);
    let rec = case.latest("a.bin");
    assert_eq!(rec["status"], "copied", "{rec}");
    let backup = rec["backup_key"].as_str().unwrap().to_string();
    assert!(case.target("a.bin") == ours);
    assert!(
        case.target(&backup) == app,
        "the application's object, backed up"
    );
    assert_exit(&case.command(&["rollback"]), 0);
    assert!(
        case.target("a.bin") == app,
        "rollback restores the application's object"
    );
}

/// The application writes the very bytes of the source: nothing to copy, recorded
/// `identical` (never ours, so rollback leaves it).
#[test]
fn a_race_with_the_same_bytes_is_identical() {
    let bytes = bytes_for(7, 3000);
    let case = Case::new(&[("same.bin", bytes.clone())]);
    case.r2.race("media", "same.bin", &bytes);
    let out = case.run(&[]);
    assert_exit(&out, 0);
    let rec = case.latest("same.bin");
    assert_eq!(rec["status"], "identical");
    assert!(
        rec["error"]
            .as_str()
            .unwrap()
            .contains("written by someone else during the run"),
        "{rec}"
    );
    assert_eq!(json_of(&out)["counts"]["written_by_others"], 1);
}

/// The delta pass at cutover: our earlier copy is replaced only with `If-Match` of what
/// we wrote; an application write in between is a conflict, not overwritten.
#[test]
fn a_delta_replacement_of_our_object_raced_by_the_application_is_a_conflict() {
    let case = Case::new(&[("doc.pdf", bytes_for(8, 9000))]);
    assert_exit(&case.run(&[]), 0);
    std::thread::sleep(std::time::Duration::from_millis(1100)); // R2: one write/s per key
    write(case.src.path(), "doc.pdf", &bytes_for(9, 9500));
    let app = bytes_for(10, 100);
    case.r2.race("media", "doc.pdf", &app);
    let out = case.run(&[]);
    assert_exit(&out, 1);
    assert_left_to_the_application(&case, "doc.pdf", &app);
}

/// The same races on the rehearsal target (`file://`), which checks the same conditions:
/// a test hook has "the application" write the key just before r2migrate's write.
fn rehearsal_run(
    work: &std::path::Path,
    src: &std::path::Path,
    race: Option<(&str, &[u8])>,
    extra: &[&str],
) -> std::process::Output {
    let mut cmd = r2migrate(work);
    if let Some((key, bytes)) = race {
        let file = work.join("application-bytes");
        std::fs::write(&file, bytes).unwrap();
        cmd.env("R2MIGRATE_TEST_RACE_KEY", key)
            .env("R2MIGRATE_TEST_RACE_BYTES", &file);
    }
    cmd.args(["run", "--json", "--from"])
        .arg(src)
        .args(["--to", "./rehearsal"])
        .args(["--multipart-threshold", "5MiB", "--part-size", "5MiB"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn the_rehearsal_target_refuses_the_same_races() {
    for (name, size, delta) in [
        ("new.bin", 3000, false),
        ("big.bin", 11 * MIB, false),
        ("ours.bin", 3000, true),
    ] {
        let work = tempfile::tempdir().unwrap();
        let src = work.path().join("src");
        write(&src, name, &bytes_for(20, size));
        if delta {
            assert_exit(&rehearsal_run(work.path(), &src, None, &[]), 0);
            write(&src, name, &bytes_for(21, size + 1));
        }
        let app = bytes_for(22, 777);
        let out = rehearsal_run(work.path(), &src, Some((name, &app)), &[]);
        assert_exit(&out, 1);
        let rec = manifest_objects(&work.path().join("r2migrate-manifest.jsonl"))
            .pop()
            .unwrap();
        assert_eq!(rec["status"], "conflict", "{name}: {rec}");
        assert!(rec["error"]
            .as_str()
            .unwrap()
            .contains("written by someone else during the run"));
        let at = work.path().join("rehearsal").join(name);
        assert!(
            std::fs::read(&at).unwrap() == app,
            "{name}: the application's bytes stay"
        );
        assert_exit(&r2migrate(work.path()).arg("rollback").output().unwrap(), 0);
        assert!(
            std::fs::read(&at).unwrap() == app,
            "{name}: rollback leaves them"
        );
    }
}

#[test]
fn on_the_rehearsal_target_overwrite_backs_up_the_raced_object() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let ours = bytes_for(23, 4000);
    write(&src, "a.bin", &ours);
    let app = bytes_for(24, 900);
    let out = rehearsal_run(
        work.path(),
        &src,
        Some(("a.bin", &app)),
        &["--on-conflict", "overwrite"],
    );
    assert_exit(&out, 0);
    let at = work.path().join("rehearsal/a.bin");
    assert!(std::fs::read(&at).unwrap() == ours);
    assert_exit(&r2migrate(work.path()).arg("rollback").output().unwrap(), 0);
    assert!(
        std::fs::read(&at).unwrap() == app,
        "rollback restores the application's object"
    );
}

/// Rollback restores a backup only over what r2migrate wrote (`cf-copy-destination-if-match`
/// of the object it found ours): the application writing the key in between keeps its
/// object, and the backup stays for a person to decide.
#[test]
fn a_rollback_restore_raced_by_the_application_leaves_its_object() {
    let ours = bytes_for(30, 4000);
    let case = Case::new(&[("a.bin", ours)]);
    let before = bytes_for(31, 2000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(put_bytes(&case.r2.client(), "media", "a.bin", &before));
    assert_exit(&case.run(&["--on-conflict", "overwrite"]), 0);
    let backup = case.latest("a.bin")["backup_key"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(std::time::Duration::from_millis(1100)); // R2: one write/s per key
    let app = bytes_for(32, 3000);
    case.r2.race("media", "a.bin", &app);
    let out = case.command(&["rollback", "--yes"]);
    assert_exit(&out, 1);
    let rec = case.latest("a.bin");
    assert_eq!(rec["status"], "kept", "{rec}");
    assert!(
        rec["error"]
            .as_str()
            .unwrap()
            .contains("written by someone else during the rollback"),
        "{rec}"
    );
    assert!(case.target("a.bin") == app, "the application's write stays");
    assert!(case.target(&backup) == before, "the backup is kept");
}

#[test]
fn on_the_rehearsal_target_a_raced_rollback_restore_leaves_the_application_object() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    write(&src, "a.bin", &bytes_for(33, 4000));
    let before = bytes_for(34, 2000);
    write(&work.path().join("rehearsal"), "a.bin", &before);
    let out = rehearsal_run(work.path(), &src, None, &["--on-conflict", "overwrite"]);
    assert_exit(&out, 0);
    let app = bytes_for(35, 3000);
    let file = work.path().join("application-bytes");
    std::fs::write(&file, &app).unwrap();
    let out = r2migrate(work.path())
        .env("R2MIGRATE_TEST_RACE_KEY", "a.bin")
        .env("R2MIGRATE_TEST_RACE_BYTES", &file)
        .args(["rollback", "--yes"])
        .output()
        .unwrap();
    assert_exit(&out, 1);
    let rec = manifest_objects(&work.path().join("r2migrate-manifest.jsonl"))
        .pop()
        .unwrap();
    assert_eq!(rec["status"], "kept", "{rec}");
    let at = work.path().join("rehearsal/a.bin");
    assert!(
        std::fs::read(&at).unwrap() == app,
        "the application's write stays"
    );
    let backup = work
        .path()
        .join("rehearsal")
        .join(rec["backup_key"].as_str().unwrap());
    assert!(
        std::fs::read(backup).unwrap() == before,
        "the backup is kept"
    );
}
