//! Graceful rollout of the real binary over real sockets: after `SIGTERM`, `/readyz` answers
//! `503` at once while deliveries still get `200` for `server.drain_delay_secs`; then new
//! connections are refused, a request still on a keep-alive connection is answered with
//! `Connection: close`, and the process exits 0 with every acknowledged record on disk. The
//! `/metrics` listener keeps answering through the delay and closes with the edge.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use testkit::{free_addr, poll_until, wait_until};

/// A batch of one record whose id is `id`.
fn record(id: &str) -> Vec<u8> {
    format!(
        "{{\"id\":\"{id}\",\"projectId\":\"prj_roll\",\"timestamp\":1700000000000,\
         \"source\":\"lambda\",\"message\":\"m\"}}\n"
    )
    .into_bytes()
}

fn sigterm(child: &std::process::Child) {
    // SAFETY: a plain kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
}

fn readyz(addr: SocketAddr) -> u16 {
    send(addr, "GET", "/readyz", &[], b"").status
}

fn stored_ids(data: &std::path::Path) -> Vec<String> {
    lines_in(&data.join("logs"))
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().into()
        })
        .collect()
}

#[test]
fn sigterm_drains_then_closes_and_exits_zero_with_every_acknowledged_record() {
    const DELAY: Duration = Duration::from_secs(2);
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("spillway.toml");
    let metrics = free_addr();
    let settings = format!(
        "[server]\ndrain_delay_secs = {}\nmetrics_listen = \"{metrics}\"\n",
        DELAY.as_secs()
    );
    std::fs::write(&config, settings).unwrap();
    let addr = free_addr();
    let mut child = spawn_receiver(data.path(), addr, Some(&config));
    assert_eq!(readyz(addr), 200);
    assert_eq!(deliver(addr, &record("before")).status, 200);
    // A keep-alive connection opened before the stop.
    let mut kept = TcpStream::connect(addr).unwrap();
    let first = record("kept-1");
    let sig = sign(&first);
    let head = [("x-vercel-signature", sig.as_str())];
    assert_eq!(exchange(&mut kept, &request("POST", "/vercel/logs", &head, &first)).status, 200);

    let stopped = Instant::now();
    sigterm(&child);
    let ready = poll_until(Duration::from_secs(1), || readyz(addr), |s| *s == 503);
    assert_eq!(ready, 503, "/readyz still ready after SIGTERM");
    assert!(stopped.elapsed() < DELAY / 2, "/readyz took {:?} to turn 503", stopped.elapsed());
    // During the delay: new connections and the kept one are served, and so is /metrics.
    assert_eq!(deliver(addr, &record("during")).status, 200);
    assert_eq!(send(metrics, "GET", "/metrics", &[], b"").status, 200);
    assert!(stopped.elapsed() < DELAY, "the delivery during the delay came too late to count");
    // A request on the kept connection whose body is not complete when the delay ends.
    let second = record("kept-2");
    let sig = sign(&second);
    let bytes = request("POST", "/vercel/logs", &[("x-vercel-signature", sig.as_str())], &second);
    let split = bytes.len() - 10;
    kept.write_all(&bytes[..split]).unwrap();
    let refused = wait_until(Duration::from_secs(10), || TcpStream::connect(addr).is_err());
    assert!(refused, "still accepting connections long after the drain delay");
    assert!(stopped.elapsed() >= DELAY, "stopped accepting before the drain delay was over");
    let closed = wait_until(Duration::from_secs(10), || TcpStream::connect(metrics).is_err());
    assert!(closed, "/metrics still accepting after the edge closed");
    kept.write_all(&bytes[split..]).unwrap();
    let reply = read_reply(&mut kept);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("connection"), Some("close"), "{:?}", reply.headers);

    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut stored = stored_ids(data.path());
    stored.sort();
    assert_eq!(stored, ["before", "during", "kept-1", "kept-2"]);
}

#[test]
fn a_second_sigterm_ends_the_drain_at_once() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("spillway.toml");
    std::fs::write(&config, "[server]\ndrain_delay_secs = 60\n").unwrap();
    let addr = free_addr();
    let mut child = spawn_receiver(data.path(), addr, Some(&config));
    assert_eq!(deliver(addr, &record("acked")).status, 200);
    sigterm(&child);
    assert_eq!(poll_until(Duration::from_secs(1), || readyz(addr), |s| *s == 503), 503);
    let started = Instant::now();
    sigterm(&child);
    let exited = wait_until(Duration::from_secs(5), || child.try_wait().unwrap().is_some());
    assert!(exited, "a second SIGTERM did not end a 60 s drain");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!child.wait().unwrap().success(), "a cut-short stop must not report success");
    assert_eq!(stored_ids(data.path()), ["acked"]);
}
