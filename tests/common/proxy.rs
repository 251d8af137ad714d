//! A fault-injecting HTTP proxy on loopback, between the tool and a test server: replies
//! with 5xx / 429 / 403, resets connections, flips a byte of a request body, never
//! answers, or cuts / stalls a reply halfway through its body — for requests matching a
//! rule, a set number of times (optionally after letting some through). Runs on its own
//! thread and runtime, so tests may block on the binary while it serves.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

#[derive(Debug, Clone)]
pub enum Fault {
    /// An S3-style XML error with this HTTP status and code.
    Reply(u16, &'static str),
    /// Close the connection without answering.
    Reset,
    /// Flip one bit of the request body, then forward it.
    FlipBodyByte,
    /// Forward the request, then flip one bit of the reply's body (bytes rotted on the
    /// way back from a source).
    FlipReplyByte,
    /// Accept the request and never answer (a hung server).
    Hang,
    /// Hold the request this long, then forward it (a slow first byte: time for the
    /// test to change the source in between).
    Delay(std::time::Duration),
    /// Forward the request, send the reply's headers and half its body, then reset the
    /// connection.
    CutReplyBody,
    /// Forward the request, send the reply's headers and half its body, then send
    /// nothing more (a stalled stream).
    StallReplyBody,
    /// Forward the request, then set this header on the reply (a server that states
    /// something else than what it stored).
    SetReplyHeader(&'static str, &'static str),
}

#[derive(Debug, Clone)]
struct Rule {
    /// "*" matches every method.
    method: &'static str,
    /// Matching requests let through before the fault starts.
    skip: usize,
    path_contains: String,
    query_contains: String,
    remaining: usize,
    fault: Fault,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    /// "METHOD path?query" of every request seen.
    log: Vec<String>,
    /// When each request arrived, its method, and its body's size.
    timeline: Vec<(std::time::Instant, String, usize)>,
    /// Faults injected so far.
    injected: usize,
    /// "METHOD path?query" and the request's headers, of every request seen.
    headers: Vec<(String, Vec<(String, String)>)>,
    /// "METHOD path?query" and the body, of every request whose body is small (an XML
    /// document such as CompleteMultipartUpload's part list, not an object's bytes).
    small_bodies: Vec<(String, Bytes)>,
    /// A fault campaign: each request not matched by a rule draws one of these faults
    /// with this chance in a hundred, from a seeded generator.
    random: Option<RandomFaults>,
    /// A gateway's path: only requests under it reach the server, without it; every
    /// other request gets a web page (HTTP 200, text/html), as a site in front of a
    /// store answers a URL it does not route.
    under: Option<String>,
    /// Every request is held this long before anything else (a store far away).
    delay: Option<std::time::Duration>,
    /// Requests being handled now, and the most ever at once.
    busy: usize,
    most_busy: usize,
}

/// Counts a request as being handled until it is dropped.
struct Busy(Arc<Mutex<State>>);

impl Busy {
    fn start(state: &Arc<Mutex<State>>) -> Busy {
        let mut s = state.lock().unwrap();
        s.busy += 1;
        s.most_busy = s.most_busy.max(s.busy);
        Busy(state.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.lock() {
            s.busy -= 1;
        }
    }
}

struct RandomFaults {
    percent: u64,
    faults: Vec<Fault>,
    state: u64,
}

impl RandomFaults {
    /// splitmix64: small, seeded, good enough to pick faults reproducibly.
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Request bodies up to this size are kept for [`FaultProxy::small_bodies`].
const SMALL_BODY: usize = 64 * 1024;

pub struct FaultProxy {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl FaultProxy {
    pub fn start(upstream_port: u16) -> FaultProxy {
        FaultProxy::start_with(upstream_port, State::default())
    }

    /// A gateway serving the server's S3 API under `path` (such as `/cdn-cgi/local/r2/s3`,
    /// where Cloudflare's local R2 serves it): the server must not check signatures
    /// (moto), since a signature covers the path the client sent.
    pub fn start_under(upstream_port: u16, path: &str) -> FaultProxy {
        let state = State {
            under: Some(path.trim_end_matches('/').to_string()),
            ..State::default()
        };
        FaultProxy::start_with(upstream_port, state)
    }

    fn start_with(upstream_port: u16, state: State) -> FaultProxy {
        let state = Arc::new(Mutex::new(state));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let port = std_listener.local_addr().unwrap().port();
        let shared = state.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(serve(std_listener, upstream_port, shared));
        });
        FaultProxy { port, state }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Injects `fault` into the next `times` requests of `method` whose path contains
    /// `path_contains` and whose query contains `query_contains`.
    pub fn inject(
        &self,
        method: &'static str,
        path_contains: &str,
        query_contains: &str,
        times: usize,
        fault: Fault,
    ) {
        self.inject_after(method, path_contains, query_contains, 0, times, fault);
    }

    /// Like [`FaultProxy::inject`], after letting `skip` matching requests through (a
    /// token revoked after earlier successes). `method` "*" matches every method.
    pub fn inject_after(
        &self,
        method: &'static str,
        path_contains: &str,
        query_contains: &str,
        skip: usize,
        times: usize,
        fault: Fault,
    ) {
        self.state.lock().unwrap().rules.push(Rule {
            method,
            skip,
            path_contains: path_contains.to_string(),
            query_contains: query_contains.to_string(),
            remaining: times,
            fault,
        });
    }

    /// From now on, every request no rule matches gets one of `faults` with a chance of
    /// `percent` in a hundred (seeded, so a campaign can be replayed).
    pub fn inject_randomly(&self, percent: u64, faults: Vec<Fault>, seed: u64) {
        self.state.lock().unwrap().random = Some(RandomFaults {
            percent,
            faults,
            state: seed,
        });
    }

    /// The values of header `name` on requests of `method` whose path and query contain
    /// `fragment` (what a server that ignores a header cannot show).
    pub fn header_values(&self, method: &str, fragment: &str, name: &str) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.headers
            .iter()
            .filter(|(line, _)| line.starts_with(&format!("{method} ")) && line.contains(fragment))
            .flat_map(|(_, hs)| hs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()))
            .collect()
    }

    /// The bodies (as text) of requests of `method` whose path and query contain
    /// `fragment`, where the body was small enough to keep (at most 64 KiB).
    pub fn small_bodies(&self, method: &str, fragment: &str) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.small_bodies
            .iter()
            .filter(|(line, _)| line.starts_with(&format!("{method} ")) && line.contains(fragment))
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    /// From now on every request is held `delay` before it is looked at (a store at
    /// that distance, for requests that carry little).
    pub fn delay_every_request(&self, delay: std::time::Duration) {
        self.state.lock().unwrap().delay = Some(delay);
    }

    /// The most requests the proxy was handling at once.
    pub fn most_at_once(&self) -> usize {
        self.state.lock().unwrap().most_busy
    }

    /// Faults injected so far.
    pub fn injected(&self) -> usize {
        self.state.lock().unwrap().injected
    }

    /// Requests of `method` ("*" for all) and their body bytes, that arrived between
    /// `from` and `to` after `start`.
    pub fn traffic(
        &self,
        method: &str,
        start: std::time::Instant,
        from: std::time::Duration,
        to: std::time::Duration,
    ) -> (usize, usize) {
        let s = self.state.lock().unwrap();
        s.timeline
            .iter()
            .filter(|(at, m, _)| {
                let t = at.saturating_duration_since(start);
                (method == "*" || m == method) && t >= from && t < to
            })
            .fold((0, 0), |(n, b), (_, _, len)| (n + 1, b + len))
    }

    /// "METHOD path?query" of every request seen so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// Requests seen so far that match a method and a path fragment.
    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .log
            .iter()
            .filter(|l| l.starts_with(&format!("{method} ")) && l.contains(path_contains))
            .count()
    }
}

/// With `R2MIGRATE_FAULT_TALLY=<file>`, each proxy appends "<faults injected> <requests
/// seen>" to that file when dropped: how the closing numbers of a fault campaign are
/// counted.
impl Drop for FaultProxy {
    fn drop(&mut self) {
        let Ok(path) = std::env::var("R2MIGRATE_FAULT_TALLY") else {
            return;
        };
        let s = self.state.lock().unwrap();
        let line = format!("{} {}\n", s.injected, s.log.len());
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

async fn serve(listener: std::net::TcpListener, upstream_port: u16, state: Arc<Mutex<State>>) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (client, state) = (client.clone(), state.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                handle(req, client.clone(), state.clone(), upstream_port)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn matching_fault(state: &Mutex<State>, method: &str, path: &str, query: &str) -> Option<Fault> {
    let mut s = state.lock().unwrap();
    s.log.push(format!("{method} {path}?{query}"));
    let rule = s.rules.iter_mut().find(|r| {
        r.remaining > 0
            && (r.method == "*" || r.method == method)
            && path.contains(&r.path_contains)
            && query.contains(&r.query_contains)
    });
    let Some(rule) = rule else {
        let random = s.random.as_mut()?;
        if random.next() % 100 >= random.percent {
            return None;
        }
        let pick = (random.next() % random.faults.len() as u64) as usize;
        let fault = random.faults[pick].clone();
        // s3s-fs ignores part checksums (a known gap of the server; R2 checks them), so
        // a flipped part would be stored and prove nothing about us.
        if matches!(fault, Fault::FlipBodyByte) && query.contains("uploadId") {
            return None;
        }
        s.injected += 1;
        return Some(fault);
    };
    if rule.skip > 0 {
        rule.skip -= 1;
        return None;
    }
    rule.remaining -= 1;
    let fault = rule.fault.clone();
    s.injected += 1;
    Some(fault)
}

async fn handle(
    req: Request<Incoming>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    state: Arc<Mutex<State>>,
    upstream_port: u16,
) -> Result<Response<BoxBody<Bytes, std::io::Error>>, std::io::Error> {
    let (mut parts, body) = req.into_parts();
    let path = percent_decode(parts.uri.path());
    let query = parts.uri.query().unwrap_or("").to_string();
    // A request whose body did not arrive whole never reaches the server, as on a
    // real network (forwarding what came would store a torn object).
    let mut body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Err(std::io::Error::other(e)),
    };
    let _busy = Busy::start(&state);
    let delay = state.lock().unwrap().delay;
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    {
        let mut s = state.lock().unwrap();
        s.timeline.push((
            std::time::Instant::now(),
            parts.method.to_string(),
            body.len(),
        ));
        let headers = parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let line = format!("{} {path}?{query}", parts.method);
        if body.len() <= SMALL_BODY {
            s.small_bodies.push((line.clone(), body.clone()));
        }
        s.headers.push((line, headers));
    }
    let fault = matching_fault(&state, parts.method.as_str(), &path, &query);
    match &fault {
        Some(Fault::Reply(status, code)) => {
            let (status, code) = (*status, *code);
            let xml = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>");
            return Ok(Response::builder()
                .status(status)
                .header("content-type", "application/xml")
                .body(full(Bytes::from(xml)))
                .unwrap());
        }
        Some(Fault::Reset) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "injected reset",
            ))
        }
        Some(Fault::Hang) => std::future::pending::<()>().await,
        Some(Fault::Delay(d)) => tokio::time::sleep(*d).await,
        Some(Fault::FlipBodyByte) if !body.is_empty() => {
            let mut v = body.to_vec();
            v[0] ^= 0x01;
            body = Bytes::from(v);
        }
        _ => {}
    }
    let mut pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let under = state.lock().unwrap().under.clone();
    if let Some(under) = under {
        match pq.strip_prefix(&under) {
            Some(rest) if rest.starts_with('/') => pq = rest.to_string(),
            _ => {
                let page = "<!DOCTYPE html><html><head><title>Welcome</title></head><body>Not an S3 API</body></html>";
                return Ok(Response::builder()
                    .status(200)
                    .header("content-type", "text/html; charset=utf-8")
                    .body(full(Bytes::from(page)))
                    .unwrap());
            }
        }
    }
    parts.uri = format!("http://127.0.0.1:{upstream_port}{pq}")
        .parse()
        .unwrap();
    let flip_reply = matches!(fault, Some(Fault::FlipReplyByte));
    let cut = match fault {
        Some(Fault::CutReplyBody) => Some(true),
        Some(Fault::StallReplyBody) => Some(false),
        _ => None,
    };
    let set_header = match fault {
        Some(Fault::SetReplyHeader(name, value)) => Some((name, value)),
        _ => None,
    };
    let upstream = Request::from_parts(parts, Full::new(body));
    match client.request(upstream).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            if let Some((name, value)) = set_header {
                parts.headers.insert(name, value.parse().unwrap());
            }
            let body = match cut {
                Some(reset) => {
                    let bytes = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    half_then(bytes, reset)
                }
                // Streamed as it comes, as a server sends it: holding a large reply
                // whole first would delay its first byte past a client's idle timeout
                // on a busy machine.
                None => streamed(body, flip_reply),
            };
            Ok(Response::from_parts(parts, body))
        }
        Err(e) => Ok(Response::builder()
            .status(502)
            .body(full(Bytes::from(e.to_string())))
            .unwrap()),
    }
}

fn full(bytes: Bytes) -> BoxBody<Bytes, std::io::Error> {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// The first half of a reply's body, then a reset (`reset`) or silence. The reply keeps
/// its Content-Length, so the client sees the body end early or stop.
/// The reply body frame by frame, the first data byte flipped if `flip`.
fn streamed(body: Incoming, mut flip: bool) -> BoxBody<Bytes, std::io::Error> {
    body.map_frame(move |frame| match frame.into_data() {
        Ok(data) if flip && !data.is_empty() => {
            flip = false;
            let mut v = data.to_vec();
            v[0] ^= 0x01;
            hyper::body::Frame::data(Bytes::from(v))
        }
        Ok(data) => hyper::body::Frame::data(data),
        Err(other) => other,
    })
    .map_err(std::io::Error::other)
    .boxed()
}

fn half_then(bytes: Bytes, reset: bool) -> BoxBody<Bytes, std::io::Error> {
    use futures::StreamExt;
    let half = bytes.slice(..bytes.len() / 2);
    let first = futures::stream::iter([Ok(hyper::body::Frame::data(half))]);
    let rest = futures::stream::once(async move {
        if !reset {
            std::future::pending::<()>().await;
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected: reply cut mid-body",
        ))
    });
    BodyExt::boxed(StreamBody::new(first.chain(rest)))
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}
