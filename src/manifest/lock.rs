//! One writer per manifest: `run` and `rollback` hold `<manifest>.lock` while they write.
//! The lock file (0600) names its holder — host, pid, command, since when — so a second
//! writer is refused (exit 2) with who holds it. A lock whose process is gone on this
//! host is stale: taken over, with a warning. Removed when the holder ends.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::usage;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    pub command: String,
    pub since: String,
}

impl Holder {
    fn me(command: &str) -> Holder {
        Holder {
            host: host_name(),
            pid: std::process::id(),
            command: command.to_string(),
            since: super::now_rfc3339(),
        }
    }

    /// Whether the holder's process is still running (known only on this host).
    fn alive(&self) -> bool {
        self.host != host_name() || Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Held while it lives; the file goes when it is dropped.
#[derive(Debug)]
pub struct ManifestLock {
    path: PathBuf,
}

impl ManifestLock {
    pub fn path_for(manifest: &Path) -> PathBuf {
        let mut name = manifest.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Takes the lock for `command`, or says who holds it. `warn` hears of a stale lock
    /// taken over.
    pub fn acquire(
        manifest: &Path,
        command: &str,
        warn: impl Fn(&str),
    ) -> anyhow::Result<ManifestLock> {
        let path = ManifestLock::path_for(manifest);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(parent);
        }
        let me = Holder::me(command);
        for _ in 0..2 {
            match create(&path, &me) {
                Ok(()) => return Ok(ManifestLock { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(usage(format!(
                    "cannot create the lock {}: {e}; check that the manifest's folder is writable",
                    path.display()
                )))
                }
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            match serde_json::from_str::<Holder>(&text) {
                Ok(h) if h.alive() => {
                    return Err(usage(format!(
                        "manifest {} is in use by `r2migrate {}` (pid {} on {}, since {}); wait for it to finish, or if that process is gone, delete {}",
                        manifest.display(),
                        h.command,
                        h.pid,
                        h.host,
                        h.since,
                        path.display()
                    )))
                }
                Ok(h) => warn(&format!(
                    "taking over the stale lock {}: `r2migrate {}` (pid {}, since {}) is no longer running",
                    path.display(),
                    h.command,
                    h.pid,
                    h.since
                )),
                // A lock torn by a crash mid-write: its writer never got going.
                Err(_) => warn(&format!(
                    "taking over the unreadable lock {}",
                    path.display()
                )),
            }
            let _ = std::fs::remove_file(&path);
        }
        Err(usage(format!(
            "cannot take the lock {}: another r2migrate keeps taking it; check what else runs on this manifest",
            path.display()
        )))
    }
}

/// Creates the lock file, failing if it exists; 0600, like the manifest.
fn create(path: &Path, me: &Holder) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(serde_json::to_string(me)?.as_bytes())?;
    file.sync_data()
}

impl Drop for ManifestLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_a_stale_lock_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("m.jsonl");
        let lock = ManifestLock::acquire(&manifest, "run", |_| panic!("no warning")).unwrap();
        let err = ManifestLock::acquire(&manifest, "rollback", |_| {}).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("r2migrate run"), "{text}");
        assert!(err.downcast_ref::<crate::error::UsageError>().is_some());
        drop(lock);
        assert!(!ManifestLock::path_for(&manifest).exists());

        // A holder on this host whose process is gone.
        let gone = std::process::Command::new("true").spawn().unwrap();
        let pid = gone.id();
        let mut gone = gone;
        gone.wait().unwrap();
        let stale = Holder {
            pid,
            ..Holder::me("run")
        };
        std::fs::write(
            ManifestLock::path_for(&manifest),
            serde_json::to_string(&stale).unwrap(),
        )
        .unwrap();
        let warned = std::cell::RefCell::new(String::new());
        let _lock =
            ManifestLock::acquire(&manifest, "run", |w| *warned.borrow_mut() = w.into()).unwrap();
        assert!(warned.borrow().contains("stale"), "{}", warned.borrow());
    }
}
