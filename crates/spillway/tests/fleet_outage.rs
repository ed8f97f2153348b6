//! A replica of a fleet keeps serving while the shared PostgreSQL is down (testkit's throwaway
//! cluster; a run without PostgreSQL binaries fails unless `SPILLWAY_SKIP_POSTGRES=1`): under a
//! fixed load of signed deliveries (50 a second) to a drain registered in the store, the
//! cluster is stopped for ten seconds and every delivery is still answered `200`. Meanwhile the
//! control plane answers `503 store_unavailable`, `spillway drains create` exits 6 naming the
//! database (never its password), `/readyz` stays `200` with the store `degraded` and
//! `spillway_store_up` is 0. After the restart a drain registered through the CLI is served
//! within the resync interval and the store is `ok` again. No row holds a secret in plaintext.
//! A replica started during an outage starts degraded and serves the store once it is back.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::fleet::{Fleet, Served};
use common::{lines_in, send, TestApp};
use testkit::{poll_until, wait_until};

/// How long the database is down: waited out by the clock, it is what the test is about.
const OUTAGE: Duration = Duration::from_secs(10);
/// One delivery every 20 ms: 50 a second.
const INTERVAL: Duration = Duration::from_millis(20);
/// The load generator stops after this many deliveries whatever happens (100 s of load).
const MAX_DELIVERIES: usize = 5_000;
/// After the restart the feed reconnects within `max_backoff_secs` (1 s) and reads every
/// drain, as it does every `resync_secs` (1 s): a drain registered then is served within both.
const RECOVERY: Duration = Duration::from_secs(2);
const HEADER: (&str, &str) = ("x-fleet-token", "outage-header-value-5d2b");

/// Signed deliveries to one drain at a fixed rate from a thread, each answer recorded.
struct Load {
    answers: Arc<Mutex<Vec<(Instant, u16)>>>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Load {
    fn start(drain: Served, addr: SocketAddr) -> Load {
        let answers = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (record, stopped) = (Arc::clone(&answers), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut next = Instant::now();
            for n in 0..MAX_DELIVERIES {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let status = drain.deliver_body(addr, &batch(n)).status;
                record.lock().unwrap().push((Instant::now(), status));
                // Rate pacing of the load generator (not a synchronisation).
                next += INTERVAL;
                if let Some(pause) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(pause);
                }
            }
        });
        Load { answers, stop, thread }
    }

    fn answered(&self) -> usize {
        self.answers.lock().unwrap().len()
    }

    fn finish(self) -> Vec<(Instant, u16)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the load generator got an answer for every delivery");
        std::mem::take(&mut *self.answers.lock().unwrap())
    }
}

/// Delivery `n`: records `load-<n>-0` and `load-<n>-1` (ids of their own: the receiver drops
/// records it has seen).
fn batch(n: usize) -> Vec<u8> {
    (0..2)
        .map(|i| {
            format!(
                "{{\"id\":\"load-{n}-{i}\",\"projectId\":\"prj_load\",\"timestamp\":{n},\
                 \"source\":\"lambda\",\"message\":\"delivery {n}\"}}\n"
            )
        })
        .collect::<String>()
        .into_bytes()
}

/// `/readyz`, which must be `200`: its `store` field.
fn store_state(app: &TestApp) -> String {
    let reply = send(app.addr, "GET", "/readyz", &[], b"");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["status"], "ready");
    reply.json()["store"].as_str().unwrap_or_default().to_owned()
}

fn metrics(app: &TestApp) -> String {
    String::from_utf8(send(app.addr, "GET", "/metrics", &[], b"").body).unwrap()
}

/// The drain a `drains create --json` view describes, with its required header.
fn served(fleet: &Fleet, view: &serde_json::Value, url: &str) -> Served {
    let endpoint = view["endpoint"].as_str().unwrap();
    let key = endpoint.strip_prefix(&format!("{url}/")).unwrap_or_else(|| panic!("{view}"));
    let secret = fleet.sim.drain_signing_secret(view["id"].as_str().unwrap()).unwrap();
    Served::new(key, &secret).with_header(HEADER.0, HEADER.1)
}

#[test]
fn a_replica_answers_every_delivery_through_a_database_outage_and_catches_up_after_it() {
    let Some(mut fleet) = Fleet::start() else { return };
    let app = fleet.replica();
    let url = format!("http://{}/vercel/logs", app.addr);
    let header = format!("{}: {}", HEADER.0, HEADER.1);
    let (view, created) = fleet.create_drain(&url, &["--header", &header]);
    let drain = served(&fleet, &view, &url);
    drain.changes_to(app.addr, 200, created.ended);
    fleet.assert_sealed(&[&drain.secret, HEADER.1]);
    assert_eq!(store_state(&app), "ok");

    let load = Load::start(drain.clone(), app.addr);
    assert!(wait_until(Duration::from_secs(5), || load.answered() >= 10), "no load answered");
    fleet.pg.stop();
    let down = Instant::now();
    while_down(&fleet, &app, &url);
    // Waiting out the outage is the subject: probe `/readyz` every 100 ms until it has lasted
    // OUTAGE by the clock (the deliveries go on meanwhile).
    while down.elapsed() < OUTAGE {
        assert_eq!(store_state(&app), "degraded");
        std::thread::sleep(Duration::from_millis(100));
    }
    fleet.pg.start_again();
    let up = Instant::now();

    after_the_restart(&fleet, &app, &url, up);
    let answers = load.finish();
    let during: Vec<u16> =
        answers.iter().filter(|(at, _)| *at >= down && *at <= up).map(|(_, s)| *s).collect();
    eprintln!(
        "{} deliveries, {} of them during the {:?} outage; statuses other than 200: {:?}",
        answers.len(),
        during.len(),
        up - down,
        answers.iter().filter(|(_, s)| *s != 200).collect::<Vec<_>>()
    );
    assert!(answers.iter().all(|(_, s)| *s == 200), "every delivery is answered 200");
    assert!(during.len() >= 250, "the load went on through the outage: {}", during.len());
    // Each `200` was stored: two records per delivery, in the replica's own files.
    let stored = lines_in(&app.dir("logs"));
    let records = stored.iter().filter(|l| l.contains("\"id\":\"load-")).count();
    assert_eq!(records, 2 * answers.len(), "records stored for {} deliveries", answers.len());
    fleet.assert_sealed(&[&drain.secret, HEADER.1]);
}

/// While the database is down: the store is reported degraded, the control plane and the CLI
/// say it is unavailable, and nothing says the password.
fn while_down(fleet: &Fleet, app: &TestApp, url: &str) {
    let noticed = poll_until(Duration::from_secs(5), || store_state(app), |s| s == "degraded");
    assert_eq!(noticed, "degraded");
    let text = metrics(app);
    assert!(text.contains("\nspillway_store_up 0\n"), "{text}");

    let reply = Fleet::webhook(app, &fleet.removed_event("icfg_during_outage"));
    assert_eq!((reply.status, reply.error_code().as_str()), (503, "store_unavailable"));
    assert!(!String::from_utf8_lossy(&reply.body).contains(fleet.pg.password()));

    let started = Instant::now();
    let refused = fleet.cli(&["drains", "create", "--url", url]);
    assert_eq!(refused.code, 6, "{refused:?}");
    let first = refused.stderr.lines().next().unwrap_or_default();
    let at = format!("127.0.0.1:{}/fleet", fleet.pg.port());
    assert!(first.contains(&at), "{first:?} does not name {at}");
    eprintln!("during the outage `drains create` exited 6 after {:?}: {first}", started.elapsed());
}

/// After the restart: a drain registered through the CLI at once (whether or not the
/// replica has reconnected yet) is served, and the store is `ok` again.
fn after_the_restart(fleet: &Fleet, app: &TestApp, url: &str, up: Instant) {
    let header = format!("{}: {}", HEADER.0, HEADER.1);
    let (view, created) = fleet.create_drain(url, &["--header", &header]);
    let drain = served(fleet, &view, url);
    let took = drain.changes_to(app.addr, 200, created.ended);
    eprintln!(
        "a drain created {:?} after the restart was served {took:?} after `drains create`",
        created.ended - up
    );
    assert!(took < RECOVERY, "{took:?}");
    let ok = poll_until(RECOVERY, || store_state(app), |s| s == "ok");
    assert_eq!(ok, "ok", "the store is not ok {RECOVERY:?} after the restart");
    eprintln!("/readyz said the store was ok {:?} after the restart", up.elapsed());
    let text = metrics(app);
    assert!(text.contains("\nspillway_store_up 1\n"), "{text}");
    let reconnects = text.lines().find(|l| l.starts_with("spillway_store_reconnects_total"));
    eprintln!("{}", reconnects.unwrap_or("no reconnect counter"));
}

/// A replica started while the database is down starts all the same (the default drain needs
/// no database), says the store is degraded, and serves what the store holds once it is back:
/// its feed keeps trying, and applies the migrations itself if nobody has.
#[test]
fn a_replica_started_during_an_outage_serves_the_store_once_it_is_back() {
    let Some(mut fleet) = Fleet::start() else { return };
    fleet.pg.stop();
    let mut config = fleet.store_config();
    config.connect_timeout = Duration::from_secs(1);
    let app = TestApp::start(move |c| c.store = Some(config));
    assert_eq!(store_state(&app), "degraded");
    assert_eq!(common::deliver(app.addr, &common::fixture("logs.ndjson")).status, 200);

    fleet.pg.start_again();
    let up = Instant::now();
    let store = fleet.store();
    let entry = common::drain_entry("drn_after", "afterkey", "after-secret-1f4e");
    fleet.runtime.block_on(store.insert_drain(&entry)).unwrap();
    let took = Served::new("afterkey", "after-secret-1f4e").changes_to(app.addr, 200, up);
    assert!(took < RECOVERY * 2, "served {took:?} after the database came back");
    assert_eq!(poll_until(RECOVERY, || store_state(&app), |s| s == "ok"), "ok");
}
