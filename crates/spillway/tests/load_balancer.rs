//! Spillway behind a real load balancer: HAProxy (`deploy/haproxy.cfg`, health-checking
//! `/readyz` every 200 ms) in front of two replicas of the real binary, each with its own data
//! dir, under a fixed-rate client load. A rolling restart loses nothing and the clients see only
//! `200`s; a `SIGKILL`ed replica fails only the requests in flight on it; a replica whose sink is
//! down is routed around. Every acknowledged record is on disk exactly once (counted by id).
//! Runs with `SPILLWAY_HAPROXY=1` (scripts/test sets it and installs haproxy).

mod common;
mod lb;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use lb::*;

/// One scenario at a time: their latencies are compared, and they share two cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn a_rolling_restart_loses_nothing_and_clients_see_only_200() {
    if !haproxy_required() {
        return;
    }
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let mut a = Replica::start(root.path(), "a", "");
    let mut b = Replica::start(root.path(), "b", "");
    let proxy = Proxy::start(&a, &b);
    let load = Load::start(proxy.listen, "roll");
    // Steady state before and after the rollout, about as long as the rollout itself.
    load.run_for(300);
    let rollout = Instant::now();
    for (name, replica) in [("spillway-a", &mut a), ("spillway-b", &mut b)] {
        let status = replica.restart();
        assert!(status.success(), "{name} exited {status:?} after SIGTERM");
        proxy.wait_for(name, "UP", Duration::from_secs(10));
    }
    let rolled = Instant::now();
    load.run_for(300);
    let outcomes = load.finish();
    drop(proxy);
    a.sigterm();
    b.sigterm();
    assert!(a.wait().success() && b.wait().success());

    let errors: Vec<&Outcome> = outcomes.iter().filter(|o| o.result.is_err()).collect();
    let non_200: Vec<&Outcome> =
        outcomes.iter().filter(|o| matches!(o.result, Ok(s) if s != 200)).collect();
    let found = assert_acked_stored_once(&outcomes, &[&a, &b]);
    let steady = p99_outside(&outcomes, rollout, rolled);
    let during = p99(&outcomes, rollout, rolled);
    eprintln!(
        "rolling restart behind HAProxy: {} requests sent, {} non-200, {} connection errors, \
         {} records acked, {found} found exactly once; p99 steady (before and after) \
         {steady:?}, during the rollout ({:.1} s) {during:?}",
        outcomes.len(),
        non_200.len(),
        errors.len(),
        acked(&outcomes).len(),
        (rolled - rollout).as_secs_f64(),
    );
    assert!(errors.is_empty(), "connection errors: {:?}", &errors[..errors.len().min(5)]);
    assert!(non_200.is_empty(), "non-200 answers: {:?}", &non_200[..non_200.len().min(5)]);
    // The bar, with a floor: on a loopback the steady p99 is a few milliseconds, and
    // with 4 clients one stall of the machine (another process's fsync or build) delays every
    // request in flight at once and so is the p99 of its window; such stalls of up to ~200 ms
    // land anywhere in the run. What the bar is for, a rollout that makes clients wait (a
    // connect timeout, requests queued to a draining replica), costs seconds.
    let bar = (steady * 3).max(Duration::from_millis(250));
    assert!(during <= bar, "p99 during the rollout {during:?} > {bar:?} (steady {steady:?})");
}

#[test]
fn a_killed_replica_fails_only_its_in_flight_requests_and_is_routed_around() {
    if !haproxy_required() {
        return;
    }
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let mut a = Replica::start(root.path(), "a", "");
    let b = Replica::start(root.path(), "b", "");
    let proxy = Proxy::start(&a, &b);
    let load = Load::start(proxy.listen, "kill");
    load.run_for(100);
    let killed = Instant::now();
    a.kill();
    // fall (2) x inter, plus the check in progress and some scheduling slack.
    let noticed = proxy.wait_for("spillway-a", "DOWN", Duration::from_secs(5));
    let down = Instant::now();
    load.run_for(100);
    let outcomes = load.finish();

    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.result != Ok(200)).collect();
    let found = assert_acked_stored_once(&outcomes, &[&a, &b]);
    eprintln!(
        "SIGKILL behind HAProxy: {} requests, {} failed, HAProxy marked the replica down after \
         {noticed:?}; {found} acked records all found",
        outcomes.len(),
        failed.len()
    );
    let bound = Duration::from_millis(4 * CHECK_INTER_MS + 500);
    assert!(noticed <= bound, "HAProxy took {noticed:?} to stop routing to the killed replica");
    // Each client has one request in flight at a time: at most one each was on the replica.
    assert!(failed.len() <= CLIENTS, "{} failed: {:?}", failed.len(), failed);
    assert!(
        failed.iter().all(|o| o.sent <= killed),
        "requests sent after the kill failed (HAProxy should retry a refused connection \
         elsewhere): {failed:?}"
    );
    assert!(outcomes.iter().filter(|o| o.sent > down).all(|o| o.result == Ok(200)));
}

#[test]
fn a_replica_whose_sink_is_down_is_not_ready_and_is_routed_around() {
    if !haproxy_required() {
        return;
    }
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let a = Replica::start(root.path(), "a", "");
    // B also writes to Kafka, at an address where no broker listens: its Kafka sink cannot
    // confirm anything (librdkafka reports every broker down), so the pipeline refuses batches
    // and /readyz answers 503, as when a real cluster becomes unreachable.
    let nobody = testkit::free_addr();
    let kafka = format!("[sinks.kafka]\nbrokers = \"{nobody}\"\ncreate_topics = false\n");
    let b = Replica::start(root.path(), "b", &kafka);
    let ready = |addr| common::send(addr, "GET", "/readyz", &[], b"").status;
    let b_ready = testkit::poll_until(Duration::from_secs(10), || ready(b.addr), |s| *s == 503);
    assert_eq!(b_ready, 503, "a replica whose only broker is down still says it is ready");
    assert_eq!(ready(a.addr), 200);
    let proxy = Proxy::start_with(&a, &b, "DOWN");
    let refused = common::deliver(b.addr, &common::fixture("logs.ndjson"));
    assert_eq!(refused.status, 503, "the stalled replica itself must refuse");
    let load = Load::start(proxy.listen, "stall");
    load.run_for(200);
    let outcomes = load.finish();

    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.result != Ok(200)).collect();
    assert!(failed.is_empty(), "{} failed: {:?}", failed.len(), &failed[..failed.len().min(5)]);
    let found = assert_acked_stored_once(&outcomes, &[&a, &b]);
    assert!(b.stored_ids().is_empty(), "the stalled replica acknowledged records");
    eprintln!(
        "a replica with its Kafka sink down behind HAProxy: {} requests, all 200, {found} records \
         on the other replica",
        outcomes.len()
    );
}
