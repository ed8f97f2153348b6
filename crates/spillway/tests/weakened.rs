//! Settings that weaken what a `200` means are never silent: `/metrics` shows each one as
//! `spillway_durability_weakened{setting="…"} 1` (and 0 for every other, so alerts can watch).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use pipeline::file::FsyncPolicy;
use pipeline::kafka::KafkaSinkConfig;

fn weakened(addr: SocketAddr) -> Vec<(String, u64)> {
    let text = String::from_utf8(send(addr, "GET", "/metrics", &[], b"").body).unwrap();
    let prefix = "spillway_durability_weakened{setting=\"";
    let mut found: Vec<(String, u64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(|rest| {
            let (setting, value) = rest.split_once("\"} ").unwrap();
            (setting.to_owned(), value.trim().parse().unwrap())
        })
        .collect();
    found.sort();
    found
}

fn flags(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
    pairs.iter().map(|(s, v)| ((*s).to_owned(), *v)).collect()
}

/// Would catch a lossless configuration being reported weakened: the defaults show all zeros.
#[test]
fn the_defaults_weaken_nothing() {
    let app = TestApp::start(|_| {});
    let expected =
        [("dead_letter_fsync", 0), ("fsync", 0), ("kafka_acks", 0), ("kafka_idempotence", 0)];
    assert_eq!(weakened(app.addr), flags(&expected));
}

/// Would catch `fsync = "interval"|"never"` or Kafka `acks`/idempotence overrides weakening a
/// `200` silently (today nothing says so): each shows as 1 on `/metrics`.
#[test]
fn fsync_and_kafka_overrides_are_flagged() {
    // No broker listens there: the sink waits for one, which is all this test needs.
    let brokers = testkit::free_addr().to_string();
    let app = TestApp::start(|c| {
        c.file_sink.as_mut().unwrap().fsync = FsyncPolicy::Interval(Duration::from_secs(1));
        c.dead_letter.fsync = FsyncPolicy::Never;
        let mut kafka = KafkaSinkConfig::new(brokers);
        kafka.create_topics = false;
        kafka.properties =
            vec![("acks".into(), "1".into()), ("enable.idempotence".into(), "false".into())];
        c.kafka = Some(kafka);
    });
    let expected =
        [("dead_letter_fsync", 1), ("fsync", 1), ("kafka_acks", 1), ("kafka_idempotence", 1)];
    assert_eq!(weakened(app.addr), flags(&expected));
}
