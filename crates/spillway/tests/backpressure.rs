//! Honest backpressure at the edge, over real sockets: a full pipeline or a slow sink turns into
//! a quick `503` with `Retry-After`, never a stalled socket and never a `200`.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use ingest::{IngestConfig, IngestMetrics, Server};
use record::{Ack, AckPart, AckWaiter, Batch, Dispatch, Refusal};

/// A pipeline stand-in whose behaviour each test picks.
struct Stub {
    capacity: bool,
    admit: bool,
    /// Ack parts held and never settled: a sink that never confirms.
    held: Mutex<Vec<AckPart>>,
}

impl Dispatch for Stub {
    fn admissible(&self, _bytes: usize) -> Result<(), Refusal> {
        if self.capacity {
            Ok(())
        } else {
            Err(Refusal::Overloaded)
        }
    }
    fn try_submit(&self, _batch: Batch) -> Result<AckWaiter, Refusal> {
        if !self.admit {
            return Err(Refusal::Overloaded);
        }
        let (parts, waiter) = Ack::split(1);
        self.held.lock().unwrap().extend(parts);
        Ok(waiter)
    }
    fn ready(&self) -> bool {
        self.capacity
    }
}

struct Edge {
    addr: std::net::SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
    _runtime: tokio::runtime::Runtime,
}

fn edge(stub: Stub, ack_timeout: Duration) -> Edge {
    edge_with(Arc::new(stub), ack_timeout, |_| {})
}

fn edge_with(
    stub: Arc<Stub>,
    ack_timeout: Duration,
    adjust: impl FnOnce(&mut IngestConfig),
) -> Edge {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let mut config = IngestConfig::new("127.0.0.1:0".parse().unwrap());
    config.ack_timeout = ack_timeout;
    adjust(&mut config);
    config.retry_after_secs = 3;
    config.drain_secret = Some(listener::SigningKey::new(SECRET));
    let metrics = IngestMetrics::register(&mut Default::default());
    let server =
        runtime.block_on(Server::bind(config, stub, metrics, Arc::new(String::new))).unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    runtime.spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    Edge { addr, _stop: stop, _runtime: runtime }
}

/// An edge whose sink holds every batch unconfirmed until the test settles it.
fn holding_edge(adjust: impl FnOnce(&mut IngestConfig)) -> (Arc<Stub>, Edge) {
    let stub = Arc::new(Stub { capacity: true, admit: true, held: Mutex::default() });
    let e = edge_with(Arc::clone(&stub), Duration::from_secs(30), adjust);
    (stub, e)
}

impl Stub {
    /// Whether at least `n` batches are held unconfirmed.
    fn holds(&self, n: usize) -> bool {
        self.held.lock().unwrap().len() >= n
    }

    /// Confirms every batch held.
    fn settle(&self) {
        self.held.lock().unwrap().drain(..).for_each(AckPart::complete);
    }
}

#[test]
fn full_pipeline_is_503_with_retry_after_before_the_body_is_read() {
    let e = edge(
        Stub { capacity: false, admit: false, held: Mutex::default() },
        Duration::from_secs(5),
    );
    let started = Instant::now();
    let reply = deliver(e.addr, &fixture("logs.ndjson"));
    assert_eq!(reply.status, 503);
    assert_eq!(reply.error_code(), "overloaded");
    assert_eq!(reply.header("retry-after"), Some("3"));
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    assert_eq!(send(e.addr, "GET", "/readyz", &[], b"").status, 503);
}

#[test]
fn pipeline_filling_up_during_the_read_is_503() {
    let e =
        edge(Stub { capacity: true, admit: false, held: Mutex::default() }, Duration::from_secs(5));
    let reply = deliver(e.addr, &fixture("logs.ndjson"));
    assert_eq!(reply.status, 503);
    assert_eq!(reply.error_code(), "overloaded");
    assert!(reply.header("x-vercel-verify").is_none());
}

#[test]
fn sinks_that_never_confirm_are_503_after_the_ack_timeout() {
    let e = edge(
        Stub { capacity: true, admit: true, held: Mutex::default() },
        Duration::from_millis(300),
    );
    let started = Instant::now();
    let reply = deliver(e.addr, &fixture("logs.ndjson"));
    assert_eq!(reply.status, 503);
    assert_eq!(reply.error_code(), "ack_timeout");
    assert_eq!(reply.header("retry-after"), Some("3"));
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(3), "took {took:?}");
}

#[test]
fn bodies_past_the_held_bytes_budget_wait_unread_then_are_503() {
    // A sink that never confirms keeps the first delivery, and its 1 MiB (the whole budget), held.
    let (stub, e) = holding_edge(|c| {
        c.max_held_body_bytes = 1 << 20;
        c.body_read_timeout = Duration::from_millis(500);
    });
    let mut body = Vec::new();
    while body.len() < 1 << 20 {
        body.extend_from_slice(&fixture("logs.ndjson"));
    }
    let first = std::thread::spawn({
        let (addr, body) = (e.addr, body.clone());
        move || deliver(addr, &body)
    });
    let submitted = || stub.holds(1);
    assert!(testkit::wait_until(Duration::from_secs(10), submitted));
    // No room until the first is answered: the second waits its body's time, then is refused.
    let started = Instant::now();
    let reply = deliver(e.addr, &fixture("logs.ndjson"));
    assert_eq!((reply.status, reply.error_code().as_str()), (503, "overloaded"));
    assert!(started.elapsed() >= Duration::from_millis(500), "took {:?}", started.elapsed());
    // The held part settled: room again.
    stub.settle();
    assert_eq!(first.join().unwrap().status, 200);
    let next = std::thread::spawn({
        let addr = e.addr;
        move || deliver(addr, &fixture("logs.ndjson"))
    });
    assert!(testkit::wait_until(Duration::from_secs(10), submitted));
    stub.settle();
    assert_eq!(next.join().unwrap().status, 200);
}

/// `n` copies of the first record of `logs.ndjson`, one per line.
fn records(n: usize) -> Vec<u8> {
    let logs = fixture("logs.ndjson");
    let line = logs.split_inclusive(|&b| b == b'\n').next().unwrap();
    assert!(line.ends_with(b"\n"));
    line.repeat(n)
}

/// A signed request whose body is sent chunked (no `Content-Length`), in `chunks`.
fn chunked(chunks: &[&[u8]]) -> Vec<u8> {
    let body = chunks.concat();
    let mut req = format!(
        "POST /vercel/logs HTTP/1.1\r\nhost: x\r\nx-vercel-signature: {}\r\n\
         transfer-encoding: chunked\r\n\r\n",
        sign(&body)
    )
    .into_bytes();
    for chunk in chunks {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    req
}

#[test]
fn chunked_bodies_take_room_as_they_arrive_and_wait_for_more() {
    // 192 KiB of budget and bodies of up to 16 MiB: a chunked body counted at the most it may
    // be would take the whole budget, and the second one below would wait, then be refused.
    let (stub, e) = holding_edge(|c| {
        c.max_held_body_bytes = 192 << 10;
        c.max_body_bytes = 16 << 20;
        c.body_read_timeout = Duration::from_secs(10);
    });
    let (held, settle) = (|n| stub.holds(n), || stub.settle());
    let post = |req: Vec<u8>| {
        let addr = e.addr;
        std::thread::spawn(move || exchange(&mut std::net::TcpStream::connect(addr).unwrap(), &req))
    };
    // Two chunked deliveries of about 57 KiB, held by a sink that never confirms: each takes 64
    // KiB of room first, both are read at once, and each keeps 57 or 58 (its body and padding).
    let (a, b) = (records(60), records(61));
    let first = [post(chunked(&a.chunks(1024).collect::<Vec<_>>())), post(chunked(&[&b]))];
    assert!(testkit::wait_until(Duration::from_secs(10), || held(2)), "both read at once");
    // A third (about 94 KiB) takes 64 KiB of the 77 left, then needs 128: it gives back its 64
    // and waits for 128, and is read once the first two are answered.
    let big = records(100);
    let third = post(chunked(&big.chunks(1024).collect::<Vec<_>>()));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!held(3), "the third waits for room");
    settle();
    for delivery in first {
        assert_eq!(delivery.join().unwrap().status, 200);
    }
    assert!(testkit::wait_until(Duration::from_secs(10), || held(1)), "the third read");
    settle();
    let reply = third.join().unwrap();
    assert_eq!((reply.status, reply.json()["accepted"].as_u64()), (200, Some(100)));
}

#[test]
fn chunked_bodies_waiting_to_grow_at_once_are_all_read() {
    // 256 KiB of budget, two chunked bodies of about 57 KiB held by a sink that never confirms.
    // Two more send 50 KiB, then the rest: both need 128 KiB to go on, more than is left, so
    // each gives back what it holds and waits. Neither is refused for the other's waiting, and
    // both are answered once the first two are.
    let (stub, e) = holding_edge(|c| {
        c.max_held_body_bytes = 256 << 10;
        c.body_read_timeout = Duration::from_secs(10);
    });
    let (held, settle) = (|n| stub.holds(n), || stub.settle());
    let (a, b) = (records(60), records(61));
    let first = [a, b].map(|body| {
        let (addr, req) = (e.addr, chunked(&[&body]));
        std::thread::spawn(move || exchange(&mut std::net::TcpStream::connect(addr).unwrap(), &req))
    });
    assert!(testkit::wait_until(Duration::from_secs(10), || held(2)), "both read at once");
    let req = chunked(&records(100).chunks(1024).collect::<Vec<_>>());
    let (head, rest) = req.split_at(50 << 10);
    let mut streams = [(); 2].map(|()| std::net::TcpStream::connect(e.addr).unwrap());
    for stream in &mut streams {
        stream.write_all(head).unwrap();
    }
    // Both are read as far as they were sent (as room allows) before either needs more.
    std::thread::sleep(Duration::from_millis(300));
    let later = streams.map(|mut stream| {
        let rest = rest.to_vec();
        std::thread::spawn(move || exchange(&mut stream, &rest))
    });
    // Nothing is answered before the sink confirms, but for a refusal.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!later.iter().any(|delivery| delivery.is_finished()), "neither is refused");
    let answered = || {
        settle();
        later.iter().all(|delivery| delivery.is_finished())
    };
    assert!(testkit::wait_until(Duration::from_secs(10), answered), "both answered");
    for delivery in first {
        assert_eq!(delivery.join().unwrap().status, 200);
    }
    for delivery in later {
        let reply = delivery.join().unwrap();
        assert_eq!((reply.status, reply.json()["accepted"].as_u64()), (200, Some(100)));
    }
}

#[test]
fn a_chunked_body_once_read_keeps_only_the_room_of_its_body() {
    // A 1 MiB budget: a chunked body first takes 128 KiB. Once read (about 57 KiB) and held by
    // a sink that never confirms, it keeps 57 KiB, so a body declaring 962 KiB is read at once
    // beside it; with its first room kept (128) or its buffer's (65), that one would wait.
    let (stub, e) = holding_edge(|c| {
        c.max_held_body_bytes = 1 << 20;
    });
    let held = |n| stub.holds(n);
    let small = records(60);
    let first = std::thread::spawn({
        let (addr, req) = (e.addr, chunked(&[&small]));
        move || exchange(&mut std::net::TcpStream::connect(addr).unwrap(), &req)
    });
    assert!(testkit::wait_until(Duration::from_secs(10), || held(1)), "the chunked body held");
    let large = records(1018);
    assert_eq!(large.len().div_ceil(1024), 962);
    let second = std::thread::spawn({
        let addr = e.addr;
        move || deliver(addr, &large)
    });
    assert!(testkit::wait_until(Duration::from_secs(10), || held(2)), "read beside it");
    stub.settle();
    assert_eq!(first.join().unwrap().status, 200);
    assert_eq!(second.join().unwrap().status, 200);
}

#[test]
fn a_gzip_body_whose_inflated_bytes_pass_the_budget_is_still_opened() {
    // Its inflated bytes are more than the whole budget: they take all of it.
    let (stub, e) = holding_edge(|c| {
        c.max_held_body_bytes = 1 << 20;
    });
    let count = (3 << 20) / (2 * records(1).len());
    let body = records(count);
    assert!(body.len() > 1 << 20);
    let packed = gzip(&body);
    let delivery = std::thread::spawn({
        let addr = e.addr;
        move || deliver_encoded(addr, &packed, "gzip")
    });
    let submitted = || stub.holds(1);
    assert!(testkit::wait_until(Duration::from_secs(10), submitted), "opened and submitted");
    stub.settle();
    let reply = delivery.join().unwrap();
    assert_eq!((reply.status, reply.json()["accepted"].as_u64()), (200, Some(count as u64)));
}

#[test]
fn a_gzip_body_is_opened_while_other_bodies_hold_the_budget() {
    // A sink that never confirms keeps the first delivery's 900 KiB held, of a 1 MiB budget. A
    // gzip body inflating to 600 KiB is still opened: inflated bytes have a budget of their own
    // (from the first, they would be refused while others hold it, or wait on them).
    let (stub, e) = holding_edge(|c| {
        c.max_held_body_bytes = 1 << 20;
    });
    let held = |n| stub.holds(n);
    let per_kib = |kib: usize| (kib << 10) / records(1).len();
    let (first_count, second_count) = (per_kib(900), per_kib(600));
    let first = std::thread::spawn({
        let (addr, body) = (e.addr, records(first_count));
        move || deliver(addr, &body)
    });
    assert!(testkit::wait_until(Duration::from_secs(10), || held(1)), "the first is held");
    let packed = gzip(&records(second_count));
    assert!(packed.len() < 100 << 10, "its raw bytes fit beside the first");
    let second = std::thread::spawn({
        let addr = e.addr;
        move || deliver_encoded(addr, &packed, "gzip")
    });
    assert!(testkit::wait_until(Duration::from_secs(10), || held(2)), "the gzip body opened");
    stub.settle();
    for (delivery, count) in [(first, first_count), (second, second_count)] {
        let reply = delivery.join().unwrap();
        assert_eq!((reply.status, reply.json()["accepted"].as_u64()), (200, Some(count as u64)));
    }
}
