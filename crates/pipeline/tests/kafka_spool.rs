//! The Kafka sink's disk spool against librdkafka's mock cluster: batches are acknowledged from
//! the spool while no broker is reachable and reach Kafka in order once one is; in `always` mode
//! they are acknowledged from the spool and survive a restart; a full spool refuses at once; a
//! record the producer no longer takes does not hold up the spool.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pipeline::kafka::{KafkaSink, KafkaSinkConfig};
use pipeline::spool::{SpoolConfig, SpoolMode};
use pipeline::{Pipeline, PipelineConfig, PipelineMetrics, Workers};
use prometheus_client::registry::Registry;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use record::{Batch, Dispatch, FieldSpan, Record, RecordMeta};
use testkit::{block_on, free_port, wait_until};

fn record(id: &str, pad: usize) -> Record {
    let line =
        format!(r#"{{"id":"{id}","projectId":"prj","timestamp":1,"pad":"{}"}}"#, "x".repeat(pad));
    let meta = RecordMeta {
        id: FieldSpan::new(7, id.len() as u32, false),
        project_id: FieldSpan::new(line.find("prj").unwrap() as u32, 3, false),
        ..RecordMeta::default()
    };
    Record::new(Bytes::from(line), meta)
}

/// Batch `n`: ten records `n-0` .. `n-9`.
fn batch(n: usize, pad: usize) -> Batch {
    Batch {
        drain: Arc::from("drain-a"),
        data_type: record::DataType::Logs,
        received_at_ms: 0,
        records: (0..10).map(|i| record(&format!("{n}-{i}"), pad)).collect(),
        body: Bytes::new(),
        rejects: Vec::new(),
        pinned_bytes: 10,
        digest: n as u128 + 1,
    }
}

fn config(brokers: &str, spool: &Path, mode: SpoolMode) -> KafkaSinkConfig {
    let mut config = KafkaSinkConfig::new(brokers);
    config.create_topics = false;
    config.spool = Some(SpoolConfig { mode, ..SpoolConfig::new(spool) });
    config
}

fn start(config: KafkaSinkConfig) -> (Pipeline, Workers, Registry) {
    let mut registry = Registry::default();
    let metrics = PipelineMetrics::register(&mut registry);
    let sink = KafkaSink::open(config, &metrics).unwrap();
    let (pipeline, workers) =
        Pipeline::start(PipelineConfig::default(), vec![Box::new(sink)], metrics).unwrap();
    (pipeline, workers, registry)
}

/// The value of a metric without labels.
fn metric(registry: &Registry, name: &str) -> f64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    let line = text.lines().find(|l| l.split(' ').next() == Some(name)).expect(name);
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// A mock cluster of one broker with topic `vercel-logs` (one partition), and its address.
fn cluster() -> (MockCluster<'static, rdkafka::producer::DefaultProducerContext>, String) {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("vercel-logs", 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    (cluster, brokers)
}

/// Whether the spool is produced to its end within 20 s.
fn drained(registry: &Registry) -> bool {
    wait_until(Duration::from_secs(20), || metric(registry, "spillway_kafka_spool_bytes") == 0.0)
}

/// Submits batches `range` one after the other; each must be acknowledged within a second.
fn deliver_all(pipeline: &Pipeline, range: std::ops::Range<usize>) {
    for n in range {
        let started = Instant::now();
        block_on(pipeline.try_submit(batch(n, 0)).unwrap().wait()).unwrap();
        assert!(started.elapsed() < Duration::from_secs(1), "batch {n}: {:?}", started.elapsed());
    }
}

/// The ids in partition 0 of `vercel-logs`, in order, once `expect` arrived (or 20 s passed).
fn consume(brokers: &str, expect: usize) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "spool-test")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("vercel-logs", 0, Offset::Beginning).unwrap();
    consumer.assign(&tpl).unwrap();
    let mut ids = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ids.len() < expect && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let value: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            ids.push(value["id"].as_str().unwrap().to_owned());
        }
    }
    ids
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.flat_map(|n| (0..10).map(move |i| format!("{n}-{i}"))).collect()
}

#[test]
fn an_outage_is_acknowledged_from_the_spool_and_produced_in_order_after_it() {
    let (cluster, brokers) = cluster();
    cluster.broker_down(1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (pipeline, workers, registry) = start(config(&brokers, dir.path(), SpoolMode::Outage));
    assert!(pipeline.ready(), "a sink with a spool takes batches while the broker is away");
    deliver_all(&pipeline, 0..40);
    assert!(metric(&registry, "spillway_kafka_spool_bytes") > 0.0);

    cluster.broker_up(1).unwrap();
    assert!(drained(&registry), "the spool was not produced");
    assert_eq!(metric(&registry, "spillway_kafka_spool_replayed_records_total"), 400.0);
    // The spool is empty: the next batches go straight to the broker, after the spooled ones.
    deliver_all(&pipeline, 40..45);
    assert_eq!(consume(&brokers, 450), ids(0..45));
    drop(pipeline);
    workers.join(Duration::from_secs(10));
}

#[test]
fn in_always_mode_batches_are_acknowledged_from_the_spool_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // No broker at all: every batch is acknowledged once it is synced in the spool.
    let nowhere = format!("127.0.0.1:{}", free_port());
    let (pipeline, workers, _) = start(config(&nowhere, dir.path(), SpoolMode::Always));
    deliver_all(&pipeline, 0..30);
    drop(pipeline);
    assert!(workers.join(Duration::from_secs(10)).is_empty());

    // A restart with a broker: the spool is produced, in order, from where it was left.
    let (_broker, brokers) = cluster(); // the broker stops when this is dropped
    let (pipeline, workers, registry) = start(config(&brokers, dir.path(), SpoolMode::Always));
    assert!(drained(&registry), "the spool was not produced after the restart");
    deliver_all(&pipeline, 30..35);
    assert_eq!(consume(&brokers, 350), ids(0..35));
    drop(pipeline);
    workers.join(Duration::from_secs(10));

    // Nothing acknowledged by the broker is produced again by a third start.
    let (pipeline, workers, registry) = start(config(&brokers, dir.path(), SpoolMode::Always));
    assert_eq!(metric(&registry, "spillway_kafka_spool_bytes"), 0.0);
    drop(pipeline);
    workers.join(Duration::from_secs(10));
}

#[test]
fn a_full_spool_refuses_batches_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = format!("127.0.0.1:{}", free_port());
    let mut config = config(&nowhere, dir.path(), SpoolMode::Always);
    if let Some(spool) = config.spool.as_mut() {
        spool.max_bytes = 256 << 10;
    }
    let (pipeline, workers, _) = start(config);
    // Batches of about 10 KiB: the 26th cannot fit in 256 KiB.
    let mut accepted = 0;
    let failure = loop {
        let started = Instant::now();
        let outcome = block_on(pipeline.try_submit(batch(accepted, 1000)).unwrap().wait());
        assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
        match outcome {
            Ok(()) => accepted += 1,
            Err(failure) => break failure,
        }
        assert!(accepted < 100, "the spool never filled");
    };
    assert_eq!((failure.sink, failure.code), ("kafka", "spool_full"));
    assert!((20..=26).contains(&accepted), "{accepted} batches fit");
    assert!(!pipeline.ready(), "a full spool is not ready");
    drop(pipeline);
    workers.join(Duration::from_secs(10));
}

#[test]
fn a_spooled_record_larger_than_the_producer_now_takes_is_passed_over_not_replayed_for_ever() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = format!("127.0.0.1:{}", free_port());
    let (pipeline, workers, _) = start(config(&nowhere, dir.path(), SpoolMode::Always));
    deliver_all(&pipeline, 0..2);
    // Batch 2 holds one record of 3000 bytes, spooled while the producer took it.
    let mut large = batch(2, 0);
    large.records[4] = record("2-4", 3000);
    block_on(pipeline.try_submit(large).unwrap().wait()).unwrap();
    deliver_all(&pipeline, 3..4);
    drop(pipeline);
    assert!(workers.join(Duration::from_secs(10)).is_empty());

    // Restarted with a broker and a smaller message.max.bytes.
    let (_broker, brokers) = cluster(); // the broker stops when this is dropped
    let mut smaller = config(&brokers, dir.path(), SpoolMode::Always);
    smaller.properties.push(("message.max.bytes".into(), "2000".into()));
    let (pipeline, workers, registry) = start(smaller);
    assert!(drained(&registry), "the spool was not produced past the record too large");
    let mut expected = ids(0..4);
    expected.retain(|id| id != "2-4");
    assert_eq!(consume(&brokers, 39), expected);
    drop(pipeline);
    workers.join(Duration::from_secs(10));
}
