//! Local trees as they really are: links inside the tree are followed, a link out of it
//! is skipped (recorded, with why) unless `--copy-links`; FIFOs and sockets are skipped
//! as "not a regular file"; the rehearsal target and the manifest, sitting inside the
//! source, are never read as source. Every listed item ends with one record.

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;

use common::*;

fn record<'a>(records: &'a [serde_json::Value], key: &str) -> &'a serde_json::Value {
    records
        .iter()
        .rev()
        .find(|r| r["source_key"] == key)
        .unwrap_or_else(|| panic!("no record for {key}: {records:#?}"))
}

fn run_in(src: &Path, extra: &[&str]) -> std::process::Output {
    to_rehearsal(src, &[&["run", "--json"], extra].concat(), Path::new("."))
}

#[test]
fn links_out_of_the_tree_and_special_files_are_skipped_and_our_own_files_never_read() {
    let top = tempfile::tempdir().unwrap();
    write(top.path(), "outside.txt", b"outside the tree");
    let src = top.path().join("src");
    write(&src, "a.txt", b"a");
    write(&src, "sub/b.txt", b"b");
    symlink("sub", src.join("alias")).unwrap(); // inside: followed
    symlink("..", src.join("up")).unwrap(); // the parent: would copy the whole top
    symlink("../outside.txt", src.join("host")).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(src.join("fifo"))
        .status()
        .unwrap()
        .success());
    let _sock = std::os::unix::net::UnixListener::bind(src.join("sock")).unwrap();

    let out = run_in(&src, &[]);
    assert_exit(&out, 0);
    let doc = json_of(&out);
    assert_eq!(doc["counts"]["copied"], 3, "{doc}");
    assert_eq!(doc["counts"]["skipped"], 4, "{doc}");
    assert_eq!(doc["listed"], doc["recorded"]);
    let records = manifest_objects(&src.join("r2migrate-manifest.jsonl"));
    for key in ["a.txt", "sub/b.txt", "alias/b.txt"] {
        assert_eq!(record(&records, key)["status"], "copied");
    }
    for key in ["up", "host"] {
        let r = record(&records, key);
        assert_eq!(r["status"], "skipped");
        let why = r["error"].as_str().unwrap();
        assert!(
            why.contains("outside the source tree") && why.contains("--copy-links"),
            "{why}"
        );
    }
    assert!(record(&records, "fifo")["error"]
        .as_str()
        .unwrap()
        .contains("not a regular file (a FIFO)"));
    assert!(record(&records, "sock")["error"]
        .as_str()
        .unwrap()
        .contains("a socket"));
    // Neither the rehearsal target nor the manifest (both inside the source) was read.
    assert!(
        records.iter().all(|r| {
            let k = r["source_key"].as_str().unwrap();
            !k.starts_with("rehearsal")
                && !k.starts_with("r2migrate-manifest")
                && !k.starts_with("up/")
        }),
        "{records:#?}"
    );

    // The same selection on a re-list: skipped items are not gaps.
    let out = r2migrate(&src)
        .args(["verify", "--against-source", "--json"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert_eq!(json_of(&out)["against_source"], serde_json::json!([]));

    // A second run copies nothing again.
    let out = run_in(&src, &[]);
    assert_exit(&out, 0);
    assert_eq!(json_of(&out)["counts"]["copied"], 0);
    assert_eq!(json_of(&out)["already_verified"], 3);
}

#[test]
fn copy_links_follows_a_link_out_of_the_tree() {
    let top = tempfile::tempdir().unwrap();
    write(top.path(), "outside.txt", b"outside the tree");
    let src = top.path().join("src");
    write(&src, "a.txt", b"a");
    symlink("../outside.txt", src.join("host")).unwrap();
    let out = run_in(&src, &["--copy-links"]);
    assert_exit(&out, 0);
    assert_eq!(json_of(&out)["counts"]["copied"], 2);
    assert_eq!(
        std::fs::read(src.join("rehearsal/host")).unwrap(),
        b"outside the tree"
    );
}

#[test]
fn an_empty_source_or_one_the_filters_empty_warns_and_exits_0() {
    let src = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    for command in ["plan", "run"] {
        let out = to_rehearsal(work.path(), &[command], src.path());
        assert_exit(&out, 0);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("nothing to migrate") && err.contains("check the URL"),
            "{command}: {err}"
        );
    }
    write(src.path(), "a.txt", b"a");
    let out = to_rehearsal(work.path(), &["plan", "--include", "*.jpg"], src.path());
    assert_exit(&out, 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the filters and shard leave none of the 1 listed"),
        "{err}"
    );
}
