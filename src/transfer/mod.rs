//! One object, start to finish: look at what the target holds at its key, decide
//! identical / conflict / copy, back up before an overwrite, upload (see [`upload`]),
//! then ask the target (HEAD) for size and checksum and require them to match. The
//! outcome is always a manifest record; only a fatal error (credentials, bucket) is `Err`.

pub mod inflight;
pub mod intent;
pub mod part_reader;
pub mod repeats;
pub mod resume;
pub mod upload;
pub mod verdict;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::checksum::{b64, etag_md5, Digests, Hasher};
use crate::config::OnConflict;
use crate::error::StoreError;
use crate::manifest::{Intent, ObjectRecord, Prior, Status, VerifiedBy};
use crate::object::Expect;
use crate::source::{ObjectInfo, Source};
use crate::target::{Target, TargetObject};
use intent::{written_under, IntentLog};
use upload::{MemoryBudget, UploadSettings, Uploaded, Uploader};
pub use verdict::{checksum_matches, checksum_proves, holds_what_we_wrote};
use verdict::{Verdict, Wrote};

/// One object to handle, as the selection stage hands it over.
#[derive(Debug, Clone)]
pub struct WorkItem {
    pub info: ObjectInfo,
    pub target_key: String,
    /// Whether the target listing showed an object at this key.
    pub listed: bool,
    /// What an earlier run of this manifest wrote at this key, if anything.
    pub previous: Option<ObjectRecord>,
    /// Writes announced by earlier runs whose outcome was never recorded (a crash).
    pub unfinished: Vec<Intent>,
    /// The multipart upload such a write left open, with its recorded parts.
    pub open_upload: Option<resume::OpenUpload>,
}

pub struct Copier {
    pub source: Arc<dyn Source>,
    pub target: Arc<dyn Target>,
    pub memory: MemoryBudget,
    pub settings: UploadSettings,
    pub cancel: CancellationToken,
    pub on_conflict: OnConflict,
    pub backup_prefix: String,
    pub run_id: String,
    /// Every write is announced here first (see [`intent`]).
    pub intents: IntentLog,
    /// The source's pacer: its rule decides when a whole object goes again.
    pub pacer: Arc<crate::pacer::Pacer>,
    /// Multipart uploads in flight, part by part, for the progress display.
    pub in_flight: inflight::InFlight,
    /// Refusals of the same request in a row (see [`repeats`]).
    pub repeats: repeats::Repeats,
    /// Part-level resume (off with `--no-resume-uploads`), and the uploads earlier runs
    /// left open that this run may go on with.
    pub resume_uploads: bool,
    pub resumable: resume::Resumable,
}

/// Why a run must stop, and the record of the object that showed it, if that object
/// is to be recorded (it failed like the ones before it).
#[derive(Debug)]
pub struct Stop {
    pub error: StoreError,
    pub record: Option<ObjectRecord>,
}

/// What a write at a key must carry: the backup it made (or an earlier run made) of what
/// the key held, and that original "before", for the intent rollback reads.
struct WritePlan {
    backup_key: Option<String>,
    prior: Option<Prior>,
    /// What the key held when looked at: the write lands only if it still does.
    expect: Expect,
}

/// How many times a write whose key someone else wrote meanwhile is looked at again.
const RACES: usize = 3;

/// Why an object is a conflict after a conditional write found its key changed.
const RACED: &str = crate::manifest::WRITTEN_BY_OTHERS;

/// Whether the target already holds the source's bytes.
pub enum Comparison {
    Identical(Digests),
    Different(String),
}

/// Compares a source object with what the target holds, reading the source once (and
/// the target only when it states no digest we can use).
pub async fn compare(
    source: &dyn Source,
    target: &dyn Target,
    obj: &ObjectInfo,
    existing: &TargetObject,
) -> Result<Comparison, StoreError> {
    if existing.size != obj.size {
        return Ok(Comparison::Different(format!(
            "the target holds {} bytes at this key, the source {}",
            existing.size, obj.size
        )));
    }
    let whole_sha = existing
        .checksum_sha256
        .as_deref()
        .filter(|c| !c.contains('-'));
    let target_md5 = existing.etag.as_deref().and_then(etag_md5);
    let opened = source.open(obj, None).await?;
    let obj = &obj.updated_by(&opened);
    let hasher = obj
        .digests
        .hasher(whole_sha.is_none() && target_md5.is_some());
    let digests = crate::object::digest(opened.body, hasher).await?;
    upload::check_source_digests(obj, &digests)?;
    let same = if let Some(sha) = whole_sha {
        sha == b64(&digests.sha256)
    } else if let (Some(want), Some(got)) = (target_md5, digests.md5) {
        want == got
    } else {
        // No usable digest on the target (a multipart object of another tool): read it.
        let body = target.get(&existing.key).await?;
        crate::object::digest(body, Hasher::new()).await?.sha256 == digests.sha256
    };
    Ok(if same {
        Comparison::Identical(digests)
    } else {
        Comparison::Different("the target holds different bytes at this key".into())
    })
}

/// What a write must find at its key: nothing where the key was absent, else the object
/// looked at (by its ETag; unconditional where the target states none).
fn expected(existing: Option<&TargetObject>) -> Expect {
    match existing {
        None => Expect::Absent,
        Some(o) => o.etag.clone().map_or(Expect::Anything, Expect::Etag),
    }
}

/// Whether this tool wrote the object now at the key: the record says it copied it
/// there (an `identical` object was there before — never ours to replace or delete) and
/// the object is still exactly those bytes.
pub fn is_ours(obj: &TargetObject, rec: &ObjectRecord) -> bool {
    rec.status == Status::Copied && holds_what_we_wrote(obj, rec)
}

impl Copier {
    /// A record of this object with what the listing said; the caller sets the outcome.
    pub fn record(&self, item: &WorkItem, status: Status) -> ObjectRecord {
        let mut r = ObjectRecord::new(&item.info.key, &item.target_key, item.info.size, status);
        r.run_id = Some(self.run_id.clone());
        r.source_etag = item.info.digests.etag.clone();
        r.source_md5 = item.info.digests.md5.map(hex::encode);
        r.source_crc32c = item
            .info
            .digests
            .crc32c
            .map(|c| hex::encode(c.to_be_bytes()));
        r.content_type = item.info.meta.content_type.clone();
        r.source_version = item.info.version.clone();
        r.declared_content_type = item.info.declared_content_type.clone();
        r.row = item
            .info
            .row
            .as_ref()
            .map(crate::source::sqlite::RowRecord::from);
        r
    }

    fn intent(&self, item: &WorkItem, prior: Option<Prior>) -> Intent {
        let mut i = Intent::new(&item.info.key, &item.target_key, prior);
        i.run_id = Some(self.run_id.clone());
        i
    }

    fn failed(&self, item: &WorkItem, err: &StoreError) -> ObjectRecord {
        let mut why = err.to_string();
        if err.is_retryable() {
            // The retries are spent: say so, and what to do next.
            why.push_str("; still failing after the retries (--retries): re-run to try again");
        }
        if let StoreError::Rejected(r) = err {
            if !r.sent.is_empty() {
                why.push_str(&format!("; it sent {}", r.sent));
            }
        }
        self.record(item, Status::Failed).with_error(why)
    }

    /// Handles one object; `Err` only for errors that must stop the whole run. A body cut
    /// mid-stream sends the whole object again, by the pacer's rule.
    pub async fn process(&self, item: WorkItem) -> Result<ObjectRecord, Stop> {
        let outcome = self
            .pacer
            .again_whole(|| self.cancel.is_cancelled(), || self.process_inner(&item))
            .await;
        let stop = |error| Stop {
            error,
            record: None,
        };
        match outcome {
            Ok(r) => Ok(r),
            Err(e) if e.is_fatal() => Err(stop(e)),
            Err(StoreError::Rejected(r)) => {
                let failed = self.failed(&item, &StoreError::Rejected(r.clone()));
                match self.repeats.rejected(&item.info.key, &r) {
                    // This object failed like the ones before it: recorded, then the stop.
                    Some(error) => Err(Stop {
                        error,
                        record: Some(failed),
                    }),
                    None => Ok(failed),
                }
            }
            Err(StoreError::Refused(m)) => match self.credentials_still_accepted().await {
                Ok(()) => Ok(self.failed(&item, &StoreError::Refused(m))),
                Err(lost) => Err(stop(StoreError::Fatal(format!(
                    "{m}; then {lost}. These credentials were accepted when the run began, so \
                     they were probably revoked or rotated: no new object was started and \
                     everything finished is recorded. Fix the credentials and run the same \
                     command again to resume"
                )))),
            },
            Err(e) => Ok(self.failed(&item, &e)),
        }
    }

    /// The second look after a refusal: the checks the run began with, on both sides.
    /// They pass when one object is off limits; they fail when the credentials are gone.
    async fn credentials_still_accepted(&self) -> Result<(), StoreError> {
        self.target.check_access().await?;
        self.source.check_access().await
    }

    async fn process_inner(&self, item: &WorkItem) -> Result<ObjectRecord, StoreError> {
        crate::testhooks::before_copy(&item.info.key);
        let key = &item.target_key;
        let mut existing = if item.listed {
            self.target.head(key).await?
        } else {
            None
        };
        // What the key held before this tool first wrote there, for the intent.
        let prior = existing.as_ref().map(Prior::of);
        let mut raced = None;
        for _ in 0..=RACES {
            let mut plan = WritePlan {
                backup_key: item
                    .previous
                    .as_ref()
                    .and_then(|p| p.backup_key.clone())
                    .or_else(|| item.unfinished.iter().find_map(|i| i.backup_key.clone())),
                prior: prior.clone(),
                expect: expected(existing.as_ref()),
            };
            if let Some(found) = &existing {
                if let Some(settled) = self
                    .settle_existing(item, found, &mut plan, raced.as_deref())
                    .await?
                {
                    return Ok(settled);
                }
            }
            match self.copy(item, plan).await {
                Err(StoreError::Changed(why)) => {
                    // Someone else wrote the key since it was looked at: look again, and
                    // class what is there now as any object found at the key.
                    tracing::info!("{key}: {why}; looking again");
                    raced = Some(why);
                    existing = self.target.head(key).await?;
                }
                other => return other,
            }
        }
        Err(StoreError::Object(format!(
            "{key}: {RACED} again and again ({} times); left to the application — run again later",
            RACES + 1
        )))
    }

    /// The key already holds an object: identical (recorded, nothing written), a
    /// conflict (recorded per `--on-conflict`), or to be replaced (`None`; backed up
    /// first unless it is our own earlier copy).
    async fn settle_existing(
        &self,
        item: &WorkItem,
        existing: &TargetObject,
        plan: &mut WritePlan,
        raced: Option<&str>,
    ) -> Result<Option<ObjectRecord>, StoreError> {
        let key = &item.target_key;
        let ours = item.previous.as_ref().is_some_and(|p| is_ours(existing, p))
            || written_under(existing, &item.unfinished);
        if ours {
            // Our own earlier write: keep the original "before" for rollback.
            plan.prior = item.unfinished.first().and_then(|i| i.prior.clone());
        }
        let reason = match compare(
            self.source.as_ref(),
            self.target.as_ref(),
            &item.info,
            existing,
        )
        .await?
        {
            Comparison::Identical(d) => {
                // Our own earlier copy stays "copied", so rollback may still remove it.
                let status = if ours {
                    Status::Copied
                } else {
                    Status::Identical
                };
                let mut r = self.record(item, status);
                r.sha256 = Some(hex::encode(d.sha256));
                r.target_etag = existing.etag.clone();
                r.target_checksum = existing
                    .checksum_sha256
                    .clone()
                    .or_else(|| Some(b64(&d.sha256)));
                r.content_type = existing.meta.content_type.clone().or(r.content_type);
                if ours {
                    r.backup_key = plan.backup_key.clone();
                }
                if raced.is_some() && !ours {
                    r.error = Some(format!("{RACED}, with the same bytes"));
                }
                return Ok(Some(r));
            }
            Comparison::Different(_) if ours => return Ok(None), // the source changed since our copy
            Comparison::Different(reason) => match raced {
                Some(_) => format!("{RACED}: {reason}"),
                None => reason,
            },
        };
        match self.on_conflict {
            OnConflict::Fail => Ok(Some(self.record(item, Status::Conflict).with_error(
                format!(
                "{reason}; left untouched. Use --on-conflict overwrite (backs it up first) or skip"
            ),
            ))),
            OnConflict::Skip => Ok(Some(
                self.record(item, Status::Skipped)
                    .with_error(format!("{reason}; skipped (--on-conflict skip)")),
            )),
            OnConflict::Overwrite => {
                let backup = format!("{}{}", self.backup_prefix, key);
                let mut intent = self.intent(item, plan.prior.clone());
                intent.backup_key = Some(backup.clone());
                self.intents.record(intent).await?;
                self.target.copy(key, &backup).await.map_err(|e| {
                    e.context(format!(
                        "{key}: backup before overwrite failed, so it was not overwritten; re-run to retry"
                    ))
                })?;
                plan.backup_key = Some(backup);
                // The write keeps `plan.expect`, the ETag of what was just backed up:
                // exactly that object is replaced.
                Ok(None)
            }
        }
    }

    /// Uploads the object (announced first), checks what the target then holds, and
    /// records it `copied`; a failed check undoes the write.
    async fn copy(&self, item: &WorkItem, plan: WritePlan) -> Result<ObjectRecord, StoreError> {
        let key = &item.target_key;
        let mut announce = self.intent(item, plan.prior);
        announce.backup_key = plan.backup_key.clone();
        let uploader = Uploader {
            source: self.source.as_ref(),
            target: self.target.as_ref(),
            memory: &self.memory,
            settings: &self.settings,
            cancel: &self.cancel,
            announce: (&self.intents, announce),
            in_flight: &self.in_flight,
            expect: plan.expect.clone(),
            // Each left upload is taken once: resumed or aborted by the first attempt.
            resume: (
                self.resume_uploads,
                item.open_upload
                    .as_ref()
                    .filter(|_| self.resumable.take(&item.info.key)),
            ),
        };
        let up = uploader.upload(&item.info, key).await?;
        self.repeats.accepted(match up.crc64nvme {
            Some(_) => repeats::MULTIPART,
            None => repeats::SINGLE,
        });
        crate::testhooks::after_upload();
        let verified_by = match self.verify_uploaded(key, item.info.size, &up).await {
            Ok(by) => by,
            Err(e) => {
                // Refused or fatal: nothing more can be written (a resume reads the intent).
                if !matches!(e, StoreError::Refused(_) | StoreError::Fatal(_)) {
                    self.undo_bad_upload(key, plan.backup_key.as_deref(), up.etag.as_deref())
                        .await;
                }
                return Err(e);
            }
        };
        let mut r = self.record(item, Status::Copied);
        r.source_etag = up.source.etag.clone().or(r.source_etag);
        r.source_md5 = up.source.md5.map(hex::encode).or(r.source_md5);
        r.source_crc32c = up
            .source
            .crc32c
            .map(|c| hex::encode(c.to_be_bytes()))
            .or(r.source_crc32c);
        r.source_checked = self.source.states_digests().then(|| up.source.can_check());
        r.sha256 = Some(hex::encode(up.digests.sha256));
        r.target_etag = up.etag;
        r.target_checksum = up.checksum;
        r.target_crc64nvme = up.crc64nvme;
        r.verified_by = Some(verified_by);
        r.resume = up.resume;
        r.content_type = up.content_type;
        r.backup_key = plan.backup_key;
        Ok(r)
    }

    /// Proves the upload: by the target's response where it stated the SHA-256 it
    /// computed over the stored bytes and that is ours (the hash covers the size), else by
    /// a HEAD, whose size and checksum (or ETag) must be what we sent.
    async fn verify_uploaded(
        &self,
        key: &str,
        size: u64,
        up: &Uploaded,
    ) -> Result<VerifiedBy, StoreError> {
        let whole = hex::encode(up.digests.sha256);
        let differs = || {
            StoreError::Object(format!(
                "{key}: the target's response states another checksum than the bytes sent; the write was undone: re-run to copy it again"
            ))
        };
        match &up.echoed {
            Some(echoed) if checksum_proves(echoed, up.checksum.as_deref(), Some(&whole)) => {
                return Ok(VerifiedBy::Response);
            }
            Some(_) => return Err(differs()),
            None => {}
        }
        // Multipart: the full-object CRC64NVME the target checked on the assembled bytes
        // (each part was checked against its own CRC64NVME on the way).
        match (&up.echoed_crc64nvme, &up.crc64nvme) {
            (Some(echoed), Some(ours)) if echoed == ours => return Ok(VerifiedBy::Response),
            (Some(_), Some(_)) => return Err(differs()),
            _ => {}
        }
        let Some(head) = self.target.head(key).await? else {
            return Err(StoreError::Object(format!(
                "{key}: missing from the target right after upload; re-run to copy it again"
            )));
        };
        let wrote = Wrote {
            size,
            upload_checksum: up.checksum.as_deref(),
            sha256_hex: Some(&whole),
            crc64nvme: up.crc64nvme.as_deref(),
            etag: up.etag.as_deref(),
        };
        // Size alone passes: the PUT's own checksum was checked by the target.
        if let Verdict::Differs(what) = verdict::compare(&head, &wrote) {
            return Err(StoreError::Object(format!(
                "{key}: after upload, {what}; the write was undone: re-run to copy it again"
            )));
        }
        Ok(VerifiedBy::Head)
    }

    /// After a failed verification: put back what was there (only over what we wrote),
    /// or remove what we wrote.
    async fn undo_bad_upload(&self, key: &str, backup: Option<&str>, ours: Option<&str>) {
        let over = ours.map_or(Expect::Anything, |etag| Expect::Etag(etag.to_string()));
        let undone = match backup {
            Some(b) => self.target.copy_if(b, key, &over).await,
            None => self.target.delete(key).await,
        };
        if let Err(e) = undone {
            tracing::error!("{key}: could not undo a failed upload: {e}");
        }
    }
}
