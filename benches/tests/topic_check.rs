//! `topic-check` against a real Kafka-protocol broker (tansu, started here on a loopback port
//! with the binary `SPILLWAY_TANSU` names): it finds every acknowledged record by identity, and
//! fails on one that is not in the topic, including a second acknowledgement of a record the
//! topic holds once. Without a broker binary this test fails, unless the run opts out with
//! `SPILLWAY_SKIP_KAFKA=1`.

use std::process::Command;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::Value;
use spillway_benches::acked::{digest, Acked};
use testkit::tansu;

const TOPIC: &str = "check-topic";

/// Runs topic-check over `acked`; returns whether it passed and its JSON summary.
fn topic_check(brokers: &str, acked: &Acked) -> (bool, Value) {
    let file = tempfile::NamedTempFile::new().expect("a temporary file");
    std::fs::write(file.path(), acked.to_json().to_string()).expect("write acked");
    let out = Command::new(env!("CARGO_BIN_EXE_topic-check"))
        .args(["--brokers", brokers, "--topic", TOPIC, "--timeout-secs", "60"])
        .arg("--acked")
        .arg(file.path())
        .output()
        .expect("run topic-check");
    let summary = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("topic-check printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr))
    });
    (out.status.success(), summary)
}

#[test]
fn every_acknowledged_record_is_found_by_identity() {
    let Some(binary) = tansu::tansu() else { return };
    let broker = tansu::Broker::start(&binary, testkit::free_port(), "memory://tansu/".into());
    let brokers = broker.brokers();
    let payloads: Vec<Vec<u8>> = (0..40)
        .map(|i| format!(r#"{{"id":"r{i}","projectId":"p{}"}}"#, i % 3).into_bytes())
        .collect();

    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let config = ClientConfig::new().set("bootstrap.servers", &brokers).clone();
        let admin: AdminClient<_> = config.create().expect("an admin client");
        let topic = NewTopic::new(TOPIC, 2, TopicReplication::Fixed(1));
        admin.create_topics([&topic], &AdminOptions::new()).await.expect("create the topic");
        let producer: FutureProducer =
            config.clone().set("acks", "all").create().expect("a producer");
        for (i, payload) in payloads.iter().enumerate() {
            let key = format!("k{}", i % 5);
            let record = FutureRecord::to(TOPIC).key(&key).payload(payload);
            producer.send(record, Duration::from_secs(30)).await.expect("produced");
        }
    });

    // Two batches, as loadgen acknowledges them: every record is there.
    let mut acked = Acked::default();
    acked.add_batch(payloads[..25].iter().map(|p| digest(p)));
    acked.add_batch(payloads[25..].iter().map(|p| digest(p)));
    let (passed, summary) = topic_check(&brokers, &acked);
    assert!(passed, "{summary}");
    assert_eq!(summary["missing"], 0, "{summary}");
    assert_eq!(summary["acked_records"], 40, "{summary}");
    assert_eq!(summary["consumed"], 40, "{summary}");

    // A record never produced is missing.
    let mut one_more = acked.clone();
    one_more.add_batch([digest(br#"{"id":"never","projectId":"p0"}"#)]);
    let (passed, summary) = topic_check(&brokers, &one_more);
    assert!(!passed, "{summary}");
    assert_eq!(summary["missing"], 1, "{summary}");

    // A record acknowledged twice but in the topic once: the second acknowledgement is missing.
    let mut twice = acked;
    twice.add_batch([digest(&payloads[7])]);
    let (passed, summary) = topic_check(&brokers, &twice);
    assert!(!passed, "{summary}");
    assert_eq!(summary["missing"], 1, "{summary}");
}
