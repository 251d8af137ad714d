//! A set of manifests (one, or the shards of one migration) read as streams: what stands
//! for each source item is kept in the on-disk map `run` uses ([`crate::spill`]), so
//! `verify`, `report`, `rollback` and `rewrite-urls` hold the same memory at a million
//! objects as at a thousand. A later line about a source item supersedes an earlier one,
//! within a file and across the files in the order given.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{replaces, Header, Intent, Line, Manifest, ObjectRecord, Status};
use crate::error::usage;
use crate::spill::{DiskMap, SpillError};

/// Which record stands for a source item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Word {
    /// The last one written: what `verify`, `report` and `rewrite-urls` read.
    Last,
    /// The last one, except that a `failed` attempt does not hide an earlier `copied`
    /// (see [`replaces`]): what is ours in the target, which rollback undoes.
    Standing,
}

/// The manifests' headers, the record standing for each source item (on disk), and the
/// writes a crash left without an outcome (in memory: a few per crash).
pub struct ManifestSet {
    /// Each manifest with its headers, in the order given.
    pub manifests: Vec<(PathBuf, Vec<Header>)>,
    records: DiskMap<ObjectRecord>,
    /// Intents no record of their source item followed in their file, by source key.
    pub unfinished: HashMap<String, Vec<Intent>>,
}

impl ManifestSet {
    /// Reads every manifest in order, one line at a time; each line after the headers
    /// also goes to `each` with its manifest's index. Refuses an empty manifest, and a
    /// set whose headers name different targets (exit 2).
    pub fn read(
        paths: &[PathBuf],
        word: Word,
        mut each: impl FnMut(usize, &Line) -> anyhow::Result<()>,
    ) -> anyhow::Result<ManifestSet> {
        let mut set = ManifestSet {
            manifests: Vec::new(),
            records: DiskMap::new("the manifest's records"),
            unfinished: HashMap::new(),
        };
        for (index, path) in paths.iter().enumerate() {
            let mut pending: HashMap<String, Vec<Intent>> = HashMap::new();
            let headers = Manifest::stream(path, |line| {
                each(index, &line)?;
                match line {
                    Line::Object(r) => {
                        pending.remove(&r.source_key);
                        set.note(r, word)?;
                    }
                    Line::Intent(i) => pending.entry(i.source_key.clone()).or_default().push(i),
                    Line::Part(_) | Line::Rewrite(_) | Line::SourceDeleted(_) => {}
                }
                Ok(())
            })?;
            set.check(path, &headers)?;
            for (key, intents) in pending {
                set.unfinished.entry(key).or_default().extend(intents);
            }
            set.manifests.push((path.clone(), headers));
        }
        Ok(set)
    }

    fn note(&self, r: ObjectRecord, word: Word) -> Result<(), SpillError> {
        // Only a failed record can leave an earlier one standing: look only then.
        if word == Word::Standing && r.status == Status::Failed {
            let before = self.records.get(&r.source_key)?;
            if !replaces(before.as_ref(), &r) {
                return Ok(());
            }
        }
        self.records.insert(&r.source_key, &r)
    }

    fn check(&self, path: &Path, headers: &[Header]) -> anyhow::Result<()> {
        let Some(header) = headers.first() else {
            return Err(usage(format!(
                "manifest {} is empty: no run has written to it, so there is nothing to read or roll back; give the manifest the run wrote with --manifest",
                path.display()
            )));
        };
        if let Some((first_path, first)) = self.manifests.first() {
            if first[0].target != header.target {
                return Err(usage(format!(
                    "manifests {} and {} name different targets ({} and {}); give manifests of one migration",
                    first_path.display(),
                    path.display(),
                    first[0].target,
                    header.target
                )));
            }
        }
        Ok(())
    }

    /// The first manifest's first header: the migration's source and target.
    pub fn first_header(&self) -> &Header {
        &self.manifests[0].1[0]
    }

    /// Every header, manifest by manifest.
    pub fn headers(&self) -> impl Iterator<Item = &Header> {
        self.manifests.iter().flat_map(|(_, h)| h)
    }

    /// The record standing for `source_key`.
    pub fn get(&self, source_key: &str) -> Result<Option<ObjectRecord>, SpillError> {
        self.records.get(source_key)
    }

    /// The record standing for each source item, in source-key order (bytewise), read
    /// from disk a page at a time.
    pub fn records(&self) -> impl Iterator<Item = Result<ObjectRecord, SpillError>> + '_ {
        self.records.entries().map(|e| e.map(|(_, r)| r))
    }
}

#[cfg(test)]
mod tests {
    use super::super::ManifestWriter;
    use super::*;

    fn header(target: &str, run: &str) -> Header {
        Header::for_test("file:///a", target, run)
    }

    fn all(set: &ManifestSet) -> Vec<(String, Status)> {
        set.records()
            .map(|r| r.map(|r| (r.source_key, r.status)).unwrap())
            .collect()
    }

    #[test]
    fn later_lines_and_later_files_supersede_and_a_failure_leaves_ours_standing() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
        let mut w = ManifestWriter::open(&a, &header("r2://b/", "r1")).unwrap();
        w.append(&ObjectRecord::new("k", "k", 1, Status::Copied))
            .unwrap();
        w.append(&ObjectRecord::new("j", "j", 1, Status::Copied))
            .unwrap();
        w.append(&ObjectRecord::new("k", "k", 1, Status::Failed))
            .unwrap();
        w.append_line(&Intent::new("open", "open", None)).unwrap();
        drop(w);
        let mut w = ManifestWriter::open(&b, &header("r2://b/", "r2")).unwrap();
        w.append(&ObjectRecord::new("j", "j", 1, Status::Conflict))
            .unwrap();
        drop(w);
        let paths = [a.clone(), b.clone()];
        let mut lines = 0;
        let last = ManifestSet::read(&paths, Word::Last, |_, _| {
            lines += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(lines, 5);
        assert_eq!(
            all(&last),
            [("j".into(), Status::Conflict), ("k".into(), Status::Failed)]
        );
        let standing = ManifestSet::read(&paths, Word::Standing, |_, _| Ok(())).unwrap();
        assert_eq!(
            all(&standing),
            [("j".into(), Status::Conflict), ("k".into(), Status::Copied)]
        );
        assert_eq!(standing.unfinished.keys().collect::<Vec<_>>(), ["open"]);
        // Each record knows its run, from its line or the header above it.
        assert_eq!(
            last.get("j").unwrap().unwrap().run_id.as_deref(),
            Some("r2")
        );
        assert_eq!(last.headers().count(), 2);
    }

    #[test]
    fn an_empty_manifest_or_one_of_another_target_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, empty) = (
            dir.path().join("a.jsonl"),
            dir.path().join("b.jsonl"),
            dir.path().join("e.jsonl"),
        );
        ManifestWriter::open(&a, &header("r2://b/", "r1")).unwrap();
        ManifestWriter::open(&b, &header("r2://other/", "r2")).unwrap();
        std::fs::write(&empty, "").unwrap();
        let err = |paths: &[PathBuf]| match ManifestSet::read(paths, Word::Last, |_, _| Ok(())) {
            Ok(_) => panic!("accepted {paths:?}"),
            Err(e) => e.to_string(),
        };
        assert!(err(&[a.clone(), b]).contains("different targets"));
        assert!(err(&[a, empty]).contains("is empty"));
    }
}
