//! Streams one object from the source to the target: SHA-256 (and MD5/CRC32C where the
//! source states them) computed while reading, a single PUT with that SHA-256 below the
//! multipart threshold, equal-sized parts above it, each with its own CRC64NVME and the
//! whole object's CRC64NVME on Complete (one scheme per upload: CRC64NVME, FULL_OBJECT).
//! Memory is taken from
//! a shared budget of concurrency × part size, so it stays flat whatever the object count
//! or size. A source digest mismatch or an interruption aborts the upload: nothing is
//! left in the target.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::checksum::{b64, crc64nvme_b64, Digests, Hasher};
use crate::error::StoreError;
use crate::limits::{part_size_for, MAX_METADATA_BYTES, MAX_OBJECT};
use crate::manifest::Intent;
use crate::object::{Body, ByteStream, MultipartChecksum, ObjectMeta, Part};
use crate::source::{ObjectInfo, Source};
use crate::target::{MultipartUpload, Target};

pub use super::part_reader::PartReader;

use super::resume::OpenUpload;

/// Bytes that may sit in upload buffers at once, across all workers.
pub struct MemoryBudget {
    permits: Arc<Semaphore>,
    total_kib: u32,
}

impl MemoryBudget {
    pub fn new(bytes: u64) -> MemoryBudget {
        let total_kib = u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        MemoryBudget {
            permits: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// Waits until `bytes` of buffer may be held; released when the permit drops.
    pub async fn reserve(&self, bytes: u64) -> OwnedSemaphorePermit {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_kib);
        self.permits
            .clone()
            .acquire_many_owned(kib)
            .await
            .expect("the budget is never closed")
    }
}

pub struct UploadSettings {
    pub part_size: u64,
    pub multipart_threshold: u64,
    /// `--header-upload` and `[[target.headers]]`, over what the source carried.
    pub headers: crate::headers::HeaderRules,
    pub storage_class: Option<crate::headers::StorageClass>,
    /// Parts of one object in flight at once (all within the shared memory budget).
    pub parts_at_once: usize,
    /// How multipart uploads prove their bytes (`--multipart-checksum`).
    pub multipart_checksum: MultipartChecksum,
}

/// What an upload proved.
#[derive(Debug, Clone)]
pub struct Uploaded {
    pub digests: Digests,
    pub etag: Option<String>,
    /// A single PUT: the SHA-256 sent with it, which the target should report (base64).
    /// A multipart upload sends none (its checksum is `crc64nvme`).
    pub checksum: Option<String>,
    /// The SHA-256 the target's own response stated for what it stored, if it did.
    pub echoed: Option<String>,
    /// Multipart: the whole object's CRC64NVME (base64) sent with Complete, and what
    /// the target's response stated for it.
    pub crc64nvme: Option<String>,
    pub echoed_crc64nvme: Option<String>,
    pub content_type: Option<String>,
    /// What the source stated about the bytes (listing, or the read's response).
    pub source: crate::object::SourceDigests,
    /// A multipart upload an earlier run left: "resumed from part N of M", or why it was
    /// started over.
    pub resume: Option<String>,
}

/// Checks the bytes read against what the source stated and the size it listed.
pub fn check_source_digests(obj: &ObjectInfo, d: &Digests) -> Result<(), StoreError> {
    let mismatch = |what: &str| {
        StoreError::Digest(format!(
            "{}: source bytes did not match the source's digest ({what}); the object was not uploaded — re-run to retry, and check the source if it repeats",
            obj.key
        ))
    };
    if d.len != obj.size {
        return Err(StoreError::Object(format!(
            "{}: the source listed {} bytes but {} were read; it changed while copying — re-run to copy the new version",
            obj.key, obj.size, d.len
        )));
    }
    if let (Some(want), Some(got)) = (obj.digests.md5, d.md5) {
        if want != got {
            return Err(mismatch("MD5"));
        }
    }
    if let (Some(want), Some(got)) = (obj.digests.crc32c, d.crc32c) {
        if want != got {
            return Err(mismatch("CRC32C"));
        }
    }
    if let Some(want) = obj.digests.sha256 {
        if want != d.sha256 {
            return Err(mismatch("SHA-256"));
        }
    }
    if let Some(want) = obj.digests.crc64nvme {
        if want != d.crc64nvme {
            return Err(mismatch("CRC64NVME"));
        }
    }
    if let (Some(want), Some(got)) = (obj.digests.crc32, d.crc32) {
        if want != got {
            return Err(mismatch("CRC32"));
        }
    }
    if let (Some(c), Some(got)) = (&obj.digests.composite, &d.composite) {
        if c.stated != *got {
            return Err(mismatch(&format!(
                "{} of its {} parts",
                c.algorithm.name(),
                c.part_sizes.len()
            )));
        }
    }
    Ok(())
}

/// R2 stores at most 8 KiB of metadata per object.
fn check_metadata(obj: &ObjectInfo) -> Result<(), StoreError> {
    let bytes = obj.meta.header_bytes();
    if bytes > MAX_METADATA_BYTES {
        return Err(StoreError::Object(format!(
            "{}: its metadata is {bytes} bytes; R2 stores at most 8 KiB per object — trim its custom metadata at the source",
            obj.key
        )));
    }
    Ok(())
}

/// The metadata to send: the source's, with a Content-Type from magic bytes when the
/// source gave none.
pub(super) fn meta_for(
    obj: &ObjectInfo,
    first_bytes: &[u8],
    settings: &UploadSettings,
) -> ObjectMeta {
    let mut meta = obj.meta.clone();
    if meta.content_type.is_none() {
        meta.content_type = infer::get(first_bytes).map(|t| t.mime_type().to_string());
    }
    settings.headers.apply(&obj.key, &mut meta);
    meta.storage_class = settings.storage_class.map(|c| c.as_str().to_string());
    meta
}

/// A multipart upload's reading side: the stream cut into parts, the memory the part
/// in hand holds, and the whole object's hash so far.
pub(super) struct Parts {
    pub(super) reader: PartReader,
    pub(super) part_size: u64,
    pub(super) memory: OwnedSemaphorePermit,
    pub(super) hasher: Hasher,
}

pub struct Uploader<'a> {
    pub source: &'a dyn Source,
    pub target: &'a dyn Target,
    pub memory: &'a MemoryBudget,
    pub settings: &'a UploadSettings,
    pub cancel: &'a CancellationToken,
    /// Where to announce the write, and the intent to fill in with what is written.
    pub announce: (&'a super::intent::IntentLog, Intent),
    pub in_flight: &'a super::inflight::InFlight,
    /// What the key must hold for the write to land (R2's conditional writes).
    pub expect: crate::object::Expect,
    /// Part-level resume: whether parts are recorded as they land, and the upload an
    /// earlier run of this object left open, to go on with.
    pub resume: (bool, Option<&'a OpenUpload>),
}

impl Uploader<'_> {
    /// Records, before the object can appear in the target, the bytes about to land.
    async fn announce(&self, digests: &Digests, sent: Sent<'_>) -> Result<(), StoreError> {
        let (log, template) = &self.announce;
        let mut intent = template.clone();
        intent.size = Some(digests.len);
        intent.sha256 = Some(hex::encode(digests.sha256));
        match sent {
            Sent::Sha256(c) => intent.checksum = Some(c.to_string()),
            Sent::Crc64nvme(c) => intent.crc64nvme = Some(c.to_string()),
        }
        intent.at = crate::manifest::now_rfc3339();
        log.record(intent).await
    }

    pub async fn upload(&self, obj: &ObjectInfo, key: &str) -> Result<Uploaded, StoreError> {
        if obj.size > MAX_OBJECT {
            return Err(StoreError::Object(format!(
                "{}: {} bytes is larger than R2's largest object (about 4.995 TiB); split it or leave it out with --max-size",
                obj.key, obj.size
            )));
        }
        let mut started_over = None;
        if let Some(open) = self.resume.1 {
            match self.resume_point(obj, key, open).await {
                Ok(Ok((point, whole, hasher))) => {
                    return self.resumed((&whole, key), open, point, hasher).await
                }
                Ok(Err(why)) => {
                    tracing::info!("{key}: copying it from its start: {why}");
                    self.abort_left(key, open).await;
                    started_over = Some(format!("started over: {why}"));
                }
                Err(e) => {
                    self.abort_left(key, open).await;
                    return Err(e);
                }
            }
        }
        let opened = self.source.open(obj, None).await?;
        let obj = obj.updated_by(&opened);
        check_metadata(&obj)?;
        let hasher = obj.digests.hasher(false);
        let mut up = if obj.size < self.settings.multipart_threshold {
            self.single(&obj, key, opened.body, hasher).await
        } else {
            self.multipart(&obj, key, opened.body, hasher).await
        }?;
        up.resume = started_over;
        Ok(up)
    }

    async fn single(
        &self,
        obj: &ObjectInfo,
        key: &str,
        stream: ByteStream,
        mut hasher: Hasher,
    ) -> Result<Uploaded, StoreError> {
        let _memory = self.memory.reserve(obj.size).await;
        // One byte more than listed, to notice a source that grew while we read it.
        let body = PartReader::new(stream).read(obj.size + 1).await?.freeze();
        hasher.update(&body);
        let digests = hasher.finish();
        check_source_digests(obj, &digests)?;
        let meta = meta_for(obj, &body[..body.len().min(512)], self.settings);
        let checksum = b64(&digests.sha256);
        self.announce(&digests, Sent::Sha256(&checksum)).await?;
        let body = Body {
            bytes: body,
            sha256: digests.sha256,
        };
        let put = self.target.put_if(key, body, &meta, &self.expect).await?;
        Ok(Uploaded {
            checksum: Some(checksum),
            echoed: put.checksum_sha256,
            crc64nvme: None,
            echoed_crc64nvme: None,
            digests,
            etag: put.etag,
            content_type: meta.content_type,
            source: obj.digests.clone(),
            resume: None,
        })
    }

    async fn multipart(
        &self,
        obj: &ObjectInfo,
        key: &str,
        stream: ByteStream,
        hasher: Hasher,
    ) -> Result<Uploaded, StoreError> {
        let part_size = part_size_for(obj.size, self.settings.part_size);
        let mut reader = PartReader::new(stream);
        let memory = self.memory.reserve(part_size).await;
        let first = reader.read(part_size).await?.freeze();
        let meta = meta_for(obj, &first[..first.len().min(512)], self.settings);
        let scheme = self.settings.multipart_checksum;
        let upload = self
            .target
            .start_multipart_if(key, &meta, scheme, &self.expect)
            .await?;
        // Its id reaches the manifest before any part is sent: a kill -9 from here on
        // leaves an upload the next run can find and abort.
        let (log, template) = &self.announce;
        let mut started = template.clone();
        started.upload_id = Some(upload.id());
        started.part_size = Some(part_size);
        started.source_version = obj.version.clone();
        started.at = crate::manifest::now_rfc3339();
        if let Err(e) = log.record(started).await {
            let _ = upload.abort().await;
            return Err(e);
        }
        let parts = Parts {
            reader,
            part_size,
            memory,
            hasher,
        };
        self.send_and_complete(obj, upload, (first, 1), parts, meta.content_type)
            .await
    }

    /// Sends the parts from `first` (part number `number`) on, then announces the write
    /// and completes the upload; any failure before Complete aborts it.
    pub(super) async fn send_and_complete(
        &self,
        obj: &ObjectInfo,
        upload: Box<dyn MultipartUpload>,
        first: (Bytes, i32),
        parts: Parts,
        content_type: Option<String>,
    ) -> Result<Uploaded, StoreError> {
        // Whatever stops the parts, no part is left behind in the target.
        let digests = match self.send_parts(obj, upload.as_ref(), first, parts).await {
            Ok(sent) => sent,
            Err(e) => {
                let _ = upload.abort().await;
                return Err(e);
            }
        };
        let crc64nvme = crc64nvme_b64(digests.crc64nvme);
        if let Err(e) = self.announce(&digests, Sent::Crc64nvme(&crc64nvme)).await {
            let _ = upload.abort().await;
            return Err(e);
        }
        let done = upload.complete(&crc64nvme).await?;
        Ok(Uploaded {
            checksum: None,
            echoed: done.checksum_sha256,
            crc64nvme: Some(crc64nvme),
            echoed_crc64nvme: done.checksum_crc64nvme,
            digests,
            etag: done.etag,
            content_type,
            source: obj.digests.clone(),
            resume: None,
        })
    }

    /// Sends every part (equal sizes but the last), up to `parts_at_once` at the same
    /// time, each holding its share of the memory budget until it is sent and hashed.
    /// Then checks the whole object's digests; the caller announces the write and
    /// completes or aborts the upload (a part still in flight when this returns an error
    /// is dropped first).
    ///
    /// No hash runs on the task that reads: one blocking task per part computes that
    /// part's CRC64NVME (sent with it), and the whole object's digests (MD5, SHA-256,
    /// CRC64NVME) go on part by part, in order, in a blocking task of their own while
    /// the next part is read. One object's hashing alone would otherwise cap it at the
    /// speed of one core running every hash in turn (~200 MiB/s here).
    async fn send_parts(
        &self,
        obj: &ObjectInfo,
        upload: &dyn MultipartUpload,
        (mut part, mut number): (Bytes, i32),
        p: Parts,
    ) -> Result<Digests, StoreError> {
        let Parts {
            mut reader,
            part_size,
            mut memory,
            hasher,
        } = p;
        let upload_id = upload.id();
        let upload_id = upload_id.as_str();
        let tracked = self.in_flight.start(
            &obj.key,
            obj.size,
            crate::limits::parts_for(obj.size, part_size),
        );
        let tracked = &tracked;
        let mut sending = futures::stream::FuturesUnordered::new();
        let at_once = self.settings.parts_at_once.max(1);
        let scheme = self.settings.multipart_checksum;
        // The whole object's hash so far, as the task that will hand it back.
        let mut hashing = tokio::task::spawn_blocking(move || hasher);
        loop {
            // The part's memory returns to the budget once it is sent and hashed.
            let held = Arc::new(memory);
            let previous = joined(obj, hashing);
            let mut whole = self
                .sending_meanwhile(obj, &mut sending, previous)
                .await??;
            let (bytes, hold) = (part.clone(), held.clone());
            // The digests after this part, for its part line (resume goes on from them).
            let (state_tx, state_rx) = tokio::sync::oneshot::channel();
            let recording = self.resume.0;
            hashing = tokio::task::spawn_blocking(move || {
                let since = whole.composite_len();
                whole.update(&bytes);
                if recording {
                    let _ = state_tx.send(whole.state(since));
                }
                drop(hold);
                whole
            });
            let last = (part.len() as u64) < part_size;
            let len = part.len() as u64;
            sending.push(async move {
                let hashed = tokio::task::spawn_blocking(move || Part::of(part, scheme));
                let part = joined(obj, hashed).await?;
                let crc64nvme = part.crc64nvme;
                let result = upload.upload_part(number, part).await;
                drop(held);
                let etag = result?;
                tracked.part_sent(len);
                if recording {
                    let state = state_rx.await.ok();
                    self.record_part(upload_id, (number, len), etag, crc64nvme, state)
                        .await?;
                }
                Ok(())
            });
            while sending.len() >= at_once {
                self.part_done(obj, &mut sending).await?;
            }
            if last {
                break;
            }
            let reserve = self.memory.reserve(part_size);
            memory = self.sending_meanwhile(obj, &mut sending, reserve).await?;
            let next = self
                .sending_meanwhile(obj, &mut sending, reader.read(part_size))
                .await??;
            if next.is_empty() {
                break;
            }
            part = next.freeze();
            number += 1;
        }
        while !sending.is_empty() {
            self.part_done(obj, &mut sending).await?;
        }
        let mut whole = joined(obj, hashing).await?;
        // Drain anything past the listed size, so a grown source is noticed.
        let extra = reader.read(1).await?;
        whole.update(&extra);
        let digests = whole.finish();
        check_source_digests(obj, &digests)?;
        Ok(digests)
    }

    /// Waits for one part in flight to finish, or for the run to be interrupted.
    async fn part_done<S>(&self, obj: &ObjectInfo, sending: &mut S) -> Result<(), StoreError>
    where
        S: futures::Stream<Item = Result<(), StoreError>> + Unpin,
    {
        tokio::select! {
            r = sending.next() => r.unwrap_or(Ok(())),
            _ = self.cancel.cancelled() => Err(interrupted(obj)),
        }
    }

    /// Runs `work` (waiting for memory, reading the next part) while the parts in
    /// flight keep moving; the first part that fails ends it.
    async fn sending_meanwhile<T, S>(
        &self,
        obj: &ObjectInfo,
        sending: &mut S,
        work: impl std::future::Future<Output = T>,
    ) -> Result<T, StoreError>
    where
        S: futures::Stream<Item = Result<(), StoreError>> + Unpin + futures::stream::FusedStream,
    {
        tokio::pin!(work);
        loop {
            tokio::select! {
                v = &mut work => return Ok(v),
                Some(r) = sending.next(), if !sending.is_terminated() => r?,
                _ = self.cancel.cancelled() => return Err(interrupted(obj)),
            }
        }
    }
}

/// The checksum a write carries, as announced before it: a single PUT's SHA-256, or a
/// multipart upload's full-object CRC64NVME (both base64).
enum Sent<'a> {
    Sha256(&'a str),
    Crc64nvme(&'a str),
}

/// The result of a hashing task; a panic there fails the object, not the run.
async fn joined<T>(obj: &ObjectInfo, task: tokio::task::JoinHandle<T>) -> Result<T, StoreError> {
    task.await.map_err(|e| {
        StoreError::Object(format!(
            "{}: hashing stopped ({e}); re-run to copy it again",
            obj.key
        ))
    })
}

fn interrupted(obj: &ObjectInfo) -> StoreError {
    StoreError::Object(format!(
        "{}: interrupted; the multipart upload was aborted",
        obj.key
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_budget_blocks_until_released() {
        let budget = MemoryBudget::new(2048);
        let first = budget.reserve(2048).await;
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(50), budget.reserve(1024)).await;
        assert!(
            waiting.is_err(),
            "a full budget must make the next reservation wait"
        );
        drop(first);
        let _second = budget.reserve(4096).await; // larger than the budget: capped, not stuck
    }
}
