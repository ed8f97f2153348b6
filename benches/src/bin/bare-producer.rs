//! `bare-producer`: the Kafka baseline. Produces the benchmark corpus's records to a broker as
//! the same messages Spillway's Kafka sink makes (value, `projectId` key, drain, data_type,
//! source and level headers) with the same producer settings (idempotence, `acks=all`, lz4, same
//! batching), but with no HTTP and no parsing (keys and header values are taken out before the
//! clock starts), and reports records/s once every delivery report is in. `--no-headers` sends
//! value and key only: the producer's own limit, which `scripts/bench` compares Spillway with.
//!
//! ```text
//! bare-producer --brokers 127.0.0.1:9092 --topic bench --records 200000 [--no-headers]
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use spillway_benches::Corpus;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    brokers: String,
    #[arg(long, default_value = "bench-bare")]
    topic: String,
    /// Records to produce (the corpus is cycled).
    #[arg(long, default_value_t = 200_000)]
    records: usize,
    /// Distinct records in the corpus.
    #[arg(long, default_value_t = 20_000)]
    corpus: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Print JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Send value and key only, without the drain/data_type/source/level headers.
    #[arg(long)]
    no_headers: bool,
}

struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Counts {}

impl ProducerContext for Counts {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// The same topic shape Spillway creates (3 partitions), since brokers may not auto-create.
fn create_topic(args: &Args) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &args.brokers).create().expect("admin client");
    let topic = NewTopic::new(&args.topic, 3, TopicReplication::Fixed(1));
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let created = runtime
        .block_on(admin.create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .expect("create topic");
    for result in created {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => panic!("cannot create topic {name}: {code}"),
        }
    }
}

/// The drain/data_type/source/level headers Spillway puts on a record (absent fields are left
/// out).
fn headers(source: &Option<String>, level: &Option<String>) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new_with_capacity(4)
        .insert(Header { key: "drain", value: Some("default".as_bytes()) })
        .insert(Header { key: "data_type", value: Some("logs".as_bytes()) });
    if let Some(source) = source {
        headers = headers.insert(Header { key: "source", value: Some(source.as_bytes()) });
    }
    if let Some(level) = level {
        headers = headers.insert(Header { key: "level", value: Some(level.as_bytes()) });
    }
    headers
}

/// Sends `args.records` messages cycling through the corpus, as Spillway would send them (key
/// and, unless `--no-headers`, headers); returns the payload bytes sent.
fn produce(
    producer: &ThreadedProducer<Counts>,
    args: &Args,
    records: &[String],
    fields: &[[Option<String>; 3]],
) -> u64 {
    let mut bytes = 0u64;
    for i in 0..args.records {
        let j = i % records.len();
        let [key, source, level] = &fields[j];
        let mut record = BaseRecord::to(&args.topic)
            .payload(records[j].as_bytes())
            .key(key.as_deref().unwrap_or_default().as_bytes());
        if !args.no_headers {
            record = record.headers(headers(source, level));
        }
        bytes += records[j].len() as u64;
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => panic!("produce failed: {e}"),
            }
        }
    }
    bytes
}

/// jemalloc serves every allocation of the process, librdkafka's included, as in the receiver.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let args = Args::parse();
    let corpus = Corpus::new(args.seed, args.corpus);
    // Key, source and level of each record.
    let fields: Vec<[Option<String>; 3]> = corpus
        .records
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_str(r).expect("corpus records are JSON");
            ["projectId", "source", "level"].map(|k| v[k].as_str().map(str::to_owned))
        })
        .collect();
    create_topic(&args);
    let producer: ThreadedProducer<Counts> = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("batch.size", (1 << 20).to_string())
        .set("queue.buffering.max.messages", "500000")
        .set("message.timeout.ms", "30000")
        .create_with_context(Counts { ok: AtomicU64::new(0), failed: AtomicU64::new(0) })
        .expect("producer");
    let counts = producer.context();
    let started = Instant::now();
    let bytes = produce(&producer, &args, &corpus.records, &fields);
    producer.flush(Duration::from_secs(120)).expect("flush");
    let elapsed = started.elapsed().as_secs_f64();
    let ok = counts.ok.load(Ordering::Relaxed);
    let failed = counts.failed.load(Ordering::Relaxed);
    let summary = serde_json::json!({
        "seconds": elapsed,
        "records": ok,
        "failed": failed,
        "records_per_sec": ok as f64 / elapsed,
        "mb_per_sec": bytes as f64 / elapsed / 1e6,
        "headers": !args.no_headers,
    });
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "{ok} records in {elapsed:.2} s: {:.0} records/s ({failed} failed)",
            ok as f64 / elapsed
        );
    }
}
