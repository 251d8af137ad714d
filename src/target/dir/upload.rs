//! One multipart upload to the rehearsal directory: parts as files beside the temp file,
//! assembled at Complete with R2's checks (parts 1 to N, equal sizes but the last, the
//! scheme's checksums) and its conditions, then moved into place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use super::{io_err, DirTarget};
use crate::checksum::Hasher;
use crate::error::StoreError;
use crate::object::{Expect, MultipartChecksum, ObjectMeta, Part};
use crate::target::{ListedPart, MultipartUpload, PutResult};

/// A rehearsal multipart upload: each part lands in its own file beside the temp file
/// (parts may arrive in any order, several at once); completing joins them in order.
pub(super) struct DirUpload {
    /// What Complete expects at the key (R2's conditional Complete).
    pub(super) expect: Expect,
    pub(super) target: DirTarget,
    pub(super) key: String,
    pub(super) meta: ObjectMeta,
    pub(super) temp: PathBuf,
    /// The upload's one checksum scheme, as R2 fixes it at CreateMultipartUpload.
    pub(super) checksum: MultipartChecksum,
    pub(super) file: tokio::sync::Mutex<tokio::fs::File>,
    /// The parts written so far: number → size and MD5 (where the scheme sends one).
    pub(super) parts: std::sync::Mutex<BTreeMap<i32, PartWritten>>,
}

/// A part's size, and its MD5 where the upload's scheme sends one.
type PartWritten = (u64, Option<[u8; 16]>);

/// Where part `number` of the upload whose temp file is `temp` waits.
fn part_path(temp: &Path, number: i32) -> PathBuf {
    let mut name = temp.as_os_str().to_owned();
    name.push(format!(".{number}"));
    PathBuf::from(name)
}

/// Removes every part file of the upload whose temp file is `temp`.
pub(super) async fn remove_part_files(temp: &Path) {
    let (Some(dir), Some(name)) = (temp.parent(), temp.file_name()) else {
        return;
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return;
    };
    while let Ok(Some(e)) = entries.next_entry().await {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = tokio::fs::remove_file(e.path()).await;
        }
    }
}

/// Where an upload's metadata waits for a resumed run (removed with its part files).
fn meta_file(temp: &Path) -> PathBuf {
    let mut name = temp.as_os_str().to_owned();
    name.push(".meta");
    PathBuf::from(name)
}

/// Keeps the upload's metadata beside its parts, so a run that goes on with the upload
/// after a crash completes it with the metadata it was started with.
pub(super) async fn keep_meta(temp: &Path, meta: &ObjectMeta) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(&super::Sidecar::from(meta)).expect("metadata serialises");
    tokio::fs::write(meta_file(temp), bytes)
        .await
        .map_err(|e| io_err("cannot write the metadata of an upload of", "", e))
}

/// The part files an upload left, as ListParts would state them (ETag the part's MD5,
/// its CRC64NVME); `None` when the upload is gone.
pub(super) async fn listed(temp: &Path) -> Result<Option<Vec<ListedPart>>, StoreError> {
    if tokio::fs::metadata(temp).await.is_err() {
        return Ok(None);
    }
    let (Some(dir), Some(name)) = (temp.parent(), temp.file_name()) else {
        return Ok(None);
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut parts = Vec::new();
    let mut entries = tokio::fs::read_dir(dir)
        .await
        .map_err(|e| io_err("cannot list the parts of", &prefix, e))?;
    while let Ok(Some(e)) = entries.next_entry().await {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(number) = file
            .strip_prefix(&prefix)
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let body = tokio::fs::read(e.path())
            .await
            .map_err(|e| io_err("cannot read a part of", &file, e))?;
        parts.push(ListedPart {
            number,
            size: body.len() as u64,
            etag: Some(hex::encode(crate::checksum::md5(&body))),
            crc64nvme: Some(crate::checksum::crc64nvme_b64(crate::checksum::crc64nvme(
                &body,
            ))),
        });
    }
    parts.sort_by_key(|p| p.number);
    Ok(Some(parts))
}

/// Goes on with the upload whose temp file is `temp`, keeping the `landed` parts.
pub(super) async fn resumed(
    target: &DirTarget,
    (key, temp): (&str, PathBuf),
    expect: &Expect,
    landed: &[ListedPart],
) -> Result<DirUpload, StoreError> {
    let meta = match tokio::fs::read(meta_file(&temp)).await {
        Ok(bytes) => serde_json::from_slice::<super::Sidecar>(&bytes)
            .unwrap_or_default()
            .into(),
        Err(_) => ObjectMeta::default(),
    };
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&temp)
        .await
        .map_err(|e| io_err("cannot reopen the upload of", key, e))?;
    Ok(DirUpload {
        expect: expect.clone(),
        target: target.clone(),
        key: key.to_string(),
        meta,
        checksum: MultipartChecksum::Crc64nvme,
        temp,
        file: tokio::sync::Mutex::new(file),
        parts: std::sync::Mutex::new(landed.iter().map(|p| (p.number, (p.size, None))).collect()),
    })
}

impl DirUpload {
    /// Complete refused: nothing of the upload is left behind.
    async fn refuse(&self, why: String) -> Result<PutResult, StoreError> {
        remove_part_files(&self.temp).await;
        let _ = tokio::fs::remove_file(&self.temp).await;
        Err(StoreError::Object(format!(
            "{}: {why}; the upload was aborted",
            self.key
        )))
    }
}

#[async_trait]
impl MultipartUpload for DirUpload {
    fn id(&self) -> String {
        self.temp
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    async fn upload_part(&self, number: i32, part: Part) -> Result<Option<String>, StoreError> {
        let body = part.bytes;
        self.target.pace(body.len() as u64).await;
        if number < 1 {
            return Err(StoreError::Object(format!(
                "{}: part numbers start at 1 (got {number})",
                self.key
            )));
        }
        // As R2 does with the upload's one scheme: each part is checked against the
        // checksum sent with it (a mismatch means the part was corrupted on its way).
        let (matches, header) = match (self.checksum, part.md5) {
            (MultipartChecksum::Crc64nvme, _) => (
                crate::checksum::crc64nvme(&body) == part.crc64nvme,
                "x-amz-checksum-crc64nvme",
            ),
            (MultipartChecksum::Md5, Some(md5)) => {
                (crate::checksum::md5(&body) == md5, "Content-MD5")
            }
            (MultipartChecksum::Md5, None) => (false, "Content-MD5 (none was sent)"),
        };
        if !matches {
            return Err(StoreError::Transient(format!(
                "UploadPart {} part {number}: BadDigest: the part does not match its {header}",
                self.key
            )));
        }
        tokio::fs::write(part_path(&self.temp, number), &body)
            .await
            .map_err(|e| io_err("cannot write", &self.key, e))?;
        let md5 = part.md5.filter(|_| self.checksum == MultipartChecksum::Md5);
        self.parts
            .lock()
            .expect("not poisoned")
            .insert(number, (body.len() as u64, md5));
        // As S3 names a part: the MD5 of its bytes.
        Ok(Some(hex::encode(crate::checksum::md5(&body))))
    }

    async fn complete(self: Box<Self>, crc64nvme: &str) -> Result<PutResult, StoreError> {
        // Held in `self.meta` now; whatever Complete decides, the upload ends here.
        let _ = tokio::fs::remove_file(meta_file(&self.temp)).await;
        let parts = self.parts.lock().expect("not poisoned").clone();
        let numbers: Vec<i32> = parts.keys().copied().collect();
        if numbers.iter().zip(1..).any(|(n, want)| *n != want) {
            return self
                .refuse(format!("parts {numbers:?} are not 1 to N"))
                .await;
        }
        // R2: every part but the last the same size, the last no larger (InvalidPart,
        // error 10048, checked at Complete — r2/api/error-codes, objects/multipart-objects).
        let sizes: Vec<u64> = parts.values().map(|(size, _)| *size).collect();
        if let Some((first, rest)) = sizes.split_first() {
            let (last, middle) = rest
                .split_last()
                .map_or((None, &[][..]), |(l, m)| (Some(l), m));
            if middle.iter().any(|s| s != first) || last.is_some_and(|l| l > first) {
                return self
                    .refuse(format!(
                    "InvalidPart: All non-trailing parts must have the same size (sizes {sizes:?})"
                ))
                    .await;
            }
        }
        let mut hasher = Hasher::new();
        {
            let mut file = self.file.lock().await;
            for n in numbers {
                let path = part_path(&self.temp, n);
                let body = tokio::fs::read(&path)
                    .await
                    .map_err(|e| io_err("cannot read a part of", &self.key, e))?;
                hasher.update(&body);
                file.write_all(&body)
                    .await
                    .map_err(|e| io_err("cannot write", &self.key, e))?;
                let _ = tokio::fs::remove_file(&path).await;
            }
            file.sync_data()
                .await
                .map_err(|e| io_err("cannot write", &self.key, e))?;
        }
        let d = hasher.finish();
        // As R2 does: the assembled object must have the CRC64NVME the client computed.
        let assembled = crate::checksum::crc64nvme_b64(d.crc64nvme);
        let full_object = self.checksum == MultipartChecksum::Crc64nvme;
        if full_object && assembled != crc64nvme {
            let _ = tokio::fs::remove_file(&self.temp).await;
            return Err(StoreError::Object(format!(
                "CompleteMultipartUpload {}: BadDigest: the assembled object's CRC64NVME is {assembled}, not {crc64nvme}; the upload was aborted",
                self.key
            )));
        }
        // Checked by Content-MD5: the ETag S3 gives such an object, as the client expects.
        let etag = match full_object {
            true => hex::encode(&d.sha256[..16]),
            false => crate::checksum::multipart_etag(
                &parts
                    .values()
                    .filter_map(|(_, md5)| *md5)
                    .collect::<Vec<_>>(),
            ),
        };
        if let Err(e) = self
            .target
            .commit(
                &self.key,
                &self.temp,
                &self.meta,
                (Some(etag.clone()), &self.expect),
            )
            .await
        {
            let _ = tokio::fs::remove_file(&self.temp).await;
            return Err(e);
        }
        Ok(PutResult {
            etag: Some(etag),
            checksum_sha256: None,
            checksum_crc64nvme: full_object.then_some(assembled),
        })
    }

    async fn abort(self: Box<Self>) -> Result<(), StoreError> {
        remove_part_files(&self.temp).await;
        let _ = tokio::fs::remove_file(&self.temp).await;
        Ok(())
    }
}
