//! `r2migrate report`: summarises manifests — counts by status, bytes, failures with
//! their errors, and throughput per run — reading only the files, never a store.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::verify::merged_latest;
use super::{human_bytes, Output};
use crate::config::ReportConfig;
use crate::error::Exit;
use crate::manifest::{Manifest, SourceDeleted, Status};
use crate::tally::Tally;

#[derive(Debug, Default, Serialize)]
struct RunSummary {
    run_id: String,
    command: String,
    started_at: String,
    finished_at: String,
    objects: u64,
    bytes_copied: u64,
    seconds: f64,
    objects_per_second: f64,
    bytes_per_second: f64,
}

fn parse(t: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(t, &Rfc3339).ok()
}

pub fn report(args: ReportConfig, out: Output) -> anyhow::Result<Exit> {
    let manifests = Manifest::load_all(&args.manifests)?;
    let latest = merged_latest(&manifests);
    let mut tally = Tally::default();
    for r in &latest {
        tally.add(r);
    }
    let total_bytes: u64 = latest
        .iter()
        .filter(|r| r.status.is_verified())
        .map(|r| r.size)
        .sum();
    let failures: Vec<_> = latest
        .iter()
        .filter(|r| matches!(r.status, Status::Failed | Status::Conflict | Status::Kept))
        .map(|r| json!({"source_key": r.source_key, "target_key": r.target_key, "status": r.status, "error": r.error}))
        .collect();
    let runs = runs(&manifests);
    let deleted = deleted_as_last_seen(&manifests);
    let h = &manifests[0].headers[0];
    out.say(&format!(
        "report: {} → {} ({} manifest(s), {} runs)",
        h.source,
        h.target,
        manifests.len(),
        runs.len()
    ));
    out.say(&format!(
        "  objects {}: copied {}, identical {}, skipped {}, conflicts {}, failed {}, rolled back {}, kept {}",
        latest.len(),
        tally.copied,
        tally.identical,
        tally.skipped,
        tally.conflict,
        tally.failed,
        tally.rolled_back,
        tally.kept
    ));
    out.say(&format!(
        "  bytes in the target from this migration: {}",
        human_bytes(total_bytes)
    ));
    say_runs_and_lists(&runs, &deleted, &failures, &out);
    out.document(&json!({
        "command": "report",
        "source": h.source,
        "target": h.target,
        "manifests": args.manifests,
        "objects": latest.len(),
        "counts": tally,
        "bytes_verified": total_bytes,
        "runs": runs,
        "failures": failures,
        "deleted_at_source": deleted.iter().map(|d| json!({"source_key": d.source_key, "target_key": d.target_key})).collect::<Vec<_>>(),
    }));
    Ok(Exit::Ok)
}

/// Throughput per run: from its header's start to its last record; oldest first.
fn runs(manifests: &[Manifest]) -> Vec<RunSummary> {
    let mut runs: BTreeMap<String, RunSummary> = BTreeMap::new();
    for m in manifests {
        for h in &m.headers {
            runs.entry(h.run_id.clone()).or_insert_with(|| RunSummary {
                run_id: h.run_id.clone(),
                command: h.command.clone().unwrap_or_else(|| "run".into()),
                started_at: h.started_at.clone(),
                finished_at: h.started_at.clone(),
                ..Default::default()
            });
        }
        for r in &m.records {
            let Some(run) = r.run_id.as_ref().and_then(|id| runs.get_mut(id)) else {
                continue;
            };
            run.objects += 1;
            if r.status == Status::Copied {
                run.bytes_copied += r.size;
            }
            if r.at > run.finished_at {
                run.finished_at = r.at.clone();
            }
        }
    }
    for run in runs.values_mut() {
        if let (Some(a), Some(b)) = (parse(&run.started_at), parse(&run.finished_at)) {
            run.seconds = (b - a).as_seconds_f64().max(0.0);
            if run.seconds > 0.0 {
                run.objects_per_second = run.objects as f64 / run.seconds;
                run.bytes_per_second = run.bytes_copied as f64 / run.seconds;
            }
        }
    }
    let mut runs: Vec<RunSummary> = runs.into_values().collect();
    runs.sort_by(|a, b| a.started_at.cmp(&b.started_at));
    runs
}

/// What each manifest's latest run found deleted at the source (left in the target).
fn deleted_as_last_seen(manifests: &[Manifest]) -> Vec<&SourceDeleted> {
    let mut deleted: Vec<&SourceDeleted> = Vec::new();
    for m in manifests {
        let last_run = m
            .headers
            .iter()
            .rev()
            .find(|h| h.command.as_deref().unwrap_or("run") == "run");
        if let Some(h) = last_run {
            deleted.extend(m.source_deleted.iter().filter(|d| d.run_id == h.run_id));
        }
    }
    deleted
}

fn say_runs_and_lists(
    runs: &[RunSummary],
    deleted: &[&SourceDeleted],
    failures: &[serde_json::Value],
    out: &Output,
) {
    for run in runs {
        out.say(&format!(
            "  {} {} at {}: {} objects, {} copied in {:.1}s ({:.1} objects/s, {}/s)",
            run.command,
            run.run_id,
            run.started_at,
            run.objects,
            human_bytes(run.bytes_copied),
            run.seconds,
            run.objects_per_second,
            human_bytes(run.bytes_per_second as u64)
        ));
    }
    if !deleted.is_empty() {
        out.say(&format!(
            "  deleted at the source, still in the target (as the latest run saw): {}",
            deleted.len()
        ));
        for d in deleted {
            out.say(&format!("    {} → {}", d.source_key, d.target_key));
        }
    }
    for f in failures {
        out.say(&format!(
            "  {} {}: {}",
            f["status"].as_str().unwrap_or(""),
            f["source_key"].as_str().unwrap_or(""),
            f["error"].as_str().unwrap_or("")
        ));
    }
}
