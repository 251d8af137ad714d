//! Intent before effect: before any write to the target, the copier hands an [`Intent`]
//! to the manifest task and waits until it is written. A crash can then lose an outcome
//! record but never the fact that this tool wrote at a key, and what was there before —
//! so a resumed run records the object as ours (`copied`), and rollback removes it.

use tokio::sync::{mpsc, oneshot};

use crate::error::StoreError;
use crate::manifest::{Announced, Intent, PartLine, Prior};
use crate::target::TargetObject;

use super::checksum_proves;

/// An announcement and the answer the manifest task gives once it is written.
pub type IntentMsg = (Announced, oneshot::Sender<()>);

/// The copier's end of the channel to the manifest task.
#[derive(Clone)]
pub struct IntentLog(mpsc::Sender<IntentMsg>);

impl IntentLog {
    pub fn channel(capacity: usize) -> (IntentLog, mpsc::Receiver<IntentMsg>) {
        let (tx, rx) = mpsc::channel(capacity);
        (IntentLog(tx), rx)
    }

    /// Returns once the intent is in the manifest.
    pub async fn record(&self, intent: Intent) -> Result<(), StoreError> {
        let key = intent.target_key.clone();
        self.announce(&key, Announced::Intent(intent)).await
    }

    /// Returns once the part line is in the manifest.
    pub async fn record_part(&self, part: PartLine) -> Result<(), StoreError> {
        let key = part.target_key.clone();
        self.announce(&key, Announced::Part(part)).await
    }

    async fn announce(&self, key: &str, line: Announced) -> Result<(), StoreError> {
        let closed = || {
            StoreError::Fatal(format!(
                "{key}: the manifest writer stopped, so nothing more is written to the target; re-run to resume"
            ))
        };
        let (done_tx, done_rx) = oneshot::channel();
        self.0.send((line, done_tx)).await.map_err(|_| closed())?;
        done_rx.await.map_err(|_| {
            StoreError::Fatal(format!(
                "{key}: the manifest writer stopped before recording the write; re-run to resume"
            ))
        })
    }
}

impl Prior {
    pub fn of(obj: &TargetObject) -> Prior {
        Prior {
            size: obj.size,
            etag: obj.etag.clone(),
            checksum_sha256: obj.checksum_sha256.clone(),
        }
    }

    /// Whether the target still holds this same object.
    pub fn is(&self, obj: &TargetObject) -> bool {
        self.size == obj.size
            && match (
                &self.checksum_sha256,
                &obj.checksum_sha256,
                &self.etag,
                &obj.etag,
            ) {
                (Some(a), Some(b), _, _) => a == b,
                (_, _, Some(a), Some(b)) => a == b,
                _ => true, // nothing but the size to tell them apart: assume unchanged
            }
    }
}

/// Whether `obj` is what one of these unanswered intents was about to write: its
/// checksum (a multipart upload's full-object CRC64NVME, else the SHA-256) proves the
/// announced bytes, or — on a target that reports no checksum for
/// the object — it has the announced size and is no longer what the key held before.
pub fn written_under(obj: &TargetObject, intents: &[Intent]) -> bool {
    let before = intents.first().and_then(|i| i.prior.as_ref());
    intents.iter().filter(|i| i.size.is_some()).any(|i| {
        if i.size != Some(obj.size) {
            return false;
        }
        if let (Some(reported), Some(ours)) = (&obj.checksum_crc64nvme, &i.crc64nvme) {
            return reported == ours;
        }
        match &obj.checksum_sha256 {
            Some(reported) => checksum_proves(reported, i.checksum.as_deref(), i.sha256.as_deref()),
            None => before.is_none_or(|p| !p.is(obj)),
        }
    })
}

/// Aborts the multipart uploads earlier runs started and never saw through (a kill -9
/// leaves them open: R2 keeps, and bills, their parts for days), but those in
/// `resumable`, which their objects go on with. Returns how many were aborted; an upload
/// finished or aborted since is no error.
pub async fn abort_left_open(
    target: &dyn crate::target::Target,
    unfinished: &std::collections::HashMap<String, Vec<Intent>>,
    resumable: &std::collections::HashSet<String>,
) -> Result<usize, StoreError> {
    let mut aborted = 0;
    for intent in unfinished.values().flatten() {
        let Some(id) = intent
            .upload_id
            .as_ref()
            .filter(|id| !resumable.contains(*id))
        else {
            continue;
        };
        match target.abort_upload(&intent.target_key, id).await {
            Ok(()) => aborted += 1,
            Err(e) if e.is_fatal() => return Err(e),
            Err(e) => tracing::warn!(
                "{}: could not abort upload {id} a killed run left open ({e}); R2 drops it after its lifecycle rule (7 days by default)",
                intent.target_key
            ),
        }
    }
    Ok(aborted)
}
