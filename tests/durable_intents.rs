//! Intent before effect, durably: every intent line is on disk (fdatasync returned)
//! before the PUT or the CompleteMultipartUpload it announces is sent, so a power cut
//! loses at most the objects in flight — found again from their intents. Watched from
//! outside with strace: the order of the manifest's writes and syncs and the requests
//! written to the sockets.

mod common;

use std::collections::HashMap;
use std::process::Command;

use common::*;

#[test]
fn every_intent_is_synced_before_the_write_it_announces() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let src = tempfile::tempdir().unwrap();
    for i in 0..24 {
        write(
            src.path(),
            &format!("f{i:02}.txt"),
            &bytes_for(i, 100 + i as usize),
        );
    }
    write(src.path(), "big.bin", &bytes_for(99, 6 * 1024 * 1024 + 1));
    let work = tempfile::tempdir().unwrap();
    let trace = work.path().join("trace.txt");
    let out = Command::new("strace")
        .args(["-f", "-qq", "-y", "-s", "400", "-e", "signal=none"])
        .args(["-e", "trace=write,writev,sendto,sendmsg,fdatasync,fsync"])
        .arg("-o")
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_r2migrate"))
        .args(["run", "--quiet", "--concurrency", "8", "--from"])
        .arg(src.path())
        .args(["--to", "r2://media/", "--multipart-threshold", "5MiB"])
        .args(["--part-size", "5MiB"])
        .current_dir(work.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("R2_ENDPOINT_URL", r2.endpoint())
        .env("R2_ACCESS_KEY_ID", ACCESS_KEY)
        .env("R2_SECRET_ACCESS_KEY", SECRET_KEY)
        .output()
        .expect("strace must be installed (bash .ci/install-test-servers installs it)");
    assert_exit(&out, 0);

    let text = std::fs::read_to_string(&trace).unwrap();
    // Per key: intents written, and how many of them a finished sync covers.
    let mut written: Vec<String> = Vec::new();
    let mut synced = 0usize; // written[..synced] are on disk
    let mut sync_started: HashMap<String, usize> = HashMap::new(); // pid → written.len()
    let (mut syncs, mut checked) = (0, 0);
    for line in text.lines() {
        let pid = line.split_whitespace().next().unwrap_or("").to_string();
        let on_manifest = line.contains("r2migrate-manifest.jsonl>");
        if on_manifest && line.contains("write(") {
            if let Some(key) = intent_key(line) {
                written.push(key);
            }
        } else if on_manifest && line.contains("fdatasync(") {
            syncs += 1;
            if line.contains("<unfinished ...>") {
                sync_started.insert(pid, written.len());
            } else if line.ends_with("= 0") {
                synced = synced.max(written.len());
            }
        } else if line.contains("<... fdatasync resumed>") && line.ends_with("= 0") {
            if let Some(n) = sync_started.remove(&pid) {
                synced = synced.max(n);
            }
        } else if let Some((method, key)) = announced_request(line) {
            let last = written.iter().rposition(|k| *k == key);
            assert!(
                last.is_some_and(|i| i < synced),
                "{method} {key} sent before its intent was synced ({} intents written, {synced} synced)",
                written.len()
            );
            checked += 1;
        }
    }
    // 24 PUTs and one Complete, each after its synced intent.
    assert_eq!(checked, 25, "requests seen in the trace");
    assert!(
        written.len() >= 26,
        "an intent per PUT, two for the multipart upload"
    );
    // One sync may answer many intents (group commit), never more syncs than intents
    // (plus the lock file's and the last one at the end).
    assert!(
        syncs <= written.len() + 2,
        "{syncs} syncs for {} intents",
        written.len()
    );
}

/// The target key of an intent line the manifest writer wrote (strace escapes quotes).
fn intent_key(line: &str) -> Option<String> {
    if !line.contains(r#"\"type\":\"intent\""#) {
        return None;
    }
    let field = r#"\"target_key\":\""#;
    let rest = &line[line.find(field)? + field.len()..];
    Some(rest[..rest.find(r#"\""#)?].to_string())
}

/// A PutObject or a CompleteMultipartUpload written to a socket: the requests that
/// make an object appear (parts and CreateMultipartUpload do not).
fn announced_request(line: &str) -> Option<(&'static str, String)> {
    for (method, start, query) in [
        ("PUT", r#"iov_base="PUT /media/"#, "x-id=PutObject"),
        ("POST", r#"iov_base="POST /media/"#, "uploadId="),
    ] {
        if let Some(i) = line.find(start) {
            let rest = &line[i + start.len()..];
            let (key, after) = rest.split_once('?')?;
            if after.starts_with(query) {
                return Some((method, key.to_string()));
            }
        }
    }
    None
}
