//! The Kafka sink against librdkafka's in-process mock cluster (fast; the real-broker tests live
//! in `crates/spillway/tests/kafka_broker.rs`): every record becomes one message with the right
//! value, key and headers on the right topic (produced without a copy of the value), a full
//! producer queue fails a batch at once and still delivers what it had enqueued, creating
//! topics never blocks the sink's thread, and delivery reports wake the sink's thread. (The mock
//! cluster has no CreateTopics: topic creation itself is tested against the real broker.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pipeline::kafka::{KafkaSink, KafkaSinkConfig, Route, RouteField};
use pipeline::{Pipeline, PipelineConfig, PipelineMetrics, Sink};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use record::{Batch, DataType, Dispatch, FieldSpan, Record, RecordMeta};
use testkit::{block_on, free_port, wait_until};

fn record(id: &str, project: &str, source: &str) -> Record {
    let line =
        format!(r#"{{"id":"{id}","projectId":"{project}","timestamp":1,"source":"{source}"}}"#);
    let at = |needle: &str| line.find(needle).unwrap() as u32;
    let meta = RecordMeta {
        id: FieldSpan::new(at(id), id.len() as u32, false),
        project_id: FieldSpan::new(at(project), project.len() as u32, false),
        source: FieldSpan::new(at(&format!("\"{source}\"")) + 1, source.len() as u32, false),
        ..RecordMeta::default()
    };
    Record::new(Bytes::from(line), meta)
}

fn batch(records: Vec<Record>) -> Batch {
    Batch {
        drain: Arc::from("drain-a"),
        data_type: record::DataType::Logs,
        received_at_ms: 0,
        records,
        body: Bytes::new(),
        rejects: Vec::new(),
        pinned_bytes: 10,
        digest: 0,
    }
}

/// A consumed message: key, value and headers.
type Consumed = (String, String, Vec<(String, String)>);

/// Every message in `topic`'s partitions.
fn consume_all(brokers: &str, topic: &str, partitions: i32, expect: usize) -> Vec<Consumed> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "spillway-test")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while out.len() < expect && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let text =
                |b: Option<&[u8]>| String::from_utf8(b.unwrap_or_default().to_vec()).unwrap();
            let headers = m
                .headers()
                .map(|h| h.iter().map(|h| (h.key.to_owned(), text(h.value))).collect())
                .unwrap_or_default();
            out.push((text(m.key()), text(m.payload()), headers));
        }
    }
    out
}

fn start(config: KafkaSinkConfig) -> (Pipeline, pipeline::Workers) {
    start_ticking(config, PipelineConfig::default().tick)
}

/// [`start`] with the pipeline's worker ticking every `tick`.
fn start_ticking(config: KafkaSinkConfig, tick: Duration) -> (Pipeline, pipeline::Workers) {
    let metrics = PipelineMetrics::register(&mut Default::default());
    let sink = KafkaSink::open(config, &metrics).unwrap();
    let pipeline_config = PipelineConfig { tick, ..PipelineConfig::default() };
    let (pipeline, workers) =
        Pipeline::start(pipeline_config, vec![Box::new(sink)], metrics).unwrap();
    wait_until(Duration::from_secs(10), || pipeline.ready());
    assert!(pipeline.ready(), "the sink never saw its broker");
    (pipeline, workers)
}

#[test]
fn every_record_is_one_message_with_key_headers_and_route() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("vercel-logs", 3, 1).unwrap();
    cluster.create_topic("edge-logs", 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let mut config = KafkaSinkConfig::new(&brokers);
    config.create_topics = false;
    config.routes.push(Route {
        field: RouteField::Source,
        value: "edge".into(),
        topic: "edge-logs".into(),
    });
    let (pipeline, workers) = start(config);

    let records: Vec<Record> = (0..30)
        .map(|i| {
            record(
                &format!("r{i}"),
                &format!("prj_{}", i % 3),
                if i % 5 == 0 { "edge" } else { "lambda" },
            )
        })
        .collect();
    let expected: Vec<Record> = records.clone();
    block_on(pipeline.try_submit(batch(records)).unwrap().wait()).unwrap();

    let main = consume_all(&brokers, "vercel-logs", 3, 24);
    let edge = consume_all(&brokers, "edge-logs", 1, 6);
    assert_eq!((main.len(), edge.len()), (24, 6));
    for (key, value, headers) in main.iter().chain(&edge) {
        let original =
            expected.iter().find(|r| r.bytes() == value.as_bytes()).expect("value is a record");
        assert_eq!(key, original.project_id().unwrap().as_ref());
        assert!(headers.contains(&("drain".into(), "drain-a".into())), "{headers:?}");
        let source = original.source().unwrap().into_owned();
        assert!(headers.contains(&("source".into(), source.clone())), "{headers:?}");
        assert_eq!(edge.iter().any(|(_, v, _)| v == value), source == "edge");
    }
    drop(pipeline);
    workers.join(Duration::from_secs(10));
}

/// Delivery reports are served on the sink's thread, which librdkafka wakes when they arrive:
/// with a pipeline tick of a minute, readiness (from librdkafka's statistics) and a batch's
/// acknowledgement still come at once. Served only at ticks, both would wait out the minute.
#[test]
fn reports_wake_the_sink_thread_between_ticks() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("vercel-logs", 1, 1).unwrap();
    let mut config = KafkaSinkConfig::new(cluster.bootstrap_servers());
    config.create_topics = false;
    let started = Instant::now();
    let (pipeline, workers) = start_ticking(config, Duration::from_secs(60));
    for round in 0..3 {
        let submitted = Instant::now();
        let records = vec![record(&format!("w{round}"), "prj_a", "lambda")];
        block_on(pipeline.try_submit(batch(records)).unwrap().wait()).unwrap();
        assert!(submitted.elapsed() < Duration::from_secs(10), "round {round} waited for a tick");
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    drop(pipeline);
    workers.join(Duration::from_secs(10));
}

#[test]
fn each_data_type_goes_to_its_own_topic_with_its_data_type_header() {
    let cluster = MockCluster::new(1).unwrap();
    for topic in ["vercel-logs", "edge-logs", "vercel-speed-insights", "vercel-analytics"] {
        cluster.create_topic(topic, 1, 1).unwrap();
    }
    let brokers = cluster.bootstrap_servers();
    let mut config = KafkaSinkConfig::new(&brokers);
    config.create_topics = false;
    // Routing rules are for logs: a Speed Insights record never follows one.
    config.routes.push(Route {
        field: RouteField::Source,
        value: "edge".into(),
        topic: "edge-logs".into(),
    });
    let (pipeline, workers) = start(config);
    let typed = |data_type, ids: &[&str]| Batch {
        data_type,
        ..batch(ids.iter().map(|id| record(id, "prj_a", "edge")).collect())
    };
    for b in [
        typed(DataType::SpeedInsights, &["s1", "s2"]),
        typed(DataType::Analytics, &["a1"]),
        typed(DataType::Logs, &["l1"]),
    ] {
        block_on(pipeline.try_submit(b).unwrap().wait()).unwrap();
    }
    for (topic, n, data_type) in [
        ("vercel-speed-insights", 2, "speed_insights"),
        ("vercel-analytics", 1, "analytics"),
        ("edge-logs", 1, "logs"),
    ] {
        let got = consume_all(&brokers, topic, 1, n);
        assert_eq!(got.len(), n, "{topic}");
        for (key, _, headers) in &got {
            assert_eq!(key, "prj_a");
            assert!(headers.contains(&("data_type".into(), data_type.into())), "{headers:?}");
        }
    }
    drop(pipeline);
    workers.join(Duration::from_secs(10));
}

#[test]
fn a_full_producer_queue_fails_the_batch_at_once() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("vercel-logs", 1, 1).unwrap();
    let mut config = KafkaSinkConfig::new(cluster.bootstrap_servers());
    config.create_topics = false;
    config.queue_max_messages = 5;
    config.linger_ms = 1000;
    let (pipeline, workers) = start(config);
    let records: Vec<Record> = (0..50).map(|i| record(&format!("q{i}"), "prj", "lambda")).collect();
    let started = Instant::now();
    let failure = block_on(pipeline.try_submit(batch(records)).unwrap().wait()).unwrap_err();
    assert_eq!((failure.sink, failure.code), ("kafka", "queue_full"));
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    // The messages enqueued before the queue filled point into the failed batch's bytes (no
    // copy): they are still delivered whole, after the batch was let go everywhere else.
    let delivered = consume_all(&cluster.bootstrap_servers(), "vercel-logs", 1, 5);
    let values: Vec<String> = delivered.into_iter().map(|(_, value, _)| value).collect();
    let sent: Vec<String> = (0..5)
        .map(|i| String::from_utf8(record(&format!("q{i}"), "prj", "lambda").bytes().to_vec()))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(values, sent);
    drop(pipeline);
    workers.join(Duration::from_secs(10));
}

#[test]
fn creating_topics_never_blocks_the_sink_thread() {
    // Nothing listens on this port: every admin request would wait out its timeout.
    let mut config = KafkaSinkConfig::new(format!("127.0.0.1:{}", free_port()));
    config.create_topics = true;
    let metrics = PipelineMetrics::register(&mut Default::default());
    let started = Instant::now();
    let mut sink = KafkaSink::open(config, &metrics).unwrap();
    assert!(started.elapsed() < Duration::from_secs(1), "open took {:?}", started.elapsed());
    let started = Instant::now();
    for minutes in 0..50 {
        // However late the tick, it only looks at the creating thread.
        sink.tick(Instant::now() + Duration::from_secs(60 * minutes));
    }
    assert!(started.elapsed() < Duration::from_millis(500), "ticks took {:?}", started.elapsed());
}
