//! The pipeline's metrics. Labels are bounded: sink names and static error codes only.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = [(&'static str, &'static str); 1];
type ErrorLabels = [(&'static str, &'static str); 2];
type StageLabels = [(&'static str, &'static str); 2];

/// The stages of a batch in a file sink, as `stage` label values (a closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Waiting in the sink's queue until its group's write starts.
    Queue,
    /// Its group's write to the OS.
    Write,
    /// From its group's hand-over to the syncer until the sync covering it succeeded: the wait
    /// for the lane's earlier syncs and its own.
    Sync,
}

impl Stage {
    fn label(self) -> &'static str {
        match self {
            Stage::Queue => "queue",
            Stage::Write => "write",
            Stage::Sync => "sync",
        }
    }
}

/// Counters and histograms the pipeline and its sinks update.
#[derive(Debug, Clone)]
pub struct PipelineMetrics {
    batches_in_flight: Gauge,
    bytes_in_flight: Gauge,
    records_written: Family<Labels, Counter>,
    write_seconds: Family<Labels, Histogram>,
    write_errors: Family<ErrorLabels, Counter>,
    files_completed: Family<Labels, Counter>,
    completion_failures: Family<ErrorLabels, Counter>,
    kafka_produced: Counter,
    retries_skipped: Family<Labels, Counter>,
    kafka_queue: Gauge,
    kafka_delivery_seconds: Histogram,
    bytes_written: Family<Labels, Counter<u64, AtomicU64>>,
    stage_seconds: Family<StageLabels, Histogram>,
    fdatasync_seconds: Family<Labels, Histogram>,
    pub(crate) kafka_spool: crate::spool::SpoolMetrics,
}

fn write_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// 50 µs to 6.5 s: a page-cache write at the low end, a stalled `fdatasync` at the high end.
fn stage_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
}

impl PipelineMetrics {
    /// Creates the metrics and registers them in `registry` under `spillway_`.
    pub fn register(registry: &mut Registry) -> PipelineMetrics {
        let m = PipelineMetrics {
            batches_in_flight: Gauge::default(),
            bytes_in_flight: Gauge::default(),
            records_written: Family::default(),
            write_seconds: Family::new_with_constructor(write_histogram),
            write_errors: Family::default(),
            files_completed: Family::default(),
            completion_failures: Family::default(),
            bytes_written: Family::default(),
            kafka_produced: Counter::default(),
            retries_skipped: Family::default(),
            kafka_queue: Gauge::default(),
            kafka_delivery_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            stage_seconds: Family::new_with_constructor(stage_histogram),
            fdatasync_seconds: Family::new_with_constructor(stage_histogram),
            kafka_spool: Default::default(),
        };
        let r = registry.sub_registry_with_prefix("spillway");
        let m = PipelineMetrics { kafka_spool: crate::spool::SpoolMetrics::register(r), ..m };
        r.register(
            "batches_in_flight",
            "Batches admitted and not yet acknowledged",
            m.batches_in_flight.clone(),
        );
        r.register(
            "in_flight_bytes",
            "Body bytes pinned by batches in flight",
            m.bytes_in_flight.clone(),
        );
        r.register(
            "sink_records_written",
            "Records durably written, by sink",
            m.records_written.clone(),
        );
        r.register("sink_written_bytes", "Bytes written, by sink", m.bytes_written.clone());
        r.register(
            "sink_write_seconds",
            "Time to write and sync one group, by sink",
            m.write_seconds.clone(),
        );
        r.register(
            "sink_stage_seconds",
            "Time each batch spent in a file sink's stage (queue: waiting for its group's \
             write; write: the group's write; sync: from the write to the fdatasync covering \
             it), by sink and stage",
            m.stage_seconds.clone(),
        );
        r.register(
            "sink_fdatasync_seconds",
            "Duration of each fdatasync of a file sink with fsync per batch, by sink",
            m.fdatasync_seconds.clone(),
        );
        r.register(
            "sink_write_errors",
            "Failed writes, by sink and error code",
            m.write_errors.clone(),
        );
        r.register(
            "sink_files_completed",
            "Files rotated and complete, by sink",
            m.files_completed.clone(),
        );
        r.register(
            "sink_file_completion_failures",
            "Failed tries to complete a file (sync, rename to .ndjson, directory sync), by sink \
             and error code; a failed file is tried again with a backoff",
            m.completion_failures.clone(),
        );
        r.register(
            "sink_retried_batches_skipped",
            "Batches a sink had already written when a client retried them, by sink",
            m.retries_skipped.clone(),
        );
        r.register(
            "kafka_records_produced",
            "Records the broker acknowledged",
            m.kafka_produced.clone(),
        );
        r.register(
            "kafka_producer_queue_messages",
            "Messages in the producer's queue, awaiting delivery",
            m.kafka_queue.clone(),
        );
        r.register(
            "kafka_delivery_seconds",
            "Time from enqueuing a batch to the broker acknowledging its last record",
            m.kafka_delivery_seconds.clone(),
        );
        m
    }

    pub(crate) fn retry_skipped(&self, sink: &'static str) {
        self.retries_skipped.get_or_create(&[("sink", sink)]).inc();
    }

    pub(crate) fn kafka_produced(&self, records: u64) {
        self.kafka_produced.inc_by(records);
    }

    pub(crate) fn kafka_queue(&self, messages: i64) {
        self.kafka_queue.set(messages);
    }

    pub(crate) fn kafka_delivered(&self, seconds: f64) {
        self.kafka_delivery_seconds.observe(seconds);
    }

    pub(crate) fn in_flight(&self, batches: usize, bytes: usize) {
        self.batches_in_flight.set(batches as i64);
        self.bytes_in_flight.set(bytes as i64);
    }

    pub(crate) fn written(&self, sink: &'static str, records: u64, bytes: u64, seconds: f64) {
        self.records_written.get_or_create(&[("sink", sink)]).inc_by(records);
        self.bytes_written.get_or_create(&[("sink", sink)]).inc_by(bytes);
        self.write_seconds.get_or_create(&[("sink", sink)]).observe(seconds);
    }

    /// `batches` batches spent `seconds` in `stage` of `sink` (one observation each: the
    /// histograms count batches, as the acknowledgements do).
    pub(crate) fn stage(&self, sink: &'static str, stage: Stage, seconds: f64, batches: usize) {
        let h = self.stage_seconds.get_or_create(&[("sink", sink), ("stage", stage.label())]);
        for _ in 0..batches {
            h.observe(seconds);
        }
    }

    pub(crate) fn fdatasync(&self, sink: &'static str, seconds: f64) {
        self.fdatasync_seconds.get_or_create(&[("sink", sink)]).observe(seconds);
    }

    pub(crate) fn write_error(&self, sink: &'static str, code: &'static str) {
        self.write_errors.get_or_create(&[("sink", sink), ("code", code)]).inc();
    }

    pub(crate) fn completion_failed(&self, sink: &'static str, code: &'static str) {
        self.completion_failures.get_or_create(&[("sink", sink), ("code", code)]).inc();
    }

    pub(crate) fn file_completed(&self, sink: &'static str) {
        self.files_completed.get_or_create(&[("sink", sink)]).inc();
    }
}
