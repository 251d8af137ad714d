//! Which source items belong to this migration and under which target key: filters,
//! `--shard`, key mapping, and the checks made before any byte moves — keys R2 cannot
//! store, metadata over 8 KiB, and collisions (two items mapping to one key, including
//! two spellings that R2's NFC normalisation makes one). The first item to claim a key
//! keeps it; later ones are refused, so no source item ever overwrites another.

use std::collections::BTreeMap;

use crate::filter::Filter;
use crate::keymap::{nfc, unstorable, KeyMap};
use crate::limits::{MAX_METADATA_BYTES, MAX_OBJECT};
use crate::manifest::Selection;
use crate::shard::Shard;
use crate::source::{ListItem, ObjectInfo, Problem};
use crate::spill::DiskMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectKind {
    Unreadable(Problem),
    /// Deliberately not copied (a link out of the tree, a FIFO): recorded `skipped`.
    Skipped,
    Unstorable,
    /// Larger than R2's largest object (also counted among the unstorable).
    TooLarge,
    Collision,
}

#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one lives at a time; boxing buys nothing
pub enum Selected {
    /// Left out by a filter or the shard.
    Excluded,
    Take {
        info: ObjectInfo,
        target_key: String,
    },
    Reject(Rejected),
    /// The selection cannot go on (its index on disk failed): the command must stop.
    Fatal(crate::error::StoreError),
}

/// A source item the selection refuses, and why; it is recorded, never copied.
#[derive(Debug)]
pub struct Rejected {
    pub kind: RejectKind,
    pub source_key: String,
    pub target_key: String,
    pub size: u64,
    pub reason: String,
    /// A collision's other spelling: the source key that took the target key first.
    pub collides_with: Option<String>,
}

impl Rejected {
    /// Its manifest record: `skipped` when left out on purpose, else `failed`.
    pub fn record(self, run_id: &str) -> crate::manifest::ObjectRecord {
        use crate::manifest::{ObjectRecord, Status};
        let status = match self.kind {
            RejectKind::Skipped => Status::Skipped,
            _ => Status::Failed,
        };
        let mut rec = ObjectRecord::new(&self.source_key, &self.target_key, self.size, status)
            .with_error(self.reason);
        rec.run_id = Some(run_id.to_string());
        rec
    }
}

pub struct Selector {
    filter: Filter,
    shard: Option<Shard>,
    keymap: KeyMap,
    template: Option<String>,
    /// NFC target key → the source key that claimed it (on disk: one entry per key).
    claimed: DiskMap<String>,
}

impl Selector {
    pub fn new(
        filter: Filter,
        shard: Option<Shard>,
        target_prefix: &str,
        template: Option<String>,
    ) -> Selector {
        Selector {
            filter,
            shard,
            keymap: KeyMap::new(target_prefix, template.clone()),
            template,
            claimed: DiskMap::new("the target keys claimed"),
        }
    }

    /// What a manifest header records, so the same selection can be rebuilt.
    pub fn describe(&self) -> Selection {
        Selection {
            filter: self.filter.spec.clone(),
            key_template: self.template.clone(),
            shard: self.shard.map(|s| s.to_string()),
            copy_links: false,
        }
    }

    /// An item the source could not describe as an object, refused by `kind` unless a
    /// filter or the shard leaves it out anyway.
    fn reject_unlisted(&self, kind: RejectKind, key: String, reason: String) -> Selected {
        if !self.filter.key_matches(&key) || self.shard.is_some_and(|s| !s.contains(&key)) {
            return Selected::Excluded;
        }
        let target_key = self.keymap.target_key(&key, &BTreeMap::new());
        Selected::Reject(Rejected {
            kind,
            source_key: key,
            target_key,
            size: 0,
            reason,
            collides_with: None,
        })
    }

    pub fn select(&mut self, item: ListItem) -> Selected {
        let info = match item {
            ListItem::Object(info) => info,
            ListItem::Unreadable {
                key,
                problem,
                reason,
            } => return self.reject_unlisted(RejectKind::Unreadable(problem), key, reason),
            ListItem::Skipped { key, reason } => {
                return self.reject_unlisted(RejectKind::Skipped, key, reason)
            }
        };
        if !self.filter.matches(&info) || self.shard.is_some_and(|s| !s.contains(&info.key)) {
            return Selected::Excluded;
        }
        let target_key = self.keymap.target_key(&info.key, &template_values(&info));
        let reject = |kind, reason: String| {
            Selected::Reject(Rejected {
                kind,
                source_key: info.key.clone(),
                target_key: target_key.clone(),
                size: info.size,
                reason,
                collides_with: None,
            })
        };
        if let Some(reason) = unstorable(&target_key) {
            return reject(RejectKind::Unstorable, reason);
        }
        if info.size > MAX_OBJECT {
            return reject(
                RejectKind::TooLarge,
                format!(
                    "{} bytes is larger than R2's largest object (about 4.995 TiB); split it, or leave it out with --max-size",
                    info.size
                ),
            );
        }
        let meta_bytes = info.meta.header_bytes();
        if meta_bytes > MAX_METADATA_BYTES {
            return reject(
                RejectKind::Unstorable,
                format!("its metadata is {meta_bytes} bytes; R2 stores at most 8 KiB of metadata per object"),
            );
        }
        match self.claimed.insert_new(&nfc(&target_key), &info.key) {
            Ok(None) => Selected::Take { info, target_key },
            Ok(Some(first)) => Selected::Reject(Rejected {
                kind: RejectKind::Collision,
                reason: format!(
                    "collision: maps to target key {target_key:?}, already taken by source key {first:?} (R2 treats keys equal after Unicode NFC normalisation); rename one or use --key-template"
                ),
                collides_with: Some(first),
                source_key: info.key.clone(),
                target_key: target_key.clone(),
                size: info.size,
            }),
            Err(e) => Selected::Fatal(e.into()),
        }
    }
}

/// Values a template can use beyond the key itself (SQLite rows add their columns).
fn template_values(info: &ObjectInfo) -> BTreeMap<String, String> {
    info.row
        .as_ref()
        .map(|row| row.vars.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(sel: &mut Selector, key: &str) -> Selected {
        sel.select(ListItem::Object(ObjectInfo::new(key, 1)))
    }

    fn open() -> Filter {
        Filter::new(&[], &[], None, None, None, None).unwrap()
    }

    #[test]
    fn nfc_spellings_collide_and_the_first_keeps_the_key() {
        let mut sel = Selector::new(open(), None, "p/", None);
        assert!(matches!(
            take(&mut sel, "caf\u{e9}.jpg"),
            Selected::Take { .. }
        ));
        match take(&mut sel, "cafe\u{301}.jpg") {
            Selected::Reject(Rejected {
                kind: RejectKind::Collision,
                reason,
                ..
            }) => assert!(reason.contains("caf\u{e9}.jpg")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn templates_that_flatten_collide() {
        let mut sel = Selector::new(open(), None, "", Some("{basename}".into()));
        assert!(matches!(take(&mut sel, "a/x.jpg"), Selected::Take { .. }));
        assert!(matches!(
            take(&mut sel, "b/x.jpg"),
            Selected::Reject(Rejected {
                kind: RejectKind::Collision,
                ..
            })
        ));
    }

    #[test]
    fn long_keys_and_big_metadata_are_unstorable() {
        let mut sel = Selector::new(open(), None, "", None);
        assert!(matches!(
            take(&mut sel, &"k".repeat(1100)),
            Selected::Reject(Rejected {
                kind: RejectKind::Unstorable,
                ..
            })
        ));
        let mut info = ObjectInfo::new("m", 1);
        info.meta.custom.insert("big".into(), "v".repeat(9000));
        assert!(matches!(
            sel.select(ListItem::Object(info)),
            Selected::Reject(Rejected {
                kind: RejectKind::Unstorable,
                ..
            })
        ));
    }

    #[test]
    fn filtered_and_other_shard_items_are_excluded() {
        let filter = Filter::new(&["*.jpg".into()], &[], None, None, None, None).unwrap();
        let mut sel = Selector::new(filter, Some(Shard::parse("0/1").unwrap()), "", None);
        assert!(matches!(take(&mut sel, "a.png"), Selected::Excluded));
        assert!(matches!(take(&mut sel, "a.jpg"), Selected::Take { .. }));
    }
}
