//! `topic-check`: reads Kafka topics back from the beginning to their high watermarks (taken
//! when it starts) and checks that every record `loadgen --acked-out` saw acknowledged is there,
//! by identity (a multiset of record digests, [`spillway_benches::acked`]), not only by count.
//! Prints a JSON summary and exits 1 when an acknowledged record is missing or the topics could
//! not be read to their end within `--timeout-secs`.
//!
//! ```text
//! topic-check --brokers 127.0.0.1:9092 --topic vercel-logs --acked acked.json
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clap::Parser;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use spillway_benches::acked::{digest, Acked};

#[derive(Parser)]
#[command(about = "Checks that every acknowledged record reached the Kafka topics")]
struct Args {
    #[arg(long)]
    brokers: String,
    /// A topic the sink wrote to (repeat for several).
    #[arg(long, required = true)]
    topic: Vec<String>,
    /// What loadgen --acked-out wrote.
    #[arg(long)]
    acked: std::path::PathBuf,
    /// The longest the whole read may take.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
}

/// Each (topic, partition) with a message below its high watermark: the offset reading must
/// reach (the high watermark less one).
fn ends(consumer: &BaseConsumer, topics: &[String]) -> HashMap<(String, i32), i64> {
    let timeout = Duration::from_secs(10);
    let mut out = HashMap::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout).expect("topic metadata");
        for t in metadata.topics() {
            for p in t.partitions() {
                let (low, high) =
                    consumer.fetch_watermarks(topic, p.id(), timeout).expect("watermarks");
                if high > low {
                    out.insert((topic.clone(), p.id()), high - 1);
                }
            }
        }
    }
    out
}

/// How long reading goes on past the watermarks while nothing comes.
const IDLE: Duration = Duration::from_secs(2);

fn main() {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.acked).expect("read --acked");
    let acked = Acked::from_json(&serde_json::from_str(&text).expect("--acked is JSON"))
        .expect("--acked is what loadgen --acked-out writes");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", "spillway-topic-check")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut pending = ends(&consumer, &args.topic);
    let high_watermarks: i64 = pending.values().map(|last| last + 1).sum();
    let mut tpl = TopicPartitionList::new();
    for (topic, partition) in pending.keys() {
        tpl.add_partition_offset(topic, *partition, Offset::Beginning).expect("partition list");
    }
    consumer.assign(&tpl).expect("assign");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout_secs);
    let (mut consumed, mut errors) = (HashMap::<u64, u64>::new(), 0u64);
    let (mut messages, mut past_watermarks) = (0u64, 0u64);
    // To the watermarks, then on until nothing came for IDLE: a broker's watermark may lag what
    // it serves (and the check must not stop short of a record that is there).
    let mut idle_since = Instant::now();
    while Instant::now() < deadline && (!pending.is_empty() || idle_since.elapsed() < IDLE) {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                messages += 1;
                idle_since = Instant::now();
                past_watermarks += u64::from(pending.is_empty());
                *consumed.entry(digest(m.payload().unwrap_or_default())).or_default() += 1;
                let at = (m.topic().to_owned(), m.partition());
                if pending.get(&at).is_some_and(|last| m.offset() >= *last) {
                    pending.remove(&at);
                }
            }
            Some(Err(_)) => errors += 1,
            None => {}
        }
    }
    let missing = acked.missing(&consumed);
    let summary = serde_json::json!({
        "acked_batches": acked.batches,
        "acked_records": acked.records,
        "consumed": messages,
        "high_watermarks": high_watermarks,
        "consumed_past_watermarks": past_watermarks,
        "missing": missing,
        "read_to_end": pending.is_empty(),
        "consumer_errors": errors,
        "seconds": started.elapsed().as_secs_f64(),
    });
    println!("{summary}");
    if missing > 0 || !pending.is_empty() {
        std::process::exit(1);
    }
}
