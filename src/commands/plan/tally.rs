//! What a plan counts: objects and bytes by outcome, the operations (and so the cost) a
//! run would make, what changed since the manifest, a SQLite source's rows, and the
//! items to list by key.

use crate::source::s3_digests::parts_in;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use serde::Serialize;

use super::{ToCompare, Verdict};
use crate::commands::run::{deleted_at_source, Previous, SeenKeys};
use crate::config::CopyConfig;
use crate::delta::Change;
use crate::error::{Exit, StoreError};
use crate::pricing::Operations;
use crate::selection::{RejectKind, Rejected};
use crate::source::ObjectInfo;

/// One object named in the report, with why.
#[derive(Debug, Serialize)]
pub(super) struct Item {
    pub source_key: String,
    pub target_key: String,
    pub size: u64,
    pub reason: String,
    /// A collision's other spelling: the source key that kept the target key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collides_with: Option<String>,
}

impl Item {
    pub fn new(source_key: String, target_key: String, size: u64, reason: String) -> Item {
        Item {
            source_key,
            target_key,
            size,
            reason,
            collides_with: None,
        }
    }

    fn of(info: &ObjectInfo, target_key: &str, reason: String) -> Item {
        Item::new(info.key.clone(), target_key.to_string(), info.size, reason)
    }
}

/// A SQLite source's rows: how many decode, their bytes, failures by reason, and
/// the text `clear_data` would remove from the database.
#[derive(Debug, Default, Serialize)]
pub(super) struct RowCounts {
    pub rows: u64,
    pub decodable: u64,
    pub decoded_bytes: u64,
    pub failures_by_reason: BTreeMap<&'static str, u64>,
    pub db_bytes_freed: u64,
}

#[derive(Debug, Default, Serialize)]
pub(super) struct ClassTotal {
    pub objects: u64,
    pub bytes: u64,
}

#[derive(Debug, Default, Serialize)]
pub(super) struct Counts {
    pub selected: u64,
    pub selected_bytes: u64,
    pub to_copy: u64,
    pub to_copy_bytes: u64,
    /// Of those to copy: changed at the source since the manifest recorded them.
    pub changed_to_copy: u64,
    pub changed_to_copy_bytes: u64,
    pub identical: u64,
    pub identical_bytes: u64,
    pub already_verified: u64,
    pub already_verified_bytes: u64,
    pub conflicts: u64,
    pub collisions: u64,
    pub unreadable: u64,
    /// Keys, metadata or sizes R2 cannot store (`too_large` are among them).
    pub unstorable: u64,
    pub too_large: u64,
    pub too_large_bytes: u64,
    /// Left out on purpose (links out of the tree, special files): exit unaffected.
    pub skipped: u64,
    pub excluded: u64,
    /// Selected objects by the source's storage class (sources that have one).
    pub by_storage_class: BTreeMap<String, ClassTotal>,
    /// Selected S3 objects uploaded in parts (ETag `…-N`), and their parts: each is
    /// checked over its part sizes at copy time, one HEAD per part.
    pub multipart_at_source: u64,
    pub multipart_parts: u64,
}

/// Against an existing manifest (the cutover pass): what changed since it was written.
#[derive(Debug, Default, Serialize)]
pub(super) struct DeltaCounts {
    pub new: u64,
    pub new_bytes: u64,
    pub changed: u64,
    pub changed_bytes: u64,
    pub deleted_at_source: u64,
    pub unchanged: u64,
    /// Multipart uploads a crash left open, and the bytes of their recorded parts: what
    /// a run goes on from rather than uploads again.
    pub in_open_uploads: u64,
    pub in_open_uploads_bytes: u64,
}

/// The items a plan lists by key, by kind.
#[derive(Debug, Default)]
pub(super) struct Lists {
    pub changed: Vec<Item>,
    pub deleted: Vec<Item>,
    pub type_mismatches: Vec<Item>,
    pub conflicts: Vec<Item>,
    pub collisions: Vec<Item>,
    pub unreadable: Vec<Item>,
    pub unstorable: Vec<Item>,
    pub skipped: Vec<Item>,
}

/// The largest selected objects, at most [`Largest::KEEP`] of them: a bounded heap, so
/// memory does not grow with the listing.
#[derive(Debug, Default)]
pub(super) struct Largest {
    heap: BinaryHeap<Reverse<(u64, String, String)>>,
}

impl Largest {
    pub const KEEP: usize = 10;

    fn offer(&mut self, size: u64, source_key: &str, target_key: &str) {
        if self.heap.len() == Self::KEEP && self.heap.peek().is_some_and(|m| m.0 .0 >= size) {
            return;
        }
        self.heap
            .push(Reverse((size, source_key.into(), target_key.into())));
        if self.heap.len() > Self::KEEP {
            self.heap.pop();
        }
    }

    /// Largest first, then by key.
    pub fn items(&self) -> Vec<Item> {
        let mut v: Vec<_> = self.heap.iter().map(|r| r.0.clone()).collect();
        v.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        v.into_iter()
            .map(|(size, s, t)| Item::new(s, t, size, String::new()))
            .collect()
    }
}

pub(super) struct PlanTally {
    pub counts: Counts,
    pub largest: Largest,
    pub ops: Operations,
    pub rows: RowCounts,
    pub delta: DeltaCounts,
    pub lists: Lists,
    clear_data: bool,
    multipart_threshold: u64,
    part_size: u64,
    pub is_sqlite: bool,
}

impl PlanTally {
    pub fn new(cfg: &CopyConfig, target_objects: usize) -> PlanTally {
        PlanTally {
            counts: Counts::default(),
            largest: Largest::default(),
            ops: Operations {
                class_a: 1 + target_objects as u64 / 1000, // the target listing
                class_b: 0,
            },
            rows: RowCounts::default(),
            delta: DeltaCounts::default(),
            lists: Lists::default(),
            clear_data: cfg
                .sqlite
                .as_ref()
                .and_then(|s| s.write_back.as_ref())
                .is_some_and(|w| w.clear_data),
            multipart_threshold: cfg.multipart_threshold,
            part_size: cfg.part_size,
            is_sqlite: cfg.sqlite.is_some(),
        }
    }

    pub fn rejected(&mut self, r: Rejected) {
        let mut item = Item::new(r.source_key, r.target_key, r.size, r.reason);
        item.collides_with = r.collides_with;
        match r.kind {
            RejectKind::Collision => self.lists.collisions.push(item),
            RejectKind::TooLarge => {
                self.counts.too_large += 1;
                self.counts.too_large_bytes += item.size;
                self.lists.unstorable.push(item)
            }
            RejectKind::Unreadable(problem) => {
                *self
                    .rows
                    .failures_by_reason
                    .entry(problem.label())
                    .or_default() += 1;
                self.lists.unreadable.push(item)
            }
            RejectKind::Unstorable => self.lists.unstorable.push(item),
            RejectKind::Skipped => self.lists.skipped.push(item),
        }
    }

    /// A selected object, before the target is looked at.
    pub fn selected(&mut self, info: &ObjectInfo, target_key: &str, change: &Change) {
        let c = &mut self.counts;
        c.selected += 1;
        c.selected_bytes += info.size;
        self.largest.offer(info.size, &info.key, target_key);
        if let Some(class) = &info.storage_class {
            let t = c.by_storage_class.entry(class.clone()).or_default();
            t.objects += 1;
            t.bytes += info.size;
        }
        if let Some(parts) = info.digests.etag.as_deref().and_then(parts_in) {
            c.multipart_at_source += 1;
            c.multipart_parts += parts as u64;
        }
        if let Some(declared) = &info.declared_content_type {
            let reason = format!(
                "declared {declared}, but the bytes are {}: uploaded with the bytes' type, the declared one recorded",
                info.meta.content_type.as_deref().unwrap_or("?")
            );
            self.lists
                .type_mismatches
                .push(Item::of(info, target_key, reason));
        }
        match change {
            Change::New => {
                self.delta.new += 1;
                self.delta.new_bytes += info.size;
            }
            Change::Changed(why) => {
                self.delta.changed += 1;
                self.delta.changed_bytes += info.size;
                self.lists
                    .changed
                    .push(Item::of(info, target_key, why.clone()));
            }
            Change::Unchanged => self.delta.unchanged += 1,
        }
        if let Some(row) = &info.row {
            self.rows.decodable += 1;
            self.rows.decoded_bytes += info.size;
            if self.clear_data {
                self.rows.db_bytes_freed += row.original_len;
            }
        }
    }

    pub fn will_copy(&mut self, size: u64, changed_at_source: bool) {
        self.counts.to_copy += 1;
        self.counts.to_copy_bytes += size;
        if changed_at_source {
            self.counts.changed_to_copy += 1;
            self.counts.changed_to_copy_bytes += size;
        }
        self.ops
            .add_upload(size, self.multipart_threshold, self.part_size);
    }

    pub fn already_verified(&mut self, size: u64) {
        self.counts.already_verified += 1;
        self.counts.already_verified_bytes += size;
    }

    /// An object that was at its key: what the comparison found. A fatal error ends the plan.
    pub fn judged(
        &mut self,
        to: ToCompare,
        verdict: Result<Verdict, StoreError>,
    ) -> anyhow::Result<()> {
        self.ops.class_b += 1; // the HEAD
        match verdict {
            Ok(Verdict::Absent | Verdict::Replace) => {
                self.will_copy(to.info.size, to.changed_since.is_some())
            }
            Ok(Verdict::Identical) => {
                self.counts.identical += 1;
                self.counts.identical_bytes += to.info.size;
            }
            Ok(Verdict::Conflict(reason)) => {
                self.lists
                    .conflicts
                    .push(Item::of(&to.info, &to.target_key, reason))
            }
            Err(e) if e.is_fatal() => return Err(anyhow::Error::new(e)),
            Err(e) => {
                let reason = format!("could not be compared with the target: {e}");
                self.lists
                    .unreadable
                    .push(Item::of(&to.info, &to.target_key, reason))
            }
        }
        Ok(())
    }

    /// After the listing and the comparisons: what the source no longer has, and the totals.
    pub fn finish(&mut self, previous: &Previous, seen: &SeenKeys) -> anyhow::Result<()> {
        self.lists.deleted = deleted_at_source(previous, seen)?
            .into_iter()
            .map(|r| {
                let reason = "deleted at the source since it was migrated; left in R2".into();
                Item::new(r.source_key, r.target_key, r.size, reason)
            })
            .collect();
        let l = &mut self.lists;
        self.delta.deleted_at_source = l.deleted.len() as u64;
        (self.delta.in_open_uploads, self.delta.in_open_uploads_bytes) = previous.in_open_uploads();
        l.conflicts.sort_by(|a, b| a.source_key.cmp(&b.source_key));
        let c = &mut self.counts;
        c.conflicts = l.conflicts.len() as u64;
        c.collisions = l.collisions.len() as u64;
        c.unreadable = l.unreadable.len() as u64;
        c.unstorable = l.unstorable.len() as u64;
        c.skipped = l.skipped.len() as u64;
        if self.is_sqlite {
            self.rows.rows = self.rows.decodable + l.unreadable.len() as u64;
        }
        Ok(())
    }

    /// 1 when anything would stop a clean run: conflicts, collisions, unreadable or
    /// unstorable items.
    pub fn exit(&self) -> Exit {
        let c = &self.counts;
        if c.conflicts + c.collisions + c.unreadable + c.unstorable > 0 {
            Exit::Partial
        } else {
            Exit::Ok
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_are_kept_largest_first_whatever_the_order() {
        let mut l = Largest::default();
        for i in [5u64, 50, 1, 30, 7, 12, 99, 3, 40, 41, 42, 2, 60, 8] {
            l.offer(i, &format!("k{i}"), &format!("t{i}"));
        }
        let sizes: Vec<u64> = l.items().iter().map(|i| i.size).collect();
        assert_eq!(sizes, vec![99, 60, 50, 42, 41, 40, 30, 12, 8, 7]);
        assert_eq!(l.items()[0].source_key, "k99");
    }
}
