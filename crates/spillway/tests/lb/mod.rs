//! The load-balancer tests' harness: Spillway replicas (the real binary, each with its own data
//! dir), HAProxy started as a child process with `deploy/haproxy.cfg`, and a client load at a
//! fixed rate whose every outcome is kept (status or connection error, latency, record ids).
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::{lines_in, sign, spawn_receiver};
use testkit::{free_addr, poll_until};

/// HAProxy's check interval in these tests (the shipped default is 1 s).
pub const CHECK_INTER_MS: u64 = 200;
/// The replicas' `server.drain_delay_secs`: well above fall (2) x inter + inter.
pub const DRAIN_DELAY_SECS: u64 = 2;

/// Whether the suite runs: with `SPILLWAY_HAPROXY` or `CI` set it must, and a missing haproxy
/// fails it; otherwise it is skipped with a note.
pub fn haproxy_required() -> bool {
    let required =
        std::env::var_os("SPILLWAY_HAPROXY").is_some() || std::env::var_os("CI").is_some();
    let runs = Command::new("haproxy").arg("-v").output().is_ok_and(|o| o.status.success());
    match (required, runs) {
        (true, true) => true,
        (true, false) => panic!(
            "haproxy cannot run while SPILLWAY_HAPROXY or CI is set: install it (apt-get install \
             haproxy; scripts/test does)"
        ),
        (false, _) => {
            eprintln!("\n*** SKIPPED: the load-balancer tests run with SPILLWAY_HAPROXY=1 ***\n");
            false
        }
    }
}

/// One `spillway serve` process; killed (SIGKILL) on drop if still running.
pub struct Replica {
    pub addr: SocketAddr,
    pub data: PathBuf,
    config: PathBuf,
    child: Option<Child>,
}

impl Replica {
    /// Starts a replica over `root/<name>` with `extra` appended to its config file.
    pub fn start(root: &Path, name: &str, extra: &str) -> Replica {
        let data = root.join(name);
        std::fs::create_dir_all(&data).unwrap();
        let config = root.join(format!("{name}.toml"));
        let text = format!("[server]\ndrain_delay_secs = {DRAIN_DELAY_SECS}\n{extra}");
        std::fs::write(&config, text).unwrap();
        let addr = free_addr();
        let child = Some(spawn_receiver(&data, addr, Some(&config)));
        Replica { addr, data, config, child }
    }

    /// Sends SIGTERM without waiting.
    pub fn sigterm(&self) {
        let child = self.child.as_ref().expect("running");
        // SAFETY: a plain kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    }

    /// Waits for the process to exit (after a signal sent before).
    pub fn wait(&mut self) -> ExitStatus {
        self.child.take().expect("running").wait().unwrap()
    }

    /// SIGKILL, then reaps it.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM, a clean exit, and a new process on the same address and data dir.
    pub fn restart(&mut self) -> ExitStatus {
        self.sigterm();
        let status = self.wait();
        self.child = Some(spawn_receiver(&self.data, self.addr, Some(&self.config)));
        status
    }

    /// Every record id in the replica's files.
    pub fn stored_ids(&self) -> Vec<String> {
        lines_in(&self.data.join("logs"))
            .iter()
            .map(|l| {
                let value: serde_json::Value = serde_json::from_str(l).unwrap();
                value["id"].as_str().unwrap().to_owned()
            })
            .collect()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// HAProxy running `deploy/haproxy.cfg` in the foreground, on loopback ports; killed on drop.
pub struct Proxy {
    pub listen: SocketAddr,
    stats: SocketAddr,
    child: Child,
}

impl Proxy {
    /// HAProxy in front of `a` (`spillway-a`) and `b` (`spillway-b`), once both are `UP`.
    pub fn start(a: &Replica, b: &Replica) -> Proxy {
        Proxy::start_with(a, b, "UP")
    }

    /// HAProxy in front of `a` and `b`, once `a` is `UP` and `b` is `b_status`.
    pub fn start_with(a: &Replica, b: &Replica, b_status: &str) -> Proxy {
        let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/haproxy.cfg");
        let (listen, stats) = (free_addr(), free_addr());
        let child = Command::new("haproxy")
            .arg("-f")
            .arg(cfg)
            .env("SPILLWAY_LB_LISTEN", listen.to_string())
            .env("SPILLWAY_LB_STATS", stats.to_string())
            .env("SPILLWAY_REPLICA_A", a.addr.to_string())
            .env("SPILLWAY_REPLICA_B", b.addr.to_string())
            .env("SPILLWAY_CHECK_INTER", format!("{CHECK_INTER_MS}ms"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy starts");
        let proxy = Proxy { listen, stats, child };
        proxy.wait_for("spillway-a", "UP", Duration::from_secs(10));
        proxy.wait_for("spillway-b", b_status, Duration::from_secs(10));
        proxy
    }

    /// Each server's status (`UP`, `DOWN`, `UP 1/2`, …) from the stats CSV.
    pub fn statuses(&self) -> HashMap<String, String> {
        let Ok((200, body)) = exchange(self.stats, b"GET /stats;csv HTTP/1.0\r\n\r\n") else {
            return HashMap::new();
        };
        let text = String::from_utf8_lossy(&body).into_owned();
        let mut lines = text.lines().skip_while(|l| !l.starts_with("# "));
        let Some(header) = lines.next() else { return HashMap::new() };
        let columns: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
        let col = |name| columns.iter().position(|c| *c == name).unwrap();
        let (sv, status) = (col("svname"), col("status"));
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f.len() > status && f[0] == "spillway")
            .map(|f| (f[sv].to_owned(), f[status].to_owned()))
            .collect()
    }

    /// Polls until `server`'s status is exactly `want`; returns how long that took.
    pub fn wait_for(&self, server: &str, want: &str, within: Duration) -> Duration {
        let started = Instant::now();
        let last = poll_until(
            within,
            || self.statuses().get(server).cloned().unwrap_or_default(),
            |s| s == want,
        );
        assert_eq!(last, want, "HAProxy's view of {server} after {within:?}");
        started.elapsed()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `request` on a fresh connection and reads until the server closes it; returns the
/// status and the rest of the bytes. Any I/O failure (refused, reset, timed out) is an `Err`.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    stream.write_all(request).map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).map_err(|e| e.to_string())?;
    let head = String::from_utf8_lossy(&reply[..reply.len().min(64)]).into_owned();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
    status.map(|s| (s, reply)).ok_or_else(|| format!("no status line: {head:?}"))
}

/// A signed delivery of `ids` (one record each), asking the server to close after answering.
fn delivery(ids: &[String]) -> Vec<u8> {
    let mut body = Vec::new();
    for id in ids {
        let line = format!(
            "{{\"id\":\"{id}\",\"projectId\":\"prj_lb\",\"timestamp\":1700000000000,\
             \"source\":\"lambda\",\"message\":\"{}\"}}\n",
            "x".repeat(100)
        );
        body.extend_from_slice(line.as_bytes());
    }
    let head = format!(
        "POST /vercel/logs HTTP/1.1\r\nhost: spillway.test\r\nconnection: close\r\n\
         x-vercel-signature: {}\r\ncontent-length: {}\r\n\r\n",
        sign(&body),
        body.len()
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    out
}

/// What one request came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub sent: Instant,
    pub latency: Duration,
    /// The status, or the connection error.
    pub result: Result<u16, String>,
    pub ids: Vec<String>,
}

/// Clients delivering at a fixed rate until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    clients: Vec<JoinHandle<()>>,
}

/// Clients at once, each at `RATE_PER_CLIENT` requests a second, `RECORDS` records a request.
pub const CLIENTS: usize = 4;
const RATE_PER_CLIENT: u32 = 25;
const RECORDS: usize = 5;
/// The bound on each client's requests (a minute at its rate).
const MAX_PER_CLIENT: u32 = 60 * RATE_PER_CLIENT;

impl Load {
    pub fn start(addr: SocketAddr, tag: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let clients = (0..CLIENTS)
            .map(|c| {
                let (stop, outcomes) = (Arc::clone(&stop), Arc::clone(&outcomes));
                let tag = format!("{tag}-c{c}");
                std::thread::spawn(move || client(addr, &tag, &stop, &outcomes))
            })
            .collect();
        Load { stop, outcomes, clients }
    }

    /// How many requests have been answered (or failed) so far.
    pub fn done(&self) -> usize {
        self.outcomes.lock().unwrap().len()
    }

    /// Waits until `more` requests beyond those done now have completed.
    pub fn run_for(&self, more: usize) {
        let target = self.done() + more;
        let within = Duration::from_secs(30);
        assert!(testkit::wait_until(within, || self.done() >= target), "the load stalled");
    }

    pub fn finish(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.clients {
            c.join().unwrap();
        }
        let outcomes = self.outcomes.lock().unwrap().clone();
        outcomes
    }
}

fn client(addr: SocketAddr, tag: &str, stop: &AtomicBool, outcomes: &Mutex<Vec<Outcome>>) {
    let interval = Duration::from_secs(1) / RATE_PER_CLIENT;
    let start = Instant::now();
    for n in 0..MAX_PER_CLIENT {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        // Pacing, not synchronisation: request n is due at start + n x interval, so the rate
        // stays fixed whatever the latency (a late request goes at once).
        let due = start + interval * n;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let ids: Vec<String> = (0..RECORDS).map(|i| format!("{tag}-b{n}-r{i}")).collect();
        let sent = Instant::now();
        let result = exchange(addr, &delivery(&ids)).map(|(status, _)| status);
        let outcome = Outcome { sent, latency: sent.elapsed(), result, ids };
        outcomes.lock().unwrap().push(outcome);
    }
}

/// The 99th percentile of the latencies of `outcomes` sent in `[from, to)`.
pub fn p99(outcomes: &[Outcome], from: Instant, to: Instant) -> Duration {
    let mut latencies: Vec<Duration> =
        outcomes.iter().filter(|o| o.sent >= from && o.sent < to).map(|o| o.latency).collect();
    assert!(!latencies.is_empty(), "no request in the window");
    latencies.sort();
    latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)]
}

/// The 99th percentile of the latencies of `outcomes` sent before `from` or from `to` on.
pub fn p99_outside(outcomes: &[Outcome], from: Instant, to: Instant) -> Duration {
    let outside: Vec<Outcome> =
        outcomes.iter().filter(|o| o.sent < from || o.sent >= to).cloned().collect();
    let (first, last) = (outside[0].sent, Instant::now());
    p99(&outside, first, last)
}

/// The ids of every request answered `200`.
pub fn acked(outcomes: &[Outcome]) -> Vec<String> {
    outcomes.iter().filter(|o| o.result == Ok(200)).flat_map(|o| o.ids.clone()).collect()
}

/// Checks that every acknowledged id is stored exactly once across `replicas`; returns how many
/// acknowledged ids were found.
pub fn assert_acked_stored_once(outcomes: &[Outcome], replicas: &[&Replica]) -> usize {
    let mut copies: HashMap<String, usize> = HashMap::new();
    for replica in replicas {
        for id in replica.stored_ids() {
            *copies.entry(id).or_default() += 1;
        }
    }
    let acked = acked(outcomes);
    let missing: Vec<&String> = acked.iter().filter(|id| !copies.contains_key(*id)).collect();
    let twice: Vec<&String> = acked.iter().filter(|id| copies.get(*id) > Some(&1)).collect();
    let some = |ids: &[&String]| format!("{:?}", &ids[..ids.len().min(5)]);
    assert!(missing.is_empty(), "{} acknowledged records lost: {}", missing.len(), some(&missing));
    assert!(
        twice.is_empty(),
        "{} acknowledged records stored twice: {}",
        twice.len(),
        some(&twice)
    );
    acked.len()
}
