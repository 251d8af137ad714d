//! The manifest: JSON Lines, append-only, flushed per record, so a crash loses at most the
//! records of objects in flight. A torn last line is ignored on load (and cut off before
//! the next append). A later line about the same `source_key` supersedes earlier ones.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::usage;

mod compact;
mod lines;
pub mod lock;
pub mod set;
pub use compact::{compact, Compacted};
pub use lines::*;
pub use set::{ManifestSet, Word};

pub const DEFAULT_PATH: &str = "r2migrate-manifest.jsonl";
pub const VERSION: u32 = 1;

/// A manifest read back whole: its headers, and every object line in order. For tests
/// and small files; the commands read manifests as streams ([`Manifest::stream`],
/// [`ManifestSet`]), in memory that does not grow with the object count.
#[derive(Debug, Default)]
pub struct Manifest {
    pub path: PathBuf,
    pub headers: Vec<Header>,
    pub records: Vec<ObjectRecord>,
    /// Intent lines, each with the number of object records before it.
    pub intents: Vec<(usize, Intent)>,
    /// Objects runs found deleted at the source, in order.
    pub source_deleted: Vec<SourceDeleted>,
    /// Stored values `rewrite-urls` changed, in order.
    pub rewrites: Vec<RewriteLine>,
}

/// Whether `next` replaces `before` as what stands for its object: a failed attempt
/// wrote nothing (or nothing we could prove), so our earlier copy is still in the target
/// and still ours — a later run replaces it as ours, rollback deletes it.
pub fn replaces(before: Option<&ObjectRecord>, next: &ObjectRecord) -> bool {
    !(next.status == Status::Failed && before.is_some_and(|b| b.status == Status::Copied))
}

impl Manifest {
    /// Reads a manifest; a torn last line is ignored, anything else malformed is an error
    /// naming the file and line (exit 2).
    pub fn load(path: &Path) -> anyhow::Result<Manifest> {
        let mut m = Manifest {
            path: path.to_path_buf(),
            ..Default::default()
        };
        let mut rest = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        m.headers = Manifest::stream(path, |line| {
            match line {
                Line::Object(r) => rest.0.push(r),
                Line::Intent(i) => rest.1.push((rest.0.len(), i)),
                Line::Rewrite(r) => rest.2.push(r),
                Line::SourceDeleted(d) => rest.3.push(d),
                // What a resumed run goes on from; rollback and verify need only the
                // upload's intent (an upload left open is aborted by its id).
                Line::Part(_) => {}
            }
            Ok(())
        })?;
        (m.records, m.intents, m.rewrites, m.source_deleted) = rest;
        Ok(m)
    }

    /// Reads a manifest one line at a time, holding none of it: every line after the
    /// headers goes to `each`, in order; returns the headers. The same checks as `load`.
    pub fn stream(
        path: &Path,
        mut each: impl FnMut(Line) -> anyhow::Result<()>,
    ) -> anyhow::Result<Vec<Header>> {
        let shown = path.display().to_string();
        let mut headers = Vec::new();
        let torn = for_each_complete_line(path, |line, number| {
            if line.trim().is_empty() {
                return Ok(());
            }
            match parse_line(&shown, line, number, !headers.is_empty())? {
                Parsed::Header(h) => headers.push(h),
                Parsed::Line(mut l) => {
                    // A line's run is the header's above it unless it names another.
                    let run = headers.last().map(|h: &Header| &h.run_id);
                    if let (Some(slot @ None), Some(run)) = (l.run_id_mut(), run) {
                        *slot = Some(run.clone());
                    }
                    each(l)?
                }
            }
            Ok(())
        })?;
        if headers.is_empty() && torn {
            return Err(usage(format!(
                "{} has no complete header line: it is not an r2migrate manifest (or a run crashed before writing one)",
                path.display()
            )));
        }
        Ok(headers)
    }

    /// The last word on each source item, in first-seen order.
    pub fn latest(&self) -> Vec<&ObjectRecord> {
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut out: Vec<&ObjectRecord> = Vec::new();
        for r in &self.records {
            match index.get(r.source_key.as_str()) {
                Some(&i) => out[i] = r,
                None => {
                    index.insert(&r.source_key, out.len());
                    out.push(r);
                }
            }
        }
        out
    }

    /// Refuses a manifest that belongs to another migration.
    pub fn check_belongs(&self, source: &str, target: &str) -> anyhow::Result<()> {
        for h in &self.headers {
            if h.source != source || h.target != target {
                return Err(usage(format!(
                    "manifest {} belongs to another migration ({} → {}), not {source} → {target}; give this migration its own --manifest",
                    self.path.display(),
                    h.source,
                    h.target
                )));
            }
        }
        Ok(())
    }
}

/// Appends records, one line each, flushed to the OS as each is written.
pub struct ManifestWriter {
    file: File,
    path: PathBuf,
    since_sync: usize,
    /// The run of the header this writer wrote: its lines leave it to the header.
    run_id: String,
    /// Bytes of intent and part lines written: what a compaction could drop.
    announced: u64,
}

impl ManifestWriter {
    /// Opens for append (creating the file), cuts off a torn last line, writes `header`.
    pub fn open(path: &Path, header: &Header) -> anyhow::Result<ManifestWriter> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                usage(format!(
                    "cannot create the folder of manifest {}: {e}; check the --manifest path and its permissions",
                    path.display()
                ))
            })?;
        }
        // 0600: a manifest names every key, and with write-back the rows' old values.
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                usage(format!(
                    "cannot write manifest {}: {e}; check its folder's permissions and free space",
                    path.display()
                ))
            })?;
        cut_torn_tail(&mut file)
            .map_err(|e| usage(format!("cannot repair manifest {}: {e} (its last line is torn); check its permissions and free space", path.display())))?;
        let mut w = ManifestWriter {
            file,
            path: path.to_path_buf(),
            since_sync: 0,
            run_id: header.run_id.clone(),
            announced: 0,
        };
        w.write_line(&serde_json::to_string(header)?)?;
        Ok(w)
    }

    /// Appends a line that is not an object record (an intent, a deletion seen at the
    /// source); written to the OS before this returns, so an intent survives the process
    /// dying (kill -9) before the write it announces.
    pub fn append_line(&mut self, line: &impl Serialize) -> anyhow::Result<()> {
        self.write_line(&serde_json::to_string(line)?)
    }

    /// Appends an intent or a part line, leaving its run to the header above it.
    pub fn announce(&mut self, line: &mut Announced) -> anyhow::Result<()> {
        let run_id = match line {
            Announced::Intent(i) => &mut i.run_id,
            Announced::Part(p) => &mut p.run_id,
        };
        if run_id.as_deref() == Some(self.run_id.as_str()) {
            *run_id = None;
        }
        let text = match line {
            Announced::Intent(i) => serde_json::to_string(i)?,
            Announced::Part(p) => serde_json::to_string(p)?,
        };
        self.announced += text.len() as u64 + 1;
        self.write_line(&text)
    }

    /// Appends an outcome. Two fields are left out where a reader gets them otherwise
    /// (a record is written once per object, so every byte counts a million times): the
    /// run, when it is the header's above it, and `target_checksum`, when it is the
    /// SHA-256 of `sha256` (a single PUT's), which proves exactly what it would.
    pub fn append(&mut self, record: &ObjectRecord) -> anyhow::Result<()> {
        let own_run = record.run_id.as_deref() == Some(self.run_id.as_str());
        let derived = record
            .target_checksum
            .as_deref()
            .is_some_and(|c| Some(c) == sha256_b64(record).as_deref());
        let text = if own_run || derived {
            let mut r = record.clone();
            if own_run {
                r.run_id = None;
            }
            if derived {
                r.target_checksum = None;
            }
            serde_json::to_string(&r)?
        } else {
            serde_json::to_string(record)?
        };
        self.write_line(&text)?;
        self.since_sync += 1;
        if self.since_sync >= 1000 {
            self.sync()?;
        }
        Ok(())
    }

    fn write_line(&mut self, line: &str) -> anyhow::Result<()> {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        self.file
            .write_all(&buf)
            .map_err(|e| cannot(&self.path, "append to", &e))
    }

    /// Forces everything written so far to disk, on a blocking thread: the runtime's
    /// threads go on copying while the disk answers.
    pub async fn sync_off_thread(&mut self) -> anyhow::Result<()> {
        self.since_sync = 0;
        let file = self
            .file
            .try_clone()
            .map_err(|e| cannot(&self.path, "sync", &e))?;
        let synced = tokio::task::spawn_blocking(move || file.sync_data()).await;
        match synced {
            Ok(r) => r.map_err(|e| cannot(&self.path, "sync", &e)),
            Err(e) => Err(anyhow::anyhow!(
                "the manifest {} was not synced ({e}); run the same command again to resume",
                self.path.display()
            )),
        }
    }

    /// Forces everything written so far to disk.
    pub fn sync(&mut self) -> anyhow::Result<()> {
        self.since_sync = 0;
        self.file
            .sync_data()
            .map_err(|e| cannot(&self.path, "sync", &e))
    }
}

/// The bytes of intent and part lines this writer appended.
impl ManifestWriter {
    pub fn announced_bytes(&self) -> u64 {
        self.announced
    }
}

/// A line announced before the run goes on: an intent before a write, or a part that
/// landed.
#[derive(Debug)]
pub enum Announced {
    Intent(Intent),
    Part(PartLine),
}

/// A record's whole-object SHA-256 in base64, as a single PUT sends it.
fn sha256_b64(record: &ObjectRecord) -> Option<String> {
    let bytes = hex::decode(record.sha256.as_deref()?).ok()?;
    Some(crate::checksum::b64(&bytes))
}

/// A manifest write failed: the run stops (exit 3) and says how to go on. What is in
/// the file stays true; a torn last line is ignored when it is read again.
fn cannot(path: &Path, doing: &str, e: &std::io::Error) -> anyhow::Error {
    let hint = if e.raw_os_error() == Some(28) {
        "free some space there (or move the manifest to a larger disk and pass --manifest), then"
    } else {
        "fix that, then"
    };
    anyhow::anyhow!(
        "cannot {doing} manifest {}: {e}; the run stopped and every line already written is true. To resume, {hint} run the same command again",
        path.display()
    )
}

/// One line's JSON, to be read as the type its `type` names.
struct ParsedLine<'a> {
    value: serde_json::Value,
    what: &'a str,
    path: &'a str,
    number: usize,
}

impl ParsedLine<'_> {
    fn read<T: serde::de::DeserializeOwned>(self) -> anyhow::Result<T> {
        serde_json::from_value(self.value).map_err(|e| {
            usage(format!(
                "manifest {} line {}: bad {}: {e}; the file is damaged (r2migrate never edits a written line): restore it from a copy",
                self.path, self.number, self.what
            ))
        })
    }
}

/// A manifest line after the headers.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one lives at a time; boxing buys nothing
pub enum Line {
    Object(ObjectRecord),
    Intent(Intent),
    Part(PartLine),
    Rewrite(RewriteLine),
    SourceDeleted(SourceDeleted),
}

impl Line {
    /// The run that wrote it, where the line may leave it to its header.
    fn run_id_mut(&mut self) -> Option<&mut Option<String>> {
        match self {
            Line::Object(r) => Some(&mut r.run_id),
            Line::Intent(i) => Some(&mut i.run_id),
            Line::Part(p) => Some(&mut p.run_id),
            Line::Rewrite(_) | Line::SourceDeleted(_) => None,
        }
    }
}

enum Parsed {
    Header(Header),
    Line(Line),
}

/// One line, by its type; every line but a header needs a header before it.
fn parse_line(path: &str, line: &str, number: usize, after_header: bool) -> anyhow::Result<Parsed> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| {
        usage(format!(
            "manifest {path} line {number} is not JSON ({e}); it is corrupted or not an r2migrate manifest"
        ))
    })?;
    let parse = |value, what| ParsedLine {
        value,
        what,
        path,
        number,
    };
    let kind = value
        .get("type")
        .and_then(|t| t.as_str())
        .map(str::to_string);
    Ok(match kind.as_deref() {
        Some("header") => {
            let h: Header = parse(value, "header").read()?;
            if h.version > VERSION {
                return Err(usage(format!(
                    "manifest {path} was written by a newer r2migrate (version {}); upgrade r2migrate",
                    h.version
                )));
            }
            Parsed::Header(h)
        }
        Some("intent") if after_header => Parsed::Line(Line::Intent(parse(value, "intent record").read()?)),
        Some("part") if after_header => Parsed::Line(Line::Part(parse(value, "part line").read()?)),
        Some("rewrite") if after_header => Parsed::Line(Line::Rewrite(parse(value, "rewrite line").read()?)),
        Some("source_deleted") if after_header => {
            Parsed::Line(Line::SourceDeleted(parse(value, "source_deleted line").read()?))
        }
        Some("object") if after_header => Parsed::Line(Line::Object(parse(value, "object record").read()?)),
        _ => {
            return Err(usage(format!(
                "{path} line {number} is not an r2migrate manifest line (it must start with a header); give another --manifest"
            )))
        }
    })
}

/// Each line that ends in a newline, with its number, to `each`; `true` when the file
/// ends in a torn line (no newline), which is left out.
fn for_each_complete_line(
    path: &Path,
    mut each: impl FnMut(&str, usize) -> anyhow::Result<()>,
) -> anyhow::Result<bool> {
    let file = File::open(path).map_err(|e| {
        usage(format!(
            "cannot read manifest {}: {e}; give the manifest a run wrote with --manifest",
            path.display()
        ))
    })?;
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    let mut number = 0;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(|e| {
            usage(format!(
                "cannot read manifest {}: {e}; check the path (--manifest) and its permissions",
                path.display()
            ))
        })?;
        if n == 0 {
            return Ok(false);
        }
        if buf.last() != Some(&b'\n') {
            return Ok(true);
        }
        buf.pop();
        number += 1;
        each(&String::from_utf8_lossy(&buf), number)?;
    }
}

/// If the file does not end in a newline, drops the bytes after the last one.
fn cut_torn_tail(file: &mut File) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let window = len.min(1 << 20);
    file.seek(SeekFrom::Start(len - window))?;
    let mut tail = vec![0u8; window as usize];
    file.read_exact(&mut tail)?;
    if tail.last() == Some(&b'\n') {
        return Ok(());
    }
    let keep = match tail.iter().rposition(|&b| b == b'\n') {
        Some(i) => len - window + i as u64 + 1,
        None if window == len => 0,
        None => return Ok(()), // a single line over 1 MiB: leave it to load() to report
    };
    file.set_len(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(source: &str) -> Header {
        Header::for_test(source, "r2://b/", "r1")
    }

    #[test]
    fn later_lines_supersede_and_torn_tails_are_ignored_then_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        let mut w = ManifestWriter::open(&path, &header("file:///a")).unwrap();
        w.append(&ObjectRecord::new("k", "k", 1, Status::Failed))
            .unwrap();
        w.append(&ObjectRecord::new("k", "k", 1, Status::Copied))
            .unwrap();
        w.append(&ObjectRecord::new("j", "j", 2, Status::Copied))
            .unwrap();
        drop(w);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"type\":\"object\",\"source_ke").unwrap();
        drop(f);

        let m = Manifest::load(&path).unwrap();
        let latest = m.latest();
        assert_eq!(latest.len(), 2);
        assert_eq!(latest[0].status, Status::Copied);

        // The next writer cuts the torn tail, so the file stays valid.
        let mut w = ManifestWriter::open(&path, &header("file:///a")).unwrap();
        w.append(&ObjectRecord::new("z", "z", 3, Status::Copied))
            .unwrap();
        let m = Manifest::load(&path).unwrap();
        assert_eq!(m.headers.len(), 2);
        assert_eq!(m.latest().len(), 3);
    }

    #[test]
    fn foreign_and_corrupted_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut good =
            ManifestWriter::open(&dir.path().join("g.jsonl"), &header("file:///a")).unwrap();
        good.append(&ObjectRecord::new("k", "k", 1, Status::Copied))
            .unwrap();
        drop(good);
        let valid = std::fs::read_to_string(dir.path().join("g.jsonl")).unwrap();
        for (name, text, says) in [
            ("notes.txt", "hello\nworld\n".to_string(), "line 1"),
            (
                "other.jsonl",
                "{\"a\":1}\n".to_string(),
                "not an r2migrate manifest",
            ),
            (
                "c.jsonl",
                format!("{valid}garbage\n{{\"type\":\"object\"}}\n"),
                "line 3",
            ),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let err = Manifest::load(&path).unwrap_err().to_string();
            assert!(err.contains(says), "{name}: {err}");
        }
    }

    #[test]
    fn a_manifest_of_another_migration_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        ManifestWriter::open(&path, &header("file:///a")).unwrap();
        let m = Manifest::load(&path).unwrap();
        assert!(m.check_belongs("file:///a", "r2://b/").is_ok());
        let err = m.check_belongs("file:///other", "r2://b/").unwrap_err();
        assert!(err.downcast_ref::<crate::error::UsageError>().is_some());
    }
}
