//! A local directory as a rehearsal target: the same flow as R2 with no cloud account.
//! Objects are written to a temp file and renamed into place (never half-written);
//! their metadata lives beside the tree under `.r2migrate/meta/`, so verify and
//! rollback work as they do on R2. HEAD re-hashes the file, so a change made behind our
//! back is seen.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ListedPart, MultipartUpload, PutResult, Target, TargetObject};
use crate::checksum::{b64, Hasher};
use crate::error::StoreError;
use crate::object::{Body, ByteStream, Expect, MultipartChecksum, ObjectMeta};

/// Where metadata and temp files live, inside the target directory.
const STATE_DIR: &str = ".r2migrate";

mod upload;
use upload::{remove_part_files, DirUpload};

#[derive(Clone)]
pub struct DirTarget {
    root: PathBuf,
    /// `--max-rate` and `--max-bandwidth`: a rehearsal writes as fast as the run to R2
    /// will be allowed to.
    pacer: Option<std::sync::Arc<crate::pacer::Pacer>>,
}

#[derive(Serialize, Deserialize, Default)]
struct Sidecar {
    content_type: Option<String>,
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    expires: Option<String>,
    #[serde(default)]
    custom: BTreeMap<String, String>,
    /// The ETag given when the object was written, and the file's size and mtime then:
    /// a listing reports this ETag while the file is untouched (R2 lists ETags too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stamp: Option<String>,
}

/// A file's size and modification time, to tell whether it changed since written.
fn stamp_of(md: &std::fs::Metadata) -> String {
    let ns = md
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}:{ns}", md.len())
}

/// What a listing reports as the ETag of the file at `path`: the one it was written
/// with while the file is untouched, else one that matches nothing we recorded.
fn listed_etag(meta_path: &Path, md: &std::fs::Metadata) -> Option<String> {
    let sidecar: Sidecar = serde_json::from_slice(&std::fs::read(meta_path).ok()?).ok()?;
    let stamp = stamp_of(md);
    match (sidecar.etag, sidecar.stamp) {
        (Some(etag), Some(then)) if then == stamp => Some(etag),
        (Some(_), _) => Some(format!("changed-since-written-{stamp}")),
        _ => None,
    }
}

impl From<&ObjectMeta> for Sidecar {
    fn from(m: &ObjectMeta) -> Sidecar {
        Sidecar {
            content_type: m.content_type.clone(),
            cache_control: m.cache_control.clone(),
            content_disposition: m.content_disposition.clone(),
            content_encoding: m.content_encoding.clone(),
            content_language: m.content_language.clone(),
            expires: m.expires.clone(),
            custom: m.custom.clone(),
            etag: None,
            stamp: None,
        }
    }
}

impl From<Sidecar> for ObjectMeta {
    fn from(s: Sidecar) -> ObjectMeta {
        ObjectMeta {
            content_type: s.content_type,
            cache_control: s.cache_control,
            content_disposition: s.content_disposition,
            content_encoding: s.content_encoding,
            content_language: s.content_language,
            expires: s.expires,
            custom: s.custom,
            storage_class: None,
        }
    }
}

/// Conditional commits of this process, one at a time.
static COMMITS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn io_err(what: &str, key: &str, e: std::io::Error) -> StoreError {
    StoreError::Object(format!("{key}: {what}: {e}"))
}

impl DirTarget {
    pub fn new(root: PathBuf) -> DirTarget {
        DirTarget { root, pacer: None }
    }

    /// The same directory, written within the caps `pacer` holds.
    pub fn paced(mut self, pacer: std::sync::Arc<crate::pacer::Pacer>) -> DirTarget {
        self.pacer = Some(pacer);
        self
    }

    /// Waits for the caps before a write of `bytes`: one request, and its bytes.
    pub(super) async fn pace(&self, bytes: u64) {
        if let Some(p) = &self.pacer {
            p.admit().await;
            p.spend_bytes(bytes).await;
        }
    }

    /// The file for a key, refusing keys that would escape the directory.
    fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        let rel = Path::new(key);
        let bad = key.is_empty()
            || key.ends_with('/')
            || key
                .split('/')
                .any(|seg| seg.is_empty() || seg == "." || seg == "..")
            || rel.components().any(|c| !matches!(c, Component::Normal(_)))
            || key.split('/').next() == Some(STATE_DIR);
        if bad {
            return Err(StoreError::Object(format!(
                "{key:?} cannot be stored as a file path in a rehearsal directory (empty, '.', '..' or '//' segments); R2 may accept it: rehearse with a key template that avoids it"
            )));
        }
        Ok(self.root.join(rel))
    }

    fn meta_path(&self, key: &str) -> PathBuf {
        self.root
            .join(STATE_DIR)
            .join("meta")
            .join(format!("{key}.json"))
    }

    async fn temp_file(&self) -> Result<(PathBuf, tokio::fs::File), StoreError> {
        let dir = self.root.join(STATE_DIR).join("tmp");
        tokio::fs::create_dir_all(&dir).await.map_err(|e| {
            StoreError::Fatal(format!(
                "cannot create {}: {e}; check the rehearsal directory's permissions and free space",
                dir.display()
            ))
        })?;
        let path = dir.join(format!("{}.part", rand::random::<u64>()));
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| StoreError::Fatal(format!("cannot write in {}: {e}; check the rehearsal directory's permissions and free space", dir.display())))?;
        Ok((path, file))
    }

    /// The temp file of an upload: an id is a temp file's bare name; anything else was
    /// never ours.
    fn upload_temp(&self, upload_id: &str) -> Option<PathBuf> {
        if upload_id.is_empty() || upload_id.contains('/') || upload_id.starts_with('.') {
            return None;
        }
        Some(self.root.join(STATE_DIR).join("tmp").join(upload_id))
    }

    /// Moves a finished temp file into place with its metadata and ETag.
    async fn commit(
        &self,
        key: &str,
        temp: &Path,
        meta: &ObjectMeta,
        (etag, expect): (Option<String>, &Expect),
    ) -> Result<(), StoreError> {
        let dest = self.path_of(key)?;
        let meta_path = self.meta_path(key);
        for p in [&dest, &meta_path] {
            if let Some(parent) = p.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| io_err("cannot create its folder", key, e))?;
            }
        }
        // R2's conditional writes, as R2 makes them: the look and the write are one step
        // for every writer in this process (an outside writer can still slip between).
        let _one_at_a_time = COMMITS.lock().await;
        if let Some(app) = crate::testhooks::race_before_commit(key) {
            let _ = std::fs::write(&dest, app);
        }
        // What is there now, as `head` describes it (its ETag is of the bytes).
        let now = match expect {
            Expect::Anything => None,
            Expect::Absent => std::fs::metadata(&dest)
                .ok()
                .filter(|md| md.is_file())
                .map(|_| None),
            Expect::Etag(_) => self.describe(key, &dest).await?.map(|o| o.etag),
        };
        let holds = match (expect, &now) {
            (Expect::Anything, _) | (Expect::Absent, None) => true,
            (Expect::Absent, Some(_)) | (Expect::Etag(_), None) => false,
            (Expect::Etag(want), Some(etag)) => etag.as_deref() == Some(want.as_str()),
        };
        if !holds {
            return Err(StoreError::Changed(format!(
                "PUT {key}: PreconditionFailed (HTTP 412): the key no longer holds what was looked at ({expect:?}); someone else wrote it"
            )));
        }
        let mut sidecar = Sidecar::from(meta);
        sidecar.etag = etag;
        // The rename keeps the temp file's mtime, so its stamp is the object's.
        sidecar.stamp = std::fs::metadata(temp).ok().map(|md| stamp_of(&md));
        let bytes = serde_json::to_vec(&sidecar).expect("metadata serialises");
        tokio::fs::write(&meta_path, bytes)
            .await
            .map_err(|e| io_err("cannot write its metadata", key, e))?;
        tokio::fs::rename(temp, &dest)
            .await
            .map_err(|e| io_err("cannot move it into place", key, e))
    }

    async fn describe(&self, key: &str, path: &Path) -> Result<Option<TargetObject>, StoreError> {
        let mut file = match tokio::fs::File::open(path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("cannot read", key, e)),
        };
        let md = file.metadata().await.ok();
        if md.as_ref().is_some_and(|m| m.is_dir()) {
            return Ok(None);
        }
        let mut hasher = Hasher::new();
        // No bigger than the file: a HEAD of a small object costs small memory, however
        // many run at once.
        let len = md.map_or(0, |m| m.len());
        let mut buf = vec![0u8; len.clamp(1, 256 * 1024) as usize];
        loop {
            let n = file
                .read(&mut buf)
                .await
                .map_err(|e| io_err("cannot read", key, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let d = hasher.finish();
        let meta = match tokio::fs::read(self.meta_path(key)).await {
            Ok(bytes) => serde_json::from_slice::<Sidecar>(&bytes)
                .unwrap_or_default()
                .into(),
            Err(_) => ObjectMeta::default(),
        };
        Ok(Some(TargetObject {
            key: key.to_string(),
            size: d.len,
            etag: Some(hex::encode(&d.sha256[..16])),
            checksum_sha256: Some(b64(&d.sha256)),
            checksum_crc64nvme: Some(crate::checksum::crc64nvme_b64(d.crc64nvme)),
            meta,
        }))
    }
}

fn walk_keys(
    root: PathBuf,
    meta_root: PathBuf,
    tx: tokio::sync::mpsc::Sender<Result<TargetObject, StoreError>>,
) {
    if !root.exists() {
        return;
    }
    let walker = walkdir::WalkDir::new(&root)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !(e.depth() == 1 && e.file_name() == STATE_DIR));
    for entry in walker {
        let item = match entry {
            Ok(e) if e.file_type().is_file() => {
                let rel = e.path().strip_prefix(&root).unwrap_or(e.path());
                let key = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                let md = e.metadata().ok();
                let size = md.as_ref().map(|m| m.len()).unwrap_or(0);
                let etag = md
                    .as_ref()
                    .and_then(|md| listed_etag(&meta_root.join(format!("{key}.json")), md));
                Ok(TargetObject {
                    key,
                    size,
                    etag,
                    ..Default::default()
                })
            }
            Ok(_) => continue,
            Err(e) => Err(StoreError::Fatal(format!(
                "cannot list the rehearsal directory: {e}; check its permissions"
            ))),
        };
        if tx.blocking_send(item).is_err() {
            return;
        }
    }
}

#[async_trait]
impl Target for DirTarget {
    fn prefix(&self) -> &str {
        ""
    }

    async fn check_access(&self) -> Result<(), StoreError> {
        tokio::fs::create_dir_all(&self.root).await.map_err(|e| {
            StoreError::Fatal(format!(
                "cannot create the target directory {}: {e}; check the path and its permissions",
                self.root.display()
            ))
        })?;
        let (path, _file) = self.temp_file().await?;
        let _ = tokio::fs::remove_file(path).await;
        Ok(())
    }

    fn list(&self) -> BoxStream<'_, Result<TargetObject, StoreError>> {
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let root = self.root.clone();
        let meta_root = self.root.join(STATE_DIR).join("meta");
        tokio::task::spawn_blocking(move || walk_keys(root, meta_root, tx));
        crate::object::channel_stream(rx)
    }

    async fn head(&self, key: &str) -> Result<Option<TargetObject>, StoreError> {
        let path = match self.path_of(key) {
            Ok(p) => p,
            Err(_) => return Ok(None),
        };
        self.describe(key, &path).await
    }

    async fn get(&self, key: &str) -> Result<ByteStream, StoreError> {
        let path = self.path_of(key)?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| io_err("cannot open", key, e))?;
        let key = key.to_string();
        Ok(crate::object::fused(
            tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024)
                .map(move |r| r.map_err(|e| io_err("read error", &key, e))),
        ))
    }

    async fn put_if(
        &self,
        key: &str,
        body: Body,
        meta: &ObjectMeta,
        expect: &Expect,
    ) -> Result<PutResult, StoreError> {
        let (body, sha256) = (body.bytes, body.sha256);
        self.path_of(key)?;
        self.pace(body.len() as u64).await;
        // The same check R2 makes on x-amz-checksum-sha256.
        if crate::checksum::sha256(&body) != sha256 {
            // The class R2's BadDigest gets: the body was corrupted on its way, resend it.
            return Err(StoreError::Transient(format!(
                "PUT {key}: BadDigest: the body does not match its x-amz-checksum-sha256"
            )));
        }
        let (temp, mut file) = self.temp_file().await?;
        let written = async {
            file.write_all(&body).await?;
            file.sync_data().await
        }
        .await;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(io_err("cannot write", key, e));
        }
        let etag = hex::encode(&sha256[..16]);
        if let Err(e) = self
            .commit(key, &temp, meta, (Some(etag.clone()), expect))
            .await
        {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(e);
        }
        Ok(PutResult {
            etag: Some(etag),
            checksum_sha256: None,
            checksum_crc64nvme: None,
        })
    }

    async fn start_multipart_if(
        &self,
        key: &str,
        meta: &ObjectMeta,
        checksum: MultipartChecksum,
        expect: &Expect,
    ) -> Result<Box<dyn MultipartUpload>, StoreError> {
        self.path_of(key)?;
        let (temp, file) = self.temp_file().await?;
        upload::keep_meta(&temp, meta).await?;
        Ok(Box::new(DirUpload {
            expect: expect.clone(),
            target: self.clone(),
            key: key.to_string(),
            meta: meta.clone(),
            checksum,
            temp,
            file: tokio::sync::Mutex::new(file),
            parts: std::sync::Mutex::new(BTreeMap::new()),
        }))
    }

    async fn list_parts(
        &self,
        _key: &str,
        upload_id: &str,
    ) -> Result<Option<Vec<ListedPart>>, StoreError> {
        match self.upload_temp(upload_id) {
            Some(temp) => upload::listed(&temp).await,
            None => Ok(None),
        }
    }

    async fn resume_multipart(
        &self,
        key: &str,
        upload_id: &str,
        expect: &Expect,
        landed: &[ListedPart],
    ) -> Result<Box<dyn MultipartUpload>, StoreError> {
        let temp = self.upload_temp(upload_id).ok_or_else(|| {
            StoreError::Object(format!(
                "{key}: {upload_id:?} is not an upload of this directory"
            ))
        })?;
        Ok(Box::new(
            upload::resumed(self, (key, temp), expect, landed).await?,
        ))
    }

    async fn abort_upload(&self, _key: &str, upload_id: &str) -> Result<(), StoreError> {
        let Some(temp) = self.upload_temp(upload_id) else {
            return Ok(());
        };
        remove_part_files(&temp).await;
        match tokio::fs::remove_file(&temp).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::Object(format!(
                "cannot remove {} (a part file a killed run left): {e}",
                temp.display()
            ))),
        }
    }

    async fn copy_if(&self, from: &str, to: &str, expect: &Expect) -> Result<(), StoreError> {
        self.pace(0).await;
        let src = self.path_of(from)?;
        let dest = self.path_of(to)?;
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io_err("cannot create its folder", to, e))?;
        }
        let (temp, _f) = self.temp_file().await?;
        tokio::fs::copy(&src, &temp)
            .await
            .map_err(|e| io_err("cannot copy", from, e))?;
        let meta = match tokio::fs::read(self.meta_path(from)).await {
            Ok(bytes) => serde_json::from_slice::<Sidecar>(&bytes)
                .unwrap_or_default()
                .into(),
            Err(_) => ObjectMeta::default(),
        };
        let etag = self.describe(to, &temp).await?.and_then(|o| o.etag);
        self.commit(to, &temp, &meta, (etag, expect)).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.pace(0).await;
        let path = self.path_of(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("cannot delete", key, e)),
        }
        let _ = tokio::fs::remove_file(self.meta_path(key)).await;
        // Remove folders left empty, as a bucket has no empty folders.
        let mut dir = path.parent().map(Path::to_path_buf);
        while let Some(d) = dir {
            if d == self.root || tokio::fs::remove_dir(&d).await.is_err() {
                break;
            }
            dir = d.parent().map(Path::to_path_buf);
        }
        Ok(())
    }
}
