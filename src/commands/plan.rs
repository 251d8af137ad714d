//! `r2migrate plan` (and `run --dry-run`): the run's listing and selection, with the copy
//! replaced by a look at the target. Reports counts, bytes, conflicts, collisions,
//! unreadable items and the R2 cost estimate. Writes nothing anywhere.

use futures::StreamExt;
use serde::Serialize;
use serde_json::json;

use super::run::{already_done, deleted_at_source, Previous};
use super::{human_bytes, open_stores, Output, TargetIndex};
use crate::config::CopyConfig;
use crate::error::{Exit, StoreError};
use crate::pricing::{estimate, Operations};
use crate::selection::{RejectKind, Selected, Selector};
use std::collections::HashSet;

use crate::delta::{change_since, Change};
use crate::manifest::ObjectRecord;
use crate::source::ObjectInfo;
use crate::transfer::{compare, is_ours, Comparison};

#[derive(Debug, Serialize)]
struct Item {
    source_key: String,
    target_key: String,
    size: u64,
    reason: String,
}

/// A SQLite source's rows: how many decode, their bytes, failures by reason, and
/// the text `clear_data` would remove from the database.
#[derive(Debug, Default, Serialize)]
struct RowCounts {
    rows: u64,
    decodable: u64,
    decoded_bytes: u64,
    failures_by_reason: std::collections::BTreeMap<&'static str, u64>,
    db_bytes_freed: u64,
}

#[derive(Debug, Default, Serialize)]
struct ClassTotal {
    objects: u64,
    bytes: u64,
}

#[derive(Debug, Default, Serialize)]
struct Counts {
    selected: u64,
    selected_bytes: u64,
    to_copy: u64,
    to_copy_bytes: u64,
    identical: u64,
    already_verified: u64,
    conflicts: u64,
    collisions: u64,
    unreadable: u64,
    unstorable: u64,
    excluded: u64,
    /// Selected objects by the source's storage class (sources that have one).
    by_storage_class: std::collections::BTreeMap<String, ClassTotal>,
}

/// Against an existing manifest (the cutover pass): what changed since it was written.
#[derive(Debug, Default, Serialize)]
struct DeltaCounts {
    new: u64,
    new_bytes: u64,
    changed: u64,
    changed_bytes: u64,
    deleted_at_source: u64,
    unchanged: u64,
}

/// What the target holds at one key, compared with the source.
enum Verdict {
    Absent,
    Identical,
    Conflict(String),
    /// Our own earlier copy of an object that changed at the source: replaced, no conflict.
    Replace,
}

pub async fn plan(cfg: CopyConfig, out: Output) -> anyhow::Result<Exit> {
    let stores = open_stores(&cfg).await?;
    let previous = Previous::load(&cfg)?;
    let index = TargetIndex::build(stores.target.as_ref())
        .await
        .map_err(anyhow::Error::new)?;
    let mut selector = Selector::new(
        cfg.filter.clone(),
        cfg.shard,
        stores.target.prefix(),
        cfg.key_template.clone(),
    );
    let mut counts = Counts::default();
    let mut ops = Operations {
        class_a: 1 + index.len() as u64 / 1000, // the target listing
        class_b: 0,
    };
    let mut rows = RowCounts::default();
    let clear_data = cfg
        .sqlite
        .as_ref()
        .and_then(|s| s.write_back.as_ref())
        .is_some_and(|w| w.clear_data);
    let (mut conflicts, mut collisions, mut unreadable, mut unstorable) =
        (vec![], vec![], vec![], vec![]);

    let mut delta = DeltaCounts::default();
    let mut changed = Vec::new();
    let mut type_mismatches = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    // Objects already at their key are compared concurrently; the rest need no I/O.
    // (object, target key, the earlier record if the source changed since it)
    let mut to_compare: Vec<(ObjectInfo, String, Option<ObjectRecord>)> = Vec::new();
    let mut listing = stores.source.list();
    while let Some(item) = listing.next().await {
        let item = item.map_err(|e| anyhow::Error::new(e.context("listing the source")))?;
        match selector.select(item) {
            Selected::Excluded => counts.excluded += 1,
            Selected::Reject {
                kind,
                source_key,
                target_key,
                size,
                reason,
            } => {
                seen.insert(source_key.clone());
                let entry = Item {
                    source_key,
                    target_key,
                    size,
                    reason,
                };
                match kind {
                    RejectKind::Collision => collisions.push(entry),
                    RejectKind::Unreadable(problem) => {
                        *rows.failures_by_reason.entry(problem.label()).or_default() += 1;
                        unreadable.push(entry)
                    }
                    RejectKind::Unstorable => unstorable.push(entry),
                }
            }
            Selected::Take { info, target_key } => {
                seen.insert(info.key.clone());
                counts.selected += 1;
                if let Some(declared) = &info.declared_content_type {
                    type_mismatches.push(Item {
                        source_key: info.key.clone(),
                        target_key: target_key.clone(),
                        size: info.size,
                        reason: format!(
                            "declared {declared}, but the bytes are {}: uploaded with the bytes' type, the declared one recorded",
                            info.meta.content_type.as_deref().unwrap_or("?")
                        ),
                    });
                }
                let prev = previous.get(&info.key);
                let change = change_since(prev, &info);
                match &change {
                    Change::New => {
                        delta.new += 1;
                        delta.new_bytes += info.size;
                    }
                    Change::Changed(why) => {
                        delta.changed += 1;
                        delta.changed_bytes += info.size;
                        changed.push(Item {
                            source_key: info.key.clone(),
                            target_key: target_key.clone(),
                            size: info.size,
                            reason: why.clone(),
                        });
                    }
                    Change::Unchanged => delta.unchanged += 1,
                }
                counts.selected_bytes += info.size;
                if let Some(class) = &info.storage_class {
                    let t = counts.by_storage_class.entry(class.clone()).or_default();
                    t.objects += 1;
                    t.bytes += info.size;
                }
                let listed = index.get(&target_key);
                if let Some(row) = &info.row {
                    rows.decodable += 1;
                    rows.decoded_bytes += info.size;
                    if clear_data {
                        rows.db_bytes_freed += row.original_len;
                    }
                }
                let done = already_done(stores.target.as_ref(), prev, &info, &target_key, listed)
                    .await
                    .map_err(anyhow::Error::new)?;
                if done {
                    counts.already_verified += 1;
                } else if listed.is_some() {
                    // Only an earlier copy of a changed object may be replaced as ours.
                    let changed_since = prev.filter(|_| matches!(change, Change::Changed(_)));
                    to_compare.push((info, target_key, changed_since.cloned()));
                } else {
                    counts.to_copy += 1;
                    counts.to_copy_bytes += info.size;
                    ops.add_upload(info.size, cfg.multipart_threshold, cfg.part_size);
                }
            }
        }
    }
    drop(listing);

    let (source, target) = (stores.source.clone(), stores.target.clone());
    let verdicts = futures::stream::iter(to_compare)
        .map(|(info, key, prev)| {
            let (source, target) = (source.clone(), target.clone());
            async move {
                let ours = |existing: &crate::target::TargetObject| {
                    prev.as_ref().is_some_and(|p| is_ours(existing, p))
                };
                let verdict = match target.head(&key).await? {
                    None => Verdict::Absent,
                    Some(existing) if ours(&existing) => Verdict::Replace,
                    Some(existing) => {
                        match compare(source.as_ref(), target.as_ref(), &info, &existing).await? {
                            Comparison::Identical(_) => Verdict::Identical,
                            Comparison::Different(why) => Verdict::Conflict(why),
                        }
                    }
                };
                Ok::<_, StoreError>((info, key, verdict))
            }
        })
        .buffer_unordered(cfg.stores.concurrency)
        .collect::<Vec<_>>()
        .await;
    for v in verdicts {
        ops.class_b += 1; // the HEAD
        match v {
            Ok((info, _, Verdict::Absent | Verdict::Replace)) => {
                counts.to_copy += 1;
                counts.to_copy_bytes += info.size;
                ops.add_upload(info.size, cfg.multipart_threshold, cfg.part_size);
            }
            Ok((_, _, Verdict::Identical)) => counts.identical += 1,
            Ok((info, key, Verdict::Conflict(reason))) => conflicts.push(Item {
                source_key: info.key,
                target_key: key,
                size: info.size,
                reason,
            }),
            Err(e) if e.is_fatal() => return Err(anyhow::Error::new(e)),
            Err(e) => unreadable.push(Item {
                source_key: String::new(),
                target_key: String::new(),
                size: 0,
                reason: e.to_string(),
            }),
        }
    }
    // Migrated by an earlier run, no longer listed.
    let deleted: Vec<Item> = deleted_at_source(&previous, &seen)
        .into_iter()
        .map(|(source_key, target_key)| Item {
            size: previous.get(&source_key).map_or(0, |r| r.size),
            source_key,
            target_key,
            reason: "deleted at the source since it was migrated; left in R2".into(),
        })
        .collect();
    delta.deleted_at_source = deleted.len() as u64;
    conflicts.sort_by(|a, b| a.source_key.cmp(&b.source_key));
    counts.conflicts = conflicts.len() as u64;
    counts.collisions = collisions.len() as u64;
    counts.unreadable = unreadable.len() as u64;
    counts.unstorable = unstorable.len() as u64;

    let is_sqlite = cfg.sqlite.is_some();
    if is_sqlite {
        rows.rows = rows.decodable + unreadable.len() as u64;
    }
    let stored_after = counts.selected_bytes;
    let cost = estimate(stored_after, &ops);
    let exit = if counts.conflicts + counts.collisions + counts.unreadable + counts.unstorable > 0 {
        Exit::Partial
    } else {
        Exit::Ok
    };

    out.say(&format!(
        "plan: {} → {} (nothing written)",
        cfg.source, cfg.target
    ));
    out.say(&format!(
        "  selected {} objects ({}); {} excluded by filters or shard",
        counts.selected,
        human_bytes(counts.selected_bytes),
        counts.excluded
    ));
    for (class, t) in &counts.by_storage_class {
        out.say(&format!(
            "    storage class {class}: {} objects, {}",
            t.objects,
            human_bytes(t.bytes)
        ));
    }
    out.say(&format!(
        "  to copy {} ({}), identical {}, already verified {}",
        counts.to_copy,
        human_bytes(counts.to_copy_bytes),
        counts.identical,
        counts.already_verified
    ));
    out.say(&format!(
        "  conflicts {}, collisions {}, unreadable {}, keys R2 cannot store {}",
        counts.conflicts, counts.collisions, counts.unreadable, counts.unstorable
    ));
    out.say(&format!(
        "  estimated R2 cost (Standard, prices of {}): storage ${:.4}/month for {}; {} Class A + {} Class B operations ${:.4} once",
        cost.prices_as_of,
        cost.storage_usd_per_month,
        human_bytes(cost.stored_bytes),
        cost.class_a_operations,
        cost.class_b_operations,
        cost.operations_usd
    ));
    let against_manifest = !previous.records.is_empty();
    if against_manifest {
        out.say(&format!(
            "  since the manifest {}: new {} ({}), changed {} ({}), deleted at source {}, unchanged {}",
            cfg.manifest.display(),
            delta.new,
            human_bytes(delta.new_bytes),
            delta.changed,
            human_bytes(delta.changed_bytes),
            delta.deleted_at_source,
            delta.unchanged
        ));
    }
    if is_sqlite {
        out.say(&format!(
            "  rows {}: {} decode to {}; failures {}; the database would free {} (clear_data)",
            rows.rows,
            rows.decodable,
            human_bytes(rows.decoded_bytes),
            if rows.failures_by_reason.is_empty() {
                "none".to_string()
            } else {
                rows.failures_by_reason
                    .iter()
                    .map(|(k, v)| format!("{v} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            human_bytes(rows.db_bytes_freed)
        ));
    }
    for (label, list) in [
        ("changed at source", &changed),
        ("deleted at source", &deleted),
        ("content type", &type_mismatches),
        ("conflict", &conflicts),
        ("collision", &collisions),
        ("unreadable", &unreadable),
        ("unstorable", &unstorable),
    ] {
        for i in list.iter() {
            out.say(&format!(
                "  {label}: {} → {}: {}",
                i.source_key, i.target_key, i.reason
            ));
        }
    }
    out.document(&json!({
        "command": "plan",
        "source": cfg.source.canonical(),
        "target": cfg.target.canonical(),
        "counts": counts,
        "conflicts": conflicts,
        "collisions": collisions,
        "unreadable": unreadable,
        "unstorable": unstorable,
        "estimate": cost,
        "delta": against_manifest.then_some(&delta),
        "changed_at_source": changed,
        "deleted_at_source": deleted,
        "content_type_mismatches": type_mismatches,
        "sqlite": is_sqlite.then_some(&rows),
        "retries": stores.retries(),
        "exit_code": exit as i32,
    }));
    Ok(exit)
}
