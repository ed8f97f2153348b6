//! The Kafka sink: one message per record, acknowledged only after the broker acknowledged every
//! record of the batch.
//!
//! Value: the record's bytes exactly as the file sink writes them. Key: `projectId`, so that a
//! project's logs stay ordered in one partition. Headers: `drain`, `data_type` (`logs`,
//! `speed_insights`, ...), and `source` and `level` when the record has them. Topic: for logs the
//! configured one or the first matching routing rule's; for each other type its own
//! ([`DataTopics`]).
//!
//! A batch is enqueued whole (never one message awaited at a time); each message carries the
//! batch's `Tracker`, a counter fed by librdkafka's delivery reports, and the batch's job is
//! settled when the last report is in. A message that cannot be enqueued (producer queue full)
//! fails the batch at once. Broker reachability comes from librdkafka's statistics: while no
//! broker is up, the sink stops accepting, so new deliveries are refused with a fast `503` and
//! `/readyz` says not ready; it accepts again as soon as a broker is back.
//!
//! Missing topics are created by a thread of their own (`topics`), never on the sink's thread.
//!
//! With a spool (`spooled`, over [`crate::spool`]), a batch is instead appended to a disk log and
//! acknowledged once synced there: always (`always`), or while no broker is reachable and until
//! what was spooled meanwhile is produced (`outage`). The spool is produced in order from `tick`.
//!
//! rdkafka types never leave this module.

mod borrowed;
mod data_topics;
mod message;
mod reports;
mod spooled;
mod topics;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};
use rdkafka::statistics::Statistics;
use record::SinkFailure;

use self::borrowed::{send_borrowed, TopicNames};
use self::data_topics::route;
pub use self::data_topics::DataTopics;
use self::message::{error_code, fits_message, Outgoing, RecordFields};
use self::reports::Reports;
use self::spooled::Spooled;
use self::topics::{TopicCreator, TopicPlan};
use crate::dedup::DedupWindow;
use crate::sink::{Fits, Health, Job, SharedBatch, Sink, Takes};
use crate::spool::SpoolConfig;
use crate::{PipelineError, PipelineMetrics};

/// The Kafka sink's name.
pub const KAFKA: &str = "kafka";

/// librdkafka's own `message.max.bytes` when the properties do not set it: a record whose
/// message would be larger is set aside as a dead letter ([`record::RejectReason::TooLarge`]).
pub const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;

crate::named_setting! {
    /// Which record field a routing rule looks at.
    pub enum RouteField {
        /// The record's `source` (`edge`, `lambda`, `build`, ...).
        Source = "source",
        /// The record's `level`.
        Level = "level",
        /// The record's `environment`.
        Environment = "environment",
        /// The drain the batch came from.
        Drain = "drain",
    }
}

/// Records whose `field` equals `value` go to `topic`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The field compared.
    pub field: RouteField,
    /// The value it must have.
    pub value: String,
    /// Where matching records go.
    pub topic: String,
}

crate::named_setting! {
    /// How the producer compresses message batches (librdkafka's `compression.type`).
    pub enum Compression {
        /// `lz4`.
        Lz4 = "lz4",
        /// `zstd`.
        Zstd = "zstd",
        /// `gzip`.
        Gzip = "gzip",
        /// `snappy`.
        Snappy = "snappy",
        /// `none`: uncompressed.
        None = "none",
    }
}

/// How the Kafka sink connects and produces. `Debug` (in `kafka_properties`) redacts the
/// properties that hold secrets.
#[derive(Clone)]
pub struct KafkaSinkConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// The logs' default topic.
    pub topic: String,
    /// Routing rules for logs, first match wins; logs matching none go to `topic`.
    pub routes: Vec<Route>,
    /// The topic of each other data type.
    pub data_topics: DataTopics,
    /// `compression.type`.
    pub compression: Compression,
    /// `linger.ms`.
    pub linger_ms: u32,
    /// `batch.size` in bytes.
    pub batch_bytes: u32,
    /// `queue.buffering.max.messages`: past it, batches are refused with `503`.
    pub queue_max_messages: u32,
    /// `queue.buffering.max.kbytes`: the producer queue's memory bound, in KiB.
    pub queue_max_kbytes: u32,
    /// `message.timeout.ms`: how long librdkafka retries a message before failing it.
    pub message_timeout: Duration,
    /// Create missing topics at start-up (and keep trying while the broker is away).
    pub create_topics: bool,
    /// Partitions of created topics.
    pub partitions: i32,
    /// Replication factor of created topics.
    pub replication_factor: i32,
    /// Any other librdkafka properties, passed through (they override the ones above).
    pub properties: Vec<(String, String)>,
    /// The disk spool, if any: batches acknowledged once synced there, produced later.
    pub spool: Option<SpoolConfig>,
}

impl KafkaSinkConfig {
    /// Defaults for `brokers`: topic `vercel-logs`, lz4, no loss (`acks=all`, idempotence).
    pub fn new(brokers: impl Into<String>) -> KafkaSinkConfig {
        KafkaSinkConfig {
            brokers: brokers.into(),
            topic: "vercel-logs".into(),
            routes: Vec::new(),
            data_topics: DataTopics::default(),
            compression: Compression::Lz4,
            linger_ms: 5,
            batch_bytes: 1 << 20,
            queue_max_messages: 100_000,
            queue_max_kbytes: 64 * 1024,
            message_timeout: Duration::from_secs(30),
            create_topics: true,
            partitions: 3,
            replication_factor: 1,
            properties: Vec::new(),
            spool: None,
        }
    }

    /// Every topic the sink may write to.
    pub fn topics(&self) -> Vec<&str> {
        let mut topics: Vec<&str> = std::iter::once(self.topic.as_str())
            .chain(self.routes.iter().map(|r| r.topic.as_str()))
            .chain(self.data_topics.all())
            .collect();
        topics.sort_unstable();
        topics.dedup();
        topics
    }

    /// What every client of the sink (producer and admin) connects with: `bootstrap.servers`
    /// and the configured properties, so SASL and TLS settings reach them all.
    pub(crate) fn admin_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers).set("reconnect.backoff.max.ms", "1000");
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    /// The largest message the producer takes (`message.max.bytes`) and the largest value its
    /// queue can ever hold (`queue.buffering.max.kbytes`, in bytes), as librdkafka reads them.
    pub fn producer_limits(&self) -> (usize, usize) {
        let native = self.client_config().create_native_config().ok();
        let read = |key: &str| {
            let value = native.as_ref().and_then(|n| n.get(key).ok());
            value.and_then(|v| v.parse::<usize>().ok())
        };
        let message = read("message.max.bytes").unwrap_or(DEFAULT_MESSAGE_MAX_BYTES);
        let queue = read("queue.buffering.max.kbytes").unwrap_or(self.queue_max_kbytes as usize);
        (message, queue.saturating_mul(1024))
    }

    /// The producer's configuration: the connection's, lossless producer defaults, then the
    /// configured properties again (they override the defaults).
    fn client_config(&self) -> ClientConfig {
        let mut c = self.admin_config();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", self.compression.as_str())
            .set("linger.ms", self.linger_ms.to_string())
            .set("batch.size", self.batch_bytes.to_string())
            .set("queue.buffering.max.messages", self.queue_max_messages.to_string())
            .set("queue.buffering.max.kbytes", self.queue_max_kbytes.to_string())
            .set("message.timeout.ms", self.message_timeout.as_millis().to_string())
            .set("statistics.interval.ms", "500");
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    fn topic_plan(&self) -> TopicPlan {
        TopicPlan {
            topics: self.topics().into_iter().map(str::to_owned).collect(),
            partitions: self.partitions,
            replication_factor: self.replication_factor,
        }
    }
}

/// One batch's delivery state: settled when its last message's report is in.
pub(crate) struct Tracker {
    digest: u128,
    remaining: AtomicUsize,
    failure: Mutex<Option<&'static str>>,
    job: Mutex<Option<Job>>,
    started: Instant,
    /// Every report is in (what the spool's replay waits for).
    settled: AtomicBool,
    /// The batch whose bytes the messages point into when produced without a copy
    /// (`borrowed`): kept until the last message's report lets the tracker go.
    keep: Option<SharedBatch>,
}

impl Tracker {
    /// A tracker of `records` messages, settling `job` (if any) when their last report is in. It
    /// holds one count more while the messages are enqueued, released by `settle(1, Ok(()))`.
    fn new(digest: u128, records: usize, job: Option<Job>) -> Tracker {
        Tracker {
            digest,
            remaining: AtomicUsize::new(records + 1),
            failure: Mutex::new(None),
            job: Mutex::new(job),
            started: Instant::now(),
            settled: AtomicBool::new(false),
            keep: None,
        }
    }

    /// A tracker of `job`'s batch, whose messages may point into the batch's bytes.
    fn keeping(job: Job) -> Tracker {
        let batch = job.shared();
        let mut tracker =
            Tracker::new(batch.batch().digest, batch.batch().records.len(), Some(job));
        tracker.keep = Some(batch);
        tracker
    }

    /// Whether the tracker keeps a batch its messages may point into.
    fn keeps_batch(&self) -> bool {
        self.keep.is_some()
    }

    /// Whether every report is in, and the first failure if one failed.
    fn outcome(&self) -> Option<Result<(), &'static str>> {
        if !self.settled.load(Ordering::Acquire) {
            return None;
        }
        Some(self.failure.lock().unwrap_or_else(|e| e.into_inner()).map_or(Ok(()), Err))
    }

    fn settle(&self, count: usize, outcome: Result<(), &'static str>, ctx: &Context) {
        if count == 0 {
            return;
        }
        if let Err(code) = outcome {
            self.failure.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(code);
        }
        if self.remaining.fetch_sub(count, Ordering::AcqRel) != count {
            return;
        }
        self.settled.store(true, Ordering::Release);
        // Already failed at enqueue time: nothing is waiting any more.
        let Some(mut job) = self.job.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        match *self.failure.lock().unwrap_or_else(|e| e.into_inner()) {
            None => {
                ctx.metrics.kafka_delivered(self.started.elapsed().as_secs_f64());
                ctx.recent.lock().unwrap_or_else(|e| e.into_inner()).insert(self.digest);
                job.complete();
            }
            Some(code) => job.fail(SinkFailure { sink: KAFKA, code }),
        }
    }
}

/// librdkafka's callbacks: delivery reports and statistics.
pub(crate) struct Context {
    metrics: PipelineMetrics,
    /// Batches whose every record the broker acknowledged, to skip clients' retries of them.
    recent: Mutex<DedupWindow>,
    health: Health,
    brokers_up: AtomicBool,
    /// With a spool, the sink accepts batches while no broker is reachable.
    spooling: bool,
}

impl ClientContext for Context {
    fn stats(&self, statistics: Statistics) {
        let up = statistics.brokers.values().any(|b| b.state == "UP");
        if up != self.brokers_up.swap(up, Ordering::AcqRel) {
            if up {
                tracing::info!(sink = KAFKA, "broker reachable: accepting batches");
            } else {
                tracing::warn!(sink = KAFKA, "no broker reachable: refusing batches");
            }
        }
        self.health.set_accepting(up || self.spooling);
        self.metrics.kafka_queue(statistics.msg_cnt as i64);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.brokers_up.store(false, Ordering::Release);
            self.health.set_accepting(self.spooling);
        }
        tracing::warn!(sink = KAFKA, code = error_code(&error), reason, "kafka client error");
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = Arc<Tracker>;

    fn delivery(&self, result: &DeliveryResult<'_>, tracker: Arc<Tracker>) {
        match result {
            Ok(_) => {
                self.metrics.kafka_produced(1);
                tracker.settle(1, Ok(()), self);
            }
            Err((error, _)) => {
                let code = error_code(error);
                self.metrics.write_error(KAFKA, code);
                tracker.settle(1, Err(code), self);
            }
        }
    }
}

/// How long shutdown waits for the producer when a spool holds what it does not deliver.
const SPOOLED_FLUSH: Duration = Duration::from_secs(5);

/// The Kafka sink.
pub struct KafkaSink {
    config: KafkaSinkConfig,
    /// Delivery reports, served on the sink's thread; declared (so dropped) before the producer.
    reports: Reports,
    producer: BaseProducer<Context>,
    context_health: Health,
    metrics: PipelineMetrics,
    /// Creating missing topics, until done (or given up).
    topics: Option<TopicCreator>,
    /// The disk spool, when configured.
    spooled: Option<Spooled>,
    /// C strings of the topics produced to (`borrowed`).
    topic_names: TopicNames,
}

impl fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSink")
            .field("brokers", &self.config.brokers)
            .field("topic", &self.config.topic)
            .finish()
    }
}

impl KafkaSink {
    /// Creates the producer and, when configured, the missing topics. A broker that is down is
    /// not an error here: the sink refuses batches until it is reachable.
    pub fn open(
        config: KafkaSinkConfig,
        metrics: &PipelineMetrics,
    ) -> Result<KafkaSink, PipelineError> {
        let spooled = match &config.spool {
            Some(spool) => Some(Spooled::open(spool, &config, metrics).map_err(|source| {
                PipelineError::Open { sink: KAFKA, path: spool.dir.display().to_string(), source }
            })?),
            None => None,
        };
        let health = Health::new();
        // Without a spool, not accepting until the first statistics show a broker up.
        health.set_accepting(spooled.is_some());
        let context = Context {
            metrics: metrics.clone(),
            recent: Mutex::new(DedupWindow::new(4096)),
            health: health.clone(),
            brokers_up: AtomicBool::new(false),
            spooling: spooled.is_some(),
        };
        let producer: BaseProducer<Context> = config
            .client_config()
            .create_with_context(context)
            .map_err(|e| PipelineError::Open {
            sink: KAFKA,
            path: config.brokers.clone(),
            source: std::io::Error::other(crate::kafka_properties::client_error(&e)),
        })?;
        let topics = match config.create_topics {
            true => Some(
                TopicCreator::spawn(config.admin_config(), config.topic_plan())
                    .map_err(|source| PipelineError::Spawn { sink: KAFKA, source })?,
            ),
            false => None,
        };
        let metrics = metrics.clone();
        let topic_names = TopicNames::default();
        Ok(KafkaSink {
            config,
            reports: Reports::new(&producer),
            producer,
            context_health: health,
            metrics,
            topics,
            spooled,
            topic_names,
        })
    }

    /// Enqueues every record of `job`'s batch; the job is settled by the delivery reports.
    fn enqueue(&mut self, job: Job) {
        let ctx = self.producer.context();
        let shared = job.shared();
        let batch = shared.batch();
        let total = batch.records.len();
        let tracker = Arc::new(Tracker::keeping(job));
        for (i, record) in batch.records.iter().enumerate() {
            let fields = RecordFields::of(record);
            let message = Outgoing {
                topic: route(&self.config, record, &batch.drain, batch.data_type),
                key: fields.key(),
                drain: batch.drain.as_bytes(),
                data_type: batch.data_type.as_str().as_bytes(),
                source: fields.source.as_deref(),
                level: fields.level.as_deref(),
                value: record.bytes(),
            };
            if let Err(code) =
                send_borrowed(&self.producer, &mut self.topic_names, message, &tracker)
            {
                // The rest of the batch is never enqueued: the batch fails now, without waiting
                // for the reports of what was enqueued (those may still be delivered: at least
                // once), and the client gets its 503 at once.
                if let Some(mut job) = tracker.job.lock().unwrap_or_else(|e| e.into_inner()).take()
                {
                    job.fail(SinkFailure { sink: KAFKA, code });
                }
                tracker.settle(total - i, Err(code), ctx);
                break;
            }
        }
        tracker.settle(1, Ok(()), ctx);
    }

    /// Whether a batch goes to the spool now rather than straight to the producer.
    fn spools(&self) -> bool {
        let up = self.producer.context().brokers_up.load(Ordering::Acquire);
        self.spooled.as_ref().is_some_and(|s| s.takes(up))
    }
}

impl Sink for KafkaSink {
    fn name(&self) -> &'static str {
        KAFKA
    }

    fn takes(&self) -> Takes {
        Takes::Records
    }

    fn write(&mut self, jobs: &mut Vec<Job>) {
        let mut to_spool = Vec::new();
        for mut job in jobs.drain(..) {
            let ctx = self.producer.context();
            if ctx.recent.lock().unwrap_or_else(|e| e.into_inner()).contains(job.batch().digest) {
                // A retry of a batch the broker (or the spool) already has: not produced again.
                self.metrics.retry_skipped(KAFKA);
                job.complete();
            } else if !to_spool.is_empty() || self.spools() {
                // Once one batch of the group is spooled, the rest follow it there, in order.
                to_spool.push(job);
            } else {
                self.enqueue(job);
            }
        }
        if let Some(spooled) = self.spooled.as_mut().filter(|_| !to_spool.is_empty()) {
            spooled.append(&mut to_spool, &self.config, self.producer.context());
        }
        self.metrics.kafka_queue(i64::from(self.producer.in_flight_count()));
        self.reports.serve(&self.producer);
    }

    fn tick(&mut self, now: Instant) {
        self.reports.serve(&self.producer);
        // Never blocks: the creating thread runs on its own and is only looked at here.
        if self.topics.as_mut().is_some_and(TopicCreator::poll) {
            self.topics = None;
        }
        if let Some(spooled) = self.spooled.as_mut() {
            spooled.replay(&self.producer, now);
        }
    }

    fn wakes(&self) -> Option<crossbeam_channel::Receiver<()>> {
        Some(self.reports.woken())
    }

    fn health(&self) -> Health {
        self.context_health.clone()
    }

    fn fits(&self) -> Option<Fits> {
        let (message, queue) = self.config.producer_limits();
        Some(Arc::new(move |record, drain, data_type| {
            record.bytes().len() <= queue && fits_message(record, drain, data_type, message)
        }))
    }

    fn close(&mut self) {
        // Deliver what is queued; the batches waiting on it are answered either way. With a
        // spool, what is not delivered soon is produced again from it at the next start.
        let timeout = match self.spooled {
            Some(_) => self.config.message_timeout.min(SPOOLED_FLUSH),
            None => self.config.message_timeout,
        };
        if let Err(e) = self.producer.flush(timeout) {
            tracing::error!(
                sink = KAFKA,
                code = error_code(&e),
                "messages left undelivered at shutdown"
            );
        }
        if let Some(spooled) = self.spooled.as_mut() {
            spooled.close();
        }
    }
}

#[cfg(test)]
mod tests;
