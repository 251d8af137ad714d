//! `deploy/Dockerfile`'s build stage, as `docker build` would see it: only the paths its
//! `COPY` lines bring in. No Docker engine runs here, so the test builds that context in
//! a temporary directory and asks cargo to load the workspace from it, as the image's
//! `cargo build --release --locked` does first. (Found broken: once the strict R2 test
//! server became a workspace member, the image's context lacked `crates/`, and every
//! image build failed before compiling anything.)

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `COPY <src>… <dest>` lines of the first (build) stage, as (sources, destination).
fn build_stage_copies(dockerfile: &str) -> Vec<(Vec<String>, String)> {
    let mut stages = 0;
    let mut copies = Vec::new();
    for line in dockerfile.lines().map(str::trim) {
        if line.starts_with("FROM ") {
            stages += 1;
            continue;
        }
        if stages != 1 || !line.starts_with("COPY ") || line.contains("--from") {
            continue;
        }
        let mut words: Vec<String> = line[5..].split_whitespace().map(String::from).collect();
        let dest = words.pop().expect("COPY has a destination");
        copies.push((words, dest));
    }
    copies
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            copy_tree(&e.path(), &to.join(e.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
}

#[test]
fn the_image_build_context_holds_the_whole_workspace() {
    let dockerfile = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    let copies = build_stage_copies(&dockerfile);
    assert!(!copies.is_empty(), "the build stage copies the sources");
    let ctx = tempfile::tempdir().unwrap();
    for (sources, dest) in &copies {
        for src in sources {
            let to = if dest.ends_with('/') && !src.ends_with('/') && sources.len() > 1 {
                ctx.path().join(dest.trim_start_matches("./")).join(src)
            } else if dest == "./" {
                ctx.path().join(src)
            } else {
                ctx.path().join(dest.trim_start_matches("./"))
            };
            copy_tree(&root().join(src), &to);
        }
    }
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--locked",
            "--offline",
            "--no-deps",
            "--format-version",
            "1",
        ])
        .current_dir(ctx.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the image's build context does not load as a workspace:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let build = dockerfile
        .lines()
        .find(|l| l.contains("cargo build"))
        .expect("the image builds with cargo");
    assert!(
        build.contains("--release") && build.contains("--locked"),
        "{build}"
    );
}
