//! The Kafka spool end to end: its configuration, and a real broker (tansu, as in
//! `kafka_broker.rs`; a missing binary fails unless `SPILLWAY_SKIP_KAFKA=1`) stopped under load
//! at a fixed rate while the receiver keeps answering `200` from the spool; then every
//! acknowledged record must be in Kafka (duplicates counted, none missing), also when the
//! receiver is killed with `SIGKILL` during the replay and restarted.
//!
//! The outage lasts `SPILLWAY_OUTAGE_SECS` seconds (`scripts/test` sets 60; 10 when unset).

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use pipeline::spool::{SpoolConfig, SpoolMode};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use spillway::config::{ConfigError, RawConfig};
use testkit::tansu::{tansu, Broker};
use testkit::{eventually, free_addr, free_port, poll_until, wait_until};

const PARTITIONS: i32 = 3;
/// The load: 4 clients, one batch every 80 ms each (50 batches a second), of `RECORDS` records
/// (few, so that reading a long outage's records back from tansu stays within the time bound).
const CLIENTS: usize = 4;
const INTERVAL: Duration = Duration::from_millis(80);
const RECORDS: usize = 2;

fn outage() -> Duration {
    let secs = std::env::var("SPILLWAY_OUTAGE_SECS").ok().and_then(|v| v.parse().ok());
    Duration::from_secs(secs.unwrap_or(10))
}

#[test]
fn the_spool_is_configured_from_its_section_and_every_problem_is_reported() {
    let kafka = |toml: &str| {
        let raw = RawConfig::from_toml(&format!("data_dir = \"/srv/s\"\n{toml}")).unwrap();
        raw.validate(Vec::new()).map(|c| c.kafka.unwrap())
    };
    let off = kafka("[sinks.kafka]\nbrokers = \"b:1\"\n").unwrap();
    assert_eq!(off.spool, None, "no section, no spool");
    let on = kafka("[sinks.kafka]\nbrokers = \"b:1\"\n[sinks.kafka.spool]\n").unwrap();
    assert_eq!(on.spool, Some(SpoolConfig::new("/srv/s/kafka-spool")));
    assert_eq!(on.spool.unwrap().mode, SpoolMode::Outage);
    let set = kafka(
        "[sinks.kafka]\nbrokers = \"b:1\"\n[sinks.kafka.spool]\ndir = \"/q\"\n\
         max_bytes = 2097152\nmode = \"always\"\n",
    )
    .unwrap();
    let spool = set.spool.unwrap();
    assert_eq!(
        (spool.dir, spool.max_bytes, spool.mode),
        (PathBuf::from("/q"), 2 << 20, SpoolMode::Always)
    );

    let Err(ConfigError::Invalid(problems)) = kafka(
        "[sinks.kafka]\nbrokers = \"b:1\"\n[sinks.kafka.spool]\nmax_bytes = 10\nmode = \"often\"\n",
    ) else {
        panic!("accepted")
    };
    let text = problems.join("\n");
    for needle in ["sinks.kafka.spool.max_bytes", "sinks.kafka.spool.mode"] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

/// Deliveries at a fixed rate until stopped: when each was sent, its status, and the ids of
/// every batch answered `200`.
struct Load {
    acked: Arc<Mutex<Vec<String>>>,
    sent: Arc<Mutex<Vec<(Instant, u16)>>>,
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, tag: &str) -> Load {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..CLIENTS)
            .map(|client| {
                let (acked, sent, stop) =
                    (Arc::clone(&acked), Arc::clone(&sent), Arc::clone(&stop));
                let tag = format!("{tag}{client}");
                std::thread::spawn(move || {
                    let mut next = Instant::now();
                    // Bounded: at most 10 000 batches per client, and only until told to stop.
                    for n in 0..10_000 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let (body, ids) = batch(&tag, n);
                        let at = Instant::now();
                        let status = deliver(addr, &body).status;
                        sent.lock().unwrap().push((at, status));
                        if status == 200 {
                            acked.lock().unwrap().extend(ids);
                        }
                        // Rate pacing of the load generator (not a synchronisation).
                        next += INTERVAL;
                        if let Some(pause) = next.checked_duration_since(Instant::now()) {
                            std::thread::sleep(pause);
                        }
                    }
                })
            })
            .collect();
        Load { acked, sent, stop, clients }
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    fn finish(self) -> (Vec<String>, Vec<(Instant, u16)>) {
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients {
            client.join().unwrap();
        }
        let acked = std::mem::take(&mut *self.acked.lock().unwrap());
        let sent = std::mem::take(&mut *self.sent.lock().unwrap());
        (acked, sent)
    }
}

fn batch(tag: &str, n: usize) -> (Vec<u8>, Vec<String>) {
    let mut body = Vec::new();
    let mut ids = Vec::new();
    for i in 0..RECORDS {
        let id = format!("{tag}-{n}-{i}");
        let line =
            format!(r#"{{"id":"{id}","projectId":"prj_{i}","timestamp":{n},"source":"lambda"}}"#);
        body.extend_from_slice(line.as_bytes());
        body.push(b'\n');
        ids.push(id);
    }
    (body, ids)
}

/// A metric's value from `/metrics`, 0 when absent.
fn metric(addr: SocketAddr, name: &str) -> f64 {
    let Ok(mut stream) = TcpStream::connect(addr) else { return 0.0 };
    let reply = exchange(&mut stream, &request("GET", "/metrics", &[], b""));
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    let line = text.lines().find(|l| l.split(' ').next() == Some(name));
    line.and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0.0)
}

/// How often each id is in the topic, read by an independent consumer until `expect` ids
/// arrived and nothing more came for a second (at most 60 s).
fn consume(brokers: &str, expect: usize) -> HashMap<String, usize> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("outage-{}", free_port()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset("vercel-logs", p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let (deadline, mut idle_since) = (Instant::now() + Duration::from_secs(60), Instant::now());
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let value: serde_json::Value =
                    serde_json::from_slice(m.payload().unwrap()).unwrap();
                *seen.entry(value["id"].as_str().unwrap().to_owned()).or_default() += 1;
                idle_since = Instant::now();
            }
            Some(Err(e)) => panic!("consumer error: {e}"),
            None if seen.len() >= expect && idle_since.elapsed() > Duration::from_secs(1) => break,
            None => {}
        }
    }
    seen
}

/// Checks that every acknowledged id is in Kafka; prints and returns (found, duplicates).
fn check_kafka(brokers: &str, acked: &[String], label: &str) -> (usize, usize) {
    let seen = consume(brokers, acked.len());
    let missing: Vec<&String> = acked.iter().filter(|id| !seen.contains_key(*id)).collect();
    let found = acked.len() - missing.len();
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "{label}: records acknowledged {}, found in Kafka {found}, missing {}, duplicates {duplicates}",
        acked.len(),
        missing.len()
    );
    assert!(
        missing.is_empty(),
        "{} acknowledged records missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    (found, duplicates)
}

#[test]
fn a_broker_outage_under_load_is_answered_from_the_spool_and_loses_nothing() {
    let Some(tansu) = tansu() else { return };
    let outage = outage();
    let started = Instant::now();
    let store = tempfile::tempdir().unwrap();
    let mut broker =
        Broker::start_in(&tansu, free_port(), "sqlite://tansu.db".into(), store.path().to_owned());
    let spool = store.path().join("spool");
    let brokers = broker.brokers();
    let app = TestApp::start(move |c| {
        let mut kafka = pipeline::kafka::KafkaSinkConfig::new(brokers);
        kafka.partitions = PARTITIONS;
        kafka.message_timeout = Duration::from_secs(120);
        kafka.spool = Some(SpoolConfig::new(spool));
        c.kafka = Some(kafka);
        // A batch caught in the producer when the broker goes is answered 503 soon.
        c.ingest.ack_timeout = Duration::from_secs(5);
    });
    let (addr, metrics) = (app.addr, app.metrics_addr.unwrap_or(app.addr));
    let load = Load::start(addr, "o");
    eventually(Duration::from_secs(30), "200s before the outage", || {
        (load.acked() >= 50 * RECORDS).then_some(())
    });

    broker.stop();
    let stopped = Instant::now();
    let noticed =
        wait_until(Duration::from_secs(15), || metric(metrics, "spillway_kafka_spool_bytes") > 0.0);
    assert!(noticed, "nothing was spooled during the outage");
    // From here on the receiver knows the broker is gone: every delivery must go to the spool.
    // (How soon it notices depends on librdkafka and the machine's load, not on the spool.)
    let noticed_at = Instant::now();
    // Sample the spool for the outage's length: it only grows, and the receiver stays ready.
    let mut peak = 0.0f64;
    poll_until(
        outage.saturating_sub(stopped.elapsed()),
        || {
            peak = peak.max(metric(metrics, "spillway_kafka_spool_bytes"));
            send(addr, "GET", "/readyz", &[], b"").status
        },
        |status| *status != 200,
    );
    assert_eq!(send(addr, "GET", "/readyz", &[], b"").status, 200, "not ready during the outage");
    let restarted = Instant::now();
    broker.restart();
    let drained = wait_until(Duration::from_secs(60), || {
        metric(metrics, "spillway_kafka_spool_bytes") == 0.0
    });
    assert!(drained, "the spool was not produced after the outage");
    let before = load.acked();
    eventually(Duration::from_secs(30), "200s after the outage", || {
        (load.acked() >= before + 20 * RECORDS).then_some(())
    });
    let (acked, sent) = load.finish();
    let replayed = metric(metrics, "spillway_kafka_spool_replayed_records_total");

    let (ok, refused, late_refusals) = statuses(&sent, noticed_at, restarted);
    eprintln!(
        "outage {}s (noticed after {:?}): deliveries {}, 200s {ok}, 503s {refused} (once noticed: {late_refusals}), spool peak {peak} bytes, replayed {replayed} records",
        outage.as_secs(),
        noticed_at - stopped,
        sent.len()
    );
    assert_eq!(ok + refused, sent.len(), "only 200s and 503s");
    assert_eq!(late_refusals, 0, "deliveries refused while the spool had room");
    check_kafka(&broker.brokers(), &acked, "outage");
    eprintln!("wall time {:?}", started.elapsed());
}

/// 200s and 503s among `sent`, and the deliveries not answered 200 that were sent during the
/// outage once the receiver had noticed it: batches sent before it noticed may be caught in the
/// producer (503 once the ack timeout passes), every later one must be 200 from the spool.
fn statuses(
    sent: &[(Instant, u16)],
    noticed: Instant,
    restarted: Instant,
) -> (usize, usize, usize) {
    let ok = sent.iter().filter(|(_, s)| *s == 200).count();
    let refused = sent.iter().filter(|(_, s)| *s == 503).count();
    let late = sent.iter().filter(|(at, s)| *at > noticed && *at < restarted && *s != 200).count();
    (ok, refused, late)
}

/// A `spillway serve` process over `data` with `config`.
fn spawn(data: &Path, config: &Path, addr: SocketAddr) -> Child {
    spawn_receiver(data, addr, Some(config))
}

#[test]
fn a_receiver_killed_during_replay_resumes_it_after_a_restart() {
    let Some(tansu) = tansu() else { return };
    let (store, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let port = free_port();
    let config = data.path().join("spillway.toml");
    // A small producer queue keeps the replay window small, so the replay lasts long enough to
    // be interrupted.
    std::fs::write(
        &config,
        format!(
            "[sinks.kafka]\nbrokers = \"127.0.0.1:{port}\"\nqueue_max_messages = 20\n\
             message_timeout_ms = 120000\n[sinks.kafka.spool]\nmode = \"outage\"\n"
        ),
    )
    .unwrap();
    let addr = free_addr();
    let mut receiver = spawn(data.path(), &config, addr);
    // No broker yet: everything is answered from the spool.
    let load = Load::start(addr, "k");
    eventually(Duration::from_secs(30), "a spooled backlog", || {
        (load.acked() >= 300 * RECORDS).then_some(())
    });
    let (acked, sent) = load.finish();
    let ok = sent.iter().filter(|(_, s)| *s == 200).count();
    assert_eq!(ok, sent.len(), "every delivery is 200 while the broker is away");

    let broker =
        Broker::start_in(&tansu, port, "sqlite://tansu.db".into(), store.path().to_owned());
    let replaying = poll_until(
        Duration::from_secs(60),
        || {
            let replayed = metric(addr, "spillway_kafka_spool_replayed_records_total");
            (replayed, metric(addr, "spillway_kafka_spool_bytes"))
        },
        |(replayed, _)| *replayed > 0.0,
    );
    assert!(replaying.0 > 0.0, "the replay never started");
    assert!(replaying.1 > 0.0, "the replay ended before it could be interrupted");
    receiver.kill().unwrap();
    receiver.wait().unwrap();

    let mut receiver = spawn(data.path(), &config, addr);
    let drained = wait_until(Duration::from_secs(60), || {
        metric(addr, "spillway_kafka_spool_bytes") == 0.0
            && send(addr, "GET", "/readyz", &[], b"").status == 200
    });
    assert!(drained, "the replay did not resume after the restart");
    let replayed_after = metric(addr, "spillway_kafka_spool_replayed_records_total");
    eprintln!(
        "kill during replay: deliveries {}, 200s {ok}, 503s 0, killed after {} records replayed, {replayed_after} replayed after the restart",
        sent.len(),
        replaying.0
    );
    check_kafka(&broker.brokers(), &acked, "kill during replay");
    receiver.kill().unwrap();
    receiver.wait().unwrap();
}
