//! The produce and copy stages: list the source, select, skip what an earlier run
//! proves done, and hand the rest to workers, as many at once as [`Concurrency`] gives
//! places. Every item the selection keeps leaves here as exactly one message to the
//! record stage — a record, or (for a row verified earlier) a write-back to heal.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::previous::{already_done, deleted_at_source, Previous, SeenKeys};
use super::{Msg, RunState};
use crate::commands::TargetIndex;
use crate::concurrency::{Concurrency, Slot};
use crate::error::StoreError;
use crate::manifest::Status;
use crate::selection::{Selected, Selector};
use crate::source::{ObjectInfo, Source};
use crate::transfer::resume::OpenUpload;
use crate::transfer::{Copier, WorkItem};

pub(super) struct Producer {
    pub selector: Selector,
    pub previous: Previous,
    pub index: TargetIndex,
    pub source: Arc<dyn Source>,
    pub copier: Arc<Copier>,
    pub concurrency: Arc<Concurrency>,
    pub run_id: String,
    pub state: RunState,
    pub records: mpsc::Sender<Msg>,
}

impl Producer {
    /// Runs to the end of the listing (or a stop); returns the objects deleted at the
    /// source since an earlier run verified them, which only a full listing can tell.
    pub async fn produce(mut self) -> Vec<(String, String)> {
        let mut workers = JoinSet::new();
        let seen = SeenKeys::for_(&self.previous);
        let source = self.source.clone();
        let mut listing = source.list();
        let cancel = self.state.cancel.clone();
        loop {
            let next = tokio::select! {
                n = listing.next() => n,
                _ = cancel.cancelled() => break,
            };
            let item = match next {
                None => {
                    self.state.listing.complete.store(true, Ordering::Relaxed);
                    break;
                }
                Some(Err(e)) => {
                    self.state.fail(e.context("listing the source"));
                    break;
                }
                Some(Ok(item)) => item,
            };
            let Some((info, target_key)) = self.select(item, &seen).await else {
                if cancel.is_cancelled() {
                    break; // the selection failed
                }
                continue;
            };
            let work = match self.to_copy(info, target_key).await {
                Ok(Some(work)) => work,
                Ok(None) => continue,
                Err(()) => break,
            };
            // A stop that came while waiting wins over a permit freed at the same time:
            // no object starts after the run was told to stop.
            let slot = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                s = self.concurrency.acquire() => s,
            };
            self.spawn_copy(&mut workers, slot, work);
            while workers.try_join_next().is_some() {}
        }
        while workers.join_next().await.is_some() {}
        if cancel.is_cancelled() {
            return Vec::new();
        }
        match deleted_at_source(&self.previous, &seen) {
            Ok(gone) => gone
                .into_iter()
                .map(|r| (r.source_key, r.target_key))
                .collect(),
            Err(e) => {
                self.state.fail(e.into());
                Vec::new()
            }
        }
    }

    /// The selection's verdict: an object to consider copying, or nothing (excluded, or
    /// rejected — then its failed record is already sent).
    async fn select(
        &mut self,
        item: crate::source::ListItem,
        seen: &SeenKeys,
    ) -> Option<(ObjectInfo, String)> {
        let selected = self.selector.select(item);
        let kept = match &selected {
            Selected::Excluded | Selected::Fatal(_) => None,
            Selected::Take { info, .. } => Some((&info.key, info.size)),
            Selected::Reject(r) => Some((&r.source_key, r.size)),
        };
        if let Some((key, size)) = kept {
            if let Err(e) = seen.note(key) {
                self.state.fail(e.into());
                return None;
            }
            self.state.listing.listed.fetch_add(1, Ordering::Relaxed);
            self.state
                .listing
                .listed_bytes
                .fetch_add(size, Ordering::Relaxed);
        }
        match selected {
            Selected::Excluded => None,
            Selected::Fatal(e) => {
                self.state.fail(e);
                None
            }
            Selected::Reject(rejected) => {
                let rec = rejected.record(&self.run_id);
                let _ = self.records.send(Msg::Record(rec, None)).await;
                None
            }
            Selected::Take { info, target_key } => Some((info, target_key)),
        }
    }

    /// The work for one selected object, or `None` when an earlier run already proves
    /// it done (a row it never rewrote is sent to be healed). `Err` when a fatal error
    /// stopped the run.
    async fn to_copy(&self, info: ObjectInfo, target_key: String) -> Result<Option<WorkItem>, ()> {
        let looked_up = self.previous.get(&info.key).map_err(StoreError::from);
        let (prev, listed) = match looked_up.and_then(|p| Ok((p, self.index.get(&target_key)?))) {
            Ok(both) => both,
            Err(e) => {
                self.state.fail(e);
                return Err(());
            }
        };
        let unfinished = self
            .previous
            .unfinished
            .get(&info.key)
            .cloned()
            .unwrap_or_default();
        // An unanswered intent means a crash left this key mid-write: look at it.
        let target = self.copier.target.as_ref();
        let done = unfinished.is_empty()
            && match already_done(target, prev.as_ref(), &info, &target_key, listed.as_ref()).await
            {
                Ok(done) => done,
                Err(e) if e.is_fatal() => {
                    self.state.fail(e);
                    return Err(());
                }
                Err(_) => false, // the copy path will look again, and record what it finds
            };
        if done {
            self.state.listing.already.fetch_add(1, Ordering::Relaxed);
            self.state
                .listing
                .already_bytes
                .fetch_add(info.size, Ordering::Relaxed);
            // A crash between upload and write-back: write the row now.
            if let (Some(prev), Some(row)) = (&prev, &info.row) {
                if !prev.row.as_ref().is_some_and(|r| r.written) {
                    let _ = self
                        .records
                        .send(Msg::Heal(prev.clone(), row.clone()))
                        .await;
                }
            }
            return Ok(None);
        }
        let open_upload = self
            .previous
            .parts
            .get(&info.key)
            .and_then(|parts| OpenUpload::of(&unfinished, parts));
        Ok(Some(WorkItem {
            listed: listed.is_some(),
            previous: prev,
            open_upload,
            unfinished,
            info,
            target_key,
        }))
    }

    /// One worker: copies the object and sends its record; a panic becomes a failed
    /// record, a fatal error stops the run.
    fn spawn_copy(&self, workers: &mut JoinSet<()>, slot: Slot, work: WorkItem) {
        let (copier, tx, state) = (
            self.copier.clone(),
            self.records.clone(),
            self.state.clone(),
        );
        workers.spawn(async move {
            let row = work.info.row.clone();
            // Built before the copy, so even a panic leaves an honest record.
            let if_panics = copier.record(&work, Status::Failed);
            match supervised(copier.process(work)).await {
                Ok(Ok(rec)) => {
                    slot.done(if rec.status == Status::Copied { rec.size } else { 0 });
                    let _ = tx.send(Msg::Record(rec, row)).await;
                }
                Ok(Err(stop)) => {
                    if let Some(rec) = stop.record {
                        let _ = tx.send(Msg::Record(rec, row)).await;
                    }
                    state.fail(stop.error)
                }
                Err(panic) => {
                    let rec = if_panics.with_error(format!(
                        "internal error: {panic}; the object was not copied — re-run to retry, and report this bug"
                    ));
                    let _ = tx.send(Msg::Record(rec, None)).await;
                }
            }
        });
    }
}

/// Runs one object's copy, turning a panic into its message: a bug in one object's path
/// must leave that object recorded `failed`, never unrecorded.
async fn supervised<T>(work: impl std::future::Future<Output = T>) -> Result<T, String> {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .map_err(|payload| {
            payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic with no message".into())
        })
}
