//! `r2migrate plan` (and `run --dry-run`): the run's listing and selection, with the copy
//! replaced by a look at the target. Reports counts, bytes, conflicts, collisions,
//! unreadable items and the R2 cost estimate ([`tally`] keeps them, [`words`] says them).
//! Writes nothing anywhere.

mod markdown;
mod tables;
mod tally;
mod words;

use futures::StreamExt;

use super::run::{already_done, Previous, SeenKeys};
use super::{open_stores, Output, Stores, TargetIndex};
use crate::config::{CopyConfig, PlanReport};
use crate::delta::{change_since, Change};
use crate::error::{Exit, StoreError};
use crate::manifest::ObjectRecord;
use crate::selection::{Selected, Selector};
use crate::source::ObjectInfo;
use crate::target::Target;
use crate::transfer::{compare, is_ours, Comparison};
use tally::PlanTally;

/// What the target holds at one key, compared with the source.
enum Verdict {
    Absent,
    Identical,
    Conflict(String),
    /// Our own earlier copy of an object that changed at the source: replaced, no conflict.
    Replace,
}

/// An object already at its key, to compare (with the earlier record when the source
/// changed since our copy: only then may it be replaced as ours).
struct ToCompare {
    info: ObjectInfo,
    target_key: String,
    changed_since: Option<ObjectRecord>,
}

pub async fn plan(cfg: CopyConfig, report: PlanReport, out: Output) -> anyhow::Result<Exit> {
    let stores = open_stores(&cfg).await?;
    let previous = Previous::load(&cfg)?;
    let index = TargetIndex::build(stores.target.as_ref())
        .await
        .map_err(anyhow::Error::new)?;
    let mut tally = PlanTally::new(&cfg, index.len()?);
    let (to_compare, seen) = walk(&cfg, &stores, &previous, &index, &mut tally).await?;
    for (to, verdict) in verdicts(&stores, to_compare, cfg.stores.concurrency).await {
        tally.judged(to, verdict)?;
    }
    tally.finish(&previous, &seen)?;
    tally.say(&cfg, &previous, &report, &out);
    if let Some(path) = &report.markdown {
        tally.write_markdown(path, &cfg, &previous, &report)?;
        out.say(&format!("  plan report written to {}", path.display()));
    }
    out.document(&tally.document(&cfg, &previous, &report, stores.retries()));
    Ok(tally.exit())
}

/// Lists the source once: every selected object is counted, and sorted into copy,
/// already verified, or compare with what the target holds.
async fn walk(
    cfg: &CopyConfig,
    stores: &Stores,
    previous: &Previous,
    index: &TargetIndex,
    tally: &mut PlanTally,
) -> anyhow::Result<(Vec<ToCompare>, SeenKeys)> {
    let mut selector = Selector::new(
        cfg.filter.clone(),
        cfg.shard,
        stores.target.prefix(),
        cfg.key_template.clone(),
    );
    let seen = SeenKeys::for_(previous);
    let mut to_compare = Vec::new();
    let mut listing = stores.source.list();
    while let Some(item) = listing.next().await {
        let item = item.map_err(|e| anyhow::Error::new(e.context("listing the source")))?;
        match selector.select(item) {
            Selected::Excluded => tally.counts.excluded += 1,
            Selected::Fatal(e) => return Err(anyhow::Error::new(e)),
            Selected::Reject(r) => {
                seen.note(&r.source_key)?;
                tally.rejected(r);
            }
            Selected::Take { info, target_key } => {
                seen.note(&info.key)?;
                let prev = previous.get(&info.key)?;
                let prev = prev.as_ref();
                let change = change_since(prev, &info);
                tally.selected(&info, &target_key, &change);
                let listed = index.get(&target_key).map_err(anyhow::Error::new)?;
                let target = stores.target.as_ref();
                if already_done(target, prev, &info, &target_key, listed.as_ref())
                    .await
                    .map_err(anyhow::Error::new)?
                {
                    tally.already_verified(info.size);
                } else if listed.is_some() {
                    let changed_since = prev.filter(|_| matches!(change, Change::Changed(_)));
                    to_compare.push(ToCompare {
                        info,
                        target_key,
                        changed_since: changed_since.cloned(),
                    });
                } else {
                    tally.will_copy(info.size, matches!(change, Change::Changed(_)));
                }
            }
        }
    }
    Ok((to_compare, seen))
}

/// Compares the objects already at their keys, `concurrency` at a time.
async fn verdicts(
    stores: &Stores,
    to_compare: Vec<ToCompare>,
    concurrency: usize,
) -> Vec<(ToCompare, Result<Verdict, StoreError>)> {
    futures::stream::iter(to_compare)
        .map(|to| async move {
            let verdict = verdict(stores, &to).await;
            (to, verdict)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

async fn verdict(stores: &Stores, to: &ToCompare) -> Result<Verdict, StoreError> {
    let (source, target): (_, &dyn Target) = (stores.source.as_ref(), stores.target.as_ref());
    let ours = |existing: &crate::target::TargetObject| {
        to.changed_since
            .as_ref()
            .is_some_and(|p| is_ours(existing, p))
    };
    Ok(match target.head(&to.target_key).await? {
        None => Verdict::Absent,
        Some(existing) if ours(&existing) => Verdict::Replace,
        Some(existing) => match compare(source, target, &to.info, &existing).await? {
            Comparison::Identical(_) => Verdict::Identical,
            Comparison::Different(why) => Verdict::Conflict(why),
        },
    })
}
