//! `r2migrate report`: summarises manifests — objects and bytes by status, runs with
//! their throughput (and a chart of it over time), failures grouped by reason and listed
//! by key — reading only the files, never a store.

mod chart;
mod reasons;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{human_bytes, Output};
use crate::config::ReportConfig;
use crate::error::Exit;
use crate::manifest::{Line, ManifestSet, ObjectRecord, SourceDeleted, Status, Word};
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

/// Per run, from its records: how many, the bytes copied, the last record's time.
#[derive(Default)]
struct RunLines {
    objects: u64,
    bytes_copied: u64,
    last_at: Option<String>,
}

/// What the one pass over the manifests gathers beside the records.
#[derive(Default)]
struct Gathered {
    runs: HashMap<String, RunLines>,
    /// Per manifest, the `source_deleted` lines of the last run that wrote any.
    deleted: HashMap<usize, (String, Vec<SourceDeleted>)>,
}

impl Gathered {
    fn line(&mut self, file: usize, line: &Line) {
        match line {
            Line::Object(r) => {
                let run = self
                    .runs
                    .entry(r.run_id.clone().unwrap_or_default())
                    .or_default();
                run.objects += 1;
                if r.status == Status::Copied {
                    run.bytes_copied += r.size;
                }
                if run.last_at.as_ref().is_none_or(|at| r.at > *at) {
                    run.last_at = Some(r.at.clone());
                }
            }
            Line::SourceDeleted(d) => {
                let (run, lines) = self.deleted.entry(file).or_default();
                if *run != d.run_id {
                    (*run, *lines) = (d.run_id.clone(), Vec::new());
                }
                lines.push(d.clone());
            }
            _ => {}
        }
    }
}

/// The latest records' counts, bytes and problems, from one walk over them.
#[derive(Default)]
struct Latest {
    objects: u64,
    tally: Tally,
    by_status: BTreeMap<&'static str, (u64, u64)>,
    total_bytes: u64,
    unchecked: Vec<String>,
    problems: Vec<ObjectRecord>,
}

impl Latest {
    fn add(&mut self, r: ObjectRecord) {
        self.objects += 1;
        self.tally.add(&r);
        let e = self.by_status.entry(status_label(r.status)).or_default();
        e.0 += 1;
        e.1 += r.size;
        if r.status.is_verified() {
            self.total_bytes += r.size;
            if r.source_checked == Some(false) {
                self.unchecked.push(r.source_key.clone());
            }
        }
        if matches!(r.status, Status::Failed | Status::Conflict | Status::Kept) {
            self.problems.push(r);
        }
    }
}

pub fn report(args: ReportConfig, out: Output) -> anyhow::Result<Exit> {
    // One pass over the lines (the last word per object kept on disk), one walk over
    // those words, and one more pass for the throughput charts: flat at any size.
    let mut gathered = Gathered::default();
    let set = ManifestSet::read(&args.manifests, Word::Last, |file, line| {
        gathered.line(file, line);
        Ok(())
    })?;
    let mut latest = Latest::default();
    for r in set.records() {
        latest.add(r?);
    }
    let failures: Vec<_> = latest
        .problems
        .iter()
        .map(|r| json!({"source_key": r.source_key, "target_key": r.target_key, "status": r.status, "error": r.error}))
        .collect();
    let runs = runs(&set, &gathered);
    let deleted = deleted_as_last_seen(&set, &mut gathered);
    let by_reason = reasons::group(&latest.problems);
    let charted: Vec<(&str, &str, &str)> = runs
        .iter()
        .filter(|r| r.command == "run" && r.objects > 0)
        .map(|r| {
            (
                r.run_id.as_str(),
                r.started_at.as_str(),
                r.finished_at.as_str(),
            )
        })
        .collect();
    let charts = chart::throughputs(&args.manifests, &charted)?;
    let h = set.first_header();
    out.say(&format!(
        "report: {} → {} ({} manifest(s), {} runs)",
        h.source,
        h.target,
        set.manifests.len(),
        runs.len()
    ));
    out.say("");
    out.say(&status_table(&latest.by_status).text(2));
    out.say(&format!(
        "  bytes in the target from this migration: {}",
        human_bytes(latest.total_bytes)
    ));
    if latest.tally.written_by_others > 0 {
        out.say(&format!(
            "  written by someone else during a run: {} (never overwritten)",
            latest.tally.written_by_others
        ));
    }
    if !latest.unchecked.is_empty() {
        out.say(&format!(
            "  copied without a source digest to check them against (source_checked: false): {}",
            latest.unchecked.len()
        ));
    }
    say_runs_and_lists(&runs, &charts, &deleted, &by_reason, &failures, &out);
    out.document(&json!({
        "command": "report",
        "source": h.source,
        "target": h.target,
        "manifests": args.manifests,
        "objects": latest.objects,
        "counts": latest.tally,
        "bytes_verified": latest.total_bytes,
        "source_unchecked": latest.unchecked,
        "runs": runs,
        "failures": failures,
        "failures_by_reason": by_reason,
        "throughput": charts,
        "deleted_at_source": deleted.iter().map(|d| json!({"source_key": d.source_key, "target_key": d.target_key})).collect::<Vec<_>>(),
    }));
    Ok(Exit::Ok)
}

/// Throughput per run: from its header's start to its last record; oldest first.
fn runs(set: &ManifestSet, gathered: &Gathered) -> Vec<RunSummary> {
    let mut runs: BTreeMap<String, RunSummary> = BTreeMap::new();
    for h in set.headers() {
        runs.entry(h.run_id.clone()).or_insert_with(|| {
            let lines = gathered.runs.get(&h.run_id);
            let last = lines.and_then(|l| l.last_at.clone());
            RunSummary {
                run_id: h.run_id.clone(),
                command: h.command.clone().unwrap_or_else(|| "run".into()),
                started_at: h.started_at.clone(),
                finished_at: last
                    .filter(|at| *at > h.started_at)
                    .unwrap_or_else(|| h.started_at.clone()),
                objects: lines.map_or(0, |l| l.objects),
                bytes_copied: lines.map_or(0, |l| l.bytes_copied),
                ..Default::default()
            }
        });
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
fn deleted_as_last_seen(set: &ManifestSet, gathered: &mut Gathered) -> Vec<SourceDeleted> {
    let mut deleted = Vec::new();
    for (file, (_, headers)) in set.manifests.iter().enumerate() {
        let last_run = headers
            .iter()
            .rev()
            .find(|h| h.command.as_deref().unwrap_or("run") == "run");
        if let (Some(h), Some((run, lines))) = (last_run, gathered.deleted.remove(&file)) {
            if run == h.run_id {
                deleted.extend(lines);
            }
        }
    }
    deleted
}

/// Objects and bytes by their latest status; the rows add up to the total.
fn status_table(by: &BTreeMap<&'static str, (u64, u64)>) -> Table {
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
    deleted: &[SourceDeleted],
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
