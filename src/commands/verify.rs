//! `r2migrate verify`: checks every object the manifests record as `copied` or
//! `identical` against the target — it exists, its size, and its SHA-256 where the target
//! reports one, else the ETag recorded at upload. `--deep` downloads and re-hashes.
//! `--against-source` re-lists the source with the run's own selection and reports
//! objects missing from the target or from the manifest, changed at the source since
//! they were copied, and deleted at the source.

use std::collections::HashSet;

use futures::StreamExt;
use serde::Serialize;
use serde_json::json;

use super::{open_source, open_target, walk_rules, Output, TargetIndex};
use crate::checksum::Hasher;
use crate::concurrency::Concurrency;
use crate::config::VerifyConfig;
use crate::delta::{change_since, Change};
use crate::error::{Exit, StoreError};
use crate::filter::Filter;
use crate::location::{Location, Role};
use crate::manifest::{Header, ManifestSet, ObjectRecord, Status, Word};
use crate::selection::{RejectKind, Selected, Selector};
use crate::shard::Shard;
use crate::source::ObjectInfo;
use crate::spill::DiskMap;
use crate::target::Target;
use crate::transfer::verdict::{compare, Verdict, Wrote};

#[derive(Debug, Serialize)]
struct Problem {
    source_key: String,
    target_key: String,
    problem: String,
}

impl Problem {
    fn of(rec: &ObjectRecord, problem: String) -> Problem {
        Problem {
            source_key: rec.source_key.clone(),
            target_key: rec.target_key.clone(),
            problem,
        }
    }
}

/// What is wrong with one recorded object in the target, if anything.
async fn check_one(
    target: &dyn Target,
    rec: &ObjectRecord,
    deep: bool,
) -> Result<Option<String>, StoreError> {
    let Some(obj) = target.head(&rec.target_key).await? else {
        return Ok(Some("missing from the target".into()));
    };
    if let Verdict::Differs(what) = compare(&obj, &Wrote::from_record(rec)) {
        return Ok(Some(what.to_string()));
    }
    let recorded_sha = rec.sha256.as_deref().and_then(|h| hex::decode(h).ok());
    if deep {
        let body = target.get(&rec.target_key).await?;
        let d = crate::object::digest(body, Hasher::new()).await?;
        if recorded_sha.as_deref() != Some(&d.sha256[..]) {
            return Ok(Some(
                "downloaded bytes do not hash to the recorded SHA-256".into(),
            ));
        }
    }
    Ok(None)
}

fn selection_of(
    header: &Header,
    target_prefix: &str,
    with_shard: bool,
) -> anyhow::Result<Selector> {
    let s = &header.selection;
    let f = &s.filter;
    let filter = Filter::new(
        &f.include,
        &f.exclude,
        f.min_size,
        f.max_size,
        f.modified_after,
        f.modified_before,
    )?;
    let shard = match with_shard {
        true => s.shard.as_deref().map(Shard::parse).transpose()?,
        false => None,
    };
    Ok(Selector::new(
        filter,
        shard,
        target_prefix,
        s.key_template.clone(),
    ))
}

/// The shards a set of manifests covers, when every run in it was sharded; `None` when
/// one was not (it covered every key) — then the first header's own selection applies.
fn shards_covered(set: &ManifestSet) -> anyhow::Result<Option<Vec<Shard>>> {
    let mut shards = Vec::new();
    for h in set.headers() {
        if h.command.as_deref().unwrap_or("run") != "run" {
            continue;
        }
        match h.selection.shard.as_deref() {
            None => return Ok(None),
            Some(text) => shards.push(Shard::parse(text)?),
        }
    }
    shards.sort_by_key(|s| (s.count, s.index));
    shards.dedup_by_key(|s| (s.count, s.index));
    Ok((!shards.is_empty()).then_some(shards))
}

pub async fn verify(args: VerifyConfig, out: Output) -> anyhow::Result<Exit> {
    // One line at a time, the last word per object on disk: flat at any size.
    let set = ManifestSet::read(&args.manifests, Word::Last, |_, _| Ok(()))?;
    let header = set.first_header().clone();
    let target_loc = Location::parse(&header.target, Role::Target)?;
    let (target, pacer) = open_target(&target_loc, &args.stores, None)?;
    target.check_access().await.map_err(anyhow::Error::new)?;

    // Writes a crash left unrecorded explain a difference: say so, and what to do.
    let in_flight: HashSet<&str> = set.unfinished.keys().map(String::as_str).collect();
    let count = Concurrency::new(args.stores.in_flight, vec![pacer]);
    let mut found = Found::default();
    check_target(
        (target.as_ref(), count),
        &set,
        &args,
        &in_flight,
        &mut found,
    )
    .await?;
    found
        .problems
        .sort_by(|a, b| a.source_key.cmp(&b.source_key));
    if args.against_source {
        let covered = shards_covered(&set)?;
        let target = (target.as_ref(), &target_loc);
        found.source_gaps =
            against_source(&args, &header, covered.as_deref(), target, &set).await?;
    }
    let exit = if found.problems.is_empty() && found.source_gaps.is_empty() {
        Exit::Ok
    } else {
        Exit::Partial
    };
    found.say(&args, &header, &out);
    out.document(&found.document(&args, &header, exit));
    Ok(exit)
}

/// Checks every object recorded as verified in the target, as many at once as
/// `--concurrency` fixes or the check finds (far from R2, HEADs wait on round trips),
/// reading the records from disk as the checks go; counts what it passes over.
async fn check_target(
    (target, count): (&dyn Target, std::sync::Arc<Concurrency>),
    set: &ManifestSet,
    args: &VerifyConfig,
    in_flight: &HashSet<&str>,
    found: &mut Found,
) -> anyhow::Result<()> {
    let (mut checked, mut failed, mut unchecked) = (0, 0, Vec::new());
    let to_check = set.records().filter_map(|r| match r {
        Err(e) => Some(Err(StoreError::from(e))),
        Ok(r) if r.status == Status::Failed => {
            failed += 1;
            None
        }
        Ok(r) if r.status.is_verified() => {
            checked += 1;
            if r.source_checked == Some(false) {
                unchecked.push(r.source_key.clone());
            }
            Some(Ok(r))
        }
        Ok(_) => None,
    });
    {
        let results = count.run_each(to_check, |rec| async move {
            let Ok(rec) = rec else {
                return (rec.map(|r| (r, Ok(None))), 0);
            };
            let bytes = if args.deep { rec.size } else { 0 };
            let result = check_one(target, &rec, args.deep).await;
            (Ok((rec, result)), bytes)
        });
        let mut results = std::pin::pin!(results);
        while let Some(done) = results.next().await {
            let (rec, result) = done.map_err(anyhow::Error::new)?;
            let mut problem = match result {
                Ok(None) => continue,
                Ok(Some(p)) => p,
                Err(e) if e.is_fatal() => return Err(anyhow::Error::new(e)),
                Err(e) => format!("could not be checked: {e}"),
            };
            if in_flight.contains(rec.source_key.as_str()) {
                problem.push_str(
                    "; a newer write of it was in flight when a run stopped (crash or kill): run again to resume, then verify",
                );
            }
            found.problems.push(Problem::of(&rec, problem));
        }
    }
    (found.checked, found.failed_in_manifest) = (checked, failed);
    found.source_unchecked = unchecked;
    Ok(())
}

/// Re-lists the source with the run's own selection: objects missing from the target
/// or the manifest, changed at the source since copied, or deleted at the source.
async fn against_source(
    args: &VerifyConfig,
    header: &Header,
    shards: Option<&[Shard]>,
    (target, target_loc): (&dyn Target, &Location),
    set: &ManifestSet,
) -> anyhow::Result<Vec<Problem>> {
    let source_loc = Location::parse(&header.source, Role::Source)?;
    let walk = walk_rules(target_loc, &args.manifests, header.selection.copy_links);
    let (source, _) = open_source(&source_loc, &args.stores, header.sqlite.clone(), walk).await?;
    source.check_access().await.map_err(anyhow::Error::new)?;
    let index = TargetIndex::build(target)
        .await
        .map_err(anyhow::Error::new)?;
    let seen: DiskMap<()> = DiskMap::new("the keys listed");
    let mut gaps = Vec::new();
    let mut selector = selection_of(header, target.prefix(), shards.is_none())?;
    let mut listing = source.list();
    while let Some(item) = listing.next().await {
        let item = item.map_err(|e| anyhow::Error::new(e.context("listing the source")))?;
        // Sharded manifests together cover their shards' keys, and only those.
        if let Some(shards) = shards {
            if !shards.iter().any(|s| s.contains(item.key())) {
                continue;
            }
        }
        let (key, target_key, info) = match selector.select(item) {
            Selected::Excluded => continue,
            Selected::Fatal(e) => return Err(anyhow::Error::new(e)),
            // Left out on purpose: its `skipped` record says so; not a gap.
            Selected::Reject(r) if r.kind == RejectKind::Skipped => {
                seen.insert(&r.source_key, &())?;
                continue;
            }
            Selected::Take { info, target_key } => (info.key.clone(), target_key, Some(info)),
            Selected::Reject(r) => (r.source_key, r.target_key, None),
        };
        seen.insert(&key, &())?;
        let recorded = set.get(&key)?.filter(|r| r.status.is_verified());
        let in_target = index
            .get(&target_key)
            .map_err(anyhow::Error::new)?
            .is_some();
        if let Some(problem) = gap(recorded.as_ref(), info.as_ref(), in_target) {
            gaps.push(Problem {
                source_key: key,
                target_key,
                problem,
            });
        }
    }
    // Migrated, but the source no longer lists it. A SQLite row whose blob was
    // replaced by its R2 URL (write-back) has moved, not gone.
    for rec in set.records() {
        let rec = rec?;
        let moved = rec.row.as_ref().is_some_and(|r| r.written);
        if rec.status.is_verified() && !moved && !seen.contains(&rec.source_key)? {
            let problem = "deleted at the source since it was migrated (still in the target)";
            gaps.push(Problem::of(&rec, problem.into()));
        }
    }
    Ok(gaps)
}

/// What is wrong with one listed source item, if anything: not recorded as migrated,
/// changed since it was copied, or missing from the target.
fn gap(
    recorded: Option<&ObjectRecord>,
    info: Option<&ObjectInfo>,
    in_target: bool,
) -> Option<String> {
    let Some(rec) = recorded else {
        return Some("in the source but not recorded as migrated in the manifest".into());
    };
    if let Some(Change::Changed(why)) = info.map(|i| change_since(Some(rec), i)) {
        return Some(why);
    }
    (!in_target).then(|| "in the source but missing from the target".into())
}

/// What verify found, to say and to put in the document.
#[derive(Default)]
struct Found {
    checked: usize,
    failed_in_manifest: usize,
    problems: Vec<Problem>,
    source_gaps: Vec<Problem>,
    /// Copied without a digest of the source's to check the bytes read against (an
    /// SSE-KMS/SSE-C ETag, a store without part sizes): R2 holds what was read, which
    /// only `--against-source --deep` style re-reading could compare further.
    source_unchecked: Vec<String>,
}

impl Found {
    fn say(&self, args: &VerifyConfig, header: &Header, out: &Output) {
        let (checked, problems) = (self.checked, &self.problems);
        out.say(&format!(
            "verify {}: checked {checked} objects{}: {} good, {} problems; {} recorded as failed (not checked)",
            header.target,
            if args.deep { " (deep: downloaded and re-hashed)" } else { "" },
            checked - problems.len(),
            problems.len(),
            self.failed_in_manifest
        ));
        for p in problems {
            out.say(&format!("  {}: {}", p.target_key, p.problem));
        }
        if !self.source_unchecked.is_empty() {
            out.say(&format!(
                "  {} copied without a source digest to check the bytes read against (source_checked: false; the source states none usable — SSE-KMS/SSE-C ETags, no part sizes); R2 holds what was read:",
                self.source_unchecked.len()
            ));
            for key in self.source_unchecked.iter().take(20) {
                out.say(&format!("    {key}"));
            }
            if self.source_unchecked.len() > 20 {
                out.say(&format!(
                    "    … and {} more (see --json)",
                    self.source_unchecked.len() - 20
                ));
            }
        }
        if args.against_source {
            out.say(&format!(
                "  against the source {}: {} gaps",
                header.source,
                self.source_gaps.len()
            ));
            for p in &self.source_gaps {
                out.say(&format!("  {}: {}", p.source_key, p.problem));
            }
        }
    }

    fn document(&self, args: &VerifyConfig, header: &Header, exit: Exit) -> serde_json::Value {
        json!({
            "command": "verify",
            "target": header.target,
            "manifests": args.manifests,
            "deep": args.deep,
            "checked": self.checked,
            "ok": self.checked - self.problems.len(),
            "problems": self.problems,
            "failed_in_manifest": self.failed_in_manifest,
            "source_unchecked": self.source_unchecked,
            "against_source": args.against_source.then_some(&self.source_gaps),
            "exit_code": exit as i32,
        })
    }
}
