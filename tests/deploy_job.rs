//! `deploy/kubernetes/job.yaml` run as Kubernetes would run it: its own command line
//! (the container's `args`, with `$(VAR)` expanded from its `env` as the kubelet does),
//! one process per completion index at once, each with `JOB_COMPLETION_INDEX`, in one
//! shared working directory (the ReadWriteMany volume) — then `verify-job.yaml`'s
//! command over their manifests. What the YAML says must work, and must agree with
//! itself: completions = parallelism = the N of `--shard auto/N`, and a grace period
//! long enough for SIGTERM to flush. A pod killed by SIGTERM and started again (the Job's
//! retry) resumes its own shard.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;

fn deploy(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/kubernetes")
        .join(file);
    std::fs::read_to_string(path).unwrap()
}

/// The number after `name:` on its line (the YAML here is plain block style).
fn number(yaml: &str, name: &str) -> u64 {
    yaml.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in the Job"))
        .trim()
        .parse()
        .unwrap()
}

/// The container's `args`: a flow sequence of quoted strings, which is JSON.
fn args(yaml: &str) -> Vec<String> {
    let line = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("args:"))
        .expect("the container has args");
    serde_json::from_str(line.trim()).expect("args are a flow sequence of quoted strings")
}

/// `- name: X` followed by `value: "…"`: the plain env values the Job sets.
fn env_values(yaml: &str) -> BTreeMap<String, String> {
    let lines: Vec<&str> = yaml.lines().map(str::trim).collect();
    let mut out = BTreeMap::new();
    for w in lines.windows(2) {
        if let (Some(name), Some(value)) =
            (w[0].strip_prefix("- name: "), w[1].strip_prefix("value: "))
        {
            out.insert(name.to_string(), value.trim_matches('"').to_string());
        }
    }
    out
}

/// `$(VAR)` → its value, as the kubelet expands args.
fn expand(args: &[String], env: &BTreeMap<String, String>) -> Vec<String> {
    args.iter()
        .map(|a| {
            let mut a = a.clone();
            for (k, v) in env {
                a = a.replace(&format!("$({k})"), v);
            }
            assert!(!a.contains("$("), "{a}: a variable the Job does not set");
            a
        })
        .collect()
}

struct Cluster {
    r2: S3Server,
    volume: tempfile::TempDir,
    scratch: tempfile::TempDir,
    env: BTreeMap<String, String>,
}

impl Cluster {
    fn pod(&self, args: &[String], index: Option<u64>) -> Child {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("r2migrate"));
        cmd.current_dir(self.volume.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TMPDIR", self.scratch.path())
            .env("R2_ENDPOINT_URL", self.r2.endpoint())
            .env("R2_ACCESS_KEY_ID", ACCESS_KEY)
            .env("R2_SECRET_ACCESS_KEY", SECRET_KEY)
            .args(expand(args, &self.env))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(k) = index {
            cmd.env("JOB_COMPLETION_INDEX", k.to_string());
        }
        cmd.spawn().unwrap()
    }
}

fn wait_ok(pod: Child, what: &str) {
    let out = pod.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_indexed_job_as_written_copies_every_key_once_and_verifies() {
    let job = deploy("job.yaml");
    let (completions, parallelism) = (number(&job, "completions"), number(&job, "parallelism"));
    let copy_args = args(&job);
    let shard = copy_args
        .iter()
        .find_map(|a| a.strip_prefix("auto/"))
        .expect("the Job runs --shard auto/N");
    assert_eq!(completions, parallelism, "every shard runs at once");
    assert_eq!(
        shard.parse::<u64>().unwrap(),
        completions,
        "N = completions"
    );
    assert!(
        number(&job, "terminationGracePeriodSeconds") >= 60,
        "SIGTERM needs time to finish or abort in-flight uploads and flush"
    );
    assert!(job.contains("completionMode: Indexed"));
    let n = completions;

    let src = tempfile::tempdir().unwrap();
    let files = 120;
    for i in 0..files {
        write(
            src.path(),
            &format!("uploads/{:02}/{i:03}.jpg", i % 7),
            &bytes_for(i, 300 + i as usize),
        );
    }
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let mut env = env_values(&job);
    env.insert("SOURCE_URL".into(), src.path().display().to_string());
    env.insert("TARGET_URL".into(), "r2://media/uploads".into());
    let cluster = Cluster {
        r2,
        volume: tempfile::tempdir().unwrap(),
        scratch: tempfile::tempdir().unwrap(),
        env,
    };

    // Pod 0 is stopped by SIGTERM early (a node drained) and started again by the Job.
    let first = cluster.pod(&copy_args, Some(0));
    std::thread::sleep(std::time::Duration::from_millis(150));
    Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .unwrap();
    let out = first.wait_with_output().unwrap();
    assert!(
        matches!(out.status.code(), Some(0) | Some(130)),
        "SIGTERM ends a pod with 130 (or 0 if it had finished): {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let pods: Vec<Child> = (0..n).map(|k| cluster.pod(&copy_args, Some(k))).collect();
    for (k, pod) in pods.into_iter().enumerate() {
        wait_ok(pod, &format!("pod {k}"));
    }

    let mut keys = HashSet::new();
    for k in 0..n {
        let manifest: PathBuf = cluster
            .volume
            .path()
            .join(format!("r2migrate-manifest.shard-{k}-of-{n}.jsonl"));
        let latest: BTreeMap<String, String> = manifest_objects(&manifest)
            .into_iter()
            .map(|r| {
                (
                    r["source_key"].as_str().unwrap().to_string(),
                    r["status"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert!(!latest.is_empty(), "shard {k} copied nothing");
        for (key, status) in latest {
            assert_eq!(status, "copied", "{key} in shard {k}");
            assert!(keys.insert(key.clone()), "{key} in two shards");
        }
    }
    assert_eq!(keys.len(), files as usize, "every key in exactly one shard");
    assert_eq!(
        list_keys(&cluster.r2.client(), "media", "uploads/")
            .await
            .len(),
        files as usize
    );
    // No spill file is left behind in TMPDIR.
    assert_eq!(
        std::fs::read_dir(cluster.scratch.path()).unwrap().count(),
        0
    );

    // Then the verify Job, as written, over all the shards' manifests.
    let verify = cluster.pod(&args(&deploy("verify-job.yaml")), None);
    wait_ok(verify, "the verify Job");
}
