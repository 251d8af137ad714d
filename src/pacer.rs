//! Every request to a store goes through the pacer: it waits for the `--max-rate`
//! budget, retries what is worth retrying (5xx, 429/SlowDown, timeouts, resets; never a
//! 4xx such as AccessDenied) with exponential back-off and jitter, and meters bytes for
//! `--max-bandwidth`. It also owns the one retry above a request: a whole object copied
//! again when its bytes were cut mid-stream ([`Pacer::again_whole`]). One place, so no
//! adapter or stage invents its own policy.

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::error::StoreError;

/// Bandwidth is metered in KiB cells so one `u32` burst covers a large part.
const CELL: u64 = 1024;
/// A whole object is tried again at most this many times (and never more than the
/// request retries allow)...
const WHOLE_OBJECT_RETRIES: usize = 2;
/// ...and no new attempt starts this long after the first began: a huge object that
/// keeps failing halfway is recorded failed instead of streaming for hours.
const WHOLE_OBJECT_CAP: Duration = Duration::from_secs(30 * 60);

pub struct Pacer {
    retries: usize,
    base_delay: Duration,
    requests: Option<DefaultDirectRateLimiter>,
    bandwidth: Option<(DefaultDirectRateLimiter, u32)>,
    /// `--io-timeout`: an attempt that moves no byte this long is abandoned.
    io_timeout: Duration,
    /// Retries made so far, for the report.
    pub retried: AtomicU64,
}

impl Pacer {
    pub fn new(retries: u32, max_rate: Option<u32>, max_bandwidth: Option<u64>) -> Pacer {
        let requests = max_rate
            .and_then(NonZeroU32::new)
            .map(|r| RateLimiter::direct(Quota::per_second(r)));
        let bandwidth = max_bandwidth.map(|bps| {
            let cells = u32::try_from((bps / CELL).max(1)).unwrap_or(u32::MAX);
            let per_sec = NonZeroU32::new(cells).expect("at least one cell");
            (RateLimiter::direct(Quota::per_second(per_sec)), cells)
        });
        Pacer {
            retries: retries as usize,
            base_delay: Duration::from_millis(200),
            requests,
            bandwidth,
            io_timeout: crate::stall::DEFAULT_IO_TIMEOUT,
            retried: AtomicU64::new(0),
        }
    }

    /// The same policy with another `--io-timeout`.
    pub fn with_io_timeout(mut self, limit: Duration) -> Pacer {
        self.io_timeout = limit;
        self
    }

    pub fn io_timeout(&self) -> Duration {
        self.io_timeout
    }

    /// Same policy with a short first delay, for tests of the retry path.
    pub fn with_base_delay(mut self, delay: Duration) -> Pacer {
        self.base_delay = delay;
        self
    }

    /// Runs one request, paced and retried, each attempt abandoned when it moves no
    /// byte for `--io-timeout`. Its errors name the request (`what`), so the retry log
    /// line needs nothing more.
    pub async fn call<T, F, Fut>(&self, what: &str, mut f: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        self.call_watched(what, |_| f()).await
    }

    /// [`Pacer::call`] for a request whose body reports its own progress: `f` gets the
    /// attempt's [`Activity`](crate::stall::Activity) to hand to it.
    pub async fn call_watched<T, F, Fut>(&self, what: &str, f: F) -> Result<T, StoreError>
    where
        F: FnMut(crate::stall::Activity) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        self.call_within(what, self.io_timeout, f).await
    }

    /// [`Pacer::call`] for a request the server may answer slowly with nothing moving
    /// (CompleteMultipartUpload assembles the object first): silence is allowed for at
    /// least `patience`.
    pub async fn call_patiently<T, F, Fut>(
        &self,
        what: &str,
        patience: Duration,
        mut f: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        self.call_within(what, patience.max(self.io_timeout), |_| f())
            .await
    }

    async fn call_within<T, F, Fut>(
        &self,
        what: &str,
        limit: Duration,
        mut f: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut(crate::stall::Activity) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let policy = ExponentialBuilder::default()
            .with_min_delay(self.base_delay)
            .with_max_delay(Duration::from_secs(20))
            .with_max_times(self.retries)
            .with_jitter();
        let attempt = || {
            let activity = crate::stall::Activity::new();
            let fut = f(activity.clone());
            async move {
                if let Some(limit) = &self.requests {
                    limit.until_ready().await;
                }
                // The clock starts once the request may go.
                crate::stall::watched(what, limit, &activity, fut).await
            }
        };
        attempt
            .retry(policy)
            .when(StoreError::is_retryable)
            .notify(|err, delay| {
                self.retried.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("{err}; retrying in {delay:?}");
            })
            .await
    }

    /// Runs one whole-object attempt (`f`) again when it fails retryably — a body cut
    /// mid-stream cannot be resumed by retrying one request. Counted with the other
    /// retries; stops at the attempt limit, the time cap, or when `stop` says so.
    pub async fn again_whole<T, F, Fut>(
        &self,
        stop: impl Fn() -> bool,
        mut f: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let started = std::time::Instant::now();
        let limit = self.retries.min(WHOLE_OBJECT_RETRIES);
        let mut attempt = 0;
        loop {
            match f().await {
                Err(e)
                    if e.is_retryable()
                        && attempt < limit
                        && started.elapsed() < WHOLE_OBJECT_CAP
                        && !stop() =>
                {
                    attempt += 1;
                    self.retried.fetch_add(1, Ordering::Relaxed);
                    let delay = self.base_delay * 2 * attempt as u32;
                    tracing::warn!("{e}; copying it again from the start in {delay:?}");
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    /// Waits until one more request may go under `--max-rate` (for a store that is not
    /// reached through [`Pacer::call`]: the rehearsal directory).
    pub async fn admit(&self) {
        if let Some(limit) = &self.requests {
            limit.until_ready().await;
        }
    }

    /// Waits until `bytes` may be sent under `--max-bandwidth`.
    pub async fn spend_bytes(&self, bytes: u64) {
        let Some((limit, burst)) = &self.bandwidth else {
            return;
        };
        let mut cells = bytes.div_ceil(CELL);
        while cells > 0 {
            let n = cells.min(u64::from(*burst)) as u32;
            if let Some(n) = NonZeroU32::new(n) {
                // n never exceeds the burst, so this cannot fail.
                let _ = limit.until_n_ready(n).await;
            }
            cells -= u64::from(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_patient_call_allows_a_long_silence_and_a_plain_one_does_not() {
        let pacer = Pacer::new(0, None, None).with_io_timeout(Duration::from_millis(50));
        let slow = || async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            Ok::<_, StoreError>(())
        };
        let plain = pacer.call("CompleteMultipartUpload x", slow).await;
        assert!(plain.unwrap_err().to_string().contains("--io-timeout"));
        let patient = pacer
            .call_patiently(
                "CompleteMultipartUpload x",
                Duration::from_millis(500),
                slow,
            )
            .await;
        assert!(patient.is_ok());
    }
    use std::sync::atomic::AtomicU32;

    #[tokio::test]
    async fn retries_transient_errors_then_succeeds() {
        let pacer = Pacer::new(5, None, None).with_base_delay(Duration::from_millis(1));
        let tries = AtomicU32::new(0);
        let out = pacer
            .call("a test request", || async {
                if tries.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(StoreError::Transient("503".into()))
                } else {
                    Ok(7)
                }
            })
            .await;
        assert_eq!(out.unwrap(), 7);
        assert_eq!(tries.load(Ordering::SeqCst), 3);
        assert_eq!(pacer.retried.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn object_errors_are_never_retried_and_transient_ones_only_within_the_budget() {
        let denied = || StoreError::Object("AccessDenied".into());
        let slow = || StoreError::Transient("SlowDown".into());
        for (retries, err, tries_made) in [(5, denied(), 1), (2, slow(), 3)] {
            let again = if err.is_retryable() { slow } else { denied };
            let pacer = Pacer::new(retries, None, None).with_base_delay(Duration::from_millis(1));
            let tries = AtomicU32::new(0);
            let out: Result<(), _> = pacer
                .call("a test request", || async {
                    tries.fetch_add(1, Ordering::SeqCst);
                    Err(again())
                })
                .await;
            assert_eq!(out.unwrap_err().is_retryable(), err.is_retryable());
            assert_eq!(tries.load(Ordering::SeqCst), tries_made, "{err}");
        }
    }

    #[tokio::test]
    async fn whole_objects_go_again_within_the_limits_and_are_counted() {
        let pacer = Pacer::new(5, None, None).with_base_delay(Duration::from_millis(1));
        let tries = AtomicU32::new(0);
        let out: Result<(), _> = pacer
            .again_whole(
                || false,
                || async {
                    tries.fetch_add(1, Ordering::SeqCst);
                    Err(StoreError::Transient("cut mid-body".into()))
                },
            )
            .await;
        assert!(out.is_err());
        assert_eq!(
            tries.load(Ordering::SeqCst),
            1 + WHOLE_OBJECT_RETRIES as u32
        );
        assert_eq!(
            pacer.retried.load(Ordering::SeqCst),
            WHOLE_OBJECT_RETRIES as u64
        );

        // --retries 0 means no retry of any kind; a stop request ends it too.
        for (retries, stop) in [(0, false), (5, true)] {
            let pacer = Pacer::new(retries, None, None).with_base_delay(Duration::from_millis(1));
            let tries = AtomicU32::new(0);
            let _ = pacer
                .again_whole(
                    || stop,
                    || async {
                        tries.fetch_add(1, Ordering::SeqCst);
                        Err::<(), _>(StoreError::Transient("cut".into()))
                    },
                )
                .await;
            assert_eq!(tries.load(Ordering::SeqCst), 1);
        }
    }

    #[tokio::test]
    async fn bandwidth_limit_slows_large_transfers() {
        let pacer = Pacer::new(0, None, Some(64 * 1024));
        let start = std::time::Instant::now();
        pacer.spend_bytes(64 * 1024).await; // the first second's burst is free
        pacer.spend_bytes(32 * 1024).await; // then half a second more
        assert!(
            start.elapsed() >= Duration::from_millis(400),
            "{:?}",
            start.elapsed()
        );
    }
}
