//! A strict R2 test server: the S3 API as Cloudflare R2 documents it, built on the `s3s`
//! crate (the one s3s-fs is made from) with an in-memory store. Each rule it enforces
//! cites its source where it is enforced (`store.rs`, `rules.rs`, `api.rs`, `multipart.rs`) and in this crate's
//! README. A difference from a real R2 found later is a bug here, fixed with the document
//! that shows it. A test tool: never part of r2migrate's binary.

mod api;
mod checksums;
mod multipart;
mod rules;
mod store;

use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

pub use store::Rules;

/// A running server on 127.0.0.1; stopped when dropped.
pub struct Server {
    pub port: u16,
    state: Arc<store::Store>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    /// On a free port, accepting only these keys (SigV4).
    pub fn start(access_key: &str, secret_key: &str) -> Server {
        Server::start_on(0, access_key, secret_key)
    }

    pub fn start_on(port: u16, access_key: &str, secret_key: &str) -> Server {
        Server::start_with(port, access_key, secret_key, Rules::default())
    }

    pub fn start_with(port: u16, access_key: &str, secret_key: &str, rules: Rules) -> Server {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind 127.0.0.1");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(store::Store::new(rules));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let api = api::Strict {
            store: state.clone(),
        };
        let mut builder = S3ServiceBuilder::new(api);
        builder.set_auth(SimpleAuth::from_single(access_key, secret_key));
        let service = builder.build();
        let state_for_count = state.clone();
        std::thread::Builder::new()
            .name("r2-strict".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(serve(listener, service, state_for_count, stopped));
            })
            .expect("spawn the server thread");
        Server {
            port,
            state,
            stop: Some(stop),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Buckets are made by the harness: r2migrate never creates one.
    pub fn create_bucket(&self, name: &str) {
        self.state.create_bucket(name);
    }

    /// Requests answered so far, by kind: "GET" (an object), "LIST" (a bucket), "PUT",
    /// "POST", "HEAD", "DELETE".
    pub fn requests(&self) -> std::collections::BTreeMap<String, u64> {
        self.state.requests.lock().expect("not poisoned").clone()
    }

    /// Multipart uploads open in all buckets.
    pub fn open_uploads(&self) -> usize {
        self.state.open_uploads()
    }

    /// The next write to `key` (a PUT, a Complete or a copy to it) finds that "the application" has
    /// just written `body` there, as if it came a moment before: the race at cutover,
    /// made on demand for tests.
    pub fn race(&self, bucket: &str, key: &str, body: &[u8]) {
        let key = store::nfc(key);
        self.state.state.lock().expect("not poisoned").races.insert(
            (bucket.to_string(), key),
            bytes::Bytes::copy_from_slice(body),
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The kind of request, as [`Server::requests`] counts it.
fn kind(req: &http::Request<hyper::body::Incoming>) -> String {
    let method = req.method().as_str();
    let path = req.uri().path().trim_matches('/');
    if method == "GET" && !path.contains('/') {
        return "LIST".into();
    }
    method.to_string()
}

async fn serve(
    listener: std::net::TcpListener,
    service: s3s::service::S3Service,
    store: Arc<store::Store>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    use hyper::service::Service;
    let counted = hyper::service::service_fn(move |req| {
        *store
            .requests
            .lock()
            .expect("not poisoned")
            .entry(kind(&req))
            .or_default() += 1;
        let service = service.clone();
        async move { Service::call(&service, req).await }
    });
    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
    let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    loop {
        let socket = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(_) => continue,
            },
            _ = &mut stopped => return,
        };
        // Benchmarks against this server measure the client, not Nagle's algorithm.
        let _ = socket.set_nodelay(true);
        let conn = http
            .serve_connection(TokioIo::new(socket), counted.clone())
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}
