//! The sink abstraction: what a destination implements to be fed by a pipeline worker.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use record::{AckPart, Batch, DataType, Record, SinkFailure};

use crate::Permit;

/// A batch admitted into the pipeline, shared by every sink that holds part of it.
pub(crate) struct Admitted {
    pub(crate) batch: Batch,
    /// Released when the last sink lets go of the batch.
    pub(crate) _permit: Permit,
}

/// One sink's work item: a shared batch and this sink's part of its acknowledgement.
pub struct Job {
    shared: Arc<Admitted>,
    ack: Option<AckPart>,
    /// When the job entered its sink's queue (the queue stage of the sink's metrics).
    queued: Instant,
}

impl Job {
    pub(crate) fn new(shared: Arc<Admitted>, ack: AckPart) -> Job {
        Job { shared, ack: Some(ack), queued: Instant::now() }
    }

    /// When the job entered its sink's queue.
    pub fn queued(&self) -> Instant {
        self.queued
    }

    /// The batch.
    pub fn batch(&self) -> &Batch {
        &self.shared.batch
    }

    /// A handle on the batch that outlives this job (for sinks that settle later).
    pub fn shared(&self) -> SharedBatch {
        SharedBatch(Arc::clone(&self.shared))
    }

    /// Confirms this sink's part as durably written.
    pub fn complete(&mut self) {
        if let Some(ack) = self.ack.take() {
            ack.complete();
        }
    }

    /// Reports this sink's part as failed.
    pub fn fail(&mut self, failure: SinkFailure) {
        if let Some(ack) = self.ack.take() {
            ack.fail(failure);
        }
    }
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("records", &self.shared.batch.records.len())
            .field("rejects", &self.shared.batch.rejects.len())
            .field("settled", &self.ack.is_none())
            .finish()
    }
}

/// A batch kept alive past its job (for sinks that settle from a callback).
pub struct SharedBatch(Arc<Admitted>);

impl SharedBatch {
    /// The batch.
    pub fn batch(&self) -> &Batch {
        &self.0.batch
    }
}

impl fmt::Debug for SharedBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBatch").field("records", &self.0.batch.records.len()).finish()
    }
}

/// Which part of a batch a sink writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// The accepted records, of every data type.
    Records,
    /// The accepted records of batches of one data type (a file sink per type).
    RecordsOf(DataType),
    /// The rejected records (dead letters).
    Rejects,
}

impl Takes {
    /// Whether `batch` holds anything for a sink that takes this part.
    pub fn holds_part_of(self, batch: &Batch) -> bool {
        match self {
            Takes::Records => !batch.records.is_empty(),
            Takes::RecordsOf(t) => batch.data_type == t && !batch.records.is_empty(),
            Takes::Rejects => !batch.rejects.is_empty(),
        }
    }
}

/// A sink's check of one record, with its batch's drain and data type ([`Sink::fits`]).
pub type Fits = Arc<dyn Fn(&Record, &str, DataType) -> bool + Send + Sync>;

/// A destination fed by one pipeline worker thread.
///
/// A sink settles every job it is given: `complete` once its part is durable by the sink's own
/// standard, or `fail`. A job dropped unsettled fails its batch, so a sink that forgets is never
/// a silent `200`. Sinks may settle later (after a broker's delivery report) by keeping jobs.
pub trait Sink: Send + 'static {
    /// A short static name, used in metrics and failures (`file`, `dead_letter`, `kafka`).
    fn name(&self) -> &'static str;

    /// Which part of each batch this sink writes.
    fn takes(&self) -> Takes;

    /// Writes a group of jobs, taken in queue order, and settles them.
    fn write(&mut self, jobs: &mut Vec<Job>);

    /// Housekeeping, called after every write, at least every pipeline tick, and whenever
    /// [`Sink::wakes`] has something.
    fn tick(&mut self, now: Instant);

    /// A channel the sink's worker waits on beside its jobs: something there means `tick` has
    /// work now (the Kafka sink's delivery reports), not at the next pipeline tick.
    fn wakes(&self) -> Option<crossbeam_channel::Receiver<()>> {
        None
    }

    /// Whether a record of a batch of a drain and data type is one this sink can ever take;
    /// `None`: any. The pipeline sets aside the others before a batch is admitted
    /// ([`record::Dispatch::set_aside_unfit`]), so that one record too large for Kafka is a
    /// dead letter, not a batch refused at every retry.
    fn fits(&self) -> Option<Fits> {
        None
    }

    /// The sink's health flag, shared with the pipeline for readiness. A sink updates it before
    /// settling the jobs of a write, so that a client told `200` or `503` sees a matching
    /// `/readyz` right after.
    fn health(&self) -> Health;

    /// Makes everything written durable and releases resources; called once, at shutdown.
    fn close(&mut self);
}

/// A sink's state as the pipeline sees it; shared between the sink and the pipeline.
///
/// - `healthy`: the sink's last write succeeded. A sink that is not healthy still gets writes
///   (the next one may succeed: a disk freed, a directory restored) but `/readyz` says not ready.
/// - `accepting`: the sink can take new work at all. A sink that is not accepting (its broker is
///   unreachable, say) makes the pipeline refuse new batches at once, so clients get a fast
///   `503` instead of waiting for a write that cannot happen.
#[derive(Debug, Clone)]
pub struct Health(Arc<[AtomicBool; 2]>);

impl Health {
    /// Healthy and accepting.
    pub fn new() -> Health {
        Health(Arc::new([AtomicBool::new(true), AtomicBool::new(true)]))
    }

    /// Records whether the last write succeeded.
    pub fn set_healthy(&self, healthy: bool) {
        self.0[0].store(healthy, Ordering::Release);
    }

    /// Records whether the sink can take new work.
    pub fn set_accepting(&self, accepting: bool) {
        self.0[1].store(accepting, Ordering::Release);
    }

    /// Whether the last write succeeded.
    pub fn healthy(&self) -> bool {
        self.0[0].load(Ordering::Acquire)
    }

    /// Whether the sink can take new work.
    pub fn accepting(&self) -> bool {
        self.0[1].load(Ordering::Acquire)
    }
}

impl Default for Health {
    fn default() -> Self {
        Health::new()
    }
}
