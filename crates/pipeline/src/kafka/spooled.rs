//! The Kafka sink's side of the spool: appending batches (and acknowledging them once synced) and
//! producing what is spooled, in order, committing the spool's cursor only past frames whose every
//! record the broker acknowledged.
//!
//! Replay keeps a bounded window of frames in the producer (half its queue limits). Frames are
//! committed strictly in order: a frame whose records all came back is committed only once every
//! frame before it has been. If any frame fails (its messages timed out, say), replay waits for
//! the window to settle and starts again from the last committed frame: later frames may then
//! reach Kafka twice, never zero times.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::producer::{BaseProducer, Producer};
use record::SinkFailure;

use super::message::{send, Outgoing, RecordFields};
use super::{route, Context, KafkaSinkConfig, Tracker, KAFKA};
use crate::spool::frame::{self, RecordRef, SpooledBatch};
use crate::spool::{Pos, Read, Spool, SpoolConfig, SpoolMode};
use crate::{Job, PipelineMetrics};

/// How often, at most, the cursor is rewritten while replaying (each write is two syncs).
const CURSOR_EVERY: Duration = Duration::from_millis(200);
/// The pause before producing again after a failed frame, or after the spool could not be read.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// The largest encoding buffer kept between groups.
const MAX_KEPT_BUFFER: usize = 16 << 20;

/// A frame handed to the producer, not yet committed.
struct InFlight {
    end: Pos,
    tracker: Arc<Tracker>,
    records: usize,
    bytes: usize,
}

/// The spool, and replay's progress through it.
pub(crate) struct Spooled {
    spool: Spool,
    mode: SpoolMode,
    buf: Vec<u8>,
    /// The next frame to produce.
    read: Pos,
    in_flight: VecDeque<InFlight>,
    in_flight_records: usize,
    in_flight_bytes: usize,
    max_records: usize,
    max_bytes: usize,
    /// A frame failed: wait for the window to settle, then produce again from `committed`.
    rewinding: bool,
    resume_at: Instant,
    persisted_at: Instant,
    /// When the frame at the committed position was spooled, for the age metric.
    oldest: Option<(Pos, u64)>,
    /// The size of a frame the last append had no room for: the sink is unhealthy until the
    /// spool has that much room again.
    full: Option<u64>,
    metrics: PipelineMetrics,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Spooled {
    /// Opens the spool, recovering what a previous run left; replay starts at the next `tick`.
    pub(crate) fn open(
        config: &SpoolConfig,
        kafka: &KafkaSinkConfig,
        metrics: &PipelineMetrics,
    ) -> io::Result<Spooled> {
        let (spool, recovered) = Spool::open(config)?;
        if recovered.cut_bytes > 0 {
            tracing::warn!(sink = KAFKA, bytes = recovered.cut_bytes, "cut a torn spool frame");
        }
        if recovered.pending_bytes > 0 {
            tracing::info!(sink = KAFKA, bytes = recovered.pending_bytes, "spool to replay");
        }
        let now = Instant::now();
        let mut spooled = Spooled {
            read: spool.committed(),
            spool,
            mode: config.mode,
            buf: Vec::new(),
            in_flight: VecDeque::new(),
            in_flight_records: 0,
            in_flight_bytes: 0,
            max_records: (kafka.queue_max_messages as usize / 2).max(1),
            max_bytes: (kafka.queue_max_kbytes as usize * 1024 / 2).max(1),
            rewinding: false,
            resume_at: now,
            persisted_at: now,
            oldest: None,
            full: None,
            metrics: metrics.clone(),
        };
        spooled.publish();
        Ok(spooled)
    }

    /// Whether a new batch goes to the spool: always, or while the broker is away or the spool
    /// holds batches not yet handed to the producer (newer batches must not overtake them). Once
    /// replay has handed everything over, a new batch is enqueued behind it in the producer,
    /// whose queue keeps the order.
    pub(crate) fn takes(&self, brokers_up: bool) -> bool {
        self.mode == SpoolMode::Always
            || !brokers_up
            || self.rewinding
            || self.spool.normalise(self.read) < self.spool.end()
    }

    /// Appends the jobs' batches as frames, syncs once, and acknowledges them; the batches that
    /// do not fit fail (`spool_full`), as all do if the spool cannot be written.
    pub(crate) fn append(&mut self, jobs: &mut Vec<Job>, config: &KafkaSinkConfig, ctx: &Context) {
        let started = Instant::now();
        self.buf.clear();
        let room = self.spool.room();
        let spooled_at = now_ms();
        let mut fit = 0;
        let mut refusal = "spool_full";
        self.full = None;
        for job in jobs.iter() {
            let before = self.buf.len();
            encode(&mut self.buf, spooled_at, job, config);
            let size = self.buf.len() - before;
            if !frame::fits(size) {
                // Reading would take it for a damaged frame: refuse it (503) rather than
                // acknowledge what replay would then skip. It and the batches after it fail;
                // those are spooled on the client's retry.
                refusal = "frame_too_large";
                self.buf.truncate(before);
                break;
            }
            if self.buf.len() as u64 > room {
                self.full = Some(size as u64);
                self.buf.truncate(before);
                break;
            }
            fit += 1;
        }
        let written = match fit {
            0 => Ok(()),
            _ => self.spool.append(&self.buf),
        };
        let mut rest = jobs.split_off(fit);
        let code = match written {
            Ok(()) => {
                let mut recent = ctx.recent.lock().unwrap_or_else(|e| e.into_inner());
                for job in jobs.iter_mut() {
                    recent.insert(job.batch().digest);
                    job.complete();
                }
                let records = jobs.iter().map(|j| j.batch().records.len() as u64).sum();
                let (bytes, secs) = (self.buf.len() as u64, started.elapsed().as_secs_f64());
                self.metrics.written("kafka_spool", records, bytes, secs);
                refusal
            }
            Err(e) => {
                tracing::error!(sink = KAFKA, error = %e, "cannot write to the spool");
                rest.append(jobs);
                if e.kind() == io::ErrorKind::StorageFull {
                    "disk_full"
                } else {
                    "spool_io"
                }
            }
        };
        ctx.health.set_healthy(rest.is_empty());
        for mut job in rest {
            self.metrics.write_error(KAFKA, code);
            job.fail(SinkFailure { sink: KAFKA, code });
        }
        jobs.clear();
        if self.buf.capacity() > MAX_KEPT_BUFFER {
            // One huge group must not pin its memory for good.
            self.buf = Vec::new();
        }
        self.publish();
    }

    /// Commits what the broker acknowledged, persists the cursor now and then, and hands the
    /// next frames to the producer while a broker is up. Never waits on the broker.
    pub(crate) fn replay(&mut self, producer: &BaseProducer<Context>, now: Instant) {
        self.settle();
        if self.spool.drained() || now.duration_since(self.persisted_at) >= CURSOR_EVERY {
            self.persist(now);
        }
        let ctx = producer.context();
        if self.full.is_some_and(|needed| self.spool.room() >= needed) {
            // Ready again once the spool has room, even if no batch comes to prove it.
            self.full = None;
            ctx.health.set_healthy(true);
        }
        let up = ctx.brokers_up.load(Ordering::Acquire);
        if up && !self.rewinding && now >= self.resume_at {
            self.fill(producer, now);
        }
        self.publish();
    }

    /// Commits the acknowledged frames and the cursor, at shutdown (after the producer flushed).
    pub(crate) fn close(&mut self) {
        self.settle();
        self.persist(Instant::now());
    }

    fn persist(&mut self, now: Instant) {
        self.persisted_at = now;
        if let Err(e) = self.spool.persist() {
            tracing::warn!(sink = KAFKA, error = %e, "cannot persist the spool's cursor");
        }
    }

    /// Takes the settled frames off the front of the window, in order.
    fn settle(&mut self) {
        while let Some(outcome) = self.in_flight.front().and_then(|f| f.tracker.outcome()) {
            let Some(frame) = self.in_flight.pop_front() else { break };
            self.in_flight_records -= frame.records;
            self.in_flight_bytes -= frame.bytes;
            match outcome {
                Ok(()) if !self.rewinding => {
                    self.spool.commit(frame.end);
                    self.metrics.kafka_spool.replayed(frame.records as u64);
                }
                Ok(()) => {}
                Err(code) => {
                    if !self.rewinding {
                        tracing::warn!(
                            sink = KAFKA,
                            code,
                            "a spooled batch was not delivered; producing again from the last one acknowledged"
                        );
                    }
                    self.rewinding = true;
                }
            }
        }
        if self.rewinding && self.in_flight.is_empty() {
            self.rewinding = false;
            self.read = self.spool.committed();
            self.resume_at = Instant::now() + RETRY_AFTER;
        }
    }

    /// Hands frames to the producer until the window is full or the spool is read to its end.
    fn fill(&mut self, producer: &BaseProducer<Context>, now: Instant) {
        while self.in_flight_records < self.max_records && self.in_flight_bytes < self.max_bytes {
            match self.spool.read(self.read) {
                Ok(Read::Frame(payload, next)) => {
                    let bytes = payload.len();
                    match frame::decode(payload) {
                        Some(batch) => self.produce(producer, &batch, next, bytes),
                        None => {
                            tracing::error!(sink = KAFKA, "undecodable spool frame: skipped");
                            self.skip(next);
                        }
                    }
                    self.read = next;
                }
                Ok(Read::Damaged(next)) => {
                    self.skip(next);
                    self.read = next;
                }
                Ok(Read::End) => break,
                Err(e) => {
                    tracing::warn!(sink = KAFKA, error = %e, "cannot read the spool");
                    self.resume_at = now + RETRY_AFTER;
                    break;
                }
            }
        }
    }

    /// Passes over what cannot be produced, committing past it in its turn.
    fn skip(&mut self, end: Pos) {
        let tracker = Arc::new(Tracker::new(0, 0, None));
        tracker.remaining.store(0, Ordering::Release);
        tracker.settled.store(true, Ordering::Release);
        self.in_flight.push_back(InFlight { end, tracker, records: 0, bytes: 0 });
    }

    fn produce(
        &mut self,
        producer: &BaseProducer<Context>,
        batch: &SpooledBatch,
        end: Pos,
        bytes: usize,
    ) {
        let total = batch.records.len();
        let tracker = Arc::new(Tracker::new(batch.digest, total, None));
        let ctx = producer.context();
        for (i, r) in batch.records.iter().enumerate() {
            let message = Outgoing {
                topic: &r.topic,
                key: &r.key,
                drain: &batch.drain,
                data_type: &batch.data_type,
                source: r.source.as_deref(),
                level: r.level.as_deref(),
                value: &r.value,
            };
            match send(producer, message, &tracker) {
                Ok(()) => {}
                // Spooled before `message.max.bytes` was lowered (the edge sets such records
                // aside now): no producer takes it, and failing its frame would replay the
                // spool from there for ever. Passed over, as a damaged frame is.
                Err(code @ "message_too_large") => {
                    tracing::error!(
                        sink = KAFKA,
                        code,
                        drain = %String::from_utf8_lossy(&batch.drain),
                        bytes = r.value.len(),
                        "a spooled record is larger than the producer takes: passed over"
                    );
                    tracker.settle(1, Ok(()), ctx);
                }
                Err(code) => {
                    tracker.settle(total - i, Err(code), ctx);
                    break;
                }
            }
        }
        tracker.settle(1, Ok(()), ctx);
        self.in_flight.push_back(InFlight { end, tracker, records: total, bytes });
        self.in_flight_records += total;
        self.in_flight_bytes += bytes;
    }

    /// Updates the spool's gauges.
    fn publish(&mut self) {
        let committed = self.spool.committed();
        let oldest = match self.oldest {
            _ if self.spool.drained() => None,
            Some((pos, ms)) if pos == committed => Some(ms),
            _ => match self.spool.read(committed) {
                Ok(Read::Frame(payload, _)) => frame::spooled_at_ms(&payload),
                _ => None,
            },
        };
        self.oldest = oldest.map(|ms| (committed, ms));
        let age = oldest.map_or(0.0, |ms| now_ms().saturating_sub(ms) as f64 / 1000.0);
        self.metrics.kafka_spool.set(self.spool.pending_bytes(), age);
    }
}

/// Appends `job`'s batch to `out` as one frame, each record routed to its topic now.
fn encode(out: &mut Vec<u8>, spooled_at: u64, job: &Job, config: &KafkaSinkConfig) {
    let batch = job.batch();
    let names = (&*batch.drain, batch.data_type.as_str());
    let start = frame::begin(out, spooled_at, batch.digest, names, batch.records.len());
    for record in &batch.records {
        let fields = RecordFields::of(record);
        let record_ref = RecordRef {
            topic: route(config, record, &batch.drain, batch.data_type),
            key: fields.key(),
            source: fields.source.as_deref(),
            level: fields.level.as_deref(),
            value: record.bytes(),
        };
        frame::put_record(out, record_ref);
    }
    frame::finish(out, start);
}

impl std::fmt::Debug for Spooled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spooled")
            .field("mode", &self.mode)
            .field("read", &self.read)
            .field("committed", &self.spool.committed())
            .field("in_flight_frames", &self.in_flight.len())
            .finish()
    }
}
