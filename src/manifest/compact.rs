//! Compaction: when a run ends cleanly, the intents and part lines its outcomes answered
//! have done their job (they matter only while no outcome follows them, after a crash),
//! so the manifest is rewritten without them — about half its bytes for small objects.
//! Atomically: the compacted copy is written beside it, synced, and renamed over it, so a
//! crash at any moment leaves either the old file or the new one, both whole. What every
//! command decides from the manifest is unchanged: unanswered intents and their parts stay,
//! and so does the intent that started each multipart upload (when it began, for the
//! throughput chart of `report`).

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// What compaction did: the file's size before and after, and the lines it dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub lines_dropped: u64,
}

/// The fields compaction looks at; the rest of a line is copied as it is.
#[derive(Deserialize)]
struct Peek {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    source_key: Option<String>,
    #[serde(default)]
    upload_id: Option<serde::de::IgnoredAny>,
}

/// Rewrites the manifest at `path` without its answered intents and parts. `None` when
/// there was nothing to drop, or the file ends in a torn line (then it is left as is:
/// only a crashed writer leaves one, and the next writer cuts it).
pub fn compact(path: &Path) -> anyhow::Result<Option<Compacted>> {
    let path = std::fs::canonicalize(path)?;
    let Some(drop) = answered_lines(&path)? else {
        return Ok(None);
    };
    if drop.is_empty() {
        return Ok(None);
    }
    let bytes_before = std::fs::metadata(&path)?.len();
    let temp = beside(&path);
    let written = copy_without(&path, &temp, &drop);
    let bytes_after = match written {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
    };
    std::fs::rename(&temp, &path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(Some(Compacted {
        bytes_before,
        bytes_after,
        lines_dropped: drop.len() as u64,
    }))
}

/// `m.jsonl` → `.m.jsonl.compacting`, in the same folder (a rename stays on one disk).
fn beside(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{}.compacting", name.unwrap_or_default()))
}

/// The numbers of the intent and part lines an outcome of their source item follows,
/// except an upload's starting intent; `None` when the file ends in a torn line.
fn answered_lines(path: &Path) -> anyhow::Result<Option<HashSet<u64>>> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut waiting: HashMap<String, Vec<u64>> = HashMap::new();
    let mut answered = HashSet::new();
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(Some(answered));
        }
        if line.last() != Some(&b'\n') {
            return Ok(None);
        }
        number += 1;
        let Ok(peek) = serde_json::from_slice::<Peek>(&line) else {
            continue; // an empty line, or one the readers will report: copied as it is
        };
        let Some(key) = peek.source_key else { continue };
        match peek.kind.as_str() {
            "intent" if peek.upload_id.is_some() => {}
            "intent" | "part" => waiting.entry(key).or_default().push(number),
            "object" => answered.extend(waiting.remove(&key).unwrap_or_default()),
            _ => {}
        }
    }
}

/// Copies `from` to `to` without the lines numbered in `drop`, synced; returns its size.
fn copy_without(from: &Path, to: &Path, drop: &HashSet<u64>) -> anyhow::Result<u64> {
    // 0600 like the manifest itself: it names every key.
    let out = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(to)?;
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let mut reader = BufReader::with_capacity(1 << 20, File::open(from)?);
    let mut line = Vec::new();
    let (mut number, mut size) = (0u64, 0u64);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        number += 1;
        if !drop.contains(&number) {
            out.write_all(&line)?;
            size += line.len() as u64;
        }
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::super::{
        now_rfc3339, Header, Intent, Manifest, ManifestWriter, ObjectRecord, PartLine, Status,
    };
    use super::*;

    /// A manifest with one answered intent ("a"), its writer left open.
    fn one_answered(path: &Path) -> ManifestWriter {
        let header = Header::for_test("file:///a", "r2://b/", "r1");
        let mut w = ManifestWriter::open(path, &header).unwrap();
        w.append_line(&Intent::new("a", "a", None)).unwrap();
        w.append(&ObjectRecord::new("a", "a", 1, Status::Copied))
            .unwrap();
        w
    }

    fn part(key: &str, n: i32) -> PartLine {
        PartLine {
            kind: "part".into(),
            source_key: key.into(),
            target_key: key.into(),
            upload_id: "u1".into(),
            part: n,
            size: 5,
            etag: None,
            crc64nvme: None,
            state: None,
            run_id: None,
            at: now_rfc3339(),
        }
    }

    #[test]
    fn answered_intents_and_parts_go_and_everything_else_stays_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        let mut w = one_answered(&path);
        let mut upload = Intent::new("big", "big", None);
        upload.upload_id = Some("u1".into());
        w.append_line(&upload).unwrap();
        w.append_line(&part("big", 1)).unwrap();
        w.append_line(&part("big", 2)).unwrap();
        w.append(&ObjectRecord::new("big", "big", 10, Status::Copied))
            .unwrap();
        // A crash's leftovers: no outcome follows these.
        w.append_line(&Intent::new("open", "open", None)).unwrap();
        w.append_line(&part("open", 1)).unwrap();
        w.append(&ObjectRecord::new("b", "b", 1, Status::Failed))
            .unwrap();
        drop(w);
        let before = Manifest::load(&path).unwrap();

        let done = compact(&path).unwrap().expect("something to drop");
        assert_eq!(done.lines_dropped, 3);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), done.bytes_after);
        assert!(done.bytes_after < done.bytes_before);
        let after = Manifest::load(&path).unwrap();
        assert_eq!(after.records, before.records);
        let intents: Vec<&str> = after
            .intents
            .iter()
            .map(|(_, i)| i.source_key.as_str())
            .collect();
        assert_eq!(intents, ["big", "open"]);
        assert_eq!(after.intents[0].1.upload_id.as_deref(), Some("u1"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!beside(&path).exists());
        // Again: nothing left to drop, the file untouched.
        assert_eq!(compact(&path).unwrap(), None);
    }

    #[test]
    fn a_torn_tail_leaves_the_file_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        drop(one_answered(&path));
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"type\":\"obj").unwrap();
        let before = std::fs::read(&path).unwrap();
        assert_eq!(compact(&path).unwrap(), None);
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
}
