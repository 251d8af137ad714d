//! Part-level resume: a multipart upload a killed run left open is continued from the
//! last part of an unbroken run of recorded parts, when the upload is still open, lists
//! those parts as recorded, and the source object and part size are the ones it began
//! with. Otherwise it is aborted and the object copied from its start, and the record
//! says why.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use crate::checksum::{crc64nvme_b64, Hasher};
use crate::error::StoreError;
use crate::hash_state::HashState;
use crate::limits::part_size_for;
use crate::manifest::{Intent, PartLine};
use crate::object::MultipartChecksum;
use crate::source::ObjectInfo;
use crate::target::{ListedPart, Target};

use super::upload::{meta_for, PartReader, Parts, Uploaded, Uploader};

/// An upload an earlier run started and never saw through, with the parts it recorded.
#[derive(Debug, Clone)]
pub struct OpenUpload {
    pub upload_id: String,
    /// The part size it was cut into, and the source's version when it began (absent
    /// in manifests written before part lines: such an upload is not resumed).
    pub part_size: Option<u64>,
    pub source_version: Option<String>,
    /// The last line recorded for each part number.
    pub parts: BTreeMap<i32, PartLine>,
}

impl OpenUpload {
    /// The last upload a key's unfinished intents started, if any part of it was
    /// recorded as landed.
    pub fn of(intents: &[Intent], parts: &[PartLine]) -> Option<OpenUpload> {
        let started = intents.iter().rev().find(|i| i.upload_id.is_some())?;
        let id = started.upload_id.clone()?;
        let parts: BTreeMap<i32, PartLine> = parts
            .iter()
            .filter(|p| p.upload_id == id)
            .map(|p| (p.part, p.clone()))
            .collect();
        (!parts.is_empty()).then(|| OpenUpload {
            upload_id: id,
            part_size: started.part_size,
            source_version: started.source_version.clone(),
            parts,
        })
    }
}

/// The uploads earlier runs left open with recorded parts, by source key: (target key,
/// upload id).
pub fn candidates(
    unfinished: &HashMap<String, Vec<Intent>>,
    parts: &HashMap<String, Vec<PartLine>>,
) -> HashMap<String, (String, String)> {
    unfinished
        .iter()
        .filter_map(|(source_key, intents)| {
            let open = OpenUpload::of(intents, parts.get(source_key)?)?;
            let target_key = intents.last()?.target_key.clone();
            Some((source_key.clone(), (target_key, open.upload_id)))
        })
        .collect()
}

/// Where a resumed upload goes on from: the parts kept, and the whole object's digests
/// after them.
#[derive(Debug, Clone)]
pub struct ResumePoint {
    pub kept: Vec<ListedPart>,
    pub state: HashState,
}

impl ResumePoint {
    /// The first part to send.
    pub fn next_part(&self) -> i32 {
        self.kept.len() as i32 + 1
    }
}

/// Whether the upload can be continued, and from where; `Err(why)` when the object is
/// to be copied from its start.
pub async fn resume_point(
    target: &dyn Target,
    key: &str,
    open: &OpenUpload,
    (obj, part_size): (&ObjectInfo, u64),
) -> Result<Result<ResumePoint, String>, StoreError> {
    if open.part_size != Some(part_size) {
        return Ok(Err(match open.part_size {
            Some(then) => format!("it was cut into parts of {then} bytes, now {part_size}"),
            None => "it was started by an r2migrate that recorded no part size".into(),
        }));
    }
    if obj.version.is_none() || open.source_version != obj.version {
        return Ok(Err(
            "the source object changed since the upload began".into()
        ));
    }
    let listed = match target.list_parts(key, &open.upload_id).await {
        Ok(Some(listed)) => listed,
        Ok(None) => {
            return Ok(Err(
                "the upload is no longer open (expired, or aborted by someone else)".into(),
            ))
        }
        Err(e) if e.is_fatal() => return Err(e),
        Err(e) => return Ok(Err(format!("its parts could not be listed ({e})"))),
    };
    let by_number: HashMap<i32, &ListedPart> = listed.iter().map(|p| (p.number, p)).collect();
    for (n, rec) in &open.parts {
        let Some(got) = by_number.get(n) else {
            return Ok(Err(format!(
                "part {n} was recorded but the upload no longer lists it"
            )));
        };
        if !same_part(rec, got) {
            return Ok(Err(format!(
                "part {n} the upload lists is not the one recorded (size {} and ETag {:?}, recorded {} and {:?})",
                got.size, got.etag, rec.size, rec.etag
            )));
        }
    }
    // Only an unbroken run of parts from 1 carries the digests on; the last part is
    // always sent again, so there is something to read and Complete follows a part.
    let parts = crate::limits::parts_for(obj.size, part_size) as i32;
    let mut kept = Vec::new();
    let mut state: Option<HashState> = None;
    // A composite's finished source-part digests, each line holding those its part
    // finished.
    let mut finished = Vec::new();
    for n in 1..parts {
        let (Some(rec), Some(got)) = (open.parts.get(&n), by_number.get(&n)) else {
            break;
        };
        match &rec.state {
            Some(s) if s.len == n as u64 * part_size && rec.size == part_size => {
                if let Some(c) = &s.composite {
                    match crate::checksum::from_b64(&c.finished) {
                        Some(d) => finished.extend_from_slice(&d),
                        None => break,
                    }
                }
                state = Some(s.clone());
                kept.push((*got).clone());
            }
            _ => break,
        }
    }
    match state {
        Some(mut state) => {
            if let Some(c) = state.composite.as_mut() {
                c.finished = crate::checksum::b64(&finished);
            }
            Ok(Ok(ResumePoint { kept, state }))
        }
        None => Ok(Err("part 1 was not recorded as landed".into())),
    }
}

/// A recorded part and the one listed are the same bytes: size, and ETag and checksum
/// where both say them.
fn same_part(rec: &PartLine, got: &ListedPart) -> bool {
    let agree = |a: &Option<String>, b: &Option<String>| match (a, b) {
        (Some(a), Some(b)) => a.trim_matches('"') == b.trim_matches('"'),
        _ => true,
    };
    rec.size == got.size && agree(&rec.etag, &got.etag) && agree(&rec.crc64nvme, &got.crc64nvme)
}

/// The uploads earlier runs left open with recorded parts, which this run may go on
/// with: not aborted as the run opens; each one taken (resumed or aborted) as its
/// object is copied, and those never taken aborted as the run ends.
#[derive(Default)]
pub struct Resumable {
    open: Mutex<HashMap<String, (String, String)>>,
}

impl Resumable {
    /// Upload ids by source key → (target key, upload id).
    pub fn new(candidates: HashMap<String, (String, String)>) -> Resumable {
        Resumable {
            open: Mutex::new(candidates),
        }
    }

    pub fn ids(&self) -> HashSet<String> {
        let open = self.open.lock().expect("not poisoned");
        open.values().map(|(_, id)| id.clone()).collect()
    }

    /// Takes the upload of this source key, if it is still to be resumed or aborted.
    pub fn take(&self, source_key: &str) -> bool {
        self.open
            .lock()
            .expect("not poisoned")
            .remove(source_key)
            .is_some()
    }

    /// Aborts every upload no object took (its object was not copied this run).
    pub async fn abort_untaken(&self, target: &dyn Target) -> usize {
        let left: Vec<(String, String)> = self
            .open
            .lock()
            .expect("not poisoned")
            .drain()
            .map(|(_, v)| v)
            .collect();
        let mut aborted = 0;
        for (key, id) in left {
            match target.abort_upload(&key, &id).await {
                Ok(()) => aborted += 1,
                Err(e) => tracing::warn!(
                    "{key}: could not abort upload {id} an interrupted run left ({e}); R2 drops it after its lifecycle rule (7 days by default)"
                ),
            }
        }
        aborted
    }
}

/// An upload an earlier run left, taken up by the uploader.
impl Uploader<'_> {
    /// Where the upload an earlier run left can be continued from, with the object as a
    /// whole read would state it and the digests to go on with; `Err(why)` to copy the
    /// object from its start.
    pub(super) async fn resume_point(
        &self,
        obj: &ObjectInfo,
        key: &str,
        open: &OpenUpload,
    ) -> Result<Result<(ResumePoint, ObjectInfo, Hasher), String>, StoreError> {
        if !self.resume.0 {
            return Ok(Err("--no-resume-uploads".into()));
        }
        if obj.size < self.settings.multipart_threshold {
            return Ok(Err("it is now below the multipart threshold".into()));
        }
        if self.settings.multipart_checksum != MultipartChecksum::Crc64nvme {
            return Ok(Err("uploads proven by Content-MD5 are not resumed".into()));
        }
        let part_size = part_size_for(obj.size, self.settings.part_size);
        let point = match resume_point(self.target, key, open, (obj, part_size)).await? {
            Ok(point) => point,
            Err(why) => return Ok(Err(why)),
        };
        // What the first run's whole read learnt (S3: checksums and the part layout),
        // so the bytes before the resume point stay checked with the rest.
        let mut whole = obj.clone();
        whole.digests = self.source.stated(obj).await?;
        match Hasher::resumed(&whole.digests.hasher(false), &point.state) {
            Some(hasher) => Ok(Ok((point, whole, hasher))),
            None => Ok(Err(
                "the recorded digests are not the ones this source is checked with".into(),
            )),
        }
    }

    /// Goes on with an upload an earlier run left: reads the source from the first part
    /// not kept (a ranged read of the version listed), sends the rest and completes.
    pub(super) async fn resumed(
        &self,
        (obj, key): (&ObjectInfo, &str),
        open: &OpenUpload,
        point: ResumePoint,
        hasher: Hasher,
    ) -> Result<Uploaded, StoreError> {
        let part_size = part_size_for(obj.size, self.settings.part_size);
        let from = point.state.len;
        let memory = self.memory.reserve(part_size).await;
        let ready = async {
            let opened = self.source.open(obj, Some(from..obj.size)).await?;
            let mut reader = PartReader::new(opened.body);
            let first = reader.read(part_size).await?.freeze();
            let upload = self
                .target
                .resume_multipart(key, &open.upload_id, &self.expect, &point.kept)
                .await?;
            Ok::<_, StoreError>((reader, first, upload))
        };
        // This object's record ends the upload's story in the manifest: whatever fails
        // before its parts go, the upload is aborted, not left for R2 to keep.
        let (reader, first, upload) = match ready.await {
            Ok(ready) => ready,
            Err(e) => {
                self.abort_left(key, open).await;
                return Err(e);
            }
        };
        let parts = Parts {
            reader,
            part_size,
            memory,
            hasher,
        };
        let meta = meta_for(obj, &[], self.settings);
        let total = crate::limits::parts_for(obj.size, part_size);
        let next = point.next_part();
        let mut up = self
            .send_and_complete(obj, upload, (first, next), parts, meta.content_type)
            .await?;
        up.resume = Some(format!("resumed from part {next} of {total}"));
        Ok(up)
    }

    /// Aborts the upload an earlier run left (an id no longer open is no error).
    pub(super) async fn abort_left(&self, key: &str, open: &OpenUpload) {
        if let Err(e) = self.target.abort_upload(key, &open.upload_id).await {
            tracing::warn!(
                "{key}: could not abort upload {} an interrupted run left ({e}); R2 drops it after its lifecycle rule (7 days by default)",
                open.upload_id
            );
        }
    }

    /// A part landed: its line reaches the manifest before the part counts as sent.
    pub(super) async fn record_part(
        &self,
        upload_id: &str,
        (number, size): (i32, u64),
        etag: Option<String>,
        crc64nvme: u64,
        state: Option<HashState>,
    ) -> Result<(), StoreError> {
        let (log, template) = &self.announce;
        let md5_scheme = self.settings.multipart_checksum == MultipartChecksum::Md5;
        log.record_part(PartLine {
            kind: "part".into(),
            source_key: template.source_key.clone(),
            target_key: template.target_key.clone(),
            upload_id: upload_id.to_string(),
            part: number,
            size,
            etag,
            crc64nvme: (!md5_scheme).then(|| crc64nvme_b64(crc64nvme)),
            state,
            run_id: template.run_id.clone(),
            at: crate::manifest::now_rfc3339(),
        })
        .await?;
        crate::testhooks::after_part_recorded();
        Ok(())
    }
}
