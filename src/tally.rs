//! Counts of outcomes by status, with bytes, shared by `run`, `plan` and `report`.

use serde::Serialize;

use crate::manifest::{ObjectRecord, Status};

#[derive(Debug, Default, Clone, Serialize)]
pub struct Tally {
    pub copied: u64,
    pub identical: u64,
    pub conflict: u64,
    pub skipped: u64,
    pub failed: u64,
    pub rolled_back: u64,
    pub kept: u64,
    pub bytes_copied: u64,
    /// Of the above, objects whose key someone else wrote during the run (a conditional
    /// write got 412): identical, conflict or skipped, with that reason.
    pub written_by_others: u64,
}

impl Tally {
    pub fn add(&mut self, r: &ObjectRecord) {
        match r.status {
            Status::Copied => {
                self.copied += 1;
                self.bytes_copied += r.size;
            }
            Status::Identical => self.identical += 1,
            Status::Conflict => self.conflict += 1,
            Status::Skipped => self.skipped += 1,
            Status::Failed => self.failed += 1,
            Status::RolledBack => self.rolled_back += 1,
            Status::Kept => self.kept += 1,
        }
        if r.error
            .as_deref()
            .is_some_and(|e| e.contains(crate::manifest::WRITTEN_BY_OTHERS))
        {
            self.written_by_others += 1;
        }
    }

    pub fn total(&self) -> u64 {
        self.copied
            + self.identical
            + self.conflict
            + self.skipped
            + self.failed
            + self.rolled_back
            + self.kept
    }

    /// Failures and conflicts make a run exit 1.
    pub fn has_problems(&self) -> bool {
        self.failed > 0 || self.conflict > 0
    }
}

/// A run id that sorts by time and is safe inside an object key.
pub fn new_run_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    format!(
        "{}-{:06x}",
        now.format(fmt).expect("formats"),
        rand::random::<u32>() & 0xff_ffff
    )
}
