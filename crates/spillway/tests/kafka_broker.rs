//! The Kafka sink against a real Kafka-protocol broker (tansu), started by these tests on free
//! loopback ports with the binary `SPILLWAY_TANSU` names (`scripts/test` builds it and sets the
//! variable). Records are produced through Spillway's HTTP edge and read back with an
//! independent rdkafka consumer. Without a broker binary these tests fail, unless the run opts out
//! with `SPILLWAY_SKIP_KAFKA=1`.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use testkit::tansu::{tansu, Broker};
use testkit::{free_port, poll_until, wait_until};

const TOPIC: &str = "vercel-logs";
const PARTITIONS: i32 = 3;

fn kafka_app(brokers: &str, adjust: impl FnOnce(&mut spillway::Config)) -> TestApp {
    let brokers = brokers.to_owned();
    TestApp::start(move |c| {
        let mut kafka = pipeline::kafka::KafkaSinkConfig::new(brokers);
        kafka.partitions = PARTITIONS;
        kafka.message_timeout = Duration::from_secs(60);
        c.kafka = Some(kafka);
        adjust(c);
    })
}

/// Whether `/readyz` answers 200 within `within`.
fn wait_ready(addr: SocketAddr, within: Duration) -> bool {
    wait_until(within, || send(addr, "GET", "/readyz", &[], b"").status == 200)
}

/// Every (key, value) in the topic, read by an independent consumer until `expect` arrived or
/// nothing more comes.
fn consume(brokers: &str, expect: usize) -> Vec<(String, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("check-{}", free_port()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut idle_since = Instant::now();
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let text =
                    |b: Option<&[u8]>| String::from_utf8(b.unwrap_or_default().to_vec()).unwrap();
                out.push((text(m.key()), text(m.payload())));
                idle_since = Instant::now();
            }
            Some(Err(e)) => panic!("consumer error: {e}"),
            None if out.len() >= expect && idle_since.elapsed() > Duration::from_secs(1) => break,
            None => {}
        }
    }
    out
}

fn project_of(line: &str) -> String {
    serde_json::from_str::<serde_json::Value>(line).unwrap()["projectId"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn every_record_reaches_kafka_byte_for_byte_keyed_by_project() {
    let Some(tansu) = tansu() else { return };
    let broker = Broker::start(&tansu, free_port(), "memory://tansu/".into());
    let app = kafka_app(&broker.brokers(), |_| {});
    assert!(wait_ready(app.addr, Duration::from_secs(30)), "never ready");

    let ndjson = fixture("logs.ndjson");
    let corpus = spillway_benches::Corpus::new(11, 400).ndjson();
    for body in [&ndjson, &fixture("logs-array.json"), &corpus] {
        let reply = deliver(app.addr, body);
        assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    }
    let stored = lines_in(&app.dir("logs"));
    assert_eq!(stored.len(), 5 + 3 + 400);
    let mut produced = consume(&broker.brokers(), stored.len());
    let mut expected: Vec<(String, String)> =
        stored.iter().map(|l| (project_of(l), l.clone())).collect();
    produced.sort();
    expected.sort();
    assert_eq!(produced.len(), expected.len());
    assert!(produced == expected, "Kafka holds other records than the files");
    let metrics = String::from_utf8(send(app.addr, "GET", "/metrics", &[], b"").body).unwrap();
    assert!(metrics.contains("spillway_kafka_records_produced_total 408"), "{metrics}");
}

#[test]
fn broker_down_at_start_is_503_and_not_ready_until_it_returns() {
    let Some(tansu) = tansu() else { return };
    let port = free_port();
    let app = kafka_app(&format!("127.0.0.1:{port}"), |_| {});
    assert_eq!(send(app.addr, "GET", "/readyz", &[], b"").status, 503);
    let started = Instant::now();
    let reply = deliver(app.addr, &fixture("logs.ndjson"));
    assert_eq!(reply.status, 503);
    assert_eq!(reply.error_code(), "sink_unavailable");
    assert!(reply.header("retry-after").is_some());
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    assert!(lines_in(&app.dir("logs")).is_empty(), "a refused batch is not written anywhere");

    let broker = Broker::start(&tansu, port, "memory://tansu/".into());
    assert!(
        wait_ready(app.addr, Duration::from_secs(60)),
        "did not recover when the broker came up"
    );
    // Topics are created as soon as the broker answers; allow for the first produce to race it.
    let reply = poll_until(
        Duration::from_secs(30),
        || deliver(app.addr, &fixture("logs.ndjson")),
        |reply| reply.status == 200,
    );
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert!(consume(&broker.brokers(), 5).len() >= 5);
}

#[test]
fn broker_restart_under_load_loses_no_acknowledged_record() {
    let Some(tansu) = tansu() else { return };
    let store = tempfile::tempdir().unwrap();
    let mut broker =
        Broker::start_in(&tansu, free_port(), "sqlite://tansu.db".into(), store.path().to_owned());
    let app = kafka_app(&broker.brokers(), |c| c.ingest.ack_timeout = Duration::from_secs(10));
    assert!(wait_ready(app.addr, Duration::from_secs(30)));

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let refused = Arc::new(Mutex::new(0usize));
    let stop = Arc::new(AtomicBool::new(false));
    let addr = app.addr;
    let clients: Vec<_> = (0..3)
        .map(|client| {
            let (acked, refused, stop) =
                (Arc::clone(&acked), Arc::clone(&refused), Arc::clone(&stop));
            std::thread::spawn(move || {
                // Bounded: at most 3000 batches per client, and only until told to stop.
                for n in 0..3000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let mut body = Vec::new();
                    let mut ids = Vec::new();
                    for i in 0..10 {
                        let id = format!("k{client}-{n}-{i}");
                        body.extend_from_slice(
                            format!(r#"{{"id":"{id}","projectId":"prj_{i}","timestamp":{n}}}"#)
                                .as_bytes(),
                        );
                        body.push(b'\n');
                        ids.push(id);
                    }
                    let reply = deliver(addr, &body);
                    if reply.status == 200 {
                        acked.lock().unwrap().extend(ids);
                    } else {
                        *refused.lock().unwrap() += 1;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
        })
        .collect();
    let wait_for_acks = |n: usize| {
        wait_until(Duration::from_secs(60), || acked.lock().unwrap().len() >= n);
    };
    wait_for_acks(500);
    broker.stop();
    // The outage is real: the receiver notices it (clients blocked on in-flight batches may
    // never see a refusal, since those batches are delivered once the broker is back).
    let noticed = wait_until(Duration::from_secs(15), || {
        send(addr, "GET", "/readyz", &[], b"").status == 503
    });
    assert!(noticed, "the receiver never noticed the broker was gone");
    std::thread::sleep(Duration::from_secs(1));
    let during_outage = acked.lock().unwrap().len();
    broker.restart();
    wait_for_acks(during_outage + 1000);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    eprintln!("batches refused during the outage: {}", refused.lock().unwrap());

    let produced = consume(&broker.brokers(), acked.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (_, value) in &produced {
        let id = serde_json::from_str::<serde_json::Value>(value).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        *seen.entry(id).or_default() += 1;
    }
    let missing: Vec<&String> = acked.iter().filter(|id| !seen.contains_key(*id)).collect();
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!("acknowledged {}, produced {}, duplicates {duplicates}", acked.len(), produced.len());
    assert!(
        missing.is_empty(),
        "{} acknowledged records missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

#[test]
fn a_full_producer_queue_is_503_quickly() {
    let Some(tansu) = tansu() else { return };
    let broker = Broker::start(&tansu, free_port(), "memory://tansu/".into());
    let app = kafka_app(&broker.brokers(), |c| {
        let kafka = c.kafka.as_mut().unwrap();
        kafka.queue_max_messages = 10;
        kafka.linger_ms = 2000;
    });
    assert!(wait_ready(app.addr, Duration::from_secs(30)));
    let body = spillway_benches::Corpus::new(5, 100).ndjson();
    let started = Instant::now();
    let reply = deliver(app.addr, &body);
    assert_eq!(reply.status, 503);
    assert_eq!(reply.error_code(), "sink_unavailable");
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
}

#[test]
fn missing_topics_are_created_with_the_configured_partitions_and_properties() {
    let Some(tansu) = tansu() else { return };
    let broker = Broker::start(&tansu, free_port(), "memory://tansu/".into());
    let app = kafka_app(&broker.brokers(), |c| {
        let kafka = c.kafka.as_mut().unwrap();
        kafka.topic = "made-by-spillway".into();
        kafka.partitions = 5;
        // A property the admin client must be given too (a bad one would fail creation).
        kafka.properties.push(("client.id".into(), "spillway-topics".into()));
    });
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.brokers())
        .set("allow.auto.create.topics", "false")
        .create()
        .unwrap();
    let partitions = || {
        let metadata = consumer.fetch_metadata(Some("made-by-spillway"), Duration::from_secs(2));
        let metadata = metadata.ok()?;
        let topic = metadata.topics().iter().find(|t| t.name() == "made-by-spillway")?;
        Some(topic.partitions().len()).filter(|n| *n > 0)
    };
    let found = poll_until(Duration::from_secs(30), partitions, Option::is_some);
    assert_eq!(found, Some(5));
    drop(app);
}

/// Every (key, value, `data_type` header) in `topic`, until `expect` arrived or a minute passed.
fn consume_typed(brokers: &str, topic: &str, expect: usize) -> Vec<(String, String, String)> {
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    let raw = consume_raw(brokers, topic, expect);
    raw.into_iter().map(|(key, value, data_type)| (key, text(value), data_type)).collect()
}

/// [`consume_typed`] with each value as its bytes (a trace is protobuf).
fn consume_raw(brokers: &str, topic: &str, expect: usize) -> Vec<(String, Vec<u8>, String)> {
    use rdkafka::message::Headers;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("check-{}", free_port()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let text = |b: Option<&[u8]>| String::from_utf8(b.unwrap_or_default().to_vec()).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < expect && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            let data_type = m
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == "data_type").map(|h| text(h.value)))
                .unwrap_or_default();
            out.push((text(m.key()), m.payload().unwrap_or_default().to_vec(), data_type));
        }
    }
    out
}

#[test]
fn each_data_type_reaches_its_own_topic_with_its_header() {
    let Some(tansu) = tansu() else { return };
    let broker = Broker::start(&tansu, free_port(), "memory://tansu/".into());
    let app = kafka_app(&broker.brokers(), |_| {});
    assert!(wait_ready(app.addr, Duration::from_secs(30)), "never ready");
    let types = [
        (
            "/vercel/speed-insights",
            "speed-insights.ndjson",
            "vercel-speed-insights",
            "speed_insights",
        ),
        ("/vercel/analytics", "analytics.ndjson", "vercel-analytics", "analytics"),
        ("/vercel/audit-log", "audit-log.ndjson", "vercel-audit-log", "audit_log"),
    ];
    for (path, name, _, _) in types {
        let sig = sign(&fixture(name));
        let reply = poll_until(
            Duration::from_secs(30),
            || send(app.addr, "POST", path, &[("x-vercel-signature", &sig)], &fixture(name)),
            |reply| reply.status == 200,
        );
        assert_eq!(reply.status, 200, "{path}: {}", String::from_utf8_lossy(&reply.body));
    }
    for (_, name, topic, data_type) in types {
        let lines: Vec<String> =
            String::from_utf8(fixture(name)).unwrap().lines().map(str::to_owned).collect();
        let mut produced = consume_typed(&broker.brokers(), topic, lines.len());
        produced.sort();
        let mut expected: Vec<(String, String, String)> = lines
            .iter()
            .map(|l| {
                let key = serde_json::from_str::<serde_json::Value>(l).unwrap()["projectId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                (key, l.clone(), data_type.to_owned())
            })
            .collect();
        expected.sort();
        assert_eq!(produced, expected, "{topic}");
    }
    // Nothing of theirs reached the logs' topic.
    assert!(consume(&broker.brokers(), 0).is_empty());
}

#[test]
fn each_trace_resource_reaches_the_traces_topic_as_its_protobuf_keyed_by_project() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
    use prost::Message as _;

    let Some(tansu) = tansu() else { return };
    let broker = Broker::start(&tansu, free_port(), "memory://tansu/".into());
    let app = kafka_app(&broker.brokers(), |_| {});
    assert!(wait_ready(app.addr, Duration::from_secs(30)), "never ready");
    let sent = spillway_benches::otlp_request(5, 3, 4).resource_spans;
    let body = ExportTraceServiceRequest { resource_spans: sent.clone() }.encode_to_vec();
    let sig = sign(&body);
    let headers =
        [("x-vercel-signature", sig.as_str()), ("content-type", "application/x-protobuf")];
    let reply = poll_until(
        Duration::from_secs(30),
        || send(app.addr, "POST", "/vercel/traces", &headers, &body),
        |reply| reply.status == 200,
    );
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));

    // Read back with prost (an independent decoder): one message per resource, its bytes.
    let project_of = |r: &ResourceSpans| {
        let attributes = &r.resource.as_ref().unwrap().attributes;
        let id = attributes.iter().find(|kv| kv.key == "vercel.projectId").unwrap();
        match id.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => {
                s.clone()
            }
            other => panic!("not a string project id: {other:?}"),
        }
    };
    let mut expected: Vec<(String, Vec<u8>, String)> =
        sent.iter().map(|r| (project_of(r), r.encode_to_vec(), "traces".to_owned())).collect();
    let mut produced = consume_raw(&broker.brokers(), "vercel-traces", sent.len());
    for (_, value, _) in &produced {
        let resource = ResourceSpans::decode(&value[..]).expect("a message is a ResourceSpans");
        assert!(sent.contains(&resource), "a resource that was not sent: {resource:?}");
    }
    produced.sort();
    expected.sort();
    assert_eq!(produced.len(), 3);
    assert!(produced == expected, "the topic holds other resources than were sent");
    // Nothing of theirs reached the logs' topic.
    assert!(consume(&broker.brokers(), 0).is_empty());
}

#[test]
fn a_record_too_large_for_kafka_is_a_dead_letter_and_the_rest_is_produced() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message as _;

    let Some(tansu) = tansu() else { return };
    let broker = Broker::start(&tansu, free_port(), "memory://tansu/".into());
    const MAX: usize = 4096;
    let app = kafka_app(&broker.brokers(), |c| {
        let kafka = c.kafka.as_mut().unwrap();
        kafka.properties.push(("message.max.bytes".into(), MAX.to_string()));
    });
    assert!(wait_ready(app.addr, Duration::from_secs(30)), "never ready");

    // The second of three records is larger than any message the producer takes.
    let lines: Vec<String> = String::from_utf8(fixture("logs.ndjson"))
        .unwrap()
        .lines()
        .take(3)
        .map(str::to_owned)
        .collect();
    let mut big: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    big["message"] = "x".repeat(MAX).into();
    let big = big.to_string();
    let body = format!("{}\n{big}\n{}\n", lines[0], lines[2]);
    let reply = poll_until(
        Duration::from_secs(30),
        || deliver(app.addr, body.as_bytes()),
        |reply| reply.status == 200,
    );
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.json(), serde_json::json!({"accepted": 2, "dead_lettered": 1}));
    let mut produced: Vec<String> =
        consume(&broker.brokers(), 2).into_iter().map(|(_, value)| value).collect();
    produced.sort();
    let mut expected = vec![lines[0].clone(), lines[2].clone()];
    expected.sort();
    assert_eq!(produced, expected, "the records beside the large one are produced");
    let dead: Vec<serde_json::Value> = lines_in(&app.dir("dead-letter"))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0]["reason"].as_str(), dead[0]["raw"].as_str()),
        (Some("too_large"), Some(&big[..]))
    );

    // A trace resource too large is refused as its spans, the other one is produced.
    let mut resources = spillway_benches::otlp_request(7, 1, 1).resource_spans;
    resources.extend(spillway_benches::otlp_request(8, 1, 40).resource_spans);
    assert!(resources[1].encoded_len() > MAX && resources[0].encoded_len() < MAX / 2);
    let body = ExportTraceServiceRequest { resource_spans: resources.clone() }.encode_to_vec();
    let sig = sign(&body);
    let headers =
        [("x-vercel-signature", sig.as_str()), ("content-type", "application/x-protobuf")];
    let reply = send(app.addr, "POST", "/vercel/traces", &headers, &body);
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let answer =
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::decode(
            &reply.body[..],
        )
        .unwrap();
    let partial = answer.partial_success.expect("the large resource is reported");
    assert_eq!(partial.rejected_spans, 40);
    assert!(partial.error_message.contains("too_large"), "{}", partial.error_message);
    let produced = consume_raw(&broker.brokers(), "vercel-traces", 1);
    assert_eq!(produced.len(), 1);
    assert_eq!(produced[0].1, resources[0].encode_to_vec());
}
