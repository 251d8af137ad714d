//! `r2migrate report`: summarises manifests — objects and bytes by status, runs with
//! their throughput (and a chart of it over time), failures grouped by reason and listed
//! by key — reading only the files, never a store.

mod chart;
mod reasons;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::verify::merged_latest;
use super::{human_bytes, Output};
use crate::config::ReportConfig;
use crate::error::Exit;
use crate::manifest::{Manifest, ObjectRecord, SourceDeleted, Status};
use crate::table::Table;
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
    let unchecked: Vec<&str> = latest
        .iter()
        .filter(|r| r.status.is_verified() && r.source_checked == Some(false))
        .map(|r| r.source_key.as_str())
        .collect();
    let problems: Vec<&ObjectRecord> = latest
        .iter()
        .filter(|r| matches!(r.status, Status::Failed | Status::Conflict | Status::Kept))
        .collect();
    let by_reason = reasons::group(problems.iter().copied());
    let charts: Vec<chart::Throughput> = runs
        .iter()
        .filter(|r| r.command == "run" && r.objects > 0)
        .filter_map(|r| chart::throughput(&manifests, &r.run_id, &r.started_at, &r.finished_at))
        .collect();
    let h = &manifests[0].headers[0];
    out.say(&format!(
        "report: {} → {} ({} manifest(s), {} runs)",
        h.source,
        h.target,
        manifests.len(),
        runs.len()
    ));
    out.say("");
    out.say(&status_table(&latest).text(2));
    out.say(&format!(
        "  bytes in the target from this migration: {}",
        human_bytes(total_bytes)
    ));
    if tally.written_by_others > 0 {
        out.say(&format!(
            "  written by someone else during a run: {} (never overwritten)",
            tally.written_by_others
        ));
    }
    if !unchecked.is_empty() {
        out.say(&format!(
            "  copied without a source digest to check them against (source_checked: false): {}",
            unchecked.len()
        ));
    }
    say_runs_and_lists(&runs, &charts, &deleted, &by_reason, &failures, &out);
    out.document(&json!({
        "command": "report",
        "source": h.source,
        "target": h.target,
        "manifests": args.manifests,
        "objects": latest.len(),
        "counts": tally,
        "bytes_verified": total_bytes,
        "source_unchecked": unchecked,
        "runs": runs,
        "failures": failures,
        "failures_by_reason": by_reason,
        "throughput": charts,
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

/// Objects and bytes by their latest status; the rows add up to the total.
fn status_table(latest: &[ObjectRecord]) -> Table {
    let mut by: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
    for r in latest {
        let e = by.entry(status_label(r.status)).or_default();
        e.0 += 1;
        e.1 += r.size;
    }
    let mut t = Table::new(&["status", "objects", "bytes"]).numbers(&[1, 2]);
    for status in [
        Status::Copied,
        Status::Identical,
        Status::Skipped,
        Status::Conflict,
        Status::Failed,
        Status::RolledBack,
        Status::Kept,
    ] {
        let (n, bytes) = by.get(status_label(status)).copied().unwrap_or_default();
        t.row(&[
            status_label(status).to_string(),
            n.to_string(),
            human_bytes(bytes),
        ]);
    }
    let (n, bytes) = by.values().fold((0, 0), |a, v| (a.0 + v.0, a.1 + v.1));
    t.row(&["total".to_string(), n.to_string(), human_bytes(bytes)]);
    t
}

fn status_label(s: Status) -> &'static str {
    match s {
        Status::Copied => "copied",
        Status::Identical => "identical",
        Status::Skipped => "skipped",
        Status::Conflict => "conflict",
        Status::Failed => "failed",
        Status::RolledBack => "rolled back",
        Status::Kept => "kept (rollback left it)",
    }
}

/// "2026-12-01T16:01:13Z": a table has no room for nanoseconds.
fn to_the_second(t: &str) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    parse(t)
        .and_then(|d| d.format(fmt).ok())
        .unwrap_or_else(|| t.to_string())
}

fn runs_table(runs: &[RunSummary]) -> Table {
    let mut t = Table::new(&[
        "run",
        "command",
        "started",
        "objects",
        "copied",
        "seconds",
        "objects/s",
        "rate",
    ])
    .numbers(&[3, 4, 5, 6, 7]);
    for run in runs {
        t.row(&[
            run.run_id.clone(),
            run.command.clone(),
            to_the_second(&run.started_at),
            run.objects.to_string(),
            human_bytes(run.bytes_copied),
            format!("{:.1}", run.seconds),
            format!("{:.1}", run.objects_per_second),
            format!("{}/s", human_bytes(run.bytes_per_second as u64)),
        ]);
    }
    t
}

fn reasons_table(by_reason: &[reasons::Reason]) -> Table {
    let mut t =
        Table::new(&["status", "objects", "bytes", "reason", "for example"]).numbers(&[1, 2]);
    for g in by_reason {
        t.row(&[
            g.status.clone(),
            g.objects.to_string(),
            human_bytes(g.bytes),
            g.reason.clone(),
            g.example.clone(),
        ]);
    }
    t
}

fn say_runs_and_lists(
    runs: &[RunSummary],
    charts: &[chart::Throughput],
    deleted: &[&SourceDeleted],
    by_reason: &[reasons::Reason],
    failures: &[serde_json::Value],
    out: &Output,
) {
    out.say("");
    out.say(&runs_table(runs).text(2));
    for c in charts {
        out.say("");
        out.say(&format!(
            "  throughput of run {} ({:.1}s per line):",
            c.run_id, c.slice_seconds
        ));
        for line in chart::lines(c) {
            out.say(&format!("    {line}"));
        }
    }
    if !deleted.is_empty() {
        out.say("");
        out.say(&format!(
            "  deleted at the source, still in the target (as the latest run saw): {}",
            deleted.len()
        ));
        for d in deleted {
            out.say(&format!("    {} → {}", d.source_key, d.target_key));
        }
    }
    if !by_reason.is_empty() {
        out.say("");
        out.say("  failures by reason:");
        out.say(&reasons_table(by_reason).text(2));
        out.say("");
        for f in failures {
            out.say(&format!(
                "  {} {}: {}",
                f["status"].as_str().unwrap_or(""),
                f["source_key"].as_str().unwrap_or(""),
                f["error"].as_str().unwrap_or("")
            ));
        }
    }
}
