//! How many objects a run has in flight. `--concurrency N` alone fixes it at N (SPEC's
//! meaning). Otherwise the run finds it as TCP finds its window: it starts at 32 and
//! doubles while throughput grows with it (slow start), then probes up an eighth at a
//! time, keeping only what pays; any retry the stores force (429/SlowDown, 5xx,
//! timeouts, resets) cuts it by a third. Far from R2, round trips — not bandwidth — bound
//! small objects, so in-flight count is speed; on loopback more buys nothing and it stays
//! put. Always within the ceiling (`--max-concurrency`); large objects stay within the
//! memory budget whatever the count.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::pacer::Pacer;

/// Where an adaptive run starts (SPEC's default `--concurrency`).
pub const START: usize = 32;
/// The default ceiling of an adaptive run: above s5cmd's 256 workers. R2 takes about
/// 4,000 writes a second to a bucket; a run that gets there is throttled and backs off.
pub const DEFAULT_CEILING: usize = 512;
/// Doubling is kept only when throughput grows at least this much...
const SLOW_START_GAIN: f64 = 1.2;
/// ...and an eighth more only when it grows at least this much.
const PROBE_GAIN: f64 = 1.04;
/// A window is at least this long, and at least this many objects...
const MIN_WINDOW: Duration = Duration::from_millis(50);
const MIN_OBJECTS: u64 = 8;
const MIB: f64 = 1024.0 * 1024.0;

/// How a run decides its in-flight count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Exactly this many.
    Fixed(usize),
    /// From `start`, found as the run goes, never above `ceiling`.
    Adaptive { start: usize, ceiling: usize },
}

impl Mode {
    /// From `--concurrency` and `--max-concurrency` (or the file's): the first alone is
    /// fixed, as SPEC says; the second (or neither) lets the run find its count, from
    /// the first (or 32) up to the second (or 512).
    pub fn resolve(concurrency: Option<usize>, max: Option<usize>) -> anyhow::Result<Mode> {
        let mode = match (concurrency, max) {
            (Some(n), None) => Mode::Fixed(n),
            (start, ceiling) => {
                let ceiling = ceiling.unwrap_or(DEFAULT_CEILING);
                let start = start.unwrap_or(START.min(ceiling));
                if start > ceiling {
                    return Err(crate::error::usage(format!(
                        "--concurrency {start} is above --max-concurrency {ceiling}: the run starts at the first and never goes above the second"
                    )));
                }
                Mode::Adaptive { start, ceiling }
            }
        };
        for (flag, n) in [("--concurrency", concurrency), ("--max-concurrency", max)] {
            if let Some(n) = n.filter(|n| !(1..=4096).contains(n)) {
                return Err(crate::error::usage(format!(
                    "{flag} {n}: use a number from 1 to 4096"
                )));
            }
        }
        Ok(mode)
    }

    /// Where the run starts: also what the memory budget and the other commands (verify,
    /// rollback) go by.
    pub fn start(&self) -> usize {
        match *self {
            Mode::Fixed(n) => n,
            Mode::Adaptive { start, .. } => start,
        }
    }

    /// The most it may reach.
    pub fn ceiling(&self) -> usize {
        match *self {
            Mode::Fixed(n) => n,
            Mode::Adaptive { ceiling, .. } => ceiling,
        }
    }
}

/// The work one window saw finish.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub objects: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    /// Requests the stores made us send again in it.
    pub retries: u64,
}

impl Window {
    /// Work per second: an object counts one and so does each MiB — small objects cost
    /// requests, large ones bytes.
    fn rate(&self) -> f64 {
        (self.objects as f64 + self.bytes as f64 / MIB) / self.elapsed.as_secs_f64().max(1e-3)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    SlowStart,
    Probing,
}

/// The decision alone, no clock and no semaphore: the next limit after a window.
#[derive(Debug, Clone)]
pub struct Controller {
    limit: usize,
    ceiling: usize,
    phase: Phase,
    /// Before the last increase: the limit and the rate measured at it.
    before: Option<(usize, f64)>,
}

impl Controller {
    pub fn new(start: usize, ceiling: usize) -> Controller {
        Controller {
            limit: start.clamp(1, ceiling.max(1)),
            ceiling: ceiling.max(1),
            phase: Phase::SlowStart,
            before: None,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The limit for the next window, from what the last one (run at `limit`) did.
    pub fn after(&mut self, w: Window) -> usize {
        if w.retries > 0 {
            // The stores push back: a third off, and no more doubling.
            self.limit = (self.limit * 2 / 3).max(1);
            self.phase = Phase::Probing;
            self.before = None;
            return self.limit;
        }
        let rate = w.rate();
        let gain = match self.phase {
            Phase::SlowStart => SLOW_START_GAIN,
            Phase::Probing => PROBE_GAIN,
        };
        if let Some((lower, then)) = self.before.take() {
            if rate < then * gain {
                // More in flight did not pay: back to where it was, and from now on
                // only small steps.
                self.limit = lower;
                self.phase = Phase::Probing;
                return self.limit;
            }
        }
        let next = match self.phase {
            Phase::SlowStart => self.limit * 2,
            Phase::Probing => self.limit + (self.limit / 8).max(1),
        }
        .min(self.ceiling);
        if next > self.limit {
            self.before = Some((self.limit, rate));
            self.limit = next;
        }
        self.limit
    }
}

/// What the run's summary says about its in-flight count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Span {
    pub adaptive: bool,
    pub start: usize,
    pub ceiling: usize,
    pub lowest: usize,
    pub highest: usize,
    pub last: usize,
    /// Times it was lowered because the stores made us retry.
    pub backed_off: u64,
}

struct Measure {
    ctl: Controller,
    /// Permits to forget as they come back (the limit went down).
    debt: usize,
    /// Completions to let pass before the next window starts: the objects in flight
    /// when the limit changed ran under the old one.
    settle: u64,
    started: Instant,
    objects: u64,
    bytes: u64,
    retries_at_start: u64,
    lowest: usize,
    highest: usize,
    backed_off: u64,
}

impl Measure {
    /// A new window from now, its retries counted from `retries`.
    fn restart(&mut self, retries: u64) {
        self.started = Instant::now();
        self.objects = 0;
        self.bytes = 0;
        self.retries_at_start = retries;
    }
}

/// The run's in-flight count: permits for the producer, a measure of each object's end.
pub struct Concurrency {
    permits: Arc<Semaphore>,
    mode: Mode,
    in_flight: AtomicUsize,
    measure: Mutex<Measure>,
    /// The stores' pacers, whose retries are the stores pushing back.
    pacers: Vec<Arc<Pacer>>,
}

/// One object's place in flight; give it back with [`Slot::done`] (or drop it).
pub struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    owner: Arc<Concurrency>,
}

impl Concurrency {
    /// Counting the retries of `pacers` (the stores this count's objects reach).
    pub fn new(mode: Mode, pacers: Vec<Arc<Pacer>>) -> Arc<Concurrency> {
        let ctl = Controller::new(mode.start(), mode.ceiling());
        let limit = ctl.limit();
        let at_start = retried(&pacers);
        Arc::new(Concurrency {
            permits: Arc::new(Semaphore::new(limit)),
            mode,
            in_flight: AtomicUsize::new(0),
            measure: Mutex::new(Measure {
                ctl,
                debt: 0,
                settle: 0,
                started: Instant::now(),
                objects: 0,
                bytes: 0,
                retries_at_start: at_start,
                lowest: limit,
                highest: limit,
                backed_off: 0,
            }),
            pacers,
        })
    }

    /// Waits for a place in flight.
    pub async fn acquire(self: &Arc<Self>) -> Slot {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Slot {
            permit: Some(permit),
            owner: self.clone(),
        }
    }

    /// Runs `work` on each item, as many at once as this count allows (fixed or found),
    /// in the order they finish. `work` answers its result and the bytes it moved.
    pub fn run_each<I, T, F, Fut>(
        self: &Arc<Self>,
        items: I,
        work: F,
    ) -> impl futures::Stream<Item = T> + use<'_, I, T, F, Fut>
    where
        I: IntoIterator,
        F: Fn(I::Item) -> Fut,
        Fut: std::future::Future<Output = (T, u64)>,
    {
        use futures::StreamExt;
        let widest = self.mode.ceiling();
        futures::stream::iter(items)
            .map(move |item| {
                let job = work(item);
                async move {
                    let slot = self.acquire().await;
                    let (out, bytes) = job.await;
                    slot.done(bytes);
                    out
                }
            })
            .buffer_unordered(widest)
    }

    /// (objects in flight now, the limit now): for the progress line.
    pub fn gauge(&self) -> (usize, usize) {
        let limit = self.measure.lock().expect("not poisoned").ctl.limit();
        (self.in_flight.load(Ordering::Relaxed), limit)
    }

    pub fn span(&self) -> Span {
        let m = self.measure.lock().expect("not poisoned");
        Span {
            adaptive: matches!(self.mode, Mode::Adaptive { .. }),
            start: self.mode.start(),
            ceiling: self.mode.ceiling(),
            lowest: m.lowest,
            highest: m.highest,
            last: m.ctl.limit(),
            backed_off: m.backed_off,
        }
    }

    /// One object left flight having moved `bytes` (0 if it copied nothing).
    fn finished(&self, permit: OwnedSemaphorePermit, bytes: u64) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let mut m = self.measure.lock().expect("not poisoned");
        if m.debt > 0 {
            m.debt -= 1;
            permit.forget();
        } else {
            drop(permit);
        }
        if matches!(self.mode, Mode::Fixed(_)) {
            return;
        }
        let retries = retried(&self.pacers);
        if m.settle > 0 {
            // What finishes now ran under the old limit: not measured, and its retries
            // do not cut again (once a turn, as TCP halves once a round trip).
            m.settle -= 1;
            if m.settle == 0 {
                m.restart(retries);
            }
            return;
        }
        m.objects += 1;
        m.bytes += bytes;
        let window = Window {
            objects: m.objects,
            bytes: m.bytes,
            elapsed: m.started.elapsed(),
            retries: retries - m.retries_at_start,
        };
        let enough = window.objects >= (m.ctl.limit() as u64 / 2).max(MIN_OBJECTS)
            && window.elapsed >= MIN_WINDOW;
        if window.retries == 0 && !enough {
            return;
        }
        let was = m.ctl.limit();
        let now = m.ctl.after(window);
        if now > was {
            let give = now - was;
            let repaid = give.min(m.debt);
            m.debt -= repaid;
            self.permits.add_permits(give - repaid);
        } else if now < was {
            m.debt += was - now;
        }
        if now != was {
            tracing::debug!(
                "in flight: {was} -> {now} ({:.0} objects+MiB/s over {} objects, {} retries)",
                window.rate(),
                window.objects,
                window.retries
            );
        }
        if window.retries > 0 {
            m.backed_off += 1;
        }
        m.lowest = m.lowest.min(now);
        m.highest = m.highest.max(now);
        m.settle = self.in_flight.load(Ordering::Relaxed) as u64;
        m.restart(retries);
    }
}

/// Requests the pacers have sent again so far.
fn retried(pacers: &[Arc<Pacer>]) -> u64 {
    pacers
        .iter()
        .map(|p| p.retried.load(Ordering::Relaxed))
        .sum()
}

impl Slot {
    /// The object is done: `bytes` copied.
    pub fn done(mut self, bytes: u64) {
        if let Some(p) = self.permit.take() {
            self.owner.finished(p, bytes);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(p) = self.permit.take() {
            self.owner.finished(p, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store at a distance: each object takes `rtt` while fewer than `capacity` are in
    /// flight; beyond, the extra wait in a queue (throughput flat).
    fn window_at(limit: usize, rtt: f64, capacity: usize) -> Window {
        let per_sec = limit.min(capacity) as f64 / rtt;
        let objects = (limit as u64).max(8) * 2;
        Window {
            objects,
            bytes: objects * 16 * 1024,
            elapsed: Duration::from_secs_f64(objects as f64 / per_sec),
            retries: 0,
        }
    }

    #[test]
    fn far_from_the_store_it_doubles_up_to_what_the_distance_allows() {
        let mut c = Controller::new(START, DEFAULT_CEILING);
        let mut seen = vec![c.limit()];
        for _ in 0..20 {
            let l = c.limit();
            seen.push(c.after(window_at(l, 0.08, 300)));
        }
        // 32, 64, 128, 256 (each pays), 512 (does not) → back to 256, then small probes.
        assert_eq!(&seen[..5], &[32, 64, 128, 256, 512], "{seen:?}");
        assert_eq!(seen[5], 256, "{seen:?}");
        // Settled near the 300 the store can take: never far below, at most an eighth
        // and a step above (those wait in its queue, costing nothing but memory).
        assert!(
            seen[6..].iter().all(|&l| (256..=375).contains(&l)),
            "{seen:?}"
        );
    }

    #[test]
    fn where_more_in_flight_buys_nothing_it_stays_put() {
        let mut c = Controller::new(START, DEFAULT_CEILING);
        for _ in 0..20 {
            let l = c.limit();
            c.after(window_at(l, 0.001, 32));
        }
        assert!((32..=36).contains(&c.limit()), "{}", c.limit());
    }

    #[test]
    fn throttles_cut_it_by_a_third_and_it_climbs_back_after() {
        let mut c = Controller::new(START, DEFAULT_CEILING);
        for _ in 0..3 {
            let l = c.limit();
            c.after(window_at(l, 0.08, 1000));
        }
        assert_eq!(c.limit(), 256);
        let throttled = Window {
            retries: 3,
            ..window_at(256, 0.08, 1000)
        };
        assert_eq!(c.after(throttled), 170);
        assert_eq!(c.after(throttled), 113);
        // Calm again: it probes up in small steps, never doubling.
        let mut last = c.limit();
        for _ in 0..10 {
            let l = c.after(window_at(c.limit(), 0.08, 1000));
            assert!(l <= last + last / 8 + 1, "{last} -> {l}");
            last = l;
        }
        assert!(last > 200, "{last}");
    }

    #[test]
    fn never_above_the_ceiling_nor_below_one() {
        let mut c = Controller::new(4, 6);
        for _ in 0..10 {
            let l = c.limit();
            assert!(c.after(window_at(l, 0.08, 1000)) <= 6);
        }
        let throttled = Window {
            retries: 1,
            ..window_at(1, 0.08, 1000)
        };
        for _ in 0..10 {
            assert!(c.after(throttled) >= 1);
        }
        assert_eq!(c.limit(), 1);
    }

    #[tokio::test]
    async fn fixed_holds_exactly_n_places() {
        let c = Concurrency::new(Mode::Fixed(3), Vec::new());
        let slots: Vec<Slot> = futures::future::join_all((0..3).map(|_| c.acquire())).await;
        assert_eq!(c.gauge(), (3, 3));
        let fourth = tokio::time::timeout(Duration::from_millis(50), c.acquire()).await;
        assert!(fourth.is_err(), "a fourth place was given");
        for s in slots {
            s.done(10);
        }
        assert_eq!(c.gauge(), (0, 3));
        assert_eq!(c.span().highest, 3);
    }

    #[tokio::test]
    async fn a_retry_lowers_the_places_given_out() {
        let pacer = Arc::new(Pacer::new(0, None, None));
        let c = Concurrency::new(
            Mode::Adaptive {
                start: 9,
                ceiling: 64,
            },
            vec![pacer.clone()],
        );
        let slots: Vec<Slot> = futures::future::join_all((0..9).map(|_| c.acquire())).await;
        pacer.retried.store(1, Ordering::Relaxed);
        let mut slots = slots.into_iter();
        slots.next().unwrap().done(1);
        assert_eq!(c.gauge().1, 6, "a third off at the first retry");
        for s in slots {
            s.done(1);
        }
        // Six places now, not nine.
        let now: Vec<Slot> = futures::future::join_all((0..6).map(|_| c.acquire())).await;
        let seventh = tokio::time::timeout(Duration::from_millis(50), c.acquire()).await;
        assert!(seventh.is_err(), "more places than the limit");
        drop(now);
        assert_eq!(c.span().lowest, 6);
    }
}
