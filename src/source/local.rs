//! A local directory as a source. Walks the tree on a blocking thread (sorted by name, so
//! the order is stable) and follows symlinks inside it like `aws s3 sync` does; a link
//! that leaves the tree is skipped (recorded) unless `--copy-links`, and so are FIFOs,
//! sockets and devices. Symlink loops, broken links and unreadable entries are failed
//! items, not a stopped walk. The rehearsal target and the manifest are never read.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::{ListItem, ObjectInfo, Opened, Problem, Source};
use crate::error::StoreError;
use crate::object::{channel_stream, fused, ByteRange, ByteStream};

pub struct LocalSource {
    root: PathBuf,
    rules: WalkRules,
}

/// What the walk may follow and must leave out.
#[derive(Debug, Clone, Default)]
pub struct WalkRules {
    /// Follow symlinks that leave the source tree (`--copy-links`); links inside it are
    /// always followed.
    pub copy_links: bool,
    /// Paths never read as source even when inside it: the rehearsal target, the
    /// manifest and its lock.
    pub excluded: Vec<PathBuf>,
}

impl LocalSource {
    pub fn new(root: PathBuf) -> LocalSource {
        LocalSource::with_rules(root, WalkRules::default())
    }

    pub fn with_rules(root: PathBuf, rules: WalkRules) -> LocalSource {
        LocalSource { root, rules }
    }

    fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }
}

/// The key of a path below the root: relative, `/`-separated.
fn key_of(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// A local file's version: its size and modification time in nanoseconds, so a rewrite
/// of the same size is still seen as a change.
pub fn local_version(size: u64, modified: Option<time::OffsetDateTime>) -> String {
    let ns = modified.map(|t| t.unix_timestamp_nanos()).unwrap_or(0);
    format!("{size}:{ns}")
}

/// What tells one version of a file from another while it is read: size, modification
/// time, and the inode (a file replaced by rename is another inode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    dev: u64,
    ino: u64,
}

impl Stamp {
    fn of(md: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            len: md.len(),
            modified: md.modified().ok(),
            dev: md.dev(),
            ino: md.ino(),
        }
    }

    /// As the listing records it (`source_version`).
    fn version(&self) -> String {
        local_version(self.len, self.modified.map(time::OffsetDateTime::from))
    }
}

fn changed(key: &str, when: &str) -> StoreError {
    StoreError::Object(format!(
        "{key}: changed at the source {when}; run again to copy the new version"
    ))
}

/// `stream`, then — after its last byte — a look at the file by its path: if it is no
/// longer the version opened (rewritten in place, appended to, truncated, replaced by
/// rename), the read is void and ends in an error, so bytes of two versions are never
/// taken for one.
fn unchanged_while_read(
    stream: ByteStream,
    path: PathBuf,
    at_open: Stamp,
    key: String,
) -> ByteStream {
    let last_look = futures::stream::once(async move {
        match tokio::fs::metadata(&path).await {
            Ok(md) if Stamp::of(&md) == at_open => None,
            _ => Some(Err(changed(&key, "while it was read"))),
        }
    })
    .filter_map(|look| async move { look });
    fused(stream.chain(last_look))
}

/// What the walk found at one entry, before it becomes a list item.
enum Found {
    Item(ListItem),
    /// Not part of the source: left out without a record.
    Leave,
    /// A directory not to descend into, with the item that says why (if any).
    Prune(Option<ListItem>),
}

fn walk(
    root: PathBuf,
    rules: WalkRules,
    tx: tokio::sync::mpsc::Sender<Result<ListItem, StoreError>>,
) {
    let inside = std::fs::canonicalize(&root).unwrap_or_else(|_| root.clone());
    let excluded: Vec<PathBuf> = rules
        .excluded
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    let mut walker = walkdir::WalkDir::new(&root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = walker.next() {
        let found = match entry {
            Ok(entry) => look_at(&root, &inside, &rules, &excluded, &entry),
            Err(err) if err.depth() == 0 => {
                let msg = format!(
                    "source directory {} cannot be read: {}",
                    root.display(),
                    err.io_error()
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| err.to_string())
                );
                let _ = tx.blocking_send(Err(StoreError::Fatal(msg)));
                return;
            }
            Err(err) => Found::Item(walk_error(&root, &err)),
        };
        let item = match found {
            Found::Item(item) => item,
            Found::Leave => continue,
            Found::Prune(item) => {
                walker.skip_current_dir();
                match item {
                    Some(item) => item,
                    None => continue,
                }
            }
        };
        if tx.blocking_send(Ok(item)).is_err() {
            return; // the consumer stopped listening
        }
    }
}

/// One entry of the walk: a file to list, a link or special file to skip (recorded),
/// or something that is not part of the source.
fn look_at(
    root: &Path,
    inside: &Path,
    rules: &WalkRules,
    excluded: &[PathBuf],
    entry: &walkdir::DirEntry,
) -> Found {
    let is_dir = entry.file_type().is_dir();
    let real = std::fs::canonicalize(entry.path()).ok();
    if real
        .as_ref()
        .is_some_and(|r| excluded.iter().any(|x| r.starts_with(x)))
    {
        return if is_dir {
            Found::Prune(None)
        } else {
            Found::Leave
        };
    }
    let key = key_of(root, entry.path());
    if entry.path_is_symlink() && !rules.copy_links {
        if let Some(real) = real.filter(|r| !r.starts_with(inside)) {
            let skipped = ListItem::Skipped {
                key,
                reason: format!(
                    "a symbolic link to {}, outside the source tree: not followed (pass --copy-links to copy what it points to)",
                    real.display()
                ),
            };
            return if is_dir {
                Found::Prune(Some(skipped))
            } else {
                Found::Item(skipped)
            };
        }
    }
    if is_dir {
        return Found::Leave;
    }
    if !entry.file_type().is_file() {
        return Found::Item(ListItem::Skipped {
            key,
            reason: format!(
                "not a regular file ({}); left out",
                special_kind(entry.file_type())
            ),
        });
    }
    Found::Item(file_item(key, entry))
}

fn special_kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a file or a directory"
    }
}

fn file_item(key: String, entry: &walkdir::DirEntry) -> ListItem {
    if key.contains('\u{FFFD}') && entry.path().to_str().is_none() {
        return ListItem::Unreadable {
            key,
            problem: Problem::BadName,
            reason: "file name is not valid UTF-8; R2 keys must be UTF-8: rename it".into(),
        };
    }
    match entry.metadata() {
        Ok(md) => {
            let mut info = ObjectInfo::new(key, md.len());
            info.modified = md.modified().ok().map(time::OffsetDateTime::from);
            info.version = Some(local_version(md.len(), info.modified));
            info.meta.content_type = mime_guess::from_path(entry.path())
                .first()
                .map(|m| m.essence_str().to_string());
            ListItem::Object(info)
        }
        Err(e) => ListItem::Unreadable {
            key,
            problem: Problem::CannotRead,
            reason: format!("cannot read file metadata: {e}"),
        },
    }
}

/// A walk error below the root: a symlink loop, a broken link, or an entry it could
/// not read — each a failed item with the reason.
fn walk_error(root: &Path, err: &walkdir::Error) -> ListItem {
    let path = err
        .path()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.to_path_buf());
    let reason = if let Some(ancestor) = err.loop_ancestor() {
        format!(
            "symlink loop: points back to {}; remove the link or exclude it",
            ancestor.display()
        )
    } else if path.is_symlink() && !path.exists() {
        "broken symlink: its target does not exist".to_string()
    } else {
        format!(
            "cannot read: {}; check its permissions",
            err.io_error()
                .map(|e| e.to_string())
                .unwrap_or_else(|| err.to_string())
        )
    };
    ListItem::Unreadable {
        key: key_of(root, &path),
        problem: Problem::CannotRead,
        reason,
    }
}

#[async_trait]
impl Source for LocalSource {
    fn list(&self) -> BoxStream<'_, Result<ListItem, StoreError>> {
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let (root, rules) = (self.root.clone(), self.rules.clone());
        tokio::task::spawn_blocking(move || walk(root, rules, tx));
        channel_stream(rx)
    }

    /// The file's bytes, tied to the version listed: opened only if it is still that
    /// version, and void (an error after the last byte) if it changed while read.
    async fn open(&self, obj: &ObjectInfo, range: Option<ByteRange>) -> Result<Opened, StoreError> {
        let path = self.path_of(&obj.key);
        let mut file = tokio::fs::File::open(&path).await.map_err(|e| {
            StoreError::Object(format!(
                "cannot open {}: {e}; check its permissions",
                path.display()
            ))
        })?;
        let at_open = file
            .metadata()
            .await
            .map(|md| Stamp::of(&md))
            .map_err(|e| StoreError::Object(format!("cannot stat {}: {e}", path.display())))?;
        if obj.version.is_some() && obj.version != Some(at_open.version()) {
            return Err(changed(&obj.key, "since it was listed"));
        }
        let stream: ByteStream = match range {
            None => fused(
                ReaderStream::with_capacity(file, 256 * 1024)
                    .map(move |r| r.map_err(|e| StoreError::Object(format!("read error: {e}")))),
            ),
            Some(r) => {
                file.seek(std::io::SeekFrom::Start(r.start))
                    .await
                    .map_err(|e| {
                        StoreError::Object(format!("cannot seek in {}: {e}", path.display()))
                    })?;
                fused(
                    ReaderStream::with_capacity(file.take(r.end - r.start), 256 * 1024).map(
                        move |r| r.map_err(|e| StoreError::Object(format!("read error: {e}"))),
                    ),
                )
            }
        };
        Ok(Opened::body(unchanged_while_read(
            stream,
            path,
            at_open,
            obj.key.clone(),
        )))
    }

    async fn check_access(&self) -> Result<(), StoreError> {
        match tokio::fs::metadata(&self.root).await {
            Ok(md) if md.is_dir() => Ok(()),
            Ok(_) => Err(StoreError::Fatal(format!(
                "source {} is not a directory: give the folder that holds the files (and --include to pick some)",
                self.root.display()
            ))),
            Err(e) => Err(StoreError::Fatal(format!(
                "source directory {} cannot be read: {e}; check its permissions",
                self.root.display()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn listed(root: &Path) -> Vec<ListItem> {
        let src = LocalSource::new(root.to_path_buf());
        src.list().map(|r| r.unwrap()).collect().await
    }

    #[tokio::test]
    async fn lists_nested_files_with_slash_keys_in_stable_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b/c")).unwrap();
        std::fs::write(dir.path().join("b/c/deep.txt"), b"x").unwrap();
        std::fs::write(dir.path().join("a.txt"), b"hello").unwrap();
        std::fs::write(dir.path().join("empty"), b"").unwrap();
        let keys: Vec<(String, u64)> = listed(dir.path())
            .await
            .into_iter()
            .map(|i| match i {
                ListItem::Object(o) => (o.key, o.size),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            keys,
            vec![
                ("a.txt".into(), 5),
                ("b/c/deep.txt".into(), 1),
                ("empty".into(), 0)
            ]
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn symlink_loops_and_broken_links_are_unreadable_items() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/f"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("d/loop")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join("broken")).unwrap();
        let items = listed(dir.path()).await;
        let reasons: Vec<(String, String)> = items
            .iter()
            .filter_map(|i| match i {
                ListItem::Unreadable { key, reason, .. } => Some((key.clone(), reason.clone())),
                _ => None,
            })
            .collect();
        assert!(
            reasons
                .iter()
                .any(|(k, r)| k == "d/loop" && r.contains("symlink loop")),
            "{reasons:?}"
        );
        assert!(
            reasons
                .iter()
                .any(|(k, r)| k == "broken" && r.contains("broken symlink")),
            "{reasons:?}"
        );
        assert!(items
            .iter()
            .any(|i| matches!(i, ListItem::Object(o) if o.key == "d/f")));
    }

    #[tokio::test]
    async fn reads_ranges() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"0123456789").unwrap();
        let src = LocalSource::new(dir.path().to_path_buf());
        let info = ObjectInfo::new("f", 10);
        let body: Vec<u8> = src
            .open(&info, Some(2..5))
            .await
            .unwrap()
            .body
            .map(|c| c.unwrap().to_vec())
            .concat()
            .await;
        assert_eq!(body, b"234");
    }
}
