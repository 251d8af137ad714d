//! Progress on stderr. On a terminal: a spinner line with counts, bytes, rate and, once
//! the listing is complete, percent and ETA. Not on a terminal (CI, a pod's log): one
//! plain status line every `--status-interval`, so a long run is never silent. Nothing
//! under `--quiet`; under `--json` only the status lines (stdout keeps the document).

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::output::{human_bytes, Output};

/// How often a status line is printed when stderr is not a terminal, by default.
pub const DEFAULT_STATUS_INTERVAL: Duration = Duration::from_secs(10);

/// Where the run stands.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// Objects with an outcome (or proven by an earlier run).
    pub done: u64,
    pub failed: u64,
    pub bytes: u64,
    /// Items listed so far, and whether the listing is complete.
    pub listed: u64,
    pub listing_done: bool,
}

impl Totals {
    /// "120 of 500 (24%), 2 failed, 45.2 MiB, 12.3 MiB/s, ETA 32s".
    pub fn words(&self, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64().max(0.001);
        let rate = self.bytes as f64 / secs;
        let mut text = if self.listing_done && self.listed > 0 {
            let pct = self.done as f64 * 100.0 / self.listed as f64;
            format!("{} of {} ({pct:.0}%)", self.done, self.listed)
        } else {
            format!("{} done, {} listed so far", self.done, self.listed)
        };
        text.push_str(&format!(
            ", {} failed, {} ({}/s)",
            self.failed,
            human_bytes(self.bytes),
            human_bytes(rate as u64)
        ));
        if self.listing_done && self.done > 0 && self.done < self.listed {
            let per_object = secs / self.done as f64;
            let left = Duration::from_secs_f64(per_object * (self.listed - self.done) as f64);
            text.push_str(&format!(", ETA {}", eta(left)));
        }
        text
    }
}

fn eta(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

enum Mode {
    Bar(ProgressBar),
    /// The latest words, printed by a ticker thread every interval.
    Lines(Arc<Mutex<Option<String>>>),
    Hidden,
}

pub struct Progress {
    mode: Mode,
    started: Instant,
}

impl Progress {
    pub fn new(out: &Output, what: &str, status_interval: Duration) -> Progress {
        let started = Instant::now();
        let mode = if out.quiet {
            Mode::Hidden
        } else if !out.json && std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {prefix}: {msg}")
                    .expect("static template"),
            );
            bar.set_prefix(what.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            Mode::Bar(bar)
        } else {
            let latest: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(Some(String::new())));
            let shared = latest.clone();
            let what = what.to_string();
            std::thread::spawn(move || loop {
                std::thread::sleep(status_interval);
                let Some(words) = shared.lock().expect("not poisoned").clone() else {
                    return; // finished
                };
                let words = if words.is_empty() {
                    "starting".into()
                } else {
                    words
                };
                eprintln!("status {what} {}: {words}", eta(started.elapsed()));
            });
            Mode::Lines(latest)
        };
        Progress { mode, started }
    }

    /// Shows the running totals.
    pub fn update(&self, totals: Totals) {
        let words = totals.words(self.started.elapsed());
        match &self.mode {
            Mode::Bar(bar) => bar.set_message(words),
            Mode::Lines(latest) => {
                let mut l = latest.lock().expect("not poisoned");
                if l.is_some() {
                    *l = Some(words);
                }
            }
            Mode::Hidden => {}
        }
    }

    /// Clears the bar, or stops the status lines.
    pub fn finish(&self) {
        match &self.mode {
            Mode::Bar(bar) => bar.finish_and_clear(),
            Mode::Lines(latest) => *latest.lock().expect("not poisoned") = None,
            Mode::Hidden => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_and_eta_once_the_listing_is_complete() {
        let mut t = Totals {
            done: 25,
            failed: 1,
            bytes: 10 << 20,
            listed: 100,
            listing_done: false,
        };
        let early = t.words(Duration::from_secs(10));
        assert!(
            early.contains("25 done, 100 listed so far") && !early.contains("ETA"),
            "{early}"
        );
        t.listing_done = true;
        let later = t.words(Duration::from_secs(10));
        assert!(later.contains("25 of 100 (25%)"), "{later}");
        assert!(later.contains("ETA 30s"), "{later}");
        assert!(
            later.contains("1 failed") && later.contains("1.0 MiB/s"),
            "{later}"
        );
        assert_eq!(eta(Duration::from_secs(3725)), "1h02m");
    }
}
