//! Progress on stderr: a spinner with counts and bytes, shown only on a terminal and
//! never under `--quiet` or `--json`. Nothing else prints progress.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::output::{human_bytes, Output};

pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    pub fn new(out: &Output, what: &str) -> Progress {
        let bar = if out.quiet || out.json || !std::io::stderr().is_terminal() {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {prefix}: {msg}")
                    .expect("static template"),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        };
        bar.set_prefix(what.to_string());
        Progress { bar }
    }

    /// Shows the running totals.
    pub fn update(&self, done: u64, failed: u64, bytes: u64, elapsed: Duration) {
        let rate = bytes as f64 / elapsed.as_secs_f64().max(0.001);
        self.bar.set_message(format!(
            "{done} done, {failed} failed, {} ({}/s)",
            human_bytes(bytes),
            human_bytes(rate as u64)
        ));
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
