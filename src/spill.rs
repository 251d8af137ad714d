//! A map that lives on disk: what a run must remember per key (the target's listing, the
//! keys already claimed, the manifest's latest records, the keys seen) kept in a private
//! SQLite file instead of memory, so a run over ten million objects uses the memory of
//! one over ten thousand. SQLite's page cache is capped ([`CACHE_KIB`]); the file is
//! created on the first insert (an empty map costs nothing) in `$TMPDIR`, and removed
//! when the map is dropped. Nothing in it needs to survive a crash: no journal, no sync.

use std::marker::PhantomData;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// SQLite's page cache per map, in KiB.
const CACHE_KIB: i64 = 4096;
/// Writes per transaction: batching is what makes inserts cheap.
const BATCH: u32 = 4096;

/// Why the temporary index failed: the disk under `$TMPDIR` (full, read-only).
#[derive(Debug, thiserror::Error)]
#[error("the temporary index of {what} in {dir} failed: {source}; give TMPDIR a disk with room (about 200 bytes per object)")]
pub struct SpillError {
    what: &'static str,
    dir: String,
    source: rusqlite::Error,
}

impl From<SpillError> for crate::error::StoreError {
    /// The run cannot remember what it must: it stops (exit 3), resumable.
    fn from(e: SpillError) -> Self {
        crate::error::StoreError::Fatal(e.to_string())
    }
}

struct Db {
    conn: Connection,
    _dir: tempfile::TempDir,
    writes: u32,
}

/// Keys (strings) to values of `V` (stored as JSON), on disk.
pub struct DiskMap<V> {
    what: &'static str,
    db: Mutex<Option<Db>>,
    _v: PhantomData<fn() -> V>,
}

impl<V: Serialize + DeserializeOwned> DiskMap<V> {
    /// `what` names the map in errors ("the target's listing").
    pub fn new(what: &'static str) -> DiskMap<V> {
        DiskMap {
            what,
            db: Mutex::new(None),
            _v: PhantomData,
        }
    }

    /// How many keys it holds: counted when asked (once per run), so that inserting
    /// stays one statement.
    pub fn len(&self) -> Result<u64, SpillError> {
        let guard = self.db.lock().expect("not poisoned");
        let Some(db) = guard.as_ref() else {
            return Ok(0);
        };
        db.conn
            .query_row("SELECT count(*) FROM map", [], |r| r.get::<_, i64>(0))
            .map(|n| n.max(0) as u64)
            .map_err(|e| self.failed(db, e))
    }

    /// Nothing was ever inserted (keys are never removed).
    pub fn is_empty(&self) -> bool {
        self.db.lock().expect("not poisoned").is_none()
    }

    /// Sets `key` to `value`, replacing what it held.
    pub fn insert(&self, key: &str, value: &V) -> Result<(), SpillError> {
        let blob = serde_json::to_vec(value).expect("plain data serialises");
        self.write(|conn| {
            conn.prepare_cached("INSERT OR REPLACE INTO map (k, v) VALUES (?1, ?2)")?
                .execute(params![key, blob])
                .map(drop)
        })
    }

    /// Sets `key` to `value` unless it is taken; then returns what it holds.
    pub fn insert_new(&self, key: &str, value: &V) -> Result<Option<V>, SpillError> {
        let blob = serde_json::to_vec(value).expect("plain data serialises");
        let held: Option<Vec<u8>> = self.write(|conn| {
            let added = conn
                .prepare_cached("INSERT OR IGNORE INTO map (k, v) VALUES (?1, ?2)")?
                .execute(params![key, blob])?;
            if added == 1 {
                return Ok(None);
            }
            conn.prepare_cached("SELECT v FROM map WHERE k = ?1")?
                .query_row(params![key], |r| r.get(0))
                .optional()
        })?;
        Ok(held.map(|blob| decode(&blob)))
    }

    pub fn get(&self, key: &str) -> Result<Option<V>, SpillError> {
        let mut guard = self.db.lock().expect("not poisoned");
        let Some(db) = guard.as_mut() else {
            return Ok(None);
        };
        let blob: Option<Vec<u8>> = db
            .conn
            .prepare_cached("SELECT v FROM map WHERE k = ?1")
            .and_then(|mut s| s.query_row(params![key], |r| r.get(0)).optional())
            .map_err(|e| self.failed(db, e))?;
        Ok(blob.map(|b| decode(&b)))
    }

    pub fn contains(&self, key: &str) -> Result<bool, SpillError> {
        let mut guard = self.db.lock().expect("not poisoned");
        let Some(db) = guard.as_mut() else {
            return Ok(false);
        };
        db.conn
            .prepare_cached("SELECT 1 FROM map WHERE k = ?1")
            .and_then(|mut s| s.exists(params![key]))
            .map_err(|e| self.failed(db, e))
    }

    /// Every entry, in key order (bytewise), to `each`.
    pub fn for_each(&self, mut each: impl FnMut(&str, V)) -> Result<(), SpillError> {
        let mut guard = self.db.lock().expect("not poisoned");
        let Some(db) = guard.as_mut() else {
            return Ok(());
        };
        let mut run = |conn: &Connection| -> rusqlite::Result<()> {
            let mut s = conn.prepare("SELECT k, v FROM map ORDER BY k")?;
            let mut rows = s.query([])?;
            while let Some(row) = rows.next()? {
                let k: String = row.get(0)?;
                let v: Vec<u8> = row.get(1)?;
                each(&k, decode(&v));
            }
            Ok(())
        };
        run(&db.conn).map_err(|e| self.failed(db, e))
    }

    /// Up to `limit` entries after the key `after` (from the first key when `None`), in
    /// key order (bytewise): a page of a walk that holds no lock between pages.
    pub fn page(&self, after: Option<&str>, limit: usize) -> Result<Vec<(String, V)>, SpillError> {
        let mut guard = self.db.lock().expect("not poisoned");
        let Some(db) = guard.as_mut() else {
            return Ok(Vec::new());
        };
        let limit = limit as i64;
        let read = |conn: &Connection| -> rusqlite::Result<Vec<(String, Vec<u8>)>> {
            let row = |r: &rusqlite::Row| Ok((r.get(0)?, r.get(1)?));
            match after {
                None => conn
                    .prepare_cached("SELECT k, v FROM map ORDER BY k LIMIT ?1")?
                    .query_map(params![limit], row)?
                    .collect(),
                Some(k) => conn
                    .prepare_cached("SELECT k, v FROM map WHERE k > ?1 ORDER BY k LIMIT ?2")?
                    .query_map(params![k, limit], row)?
                    .collect(),
            }
        };
        let rows = read(&db.conn).map_err(|e| self.failed(db, e))?;
        Ok(rows.into_iter().map(|(k, v)| (k, decode(&v))).collect())
    }

    /// Every entry in key order, a page at a time: memory for one page, whatever the
    /// map holds, and other maps (or this one's `get`) usable between items.
    pub fn entries(&self) -> Entries<'_, V> {
        Entries {
            map: self,
            page: std::collections::VecDeque::new(),
            last: None,
            done: false,
        }
    }

    /// Runs a write inside the open batch, opening the file on the first one.
    fn write<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, SpillError> {
        let mut guard = self.db.lock().expect("not poisoned");
        if guard.is_none() {
            *guard = Some(open(self.what)?);
        }
        let db = guard.as_mut().expect("just opened");
        let out = f(&db.conn).map_err(|e| self.failed(db, e))?;
        db.writes += 1;
        if db.writes >= BATCH {
            db.writes = 0;
            db.conn
                .execute_batch("COMMIT; BEGIN")
                .map_err(|e| self.failed(db, e))?;
        }
        Ok(out)
    }

    fn failed(&self, db: &Db, source: rusqlite::Error) -> SpillError {
        SpillError {
            what: self.what,
            dir: db._dir.path().display().to_string(),
            source,
        }
    }
}

/// Entries per page of [`DiskMap::entries`].
const PAGE: usize = 1024;

/// A walk over a [`DiskMap`] in key order; see [`DiskMap::entries`].
pub struct Entries<'a, V> {
    map: &'a DiskMap<V>,
    page: std::collections::VecDeque<(String, V)>,
    last: Option<String>,
    done: bool,
}

impl<V: Serialize + DeserializeOwned> Iterator for Entries<'_, V> {
    type Item = Result<(String, V), SpillError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.page.is_empty() && !self.done {
            match self.map.page(self.last.as_deref(), PAGE) {
                Ok(page) => {
                    self.done = page.len() < PAGE;
                    self.last = page.last().map(|(k, _)| k.clone());
                    self.page = page.into();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        self.page.pop_front().map(Ok)
    }
}

/// A list of JSON values kept in a temporary file as it grows (what a command reports per
/// object: a million lines of it), read back in order.
#[derive(Default)]
pub struct Lines {
    file: Option<std::io::BufWriter<std::fs::File>>,
    len: u64,
}

impl Lines {
    pub fn push(&mut self, value: &serde_json::Value) -> std::io::Result<()> {
        use std::io::Write;
        if self.file.is_none() {
            self.file = Some(std::io::BufWriter::new(tempfile::tempfile()?));
        }
        let file = self.file.as_mut().expect("just opened");
        serde_json::to_writer(&mut *file, value)?;
        file.write_all(b"\n")?;
        self.len += 1;
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Each value in the order pushed, to `each`.
    pub fn for_each(
        &mut self,
        mut each: impl FnMut(serde_json::Value) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        use std::io::{BufRead, Seek, Write};
        let Some(writer) = self.file.as_mut() else {
            return Ok(());
        };
        writer.flush()?;
        // The clone shares the file's offset: read from the start, then append at the end.
        writer.get_mut().rewind()?;
        let reader = std::io::BufReader::new(writer.get_ref().try_clone()?);
        for line in reader.lines() {
            each(serde_json::from_str(&line?)?)?;
        }
        writer.get_mut().seek(std::io::SeekFrom::End(0))?;
        Ok(())
    }
}

fn open(what: &'static str) -> Result<Db, SpillError> {
    let failed = |dir: String, source| SpillError { what, dir, source };
    let dir = tempfile::Builder::new()
        .prefix("r2migrate-index-")
        .tempdir()
        .map_err(|e| {
            failed(
                std::env::temp_dir().display().to_string(),
                rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            )
        })?;
    let shown = dir.path().display().to_string();
    let conn =
        Connection::open(dir.path().join("index.db")).map_err(|e| failed(shown.clone(), e))?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA locking_mode = EXCLUSIVE;
         PRAGMA temp_store = FILE; PRAGMA cache_size = -{CACHE_KIB};
         CREATE TABLE map (k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;
         BEGIN"
    ))
    .map_err(|e| failed(shown, e))?;
    Ok(Db {
        conn,
        _dir: dir,
        writes: 0,
    })
}

fn decode<V: DeserializeOwned>(blob: &[u8]) -> V {
    serde_json::from_slice(blob).expect("this map wrote it")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_map_has_no_file_and_answers_nothing() {
        let m: DiskMap<u64> = DiskMap::new("test");
        assert!(m.is_empty());
        assert_eq!(m.get("a").unwrap(), None);
        assert!(!m.contains("a").unwrap());
        assert!(m.db.lock().unwrap().is_none());
    }

    #[test]
    fn inserts_replace_and_insert_new_keeps_the_first() {
        let m: DiskMap<(u64, Option<String>)> = DiskMap::new("test");
        m.insert("k", &(1, None)).unwrap();
        m.insert("k", &(2, Some("e".into()))).unwrap();
        assert_eq!(m.len().unwrap(), 1);
        assert_eq!(m.get("k").unwrap(), Some((2, Some("e".into()))));
        let claimed: DiskMap<String> = DiskMap::new("test");
        assert_eq!(claimed.insert_new("café", &"first".into()).unwrap(), None);
        assert_eq!(
            claimed.insert_new("café", &"second".into()).unwrap(),
            Some("first".into())
        );
        assert_eq!(claimed.len().unwrap(), 1);
    }

    #[test]
    fn many_keys_across_batches_come_back_in_key_order() {
        let m: DiskMap<u32> = DiskMap::new("test");
        for i in (0..10_000u32).rev() {
            m.insert(&format!("k{i:05}"), &i).unwrap();
        }
        assert_eq!(m.len().unwrap(), 10_000);
        assert_eq!(m.get("k04242").unwrap(), Some(4242));
        let mut seen = Vec::new();
        m.for_each(|k, v| seen.push((k.to_string(), v))).unwrap();
        assert_eq!(seen.len(), 10_000);
        assert_eq!(seen[0], ("k00000".to_string(), 0));
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn entries_walk_every_key_in_order_a_page_at_a_time() {
        let m: DiskMap<u32> = DiskMap::new("test");
        assert_eq!(m.entries().count(), 0);
        for i in (0..(PAGE as u32 * 2 + 7)).rev() {
            m.insert(&format!("k{i:05}"), &i).unwrap();
        }
        let walked: Vec<(String, u32)> = m.entries().map(Result::unwrap).collect();
        assert_eq!(walked.len(), PAGE * 2 + 7);
        assert!(walked.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(walked.iter().all(|(k, v)| *k == format!("k{v:05}")));
        // A lookup between items does not disturb the walk.
        let mut n = 0;
        for e in m.entries() {
            let (k, v) = e.unwrap();
            assert_eq!(m.get(&k).unwrap(), Some(v));
            n += 1;
        }
        assert_eq!(n, PAGE * 2 + 7);
    }

    #[test]
    fn lines_come_back_in_order_and_can_be_read_twice() {
        let mut lines = Lines::default();
        let mut seen = Vec::new();
        lines
            .for_each(|v| {
                seen.push(v);
                Ok(())
            })
            .unwrap();
        assert!(seen.is_empty() && lines.is_empty());
        for i in 0..3000 {
            lines.push(&serde_json::json!({"n": i})).unwrap();
        }
        for _ in 0..2 {
            let mut n = 0;
            lines
                .for_each(|v| {
                    assert_eq!(v["n"], n);
                    n += 1;
                    Ok(())
                })
                .unwrap();
            assert_eq!(n, 3000);
        }
        lines.push(&serde_json::json!({"n": 3000})).unwrap();
        assert_eq!(lines.len(), 3001);
    }

    #[test]
    fn the_file_is_removed_with_the_map() {
        let m: DiskMap<u8> = DiskMap::new("test");
        m.insert("a", &1).unwrap();
        let dir =
            m.db.lock()
                .unwrap()
                .as_ref()
                .unwrap()
                ._dir
                .path()
                .to_path_buf();
        assert!(dir.exists());
        drop(m);
        assert!(!dir.exists());
    }
}
