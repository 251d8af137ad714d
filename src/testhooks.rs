//! Faults that only tests can switch on, to prove the run's supervisor and the manifest's
//! intent records: a panic while copying one object, the process dying (as with kill -9)
//! right after an upload landed but before its outcome was recorded, a cancel (as with
//! Ctrl-C) after N outcomes, `rewrite-urls` dying between two batches, an application
//! writing a rehearsal key just before r2migrate does, and a manifest left uncompacted. Compiled into debug builds only; a release binary has none.

#[cfg(debug_assertions)]
mod hooks {
    use std::sync::atomic::{AtomicU64, Ordering};

    fn env_u64(name: &str) -> Option<u64> {
        std::env::var(name).ok()?.parse().ok()
    }

    /// `R2MIGRATE_TEST_PANIC_KEY=<text>`: copying a source key containing it panics.
    pub fn before_copy(source_key: &str) {
        if let Ok(needle) = std::env::var("R2MIGRATE_TEST_PANIC_KEY") {
            if !needle.is_empty() && source_key.contains(&needle) {
                panic!("test hook: injected panic while copying {source_key}");
            }
        }
    }

    static UPLOADS: AtomicU64 = AtomicU64::new(0);

    /// `R2MIGRATE_TEST_DIE_AFTER_UPLOADS=N`: the process dies at once when its N-th
    /// upload has landed in the target, before any outcome of objects in flight is
    /// recorded — what kill -9 does.
    pub fn after_upload() {
        if let Some(n) = env_u64("R2MIGRATE_TEST_DIE_AFTER_UPLOADS") {
            if UPLOADS.fetch_add(1, Ordering::SeqCst) + 1 >= n {
                std::process::abort();
            }
        }
    }

    static PARTS: AtomicU64 = AtomicU64::new(0);

    /// `R2MIGRATE_TEST_DIE_AFTER_PARTS=N`: the process dies at once when its N-th part
    /// line is recorded — kill -9 in the middle of a large object.
    pub fn after_part_recorded() {
        if let Some(n) = env_u64("R2MIGRATE_TEST_DIE_AFTER_PARTS") {
            if PARTS.fetch_add(1, Ordering::SeqCst) + 1 >= n {
                std::process::abort();
            }
        }
    }

    /// `R2MIGRATE_TEST_CANCEL_AFTER=N`: the run is cancelled (as by Ctrl-C) once N
    /// outcomes are recorded.
    pub fn cancel_after(recorded: u64) -> bool {
        env_u64("R2MIGRATE_TEST_CANCEL_AFTER").is_some_and(|n| recorded >= n)
    }

    static RACED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    /// `R2MIGRATE_TEST_RACE_KEY=<key>` and `R2MIGRATE_TEST_RACE_BYTES=<file>`: the first
    /// write of the rehearsal target to that key finds "the application" has just written
    /// the file's bytes there (the race at cutover, as the strict R2 server makes it).
    pub fn race_before_commit(key: &str) -> Option<Vec<u8>> {
        let wanted = std::env::var("R2MIGRATE_TEST_RACE_KEY").ok()?;
        if wanted != key || RACED.swap(true, Ordering::SeqCst) {
            return None;
        }
        std::fs::read(std::env::var("R2MIGRATE_TEST_RACE_BYTES").ok()?).ok()
    }

    static REWRITE_BATCHES: AtomicU64 = AtomicU64::new(0);

    /// `R2MIGRATE_TEST_DIE_AFTER_REWRITE_BATCHES=N`: `rewrite-urls` dies at once after its
    /// N-th committed batch, as a crash between batches would.
    pub fn after_rewrite_batch() {
        if let Some(n) = env_u64("R2MIGRATE_TEST_DIE_AFTER_REWRITE_BATCHES") {
            if REWRITE_BATCHES.fetch_add(1, Ordering::SeqCst) + 1 >= n {
                std::process::abort();
            }
        }
    }

    /// `R2MIGRATE_TEST_HOLD_REWRITE=<dir>`: before `rewrite-urls` applies its first
    /// batch (the rows read, the changes decided) it creates `<dir>/held` and waits for
    /// `<dir>/go`, so a test can change rows as the application would meanwhile.
    pub fn before_rewrite_apply() {
        static HELD: AtomicU64 = AtomicU64::new(0);
        let Ok(dir) = std::env::var("R2MIGRATE_TEST_HOLD_REWRITE") else {
            return;
        };
        if HELD.fetch_add(1, Ordering::SeqCst) > 0 {
            return;
        }
        let dir = std::path::Path::new(&dir);
        let _ = std::fs::write(dir.join("held"), b"");
        for _ in 0..600 {
            if dir.join("go").exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// `R2MIGRATE_TEST_KEEP_INTENTS=1`: a run that ends cleanly leaves its answered
    /// intents and parts in the manifest, for a test that counts what a run wrote.
    pub fn keep_intents() -> bool {
        std::env::var("R2MIGRATE_TEST_KEEP_INTENTS").is_ok_and(|v| v == "1")
    }
}

#[cfg(not(debug_assertions))]
mod hooks {
    pub fn before_copy(_: &str) {}
    pub fn after_upload() {}
    pub fn after_part_recorded() {}
    pub fn cancel_after(_: u64) -> bool {
        false
    }
    pub fn after_rewrite_batch() {}
    pub fn before_rewrite_apply() {}
    pub fn keep_intents() -> bool {
        false
    }
    pub fn race_before_commit(_: &str) -> Option<Vec<u8>> {
        None
    }
}

pub use hooks::*;
