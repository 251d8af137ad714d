//! The local rehearsal target (`file:///dir`): the README's first command, and the same
//! verify / conflict / rollback behaviour as R2, with no server at all.

mod common;

use common::*;

fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/media")
}

fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out: Vec<String> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            e.path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|p| !p.starts_with(".r2migrate"))
        .collect();
    out.sort();
    out
}

#[test]
fn fixtures_rehearse_end_to_end_with_no_cloud_account() {
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("rehearsal");
    let to = format!("file://{}", target.display());
    let f = fixtures();

    let plan = r2migrate(work.path())
        .args(["plan", "--from"])
        .arg(&f)
        .args(["--to", &to])
        .output()
        .unwrap();
    assert_eq!(plan.status.code(), Some(0));
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(text.contains("a run would copy 11 objects"), "{text}");
    assert!(
        !target.exists() || files_under(&target).is_empty(),
        "plan wrote nothing"
    );

    r2migrate(work.path())
        .args(["run", "--from"])
        .arg(&f)
        .args(["--to", &to])
        .assert()
        .code(0);
    assert_eq!(files_under(&target), files_under(&f));
    for rel in files_under(&f) {
        assert_eq!(
            std::fs::read(target.join(&rel)).unwrap(),
            std::fs::read(f.join(&rel)).unwrap(),
            "{rel}"
        );
    }
    r2migrate(work.path())
        .args(["verify", "--deep"])
        .assert()
        .code(0);

    // A change behind our back is caught, and rollback leaves it alone.
    std::fs::write(target.join("docs/readme.md"), "edited by hand\n").unwrap();
    r2migrate(work.path()).args(["verify"]).assert().code(1);
    r2migrate(work.path())
        .args(["rollback", "--yes"])
        .assert()
        .code(1);
    assert_eq!(files_under(&target), vec!["docs/readme.md".to_string()]);
}

#[test]
fn rehearsal_conflicts_and_overwrite_restore_like_r2() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let target = work.path().join("dst");
    write(&src, "a.txt", b"new");
    write(&target, "a.txt", b"old");
    let to = format!("file://{}", target.display());
    let run = |mode: &str| {
        r2migrate(work.path())
            .args(["run", "--on-conflict", mode, "--from"])
            .arg(&src)
            .args(["--to", &to])
            .output()
            .unwrap()
    };
    assert_eq!(run("fail").status.code(), Some(1));
    assert_eq!(std::fs::read(target.join("a.txt")).unwrap(), b"old");
    assert_eq!(run("overwrite").status.code(), Some(0));
    assert_eq!(std::fs::read(target.join("a.txt")).unwrap(), b"new");
    r2migrate(work.path())
        .args(["rollback", "--yes"])
        .assert()
        .code(0);
    assert_eq!(std::fs::read(target.join("a.txt")).unwrap(), b"old");
    assert_eq!(
        files_under(&target),
        vec!["a.txt".to_string()],
        "the backup is gone after restore"
    );
}
