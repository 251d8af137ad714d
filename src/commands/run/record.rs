//! The record stage: this task alone appends to the manifest — every outcome, every
//! intent before the write it announces, and the SQLite write-back's answers — and keeps
//! the tally, the problems to show, and the progress line.

use std::path::PathBuf;
use std::time::Instant;

use tokio::sync::mpsc;

use super::{Msg, RunState};
use crate::config::CopyConfig;
use crate::location::Location;
use crate::manifest::{now_rfc3339, ManifestWriter, ObjectRecord, Status};
use crate::progress::Progress;
use crate::source::sqlite::writeback::{backup_path, Job, Writer, Written};
use crate::tally::Tally;
use crate::transfer::intent::IntentMsg;

/// Problems kept for the summary at most (the manifest has them all).
const PROBLEMS_KEPT: usize = 1000;

/// The SQLite write-back thread, when the source has `[source.write_back]`: fed verified
/// records, answering with rewritten ones.
pub(super) struct RowWriter {
    jobs: Option<std::sync::mpsc::Sender<Job<ObjectRecord>>>,
    answers: mpsc::Receiver<Written<ObjectRecord>>,
    /// Where the `VACUUM INTO` copy goes, unless `--no-db-backup`.
    pub db_backup: Option<PathBuf>,
}

impl RowWriter {
    pub fn start(cfg: &CopyConfig, run_id: &str) -> RowWriter {
        let (answer_tx, answers) = mpsc::channel(256);
        let sqlite = cfg.sqlite.as_ref().filter(|s| s.write_back.is_some());
        let (Location::Sqlite { path }, Some(s)) = (&cfg.source, sqlite) else {
            return RowWriter {
                jobs: None,
                answers,
                db_backup: None,
            };
        };
        let (jobs_tx, jobs_rx) = std::sync::mpsc::channel();
        let db_backup = (!cfg.no_db_backup).then(|| backup_path(path, run_id));
        let writer = Writer {
            db: path.clone(),
            settings: s.clone(),
            backup: db_backup.clone(),
        };
        std::thread::spawn(move || writer.run(jobs_rx, answer_tx));
        RowWriter {
            jobs: Some(jobs_tx),
            answers,
            db_backup,
        }
    }
}

pub(super) struct Recorder {
    pub writer: ManifestWriter,
    pub tally: Tally,
    pub problems: Vec<ObjectRecord>,
    pub rows_written: u64,
    pub rows_not_written: u64,
    /// Bytes of every object recorded this run, whatever the outcome (the progress).
    done_bytes: u64,
    progress: Progress,
    started: Instant,
}

impl Recorder {
    pub fn new(writer: ManifestWriter, progress: Progress) -> Recorder {
        Recorder {
            writer,
            tally: Tally::default(),
            problems: Vec::new(),
            rows_written: 0,
            rows_not_written: 0,
            done_bytes: 0,
            progress,
            started: Instant::now(),
        }
    }

    /// Until every producer and worker is done: records, intents and rewritten rows as
    /// they come; then the write-back's last answers.
    pub async fn record(
        &mut self,
        mut records: mpsc::Receiver<Msg>,
        mut intents: mpsc::Receiver<IntentMsg>,
        mut rows: RowWriter,
        state: &RunState,
    ) -> anyhow::Result<()> {
        loop {
            tokio::select! {
                msg = records.recv() => {
                    let Some(msg) = msg else { break };
                    self.on_record(msg, rows.jobs.as_ref(), state)?;
                }
                Some(w) = rows.answers.recv() => self.on_row(w)?,
                Some(first) = intents.recv() => self.on_intents(first, &mut intents).await?,
            }
        }
        drop(rows.jobs.take());
        while let Some(w) = rows.answers.recv().await {
            self.on_row(w)?;
        }
        Ok(())
    }

    /// Intents are on disk (fsync) before the writes they announce may start, so a
    /// crash or a power cut loses at most the objects in flight, which a resumed run
    /// finds again from their intents; outcome lines need no sync of their own. Every
    /// intent already waiting is written first and one sync covers them all (a group
    /// commit): with many copies in flight, one sync answers many.
    async fn on_intents(
        &mut self,
        first: IntentMsg,
        waiting: &mut mpsc::Receiver<IntentMsg>,
    ) -> anyhow::Result<()> {
        let mut answers = Vec::new();
        let mut next = Some(first);
        while let Some((mut line, done)) = next {
            self.writer.announce(&mut line)?;
            answers.push(done);
            // Each copier waits for its answer before it sends another, so this ends.
            next = waiting.try_recv().ok();
        }
        self.writer.sync_off_thread().await?;
        for done in answers {
            let _ = done.send(());
        }
        Ok(())
    }

    fn on_record(
        &mut self,
        msg: Msg,
        jobs: Option<&std::sync::mpsc::Sender<Job<ObjectRecord>>>,
        state: &RunState,
    ) -> anyhow::Result<()> {
        let (rec, row, append) = match msg {
            Msg::Record(rec, row) => (rec, row, true),
            Msg::Heal(rec, row) => (rec, Some(row), false),
        };
        if append {
            self.writer.append(&rec)?;
            self.tally.add(&rec);
            self.done_bytes += rec.size;
            if crate::testhooks::cancel_after(self.tally.total()) {
                state.interrupt();
            }
        }
        if let (Some(jobs), Some(row), true) = (jobs, row, rec.status.is_verified()) {
            let _ = jobs.send(Job {
                target_key: rec.target_key.clone(),
                item: rec.clone(),
                row,
            });
        }
        if matches!(rec.status, Status::Failed | Status::Conflict) {
            self.keep_problem(rec);
        }
        let t = &self.tally;
        self.progress.update(crate::progress::Recorded {
            done: t.total(),
            done_bytes: self.done_bytes,
            failed: t.failed,
            conflicts: t.conflict,
            copied_bytes: t.bytes_copied,
        });
        Ok(())
    }

    /// A write-back answer: the record again, with its row as now written (or why not).
    fn on_row(&mut self, written: Written<ObjectRecord>) -> anyhow::Result<()> {
        let mut rec = written.item;
        rec.row = Some(written.row);
        rec.error = written.error;
        rec.at = now_rfc3339();
        self.writer.append(&rec)?;
        if rec.row.as_ref().is_some_and(|r| r.written) {
            self.rows_written += 1;
        } else {
            self.rows_not_written += 1;
            self.keep_problem(rec);
        }
        Ok(())
    }

    fn keep_problem(&mut self, rec: ObjectRecord) {
        if self.problems.len() < PROBLEMS_KEPT {
            self.problems.push(rec);
        }
    }

    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    pub fn finish(&mut self) {
        self.progress.finish();
    }
}
