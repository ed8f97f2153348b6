//! Test support: an in-process app on `127.0.0.1:0`, a raw HTTP/1.1 client over real sockets,
//! and the Vercel fixtures with their signatures.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use spillway::config::{self, Config};
use tokio::sync::oneshot;

pub mod fleet;

pub const SECRET: &str = "drain-secret-0123456789";
pub const VERIFY_CODE: &str = "verify-code-42";

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/vercel").join(name))
        .unwrap()
}

/// The `x-vercel-signature` the fixtures' signature vectors give for `name`.
pub fn fixture_signature(name: &str) -> String {
    let vectors: serde_json::Value = serde_json::from_slice(&fixture("signatures.json")).unwrap();
    let entry = vectors.as_array().unwrap().iter().find(|v| v["file"] == name).unwrap();
    assert_eq!(entry["secret"], SECRET);
    entry["x-vercel-signature"].as_str().unwrap().to_owned()
}

/// `data` gzipped.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn sign(body: &[u8]) -> String {
    listener::SigningKey::new(SECRET).sign(body)
}

/// A response as read off the socket.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body))
        })
    }

    /// The `error.code` of a JSON error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_default().to_owned()
    }
}

/// Writes one request and reads one response from `stream`.
pub fn exchange(stream: &mut TcpStream, request: &[u8]) -> Reply {
    stream.write_all(request).unwrap();
    read_reply(stream)
}

pub fn read_reply(stream: &mut TcpStream) -> Reply {
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed before a response: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed inside the body");
        body.extend_from_slice(&chunk[..n]);
    }
    Reply { status, headers, body }
}

/// Builds a request with a `Content-Length` body.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{method} {path} HTTP/1.1\r\nhost: spillway.test\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// One request on a fresh connection.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    exchange(&mut stream, &request(method, path, headers, body))
}

/// A signed POST of `body` to the drain path.
pub fn deliver(addr: SocketAddr, body: &[u8]) -> Reply {
    let sig = sign(body);
    send(addr, "POST", "/vercel/logs", &[("x-vercel-signature", &sig)], body)
}

/// A POST of `body` to the drain path, declared as `encoding`, signed over the bytes sent.
pub fn deliver_encoded(addr: SocketAddr, body: &[u8], encoding: &str) -> Reply {
    let sig = sign(body);
    send(
        addr,
        "POST",
        "/vercel/logs",
        &[("x-vercel-signature", &sig), ("content-encoding", encoding)],
        body,
    )
}

/// `logs.ndjson` POSTed to `path` signed with `secret`, repeated until it is answered `status`
/// or five seconds pass (the receiver re-reads the drain registry within a quarter of a second
/// of a change); returns the last reply for the caller to check.
pub fn deliver_until(addr: SocketAddr, path: &str, secret: &str, status: u16) -> Reply {
    let body = fixture("logs.ndjson");
    let sig = listener::SigningKey::new(secret).sign(&body);
    testkit::poll_until(
        Duration::from_secs(5),
        || send(addr, "POST", path, &[("x-vercel-signature", &sig)], &body),
        |reply| reply.status == status,
    )
}

/// Waits (at most 5 s) until drain path `path` is served: the receiver reads its registry file
/// within a quarter of a second of a change. Asks with Vercel's probe, which stores nothing.
pub fn wait_served(addr: SocketAddr, path: &str) {
    let served = || send(addr, "POST", path, &[], b"{}").status == 200;
    assert!(testkit::wait_until(Duration::from_secs(5), served), "{path} was never served");
}

/// A Vercel API simulator on a runtime of its own; keep the runtime as long as the simulator.
pub fn start_simulator() -> (tokio::runtime::Runtime, SocketAddr, vercel_sim::Simulator) {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (addr, sim) = runtime.block_on(vercel_sim::Simulator::start()).unwrap();
    (runtime, addr, sim)
}

/// An app running in-process with its data in a temporary directory.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The integration's control-plane listener, when configured.
    pub control_addr: Option<SocketAddr>,
    /// The `/metrics` listener, when `server.metrics_listen` is configured.
    pub metrics_addr: Option<SocketAddr>,
    pub data: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    runtime: Option<tokio::runtime::Runtime>,
    done: Option<tokio::task::JoinHandle<bool>>,
}

impl TestApp {
    /// Starts with a drain secret and a verify code, then applies `adjust`.
    pub fn start(adjust: impl FnOnce(&mut Config)) -> TestApp {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().to_string_lossy().into_owned();
        let env = |k: &str| match k {
            "SPILLWAY_LISTEN" => Some("127.0.0.1:0".to_owned()),
            "SPILLWAY_DATA_DIR" => Some(dir.clone()),
            "SPILLWAY_DRAIN_SECRET" => Some(SECRET.to_owned()),
            "SPILLWAY_VERIFY_CODE" => Some(VERIFY_CODE.to_owned()),
            _ => None,
        };
        let mut config = config::load(None, env).unwrap();
        // No load balancer in front: stop accepting at once (tests/rollout.rs tests the delay).
        config.ingest.drain_delay = Duration::ZERO;
        adjust(&mut config);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let app = runtime.block_on(spillway::App::start(config)).unwrap();
        let addr = app.local_addr();
        let control_addr = app.control_addr();
        let metrics_addr = app.metrics_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let done = runtime.spawn(app.run(async move {
            let _ = stopped.await;
        }));
        TestApp {
            addr,
            control_addr,
            metrics_addr,
            data,
            stop: Some(stop),
            runtime: Some(runtime),
            done: Some(done),
        }
    }

    pub fn dir(&self, sub: &str) -> PathBuf {
        self.data.path().join(sub)
    }

    /// Stops the app as SIGTERM would; returns whether everything finished in time.
    pub fn stop(&mut self) -> bool {
        let _ = self.stop.take().map(|s| s.send(()));
        match (self.runtime.take(), self.done.take()) {
            (Some(rt), Some(done)) => rt.block_on(done).unwrap(),
            _ => true,
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Every line of every file (complete or open) under `dir`, in file-name order. A last line
/// without its newline is left out: in an open file after a crash it is a write that was never
/// acknowledged, which the next start cuts off.
pub fn lines_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => return Vec::new(),
    };
    names.retain(|p| {
        let n = p.file_name().unwrap().to_string_lossy();
        n.ends_with(".ndjson") || n.ends_with(".ndjson.open")
    });
    names.sort();
    names
        .iter()
        .flat_map(|p| {
            let bytes = std::fs::read(p).unwrap();
            let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let text = String::from_utf8(bytes[..complete].to_vec()).unwrap();
            text.lines().map(str::to_owned).collect::<Vec<_>>()
        })
        .collect()
}

/// Holds the only connection slot of the listener at `addr` (keep-alive, proven by exchanging
/// `first`, answered `status`), then checks that a second connection gets the raw `503` at once.
pub fn assert_second_connection_refused(addr: SocketAddr, first: &[u8], status: u16) {
    let mut held = TcpStream::connect(addr).unwrap();
    assert_eq!(exchange(&mut held, first).status, status);
    let started = Instant::now();
    let mut second = TcpStream::connect(addr).unwrap();
    let reply = read_reply(&mut second);
    assert_eq!(reply.status, 503);
    assert_eq!(reply.error_code(), "too_many_connections");
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(held);
}

/// A `spillway serve` process on `addr` over `data` (signed with [`SECRET`]), with `config` if
/// given, once it accepts connections.
pub fn spawn_receiver(data: &Path, addr: SocketAddr, config: Option<&Path>) -> std::process::Child {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_spillway"));
    command.arg("serve");
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let mut child = command
        .env("SPILLWAY_LISTEN", addr.to_string())
        .env("SPILLWAY_DATA_DIR", data)
        .env("SPILLWAY_DRAIN_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    testkit::eventually(Duration::from_secs(20), "spillway to start listening", || {
        TcpStream::connect(addr).ok()
    });
    // What listens must be this child, not another process on a reused port.
    let exited = child.try_wait().unwrap();
    assert!(exited.is_none(), "spillway exited at start ({exited:?}) yet {addr} accepts");
    child
}

/// The public URL of the receiver's drain path, as a proxy in front of it would expose it.
pub const DRAIN_URL: &str = "https://logs.example.com/vercel/logs";
/// The integration's Redirect URL.
pub const REDIRECT_URL: &str = "https://spillway.example.com/vercel/integration/callback";

/// The integration of the simulator whose settings are `sim` and whose API is at `api_url`:
/// its control plane on a free loopback port, a drain created per install under [`DRAIN_URL`].
pub fn sim_integration(sim: vercel_sim::SimConfig, api_url: String) -> control::IntegrationConfig {
    control::IntegrationConfig {
        client_id: sim.client_id,
        client_secret: control::Secret::new(sim.client_secret),
        redirect_url: REDIRECT_URL.to_owned(),
        api_url,
        listen: "127.0.0.1:0".parse().unwrap(),
        drain_url: Some(DRAIN_URL.to_owned()),
        create_drain: true,
        ..control::IntegrationConfig::default()
    }
}

/// A self-served registry entry: drain `id` at path key `key`, signed with `secret`.
pub fn drain_entry(id: &str, key: &str, secret: &str) -> control::DrainEntry {
    control::DrainEntry {
        id: id.into(),
        path_key: key.into(),
        secret: control::Secret::new(secret),
        team_id: None,
        kind: control::DrainKind::SelfServed,
        created_at_ms: 1,
        configuration_id: None,
        integration_secret: false,
        data_type: Default::default(),
        headers: Vec::new(),
    }
}

/// One run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// When it exited.
    pub ended: Instant,
}

impl Run {
    /// What a finished run of the binary printed, and its exit code.
    pub fn of(output: std::process::Output) -> Run {
        Run {
            code: output.status.code().expect("exited, not killed"),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
            ended: Instant::now(),
        }
    }

    /// Its standard output as JSON (`--json`).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}
