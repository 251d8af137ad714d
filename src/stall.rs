//! `--io-timeout`: a request that moves no byte for that long is abandoned (and then
//! retried by the pacer's rule). Progress is what counts, not duration: a 5 GiB part
//! on a slow link may take an hour and is fine while its bytes keep moving.
//!
//! - [`Activity`] is the clock of one attempt: it is touched when the attempt starts,
//!   whenever an upload body hands the HTTP stack another slice, and [`Activity::stalled`]
//!   resolves once nothing touched it for the limit.
//! - [`ProgressBody`] is an upload body that touches its activity slice by slice.
//! - [`guard_stream`] gives a download body the same rule, chunk by chunk.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::error::StoreError;
use crate::object::ByteStream;

/// The default of `--io-timeout`, as SPEC.md gives it.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(60);

/// Upload bodies are handed over in slices this big, so progress is seen often.
const SLICE: usize = 64 * 1024;

/// When one request last moved a byte.
#[derive(Clone)]
pub struct Activity {
    start: Instant,
    /// Milliseconds after `start` of the last progress.
    last: Arc<AtomicU64>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

impl Activity {
    pub fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last.fetch_max(ms, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }

    /// Resolves once nothing moved for `limit`.
    pub async fn stalled(&self, limit: Duration) {
        loop {
            let idle = self.idle();
            if idle >= limit {
                return;
            }
            tokio::time::sleep(limit - idle).await;
        }
    }
}

/// The words of a stall, naming the request and the flag that decides.
pub fn stalled_error(what: &str, limit: Duration) -> StoreError {
    StoreError::Transient(format!(
        "{what}: no byte moved for {} (--io-timeout); abandoned",
        words(limit)
    ))
}

fn words(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Runs `request` unless it stalls: it fails `Transient` after `limit` without progress.
pub async fn watched<T>(
    what: &str,
    limit: Duration,
    activity: &Activity,
    request: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    activity.touch();
    tokio::select! {
        r = request => r,
        _ = activity.stalled(limit) => Err(stalled_error(what, limit)),
    }
}

/// Bytes to upload, handed to the HTTP stack slice by slice; each slice it takes is
/// progress. Its exact size hint lets the request carry a Content-Length.
pub struct ProgressBody {
    bytes: Bytes,
    activity: Activity,
}

impl ProgressBody {
    pub fn new(bytes: Bytes, activity: Activity) -> ProgressBody {
        ProgressBody { bytes, activity }
    }
}

impl http_body::Body for ProgressBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.bytes.is_empty() {
            return Poll::Ready(None);
        }
        self.activity.touch();
        let n = self.bytes.len().min(SLICE);
        let slice = self.bytes.split_to(n);
        Poll::Ready(Some(Ok(http_body::Frame::data(slice))))
    }

    fn is_end_stream(&self) -> bool {
        self.bytes.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.bytes.len() as u64)
    }
}

/// A download body that fails `Transient` when no chunk arrives for `limit`.
pub fn guard_stream(
    body: impl Stream<Item = Result<Bytes, StoreError>> + Send + 'static,
    what: String,
    limit: Duration,
) -> ByteStream {
    let body = Box::pin(body);
    let stream = futures::stream::unfold(Some(body), move |state| {
        let what = what.clone();
        async move {
            let mut body = state?;
            match tokio::time::timeout(limit, body.next()).await {
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(body))),
                Ok(Some(Err(e))) => Some((Err(e), None)),
                Ok(None) => None,
                Err(_) => Some((
                    Err(stalled_error(&format!("{what} (mid-body)"), limit)),
                    None,
                )),
            }
        }
    });
    crate::object::fused(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_that_keeps_moving_is_never_cut_and_a_silent_one_is() {
        let limit = Duration::from_millis(100);
        let act = Activity::new();
        let ticking = act.clone();
        // 400 ms in all, but progress every 40 ms: not a stall.
        let busy = watched("PUT x", limit, &act, async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(40)).await;
                ticking.touch();
            }
            Ok(())
        });
        assert!(busy.await.is_ok());
        let quiet = Activity::new();
        let silent = watched("GET y", limit, &quiet, async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        });
        let err = silent.await.unwrap_err();
        assert!(err.is_retryable());
        assert!(err.to_string().contains("GET y"), "{err}");
        assert!(err.to_string().contains("--io-timeout"), "{err}");
    }

    #[tokio::test]
    async fn a_download_that_stops_sending_fails_retryably() {
        let chunks = futures::stream::iter([Ok(Bytes::from_static(b"ab"))])
            .chain(futures::stream::pending());
        let mut body = guard_stream(chunks, "GET z".into(), Duration::from_millis(50));
        assert_eq!(
            body.next().await.unwrap().unwrap(),
            Bytes::from_static(b"ab")
        );
        let err = body.next().await.unwrap().unwrap_err();
        assert!(
            err.is_retryable() && err.to_string().contains("mid-body"),
            "{err}"
        );
        assert!(body.next().await.is_none());
    }

    #[test]
    fn an_upload_body_states_its_length_and_yields_every_byte() {
        use http_body_util::BodyExt;
        let data = Bytes::from(vec![7u8; SLICE * 2 + 5]);
        let body = ProgressBody::new(data.clone(), Activity::new());
        assert_eq!(
            http_body::Body::size_hint(&body).exact(),
            Some(data.len() as u64)
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let got = rt.block_on(body.collect()).unwrap().to_bytes();
        assert_eq!(got, data);
    }
}
