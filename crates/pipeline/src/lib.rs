//! Spillway's pipeline: admits decoded batches, fans them out over bounded lock-free channels to
//! one worker thread per sink, and acknowledges a batch only when every sink holding part of it
//! has durably written that part.
//!
//! - Admission: [`Pipeline`] implements [`record::Dispatch`]: the ingest edge hands batches to it
//!   with `try_submit`, which never blocks. Admission is bounded twice, by batches and by bytes in
//!   flight; each sink's channel holds as many batches as may be in flight, so an admitted batch
//!   always finds room and "full" is decided once, up front. While a sink is not accepting
//!   (the Kafka sink with no broker reachable), new batches are refused at once; the pipeline
//!   is ready only while every sink is healthy and accepting.
//! - Fan-out: one worker thread per [`Sink`] takes groups of jobs from its channel (group
//!   commit); a batch's acknowledgement waits for every sink that [`Takes`] part of it.
//! - The [`file`](mod@file) sinks: the records sink writes NDJSON files rotated by size and
//!   age, with a configurable fsync policy; the dead-letter sink writes each rejected record,
//!   with why it was rejected, the same way.
//! - The [`kafka`] sink: one message per record, a batch acknowledged once the broker has
//!   acknowledged all of its records, topics routed by record fields.
//! - Dedup: each sink remembers the batches it made durable lately and does not write them
//!   again when a client retries one (because it failed at another sink, or timed out).
//!
//! ```no_run
//! use pipeline::{file::{FileSink, FileSinkConfig}, Pipeline, PipelineConfig, PipelineMetrics};
//!
//! let mut registry = prometheus_client::registry::Registry::default();
//! let metrics = PipelineMetrics::register(&mut registry);
//! let sink = FileSink::records(FileSinkConfig::new("./data/logs"), &metrics).unwrap();
//! let (pipeline, workers) = Pipeline::start(PipelineConfig::default(), vec![Box::new(sink)], metrics).unwrap();
//! drop(pipeline); // no more batches: the workers drain their queues and stop
//! workers.join(std::time::Duration::from_secs(10));
//! ```
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod dedup;
pub mod file;
pub mod kafka;
pub mod kafka_properties;
mod metrics;
mod sink;
pub mod spool;
pub mod storage;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use record::{Ack, AckWaiter, Batch, Dispatch, Refusal, RejectReason};

pub use metrics::PipelineMetrics;
pub use sink::{Fits, Health, Job, SharedBatch, Sink, Takes};

/// Limits of the pipeline as a whole.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Batches admitted and not yet acknowledged by every sink.
    pub max_in_flight_batches: usize,
    /// Decoded body bytes pinned by admitted batches.
    pub max_in_flight_bytes: usize,
    /// Batches a sink worker takes from its queue for one write (group commit).
    pub max_group_batches: usize,
    /// How often an idle worker wakes for housekeeping (rotation by age, interval fsync).
    pub tick: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            max_in_flight_batches: 128,
            max_in_flight_bytes: 128 << 20,
            max_group_batches: 64,
            tick: Duration::from_millis(100),
        }
    }
}

/// The pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A sink's worker thread could not be spawned.
    #[error("cannot start the worker of sink {sink}")]
    Spawn {
        /// The sink.
        sink: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A sink could not open its storage.
    #[error("cannot open sink {sink} at {path}")]
    Open {
        /// The sink.
        sink: &'static str,
        /// Where it writes.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A setting's value that is not one of the names it may take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{given:?} is not one of {}", .expected.join(", "))]
pub struct UnknownName {
    given: String,
    expected: &'static [&'static str],
}

impl UnknownName {
    /// `given` is not one of `expected`.
    pub(crate) fn new(given: &str, expected: &'static [&'static str]) -> UnknownName {
        UnknownName { given: given.to_owned(), expected }
    }
}

/// A setting whose values are names (`fsync = "batch"`): the enum, `as_str` and a `FromStr`
/// whose error lists every name, all from one table of variants and names.
macro_rules! named_setting {
    ($(#[$meta:meta])* pub enum $name:ident {
        $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// The name, as configuration spells it.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::UnknownName;

            fn from_str(name: &str) -> Result<$name, $crate::UnknownName> {
                match name {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::UnknownName::new(name, &[$($text),+])),
                }
            }
        }
    };
}
pub(crate) use named_setting;

struct Lane {
    name: &'static str,
    takes: Takes,
    tx: Sender<Job>,
    health: Health,
}

struct Admission {
    batches: AtomicUsize,
    bytes: AtomicUsize,
    max_batches: usize,
    max_bytes: usize,
    metrics: PipelineMetrics,
}

/// Holds one admitted batch's share of the in-flight limits until every sink is done with it.
pub(crate) struct Permit {
    admission: Arc<Admission>,
    bytes: usize,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let a = &self.admission;
        let batches = a.batches.fetch_sub(1, Ordering::AcqRel) - 1;
        let bytes = a.bytes.fetch_sub(self.bytes, Ordering::AcqRel) - self.bytes;
        a.metrics.in_flight(batches, bytes);
    }
}

impl Admission {
    fn try_admit(self: &Arc<Self>, bytes: usize) -> Result<Permit, Refusal> {
        let batches = self.batches.fetch_add(1, Ordering::AcqRel);
        let pinned = self.bytes.fetch_add(bytes, Ordering::AcqRel);
        // A batch larger than the byte limit is still admitted when nothing else is in flight,
        // so that it is never refused forever.
        if batches >= self.max_batches || (pinned > 0 && pinned + bytes > self.max_bytes) {
            self.batches.fetch_sub(1, Ordering::AcqRel);
            self.bytes.fetch_sub(bytes, Ordering::AcqRel);
            return Err(Refusal::Overloaded);
        }
        self.metrics.in_flight(batches + 1, pinned + bytes);
        Ok(Permit { admission: Arc::clone(self), bytes })
    }

    fn has_capacity(&self, bytes: usize) -> bool {
        let pinned = self.bytes.load(Ordering::Acquire);
        self.batches.load(Ordering::Acquire) < self.max_batches
            && (pinned == 0 || pinned + bytes <= self.max_bytes)
    }
}

/// The running pipeline: the [`Dispatch`] the ingest edge submits to.
pub struct Pipeline {
    lanes: Vec<Lane>,
    admission: Arc<Admission>,
    /// The checks of the sinks that cannot take every record, with what each takes.
    fits: Vec<(Takes, Fits)>,
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("sinks", &self.lanes.iter().map(|l| l.name).collect::<Vec<_>>())
            .field("in_flight_batches", &self.admission.batches.load(Ordering::Relaxed))
            .finish()
    }
}

/// The sink worker threads. Dropping every handle to the [`Pipeline`] closes their queues; they
/// then write what is queued, close their sinks and stop.
#[derive(Debug)]
pub struct Workers {
    handles: Vec<(&'static str, JoinHandle<()>)>,
}

impl Workers {
    /// Waits up to `timeout` for every worker to finish; returns the sinks still running.
    pub fn join(self, timeout: Duration) -> Vec<&'static str> {
        let deadline = Instant::now() + timeout;
        let mut late = Vec::new();
        for (name, handle) in self.handles {
            while !handle.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if handle.is_finished() {
                let _ = handle.join();
            } else {
                late.push(name);
            }
        }
        late
    }
}

impl Pipeline {
    /// Starts one worker thread per sink.
    pub fn start(
        config: PipelineConfig,
        sinks: Vec<Box<dyn Sink>>,
        metrics: PipelineMetrics,
    ) -> Result<(Pipeline, Workers), PipelineError> {
        let capacity = config.max_in_flight_batches.max(1);
        let mut lanes = Vec::with_capacity(sinks.len());
        let mut handles = Vec::with_capacity(sinks.len());
        let mut fits = Vec::new();
        for sink in sinks {
            let name = sink.name();
            let takes = sink.takes();
            fits.extend(sink.fits().map(|fits| (takes, fits)));
            let (tx, rx) = crossbeam_channel::bounded(capacity);
            let health = sink.health();
            let worker = Worker {
                sink,
                rx,
                health: health.clone(),
                group: config.max_group_batches.max(1),
                tick: config.tick,
            };
            let handle = std::thread::Builder::new()
                .name(format!("sink-{name}"))
                .spawn(move || worker.run())
                .map_err(|source| PipelineError::Spawn { sink: name, source })?;
            handles.push((name, handle));
            lanes.push(Lane { name, takes, tx, health });
        }
        let admission = Arc::new(Admission {
            batches: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            max_batches: capacity,
            max_bytes: config.max_in_flight_bytes,
            metrics,
        });
        Ok((Pipeline { lanes, admission, fits }, Workers { handles }))
    }
}

impl Pipeline {
    /// The first sink that refuses writes right now.
    fn refusing(&self) -> Result<(), Refusal> {
        match self.lanes.iter().find(|l| !l.health.accepting()) {
            Some(lane) => Err(Refusal::SinkUnavailable(lane.name)),
            None => Ok(()),
        }
    }
}

impl Dispatch for Pipeline {
    fn admissible(&self, bytes: usize) -> Result<(), Refusal> {
        self.refusing()?;
        if self.admission.has_capacity(bytes) {
            Ok(())
        } else {
            Err(Refusal::Overloaded)
        }
    }

    fn set_aside_unfit(&self, batch: &mut Batch) -> usize {
        let fits: Vec<&Fits> = self
            .fits
            .iter()
            .filter(|(takes, _)| *takes != Takes::Rejects && takes.holds_part_of(batch))
            .map(|(_, fits)| fits)
            .collect();
        if fits.is_empty() {
            return 0;
        }
        let (drain, data_type) = (Arc::clone(&batch.drain), batch.data_type);
        let unfit = |record: &_| !fits.iter().all(|fits| fits(record, &drain, data_type));
        batch.set_aside(unfit, RejectReason::TooLarge)
    }

    fn try_submit(&self, batch: Batch) -> Result<AckWaiter, Refusal> {
        self.refusing()?;
        let permit = self.admission.try_admit(batch.pinned_bytes)?;
        let targets: Vec<&Lane> =
            self.lanes.iter().filter(|l| l.takes.holds_part_of(&batch)).collect();
        // Records no sink takes would be acknowledged without being stored anywhere.
        if !batch.records.is_empty() && targets.iter().all(|l| l.takes == Takes::Rejects) {
            return Err(Refusal::SinkUnavailable("records"));
        }
        let (parts, waiter) = Ack::split(targets.len());
        let shared = Arc::new(sink::Admitted { batch, _permit: permit });
        for (lane, ack) in targets.into_iter().zip(parts) {
            // Admission bounds every queue's occupancy, so only a dead worker fails here; the
            // job's ack part is then dropped, which fails the batch instead of losing it.
            let _ = lane.tx.try_send(Job::new(Arc::clone(&shared), ack));
        }
        Ok(waiter)
    }

    fn ready(&self) -> bool {
        self.lanes.iter().all(|l| l.health.healthy() && l.health.accepting())
    }
}

struct Worker {
    sink: Box<dyn Sink>,
    rx: Receiver<Job>,
    health: Health,
    group: usize,
    tick: Duration,
}

impl Worker {
    fn run(mut self) {
        // A worker that panics must not leave its sink looking ready.
        struct Unready(Health);
        impl Drop for Unready {
            fn drop(&mut self) {
                self.0.set_healthy(false);
                self.0.set_accepting(false);
            }
        }
        let _unready = Unready(self.health.clone());
        let mut jobs = Vec::with_capacity(self.group);
        let wakes = self.sink.wakes();
        loop {
            match self.next(wakes.as_ref()) {
                Ok(job) => {
                    jobs.push(job);
                    while jobs.len() < self.group {
                        match self.rx.try_recv() {
                            Ok(job) => jobs.push(job),
                            Err(_) => break,
                        }
                    }
                    self.sink.write(&mut jobs);
                    // Whatever the sink did not settle fails now rather than hang.
                    jobs.clear();
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.sink.tick(Instant::now());
        }
        self.sink.close();
    }

    /// The next job; `Timeout` after a tick without one, or when the sink's wake-up came first.
    fn next(&self, wakes: Option<&Receiver<()>>) -> Result<Job, RecvTimeoutError> {
        let Some(wakes) = wakes else { return self.rx.recv_timeout(self.tick) };
        crossbeam_channel::select! {
            recv(self.rx) -> job => job.map_err(|_| RecvTimeoutError::Disconnected),
            recv(wakes) -> woken => match woken {
                Ok(()) => Err(RecvTimeoutError::Timeout),
                // The sink dropped its side: wait for jobs alone.
                Err(_) => self.rx.recv_timeout(self.tick),
            },
            default(self.tick) => Err(RecvTimeoutError::Timeout),
        }
    }
}
