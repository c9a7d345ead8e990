//! End-to-end harness: a real Envoy with the built filter, plus HTTP servers the test controls.
//!
//! Every process and server started here stops when its handle is dropped, also when a test
//! fails. Ports are chosen by the OS and never handed over: test servers keep the listener
//! they bound to port 0, Envoy and moto bind port 0 themselves and tell us which port they got
//! (Envoy through `--admin-address-path` and `/listeners`, moto on stderr). Envoy runs with
//! `--use-dynamic-base-id`.
//!
//! Tests wait for events, never for a guessed time: [`wait_until`] polls a condition until a
//! generous deadline ([`PATIENCE`]) and fails with a message that says what never happened.

#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod cognito;
pub mod tokens;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a test waits for something that should happen within a second or two: long enough
/// that a loaded machine never runs out of it, short enough that a stuck test fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `done` every 20 ms until it returns `Some`, and returns that; panics naming `what`
/// once `timeout` has passed.
pub fn wait_until<T>(what: &str, timeout: Duration, mut done: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = done() {
            return v;
        }
        assert!(
            started.elapsed() < timeout,
            "waited {timeout:?} for {what}, in vain"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn env_path(var: &str, fallback: &str) -> PathBuf {
    let p = std::env::var(var)
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(fallback));
    assert!(
        p.exists(),
        "{} not found: run the tests with `make test` (sets {var})",
        p.display()
    );
    p
}

pub fn wasm_path() -> PathBuf {
    env_path(
        "CEA_WASM",
        "target/wasm32-wasip1/release/cognito_edge_auth.wasm",
    )
}

/// Which build the end-to-end tests run against: `CEA_BUILD=native` for the Envoy dynamic
/// module (the .so at `CEA_SO`), else the .wasm (at `CEA_WASM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    Wasm,
    Native,
}

pub fn build() -> Build {
    match std::env::var("CEA_BUILD").as_deref() {
        Ok("native") => Build::Native,
        Ok("wasm") | Err(_) => Build::Wasm,
        Ok(other) => panic!("CEA_BUILD={other}: expected `wasm` or `native`"),
    }
}

pub fn so_path() -> PathBuf {
    env_path("CEA_SO", "target/release/libcognito_edge_auth.so")
}

/// Skips the calling test on the native build, saying why (features the .so does not have
/// yet). Returns true when the test should return at once.
pub fn wasm_only(why: &str) -> bool {
    if build() == Build::Native {
        eprintln!("SKIPPED on the native build: {why}");
        return true;
    }
    false
}

/// The filter's metric `name` (as the .wasm shows it, `wasmcustom.cognito_edge_auth.…`) under
/// the prefix of the build under test.
pub fn stat_name(name: &str) -> String {
    match (build(), name.strip_prefix("wasmcustom.")) {
        (Build::Native, Some(rest)) => format!("{NATIVE_STAT_PREFIX}{rest}"),
        _ => name.to_string(),
    }
}

/// Where Envoy puts a dynamic module's own stats.
pub const NATIVE_STAT_PREFIX: &str = "dynamicmodulescustom.";

/// The HTTP filter entry of the build under test, with `filter_config` as its JSON
/// configuration.
pub fn filter_entry(filter_config: &Value) -> Value {
    match build() {
        Build::Wasm => json!({
            "name": "envoy.filters.http.wasm",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": {
                    "name": "cognito_edge_auth",
                    "root_id": "cognito_edge_auth",
                    "fail_open": false,
                    "configuration": { "@type": "type.googleapis.com/google.protobuf.StringValue", "value": filter_config.to_string() },
                    "vm_config": {
                        "vm_id": "cognito_edge_auth",
                        "runtime": "envoy.wasm.runtime.v8",
                        "code": { "local": { "filename": wasm_path().to_string_lossy() } },
                    },
                },
            },
        }),
        Build::Native => json!({
            "name": "envoy.filters.http.dynamic_modules",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
                "dynamic_module_config": { "name": "cognito_edge_auth" },
                "filter_name": "cognito_edge_auth",
                "filter_config": { "@type": "type.googleapis.com/google.protobuf.StringValue", "value": filter_config.to_string() },
            },
        }),
    }
}

pub fn envoy_bin() -> PathBuf {
    env_path("ENVOY_BIN", ".venv/bin/envoy")
}

// ---------------------------------------------------------------------------------------
// HTTP client

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

/// Sends one HTTP/1.1 request with raw header bytes and reads the whole reply.
pub fn request(port: u16, method: &str, path: &str, headers: &[(&str, &[u8])]) -> Reply {
    try_request(port, method, path, headers)
        .unwrap_or_else(|e| panic!("{method} {path} on port {port}: {e}"))
}

pub fn try_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &[u8])],
) -> std::io::Result<Reply> {
    send(port, method, path, headers, b"")
}

/// Sends one HTTP/1.1 request with a body (`content-length` is added when it is not empty).
pub fn send(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n")
        .into_bytes();
    for (name, value) in headers {
        req.extend_from_slice(name.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() {
        req.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    stream.write_all(&req)?;
    let raw = read_reply(&mut stream, method == "HEAD")?;
    Ok(parse_reply(&raw))
}

/// Reads one reply: up to the end of its body as framed by `content-length` or chunked
/// encoding, else to the end of the stream. Not waiting for the close matters: Envoy delays
/// closing a connection after a local reply (`delayed_close_timeout`, 1 s) until the client
/// closes it first.
fn read_reply(stream: &mut TcpStream, head_only: bool) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = reply_end(&raw, head_only) {
            raw.truncate(end);
            return Ok(raw);
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(raw);
        }
        raw.extend_from_slice(&chunk[..n]);
    }
}

/// Where the reply in `raw` ends, once it is all there (`None`: read on).
fn reply_end(raw: &[u8], head_only: bool) -> Option<usize> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        return Some(head_end);
    }
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim() == name)
            .map(|(_, v)| v.trim().to_string())
    };
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        // Walk the chunks: size line, data, CRLF; the last one has size 0 (no trailers here).
        let mut at = head_end;
        loop {
            let line_end = raw[at..].windows(2).position(|w| w == b"\r\n")? + at;
            let size_text = String::from_utf8_lossy(&raw[at..line_end]);
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            at = line_end + 2;
            if size == 0 {
                return (raw.len() >= at + 2).then_some(at + 2);
            }
            at += size + 2;
            if raw.len() < at {
                return None;
            }
        }
    }
    let length: usize = header("content-length")?.parse().ok()?;
    (raw.len() >= head_end + length).then_some(head_end + length)
}

pub fn get(port: u16, path: &str) -> Reply {
    request(port, "GET", path, &[])
}

pub fn get_with_token(port: u16, path: &str, token: &str) -> Reply {
    let value = format!("Bearer {token}");
    request(port, "GET", path, &[("authorization", value.as_bytes())])
}

fn parse_reply(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP reply: {text:?}"));
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

// ---------------------------------------------------------------------------------------
// HTTP servers under the test's control

/// What a test server answers.
#[derive(Clone)]
pub struct Canned {
    pub status: u16,
    pub body: Vec<u8>,
    pub delay: Duration,
    /// Close the connection without answering.
    pub hang_up: bool,
}

pub struct ServerRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

type Handler = Arc<dyn Fn(&ServerRequest) -> Canned + Send + Sync>;

/// A tiny HTTP/1.1 server on an OS-chosen loopback port; one connection per request.
pub struct Server {
    pub port: u16,
    pub hits: Arc<AtomicUsize>,
    /// When each request arrived (its headers read), in order.
    arrivals: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub fn start(handler: Handler) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, a, s) = (hits.clone(), arrivals.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (handler, hits, arrivals) = (handler.clone(), h.clone(), a.clone());
                thread::spawn(move || serve(conn, &*handler, &hits, &arrivals));
            }
        });
        Server {
            port,
            hits,
            arrivals,
            stop,
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// When each request so far arrived, in order.
    pub fn arrivals(&self) -> Vec<Instant> {
        self.arrivals.lock().unwrap().clone()
    }
}

impl Server {
    /// Closes the listening socket (the accept thread ends, dropping it).
    pub fn stop(&mut self) {
        if !self.stop.swap(true, Ordering::SeqCst) {
            let _ = TcpStream::connect(("127.0.0.1", self.port));
            // Wait until the port refuses connections.
            let deadline = Instant::now() + Duration::from_secs(5);
            while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline
            {
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(
    conn: TcpStream,
    handler: &(dyn Fn(&ServerRequest) -> Canned + Send + Sync),
    hits: &AtomicUsize,
    arrivals: &Mutex<Vec<Instant>>,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    arrivals.lock().unwrap().push(Instant::now());
    hits.fetch_add(1, Ordering::SeqCst);
    let reply = handler(&ServerRequest {
        method,
        path,
        headers,
    });
    thread::sleep(reply.delay);
    let mut conn = conn;
    if reply.hang_up {
        let _ = conn.shutdown(Shutdown::Both);
        return;
    }

    let head = format!(
        "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        reply.status,
        reply.body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(&reply.body);
    let _ = conn.shutdown(Shutdown::Both);
}

/// An upstream that answers 200 with the request it received, as JSON.
pub fn echo_upstream() -> Server {
    Server::start(Arc::new(|req: &ServerRequest| Canned {
        status: 200,
        body: json!({ "method": req.method, "path": req.path, "headers": req.headers })
            .to_string()
            .into_bytes(),
        delay: Duration::ZERO,
        hang_up: false,
    }))
}

/// A JWKS endpoint whose answer the test sets and whose fetches it counts.
pub struct JwksServer {
    pub server: Server,
    answer: Arc<Mutex<Canned>>,
    /// While true, fetches are held unanswered (see [`JwksServer::hold`]).
    held: Arc<(Mutex<bool>, Condvar)>,
}

impl JwksServer {
    pub fn start(jwks: &str) -> JwksServer {
        let answer = Arc::new(Mutex::new(Canned {
            status: 200,
            body: jwks.as_bytes().to_vec(),
            delay: Duration::ZERO,
            hang_up: false,
        }));
        let held = Arc::new((Mutex::new(false), Condvar::new()));
        let (a, h) = (answer.clone(), held.clone());
        let server = Server::start(Arc::new(move |_req: &ServerRequest| {
            let (lock, released) = &*h;
            let guard = lock.lock().unwrap();
            // Bounded, so a failed test's held fetch cannot keep a thread forever.
            drop(
                released
                    .wait_timeout_while(guard, PATIENCE * 2, |held| *held)
                    .unwrap(),
            );
            a.lock().unwrap().clone()
        }));
        JwksServer {
            server,
            answer,
            held,
        }
    }

    /// From now on, each fetch is held unanswered until [`JwksServer::release`] (an event the
    /// test controls, unlike a delay that a loaded machine may outlast).
    pub fn hold(&self) {
        *self.held.0.lock().unwrap() = true;
    }

    /// Answers the held fetches, and every later one at once.
    pub fn release(&self) {
        *self.held.0.lock().unwrap() = false;
        self.held.1.notify_all();
    }

    pub fn set(&self, status: u16, body: &str) {
        let mut a = self.answer.lock().unwrap();
        a.status = status;
        a.body = body.as_bytes().to_vec();
        a.hang_up = false;
    }

    /// Answers only after `delay` (to test timeouts and requests waiting at start-up).
    pub fn set_delay(&self, delay: Duration) {
        self.answer.lock().unwrap().delay = delay;
    }

    /// Closes each connection without an answer.
    pub fn hang_up(&self) {
        self.answer.lock().unwrap().hang_up = true;
    }

    /// Stops listening: from now on, connections are refused.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Waits until the server has been asked at least `n` times in all (a fetch counts when its
    /// request arrives, before it is answered), or panics after [`PATIENCE`].
    pub fn wait_for_fetches(&self, n: usize) {
        let what = format!("{n} JWKS fetches in all");
        wait_until(&what, PATIENCE, || (self.fetches() >= n).then_some(()));
    }

    /// When each fetch so far arrived, in order.
    pub fn fetch_times(&self) -> Vec<Instant> {
        self.server.arrivals()
    }

    pub fn fetches(&self) -> usize {
        self.server.hits()
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.release();
    }
}

// ---------------------------------------------------------------------------------------
// moto, the Cognito emulator

/// A moto server on a loopback port it chose itself; killed on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    /// Starts moto on port 0 and reads the port it bound from its start-up line
    /// (`Running on http://127.0.0.1:PORT`): a port chosen by us and bound later by moto could be
    /// taken in between.
    pub fn start() -> Moto {
        let bin = env_path("MOTO_SERVER", ".venv/bin/moto_server");
        let mut child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Reads moto's log to its end, so moto never blocks on a full pipe.
        thread::spawn(move || {
            let mut seen = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(port) = line
                    .split_once("Running on http://127.0.0.1:")
                    .and_then(|(_, rest)| rest.trim().trim_end_matches('/').parse::<u16>().ok())
                {
                    let _ = tx.send(Ok(port));
                } else if seen.len() < 50 {
                    seen.push(line);
                }
            }
            let _ = tx.send(Err(seen.join("\n")));
        });
        let mut moto = Moto { child, port: 0 };
        moto.port = match rx.recv_timeout(PATIENCE) {
            Ok(Ok(port)) => port,
            Ok(Err(log)) => panic!("moto exited before it listened:\n{log}"),
            Err(_) => panic!("moto did not say which port it listens on within {PATIENCE:?}"),
        };
        let port = moto.port;
        wait_until(&format!("moto to answer on port {port}"), PATIENCE, || {
            try_request(port, "GET", "/moto-api/", &[]).ok()
        });
        moto
    }

    /// Calls one action of the Cognito Identity Provider API, as the AWS SDKs do.
    pub fn cognito(&self, action: &str, body: Value) -> Value {
        let target = format!("AWSCognitoIdentityProviderService.{action}");
        let headers: [(&str, &[u8]); 3] = [
            ("x-amz-target", target.as_bytes()),
            ("content-type", b"application/x-amz-json-1.1"),
            ("authorization", b"AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/cognito-idp/aws4_request, SignedHeaders=host, Signature=0"),
        ];
        let r = send(
            self.port,
            "POST",
            "/",
            &headers,
            body.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{action}: {}", r.body);
        r.json()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// Envoy

/// A running Envoy; killed on drop.
pub struct Envoy {
    child: Child,
    pub port: u16,
    pub admin_port: u16,
    pub dir: tempfile::TempDir,
}

/// The usual stack: Envoy with the filter (one pool provider, the top-level `extra` settings
/// merged in), an echo upstream, and a JWKS server holding test keys key1/k1 and key2/k2.
/// `ready` is a valid token: `start` waits until it passes. All stop when dropped.
pub struct Stack {
    pub envoy: Envoy,
    pub upstream: Server,
    pub jwks: JwksServer,
    pub ready: String,
}

impl Stack {
    pub fn start(extra: Value, ready: String) -> Stack {
        let jwks = JwksServer::start(&tokens::jwks(&[("key1", "k1"), ("key2", "k2")]));
        let upstream = echo_upstream();
        let mut config = json!({ "providers": [provider("cognito", jwks.port())] });
        for (k, v) in extra.as_object().expect("extra settings are an object") {
            config[k] = v.clone();
        }
        let envoy = Envoy::start(&bootstrap(&config, upstream.port, jwks.port()));
        envoy.wait_for_keys(&ready);
        Stack {
            envoy,
            upstream,
            jwks,
            ready,
        }
    }
}

/// The filter configuration for one Cognito-style provider whose JWKS is on `jwks_port`.
pub fn provider(name: &str, jwks_port: u16) -> Value {
    json!({
        "name": name,
        "user_pool_id": tokens::POOL,
        "client_ids": [tokens::CLIENT, "client2"],
        "jwks": { "cluster": "jwks", "uri": format!("http://127.0.0.1:{jwks_port}/{}/.well-known/jwks.json", tokens::POOL) },
    })
}

/// A static cluster to a loopback port.
pub fn cluster(name: &str, port: u16) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": { "cluster_name": name, "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
            "socket_address": { "address": "127.0.0.1", "port_value": port } } } }] }] },
    })
}

/// An Envoy bootstrap: one listener, the wasm filter with `filter_config`, the router to
/// `upstream_port`, and a `jwks` cluster to `jwks_port`.
pub fn bootstrap(filter_config: &Value, upstream_port: u16, jwks_port: u16) -> Value {
    bootstrap_with_clusters(
        filter_config,
        vec![
            cluster("upstream", upstream_port),
            cluster("jwks", jwks_port),
        ],
    )
}

/// The `stats_config` every example in `envoy/` ships (the labelled metrics), as
/// `envoy/production.yaml` has it: the tests' Envoys use it too.
pub fn stats_config() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("envoy/production.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let bootstrap: Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    bootstrap["stats_config"].clone()
}

/// A bootstrap as [`bootstrap`], with the clusters given (one must be `upstream`).
pub fn bootstrap_with_clusters(filter_config: &Value, clusters: Vec<Value>) -> Value {
    let wasm = filter_entry(filter_config);
    json!({
        "stats_config": stats_config(),
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } },
        "static_resources": {
            "listeners": [{
                "name": "main",
                "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
                "filter_chains": [{ "filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "ingress",
                        "route_config": { "virtual_hosts": [{ "name": "all", "domains": ["*"],
                            "routes": [{ "match": { "prefix": "/" }, "route": { "cluster": "upstream" } }] }] },
                        "http_filters": [wasm, { "name": "envoy.filters.http.router", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" } }],
                    },
                }] }],
            }],
            "clusters": clusters,
        },
    })
}

impl Envoy {
    /// Starts Envoy and waits until it is live and its listener port is known.
    pub fn start(bootstrap: &Value) -> Envoy {
        Self::start_with(bootstrap, 1)
    }

    pub fn start_with(bootstrap: &Value, concurrency: u32) -> Envoy {
        Self::start_in(bootstrap, concurrency, &[])
    }

    /// As [`Envoy::start`], with these variables added to Envoy's environment (what
    /// `vm_config.environment_variables.host_env_keys` reads).
    pub fn start_with_env(bootstrap: &Value, env: &[(String, String)]) -> Envoy {
        Self::start_in(bootstrap, 1, env)
    }

    fn start_in(bootstrap: &Value, concurrency: u32, env: &[(String, String)]) -> Envoy {
        let (mut child, dir) = Self::spawn(bootstrap, concurrency, env);
        let admin_file = dir.path().join("admin");
        let deadline = Instant::now() + PATIENCE * 2;
        let admin_port = loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("envoy exited with {status} during start:\n{}", log_of(&dir));
            }
            if let Some(port) = std::fs::read_to_string(&admin_file).ok().and_then(|s| {
                s.trim()
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse::<u16>().ok())
            }) {
                break port;
            }
            assert!(
                Instant::now() < deadline,
                "envoy did not start:\n{}",
                log_of(&dir)
            );
            thread::sleep(Duration::from_millis(50));
        };
        let mut envoy = Envoy {
            child,
            port: 0,
            admin_port,
            dir,
        };
        envoy.port = envoy.wait_for_listener(deadline);
        envoy
    }

    fn spawn(
        bootstrap: &Value,
        concurrency: u32,
        env: &[(String, String)],
    ) -> (Child, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("envoy.json");
        let mut bootstrap = bootstrap.clone();
        let filter_env = take_filter_env(&mut bootstrap);
        std::fs::write(&cfg, bootstrap.to_string()).unwrap();
        let log = std::fs::File::create(dir.path().join("envoy.log")).unwrap();
        let child = Command::new(envoy_bin())
            .arg("-c")
            .arg(&cfg)
            .arg("--use-dynamic-base-id")
            .arg("--concurrency")
            .arg(concurrency.to_string())
            .arg("--admin-address-path")
            .arg(dir.path().join("admin"))
            .args([
                "-l",
                "info",
                "--component-log-level",
                "wasm:debug,dynamic_modules:debug",
            ])
            .envs(native_env())
            .envs(filter_env)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        (child, dir)
    }

    /// Runs Envoy with a bootstrap that must be refused; returns its exit code and log.
    pub fn expect_refusal(bootstrap: &Value) -> (Option<i32>, String) {
        let (mut child, dir) = Self::spawn(bootstrap, 1, &[]);
        let deadline = Instant::now() + PATIENCE * 2;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status.code(), log_of(&dir));
            }
            if Instant::now() > deadline || dir.path().join("admin").exists() && is_live(&dir) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("envoy started with a bad configuration:\n{}", log_of(&dir));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_for_listener(&mut self, deadline: Instant) -> u16 {
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("envoy exited with {status}:\n{}", self.log());
            }
            let reply = get(self.admin_port, "/listeners?format=json");
            let port = serde_json::from_str::<Value>(&reply.body)
                .ok()
                .and_then(|v| {
                    v["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]
                        .as_u64()
                });
            if let Some(port) = port.filter(|p| *p != 0) {
                return port as u16;
            }
            assert!(
                Instant::now() < deadline,
                "envoy listener never came up:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        log_of(&self.dir)
    }

    /// Waits until `token` is accepted (the JWKS has been fetched), or panics after
    /// [`PATIENCE`]. Until then the filter must answer 503 (no keys yet).
    pub fn wait_for_keys(&self, token: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let r = get_with_token(self.port, "/", token);
            if r.status == 200 {
                return;
            }
            assert!(
                r.status == 503,
                "waiting for keys, got {} {}",
                r.status,
                r.body
            );
            assert!(
                Instant::now() < deadline,
                "keys never loaded within {PATIENCE:?}:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the counter or gauge `name` is at least `at_least`, and returns its value;
    /// panics after [`PATIENCE`]. (The filter's per-request counts reach Envoy on a tick.)
    pub fn wait_for_stat(&self, name: &str, at_least: u64) -> u64 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let value = self.stat(name);
            if let Some(v) = value.filter(|v| *v >= at_least) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{name} is {value:?} after {PATIENCE:?}, waited for {at_least}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until Envoy's log holds `needle`, or panics after [`PATIENCE`] with the log.
    pub fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + PATIENCE;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "the log never said {needle:?}:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The value of one counter or gauge from the admin `/stats` endpoint. The filter's own
    /// (`wasmcustom.cognito_edge_auth.…`) are read under the prefix of the build under test.
    pub fn stat(&self, name: &str) -> Option<u64> {
        let name = &stat_name(name);
        let r = get(self.admin_port, &format!("/stats?filter=^{name}$"));
        r.body.lines().find_map(|l| {
            l.split_once(": ")
                .filter(|(n, _)| *n == name)
                .and_then(|(_, v)| v.trim().parse().ok())
        })
    }
}

/// Where [`set_filter_env`] records the native module's variables in a bootstrap (removed
/// before Envoy reads it).
const FILTER_ENV: &str = "__cognito_edge_auth_filter_env";

/// Gives the filter of `bootstrap` (made by [`bootstrap_with_clusters`]) the environment
/// variables `vars` (`{ "NAME": "value" }`: the secrets its `login.*_env` names), as the build
/// under test reads them: the .wasm from its VM's `vm_config.environment_variables.key_values`,
/// the native module from Envoy's own environment (set by `Envoy::start…`).
pub fn set_filter_env(bootstrap: &mut Value, vars: Value) {
    match build() {
        Build::Wasm => {
            bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
                ["typed_config"]["http_filters"][0]["typed_config"]["config"]["vm_config"]
                ["environment_variables"] = json!({ "key_values": vars });
        }
        Build::Native => bootstrap[FILTER_ENV] = vars,
    }
}

/// The variables [`set_filter_env`] recorded for the native module, taken out of `bootstrap`.
fn take_filter_env(bootstrap: &mut Value) -> Vec<(String, String)> {
    let Some(vars) = bootstrap.as_object_mut().and_then(|b| b.remove(FILTER_ENV)) else {
        return Vec::new();
    };
    vars.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

/// What Envoy's environment needs for the build under test: where the .so is.
pub fn native_env() -> Vec<(String, String)> {
    match build() {
        Build::Wasm => Vec::new(),
        Build::Native => {
            let so = so_path();
            let dir = so.parent().unwrap().to_string_lossy().into_owned();
            vec![("ENVOY_DYNAMIC_MODULES_SEARCH_PATH".into(), dir)]
        }
    }
}

fn is_live(dir: &tempfile::TempDir) -> bool {
    std::fs::read_to_string(dir.path().join("admin"))
        .ok()
        .and_then(|s| {
            s.trim()
                .rsplit(':')
                .next()
                .and_then(|p| p.parse::<u16>().ok())
        })
        .is_some_and(|port| try_request(port, "GET", "/ready", &[]).is_ok_and(|r| r.status == 200))
}

fn log_of(dir: &tempfile::TempDir) -> String {
    std::fs::read_to_string(dir.path().join("envoy.log")).unwrap_or_default()
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("--- envoy log ---\n{}", self.log());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Upstream servers run as processes (real frameworks)

/// A server process that binds an OS-chosen port and prints it as its first stdout line;
/// killed on drop.
pub struct Process {
    child: Child,
    pub port: u16,
}

impl Process {
    /// Starts `program args` and waits until it has printed its port and the port answers.
    pub fn start(program: &std::path::Path, args: &[&str]) -> Process {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let mut process = Process { child, port: 0 };
        process.port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{} printed {line:?}, not a port", program.display()));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", process.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} never listened",
                program.display()
            );
            thread::sleep(Duration::from_millis(20));
        }
        process
    }
}

impl Process {
    /// Starts `command` and waits until a line of its stderr contains `marker`, taking the
    /// port from that line (the digits after its last `:`), as Jetty logs
    /// `Started ServerConnector@…{HTTP/1.1, (http/1.1)}{127.0.0.1:41234}`. The rest of its
    /// stderr is drained in the background.
    pub fn start_logging_port(mut command: Command, marker: &str) -> Process {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{command:?}: {e}"));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        let port = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{command:?} exited before logging {marker:?}:\n{}",
                    seen.join("\n")
                );
            };
            if line.contains(marker) {
                let digits: String = line
                    .rsplit(':')
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                break digits
                    .parse::<u16>()
                    .unwrap_or_else(|_| panic!("no port in {line:?}"));
            }
            seen.push(line);
        };
        thread::spawn(move || lines.for_each(drop));
        Process { child, port }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python of the venv that holds Envoy (the Makefile installs the test frameworks there).
pub fn venv_python() -> PathBuf {
    envoy_bin().with_file_name("python")
}
