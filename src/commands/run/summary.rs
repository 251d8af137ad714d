//! The summarise stage: what a run did, said once in words (stdout, problems on stderr)
//! and once as the `--json` document, and the exit code it leads to.

use serde_json::json;

use super::record::Recorder;
use crate::commands::{human_bytes, Output};
use crate::config::CopyConfig;
use crate::error::Exit;

/// Problems and deleted keys shown in words at most (the manifest has them all).
const SHOWN: usize = 20;

pub(super) struct Summary<'a> {
    pub cfg: &'a CopyConfig,
    pub run_id: &'a str,
    pub recorder: &'a Recorder,
    pub already: u64,
    pub listed: u64,
    pub deleted: &'a [(String, String)],
    pub db_backup: Option<&'a std::path::Path>,
    pub retries: u64,
    /// How many objects were in flight, from start to end.
    pub in_flight: crate::concurrency::Span,
}

impl Summary<'_> {
    /// Items this run or an earlier one recorded; every listed item must be among them.
    fn recorded(&self) -> u64 {
        self.recorder.tally.total() + self.already
    }

    /// 1 for any failure, conflict, unwritten row or unrecorded object; else 0.
    pub fn exit(&self) -> Exit {
        let r = self.recorder;
        if r.tally.has_problems() || r.rows_not_written > 0 || self.listed > self.recorded() {
            Exit::Partial
        } else {
            Exit::Ok
        }
    }

    fn rates(&self) -> (f64, f64, f64) {
        let t = &self.recorder.tally;
        let elapsed = self.recorder.elapsed().as_secs_f64();
        let per = |n: u64| n as f64 / elapsed.max(1e-6);
        (elapsed, per(t.copied + t.identical), per(t.bytes_copied))
    }

    pub fn say(&self, out: &Output) {
        let (t, cfg, recorded, listed) =
            (&self.recorder.tally, self.cfg, self.recorded(), self.listed);
        let (elapsed, objects_per_s, bytes_per_s) = self.rates();
        out.say(&format!(
            "run {}: {} → {}",
            self.run_id, cfg.source, cfg.target
        ));
        out.say(&format!(
            "  copied {} ({}), identical {}, already verified {}, skipped {}, conflicts {}, failed {}",
            t.copied,
            human_bytes(t.bytes_copied),
            t.identical,
            self.already,
            t.skipped,
            t.conflict,
            t.failed
        ));
        if t.written_by_others > 0 {
            out.say(&format!(
                "  written by someone else during the run: {} (never overwritten; see each record, and --on-conflict)",
                t.written_by_others
            ));
        }
        out.say(&format!(
            "  listed {listed}, recorded {recorded} (this run, or verified by an earlier one)"
        ));
        if listed == 0 {
            out.warn(&format!(
                "  warning: nothing to migrate: {} lists no object the filters and shard keep; check the URL (a prefix names a folder: s3://bucket/photos/)",
                cfg.source
            ));
        }
        if listed != recorded {
            out.warn(&format!(
                "  internal error: {listed} objects were listed but {recorded} recorded; the run is not complete — re-run to resume, and report this bug"
            ));
        }
        out.say(&format!(
            "  {objects_per_s:.1} objects/s, {}/s over {elapsed:.2}s; manifest {}",
            human_bytes(bytes_per_s as u64),
            cfg.manifest.display()
        ));
        // Said only when the run moved its count: a short run stays where it started.
        let f = self.in_flight;
        if f.adaptive && (f.highest != f.start || f.backed_off > 0) {
            out.say(&format!(
                "  in flight: started at {}, went up to {}, down to {}, ended at {} (cut {} times when the stores made it retry; at most {}: --max-concurrency)",
                f.start, f.highest, f.lowest, f.last, f.backed_off, f.ceiling
            ));
        }
        self.say_rows_and_deleted(out);
        let problems = &self.recorder.problems;
        for p in problems.iter().take(SHOWN) {
            out.warn(&format!(
                "  {} {}: {}",
                p.status.as_str(),
                p.source_key,
                p.error.as_deref().unwrap_or("")
            ));
        }
        if problems.len() > SHOWN {
            out.warn(&format!(
                "  … and more: see `r2migrate report --manifest {}`",
                cfg.manifest.display()
            ));
        }
    }

    fn say_rows_and_deleted(&self, out: &Output) {
        if !self.deleted.is_empty() {
            out.say(&format!(
                "  deleted at the source since migrated (left in the target): {}",
                self.deleted.len()
            ));
            for (source_key, _) in self.deleted.iter().take(SHOWN) {
                out.say(&format!("    {source_key}"));
            }
        }
        let r = self.recorder;
        if r.rows_written + r.rows_not_written > 0 {
            out.say(&format!(
                "  rows rewritten {}, not rewritten {}{}",
                r.rows_written,
                r.rows_not_written,
                self.db_backup
                    .map(|b| format!("; database backed up to {}", b.display()))
                    .unwrap_or_default()
            ));
        }
    }

    pub fn document(&self) -> serde_json::Value {
        let (r, cfg) = (self.recorder, self.cfg);
        let (elapsed, objects_per_s, bytes_per_s) = self.rates();
        json!({
            "command": "run",
            "run_id": self.run_id,
            "source": cfg.source.canonical(),
            "target": cfg.target.canonical(),
            "manifest": cfg.manifest,
            "counts": r.tally,
            "already_verified": self.already,
            "listed": self.listed,
            "recorded": self.recorded(),
            "elapsed_seconds": elapsed,
            "objects_per_second": objects_per_s,
            "bytes_per_second": bytes_per_s,
            "retries": self.retries,
            "in_flight": self.in_flight,
            "deleted_at_source": self.deleted.iter().map(|(s, t)| json!({"source_key": s, "target_key": t})).collect::<Vec<_>>(),
            "rows_rewritten": r.rows_written,
            "rows_not_rewritten": r.rows_not_written,
            "db_backup": self.db_backup,
            "problems": r.problems.iter().map(|p| json!({
                "source_key": p.source_key, "target_key": p.target_key,
                "status": p.status, "error": p.error,
            })).collect::<Vec<_>>(),
            "exit_code": self.exit() as i32,
        })
    }
}
