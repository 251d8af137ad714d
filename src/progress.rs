//! Progress on stderr. On a terminal: a bar of bytes done of bytes listed (the total
//! grows while the listing runs), objects done of listed, rate, percent and ETA once the
//! listing is complete, failed and conflict counts, and under it one line per large
//! object being uploaded with its parts. Not on a terminal (CI, a pod's log): one plain
//! status line every `--status-interval`, so a long run is never silent. Nothing under
//! `--quiet`; under `--json` only the status lines (stdout keeps the document).
//!
//! The copy path only stores its latest totals ([`Progress::update`] is a lock and a
//! copy); a ticker thread draws, so a slow terminal never slows a copy.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::{human_bytes, Output};
use crate::terminal;
use crate::transfer::inflight::{InFlight, Large};

/// How often a status line is printed when stderr is not a terminal, by default.
pub const DEFAULT_STATUS_INTERVAL: Duration = Duration::from_secs(10);

/// How often the terminal display is redrawn.
const REDRAW: Duration = Duration::from_millis(200);

/// At most this many large uploads are shown under the bar.
const LARGE_SHOWN: usize = 4;

/// What the listing stage counts, read live by the display (and by the run's summary).
#[derive(Debug, Clone, Default)]
pub struct ListingCounts {
    /// Items the selection kept, and their bytes.
    pub listed: Arc<AtomicU64>,
    pub listed_bytes: Arc<AtomicU64>,
    /// The listing reached its end (so `listed` is the total).
    pub complete: Arc<AtomicBool>,
    /// Items an earlier run already proves done, and their bytes.
    pub already: Arc<AtomicU64>,
    pub already_bytes: Arc<AtomicU64>,
}

/// What the record stage has recorded this run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Recorded {
    pub done: u64,
    pub done_bytes: u64,
    pub failed: u64,
    pub conflicts: u64,
    pub copied_bytes: u64,
}

/// Where the run stands.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// Objects with an outcome (or proven by an earlier run), and their bytes.
    pub done: u64,
    pub done_bytes: u64,
    pub failed: u64,
    pub conflicts: u64,
    /// Bytes copied this run (the rate).
    pub copied_bytes: u64,
    /// Items listed so far and their bytes, and whether the listing is complete.
    pub listed: u64,
    pub listed_bytes: u64,
    pub listing_done: bool,
}

impl Totals {
    pub fn of(r: Recorded, l: &ListingCounts) -> Totals {
        Totals {
            done: r.done + l.already.load(Ordering::Relaxed),
            done_bytes: r.done_bytes + l.already_bytes.load(Ordering::Relaxed),
            failed: r.failed,
            conflicts: r.conflicts,
            copied_bytes: r.copied_bytes,
            listed: l.listed.load(Ordering::Relaxed),
            listed_bytes: l.listed_bytes.load(Ordering::Relaxed),
            listing_done: l.complete.load(Ordering::Relaxed),
        }
    }

    /// How far along, 0..=1, once the listing is complete: by bytes when there are any
    /// (so one huge object moves the bar), else by objects.
    pub fn fraction(&self, in_flight_bytes: u64) -> Option<f64> {
        if !self.listing_done {
            return None;
        }
        let f = if self.listed_bytes > 0 {
            (self.done_bytes + in_flight_bytes) as f64 / self.listed_bytes as f64
        } else if self.listed > 0 {
            self.done as f64 / self.listed as f64
        } else {
            1.0
        };
        Some(f.clamp(0.0, 1.0))
    }

    /// "120 of 500 objects, 45.2 MiB of 180.0 MiB (25%), 12.3 MiB/s, ETA 32s, 2 failed,
    /// 1 conflicts". `in_flight_bytes`: parts of large objects already sent.
    pub fn words(&self, elapsed: Duration, in_flight_bytes: u64) -> String {
        let secs = elapsed.as_secs_f64().max(0.001);
        let rate = (self.copied_bytes + in_flight_bytes) as f64 / secs;
        let mut text = match self.fraction(in_flight_bytes) {
            Some(f) => format!(
                "{} of {} objects, {} of {} ({:.0}%)",
                self.done,
                self.listed,
                human_bytes(self.done_bytes + in_flight_bytes),
                human_bytes(self.listed_bytes),
                f * 100.0
            ),
            None => format!(
                "{} done, {} listed so far ({})",
                self.done,
                self.listed,
                human_bytes(self.listed_bytes)
            ),
        };
        text.push_str(&format!(", {}/s", human_bytes(rate as u64)));
        if let Some(left) = self.eta(elapsed, in_flight_bytes) {
            text.push_str(&format!(", ETA {}", eta(left)));
        }
        text.push_str(&format!(
            ", {} failed, {} conflicts",
            self.failed, self.conflicts
        ));
        text
    }

    /// The longer of the two estimates, by objects and by bytes: small objects are
    /// bound by requests, large ones by bandwidth.
    fn eta(&self, elapsed: Duration, in_flight_bytes: u64) -> Option<Duration> {
        let f = self.fraction(in_flight_bytes)?;
        if self.done >= self.listed && f >= 1.0 {
            return None;
        }
        let secs = elapsed.as_secs_f64();
        let by_objects = (self.done > 0)
            .then(|| secs / self.done as f64 * self.listed.saturating_sub(self.done) as f64);
        let by_bytes = (f > 0.0).then(|| secs / f * (1.0 - f));
        let left = by_objects
            .into_iter()
            .chain(by_bytes)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))?;
        Some(Duration::from_secs_f64(left))
    }
}

fn eta(d: Duration) -> String {
    // To the nearest second: 0.7 s left reads "1s", not "0s".
    let s = d.as_secs_f64().round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// "big/video.mp4: part 5 of 13, 40.0 MiB of 100.0 MiB".
fn large_words(l: &Large) -> String {
    format!(
        "{}: part {} of {}, {} of {}",
        l.key,
        l.parts_done,
        l.parts,
        human_bytes(l.sent),
        human_bytes(l.size)
    )
}

/// The latest recorded totals.
#[derive(Default)]
struct Shared {
    recorded: Recorded,
    /// The run's in-flight count, when the command has one to show.
    gauge: Option<Arc<crate::concurrency::Concurrency>>,
}

pub struct Progress {
    shared: Arc<Mutex<Shared>>,
    bar: Option<ProgressBar>,
    /// Dropping it wakes the ticker at once to stop (it sleeps on the other end).
    stop: Option<std::sync::mpsc::Sender<()>>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    pub fn new(
        out: &Output,
        what: &str,
        status_interval: Duration,
        listing: ListingCounts,
        in_flight: InFlight,
    ) -> Progress {
        let shared: Arc<Mutex<Shared>> = Arc::default();
        let started = Instant::now();
        if out.quiet {
            return Progress {
                shared,
                bar: None,
                stop: None,
                ticker: None,
            };
        }
        let on_terminal = !out.json && std::io::stderr().is_terminal();
        let bar = on_terminal.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(spinner_style());
            bar.set_prefix(what.to_string());
            terminal::set_active(Some(bar.clone()));
            bar
        });
        let (state, drawn, what) = (shared.clone(), bar.clone(), what.to_string());
        let every = if on_terminal { REDRAW } else { status_interval };
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let ticker = std::thread::spawn(move || loop {
            match stopped.recv_timeout(every) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                _ => return, // finished
            }
            let (recorded, gauge) = {
                let s = state.lock().expect("not poisoned");
                (s.recorded, s.gauge.clone())
            };
            let totals = Totals::of(recorded, &listing);
            let large = in_flight.snapshot();
            let sent: u64 = large.iter().map(|l| l.sent).sum();
            let mut words = totals.words(started.elapsed(), sent);
            if let Some(g) = gauge {
                let (now, limit) = g.gauge();
                words.push_str(&format!(", {now} in flight (of {limit})"));
            }
            match &drawn {
                Some(bar) => draw(bar, &totals, sent, &words, &large),
                None => {
                    let mut line = format!("status {what} {}: {words}", eta(started.elapsed()));
                    if !large.is_empty() {
                        let each: Vec<String> = large.iter().map(large_words).collect();
                        line.push_str(&format!("; uploading {}", each.join("; ")));
                    }
                    eprintln!("{line}");
                }
            }
        });
        Progress {
            shared,
            bar,
            stop: Some(stop),
            ticker: Some(ticker),
        }
    }

    /// Shows the run's in-flight count (and its limit) on each line.
    pub fn showing(self, gauge: Arc<crate::concurrency::Concurrency>) -> Progress {
        self.shared.lock().expect("not poisoned").gauge = Some(gauge);
        self
    }

    /// Stores the running totals; the ticker shows them.
    pub fn update(&self, recorded: Recorded) {
        self.shared.lock().expect("not poisoned").recorded = recorded;
    }

    /// Clears the bar (no half-drawn line is left) and stops the status lines.
    pub fn finish(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            terminal::set_active(None);
        }
    }
}

impl Drop for Progress {
    /// An error that ends the run early still leaves a clean terminal.
    fn drop(&mut self) {
        self.finish();
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {elapsed_precise} {prefix}: {msg}")
        .expect("static template")
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {elapsed_precise} {prefix} [{bar:30}] {msg}")
        .expect("static template")
        .progress_chars("=> ")
}

/// One redraw: the bar once the total is known, the words, the large uploads under it.
fn draw(bar: &ProgressBar, totals: &Totals, sent: u64, words: &str, large: &[Large]) {
    let mut msg = words.to_string();
    for l in large.iter().take(LARGE_SHOWN) {
        msg.push_str(&format!("\n    {}", large_words(l)));
    }
    if large.len() > LARGE_SHOWN {
        msg.push_str(&format!(
            "\n    and {} more large objects",
            large.len() - LARGE_SHOWN
        ));
    }
    if let Some(f) = totals.fraction(sent) {
        if bar.length().is_none() {
            bar.set_style(bar_style());
        }
        bar.set_length(1000);
        bar.set_position((f * 1000.0) as u64);
    }
    bar.set_message(msg);
    bar.tick();
    terminal::mark_drawn();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_and_eta_once_the_listing_is_complete() {
        let mut t = Totals {
            done: 25,
            done_bytes: 10 << 20,
            failed: 1,
            conflicts: 2,
            copied_bytes: 10 << 20,
            listed: 100,
            listed_bytes: 40 << 20,
            listing_done: false,
        };
        let early = t.words(Duration::from_secs(10), 0);
        assert!(
            early.contains("25 done, 100 listed so far (40.0 MiB)") && !early.contains("ETA"),
            "{early}"
        );
        t.listing_done = true;
        let later = t.words(Duration::from_secs(10), 0);
        assert!(
            later.contains("25 of 100 objects, 10.0 MiB of 40.0 MiB (25%)"),
            "{later}"
        );
        assert!(later.contains("ETA 30s"), "{later}");
        assert!(
            later.contains("1 failed, 2 conflicts") && later.contains("1.0 MiB/s"),
            "{later}"
        );
        assert_eq!(eta(Duration::from_secs(3725)), "1h02m");
        assert_eq!(eta(Duration::from_millis(700)), "1s");
    }

    #[test]
    fn a_large_object_in_flight_moves_the_percent_and_the_eta() {
        // One 100 MiB object, 40 MiB of its parts sent after 10 s.
        let t = Totals {
            listed: 1,
            listed_bytes: 100 << 20,
            listing_done: true,
            ..Default::default()
        };
        assert_eq!(t.fraction(40 << 20), Some(0.4));
        let w = t.words(Duration::from_secs(10), 40 << 20);
        assert!(w.contains("40.0 MiB of 100.0 MiB (40%)"), "{w}");
        assert!(w.contains("ETA 15s") && w.contains("4.0 MiB/s"), "{w}");
    }

    #[test]
    fn eta_takes_the_slower_of_objects_and_bytes() {
        // Half the bytes but a tenth of the objects after 10 s: the objects say 90 s more.
        let t = Totals {
            done: 10,
            done_bytes: 50,
            listed: 100,
            listed_bytes: 100,
            listing_done: true,
            ..Default::default()
        };
        assert_eq!(
            t.eta(Duration::from_secs(10), 0),
            Some(Duration::from_secs(90))
        );
        let finished = Totals {
            done: 100,
            done_bytes: 100,
            ..t
        };
        assert_eq!(finished.eta(Duration::from_secs(10), 0), None);
    }

    #[test]
    fn a_large_upload_reads_as_its_parts() {
        let l = Large {
            key: "big.bin".into(),
            size: 100 << 20,
            sent: 40 << 20,
            parts_done: 5,
            parts: 13,
        };
        assert_eq!(
            large_words(&l),
            "big.bin: part 5 of 13, 40.0 MiB of 100.0 MiB"
        );
    }
}
