//! Full disks, made real: a small tmpfs mounted for the test (CI runs as root; without
//! root the test fails loudly, never skips). Under the manifest, the run stops with exit
//! 3 naming the manifest and no record claims a copy that did not happen; once there is
//! room, the same command finishes. Under a `file://` rehearsal target, the objects that
//! do not fit fail with the OS's words, and the rest of the run stands.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A tmpfs of `size` (mount's syntax: "64k", "2m"), unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount(8) is needed for the full-disk tests");
        assert!(
            status.success(),
            "mounting a {size} tmpfs failed: these tests need root (CI runs as root)"
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn grow(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Files whose long names make long manifest lines.
fn tree(n: usize) -> tempfile::TempDir {
    let src = tempfile::tempdir().unwrap();
    for i in 0..n {
        let name = format!("albums/{i:04}-{}.jpg", "a-rather-long-file-name".repeat(4));
        write(src.path(), &name, &bytes_for(i as u64, 200 + i));
    }
    src
}

fn run(work: &Path, r2: &S3Server, src: &Path, manifest: &Path) -> std::process::Output {
    r2migrate_to(work, r2)
        .args(["run", "--json", "--concurrency", "4", "--manifest"])
        .arg(manifest)
        .arg("--from")
        .arg(src)
        .args(["--to", "r2://media/"])
        .output()
        .unwrap()
}

#[tokio::test]
async fn a_full_disk_under_the_manifest_stops_the_run_with_exit_3_and_a_resume_finishes() {
    const N: usize = 300;
    let src = tree(N);
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let disk = SmallDisk::mount("64k");
    let manifest: PathBuf = disk.path().join("r2migrate-manifest.jsonl");
    let work = tempfile::tempdir().unwrap();

    let out = run(work.path(), &r2, src.path(), &manifest);
    assert_exit(&out, 3);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&manifest.display().to_string()), "{err}");
    assert!(err.to_lowercase().contains("no space left"), "{err}");
    assert!(err.contains("run the same command again"), "{err}");
    // Every record that reached the disk is honest.
    let in_r2 = list_keys(&r2.client(), "media", "").await;
    let recorded = manifest_objects(&manifest);
    assert!(
        !recorded.is_empty() && in_r2.len() < N,
        "{} in R2",
        in_r2.len()
    );
    for rec in &recorded {
        if rec["status"] == "copied" {
            assert!(in_r2
                .iter()
                .any(|k| k == rec["target_key"].as_str().unwrap()));
        }
    }

    disk.grow("8m");
    let out = run(work.path(), &r2, src.path(), &manifest);
    assert_exit(&out, 0);
    assert_eq!(list_keys(&r2.client(), "media", "").await.len(), N);
    let out = r2migrate_to(work.path(), &r2)
        .args(["verify", "--deep", "--json"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert_eq!(json_of(&out)["checked"], N as u64, "{}", json_of(&out));
}

#[test]
fn a_full_disk_under_a_rehearsal_target_fails_only_the_objects_that_do_not_fit() {
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "small-1.txt", b"fits");
    write(src.path(), "small-2.txt", b"fits too");
    write(src.path(), "huge.bin", &bytes_for(1, 3 * 1024 * 1024));
    let disk = SmallDisk::mount("1m");
    let target = disk.path().join("rehearsal");
    let work = tempfile::tempdir().unwrap();
    // One at a time: while the big one fills the disk, any other write would fail too
    // (honestly, with the same words), which is not what this test is about.
    let out = r2migrate(work.path())
        .args(["run", "--json", "--concurrency", "1", "--from"])
        .arg(src.path())
        .arg("--to")
        .arg(&target)
        .output()
        .unwrap();
    assert_exit(&out, 1);
    let doc = json_of(&out);
    assert_eq!(doc["counts"]["copied"], 2, "{doc}");
    assert_eq!(doc["counts"]["failed"], 1, "{doc}");
    let problem = &doc["problems"][0];
    assert_eq!(problem["source_key"], "huge.bin");
    let why = problem["error"].as_str().unwrap().to_lowercase();
    assert!(
        why.contains("no space left") && why.contains("huge.bin"),
        "{why}"
    );
    // Nothing half-written at the key, no temporary file left behind (the rehearsal
    // target keeps each object's metadata beside it, in .r2migrate/meta).
    let mut left: Vec<String> = walk_names(&target);
    left.sort();
    assert_eq!(
        left,
        vec![
            ".r2migrate/meta/small-1.txt.json",
            ".r2migrate/meta/small-2.txt.json",
            "small-1.txt",
            "small-2.txt"
        ]
    );
    let verify = r2migrate(work.path())
        .args(["verify", "--deep", "--json"])
        .output()
        .unwrap();
    // Failed items are counted apart, not as mismatches (SPEC.md): what landed is good.
    assert_exit(&verify, 0);
    assert_eq!(json_of(&verify)["checked"], 2, "{}", json_of(&verify));
}

/// Every file under `root`, by its path relative to it.
fn walk_names(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out
}
