//! File sinks: NDJSON files on local disk, rotated by size and age, with a configurable fsync
//! policy.
//!
//! A file being written is named `<prefix>-<unix ms>-<seq>.ndjson.open`; when it is rotated
//! (or the sink closes) it is synced per the policy and renamed to `….ndjson`. Readers take only
//! `*.ndjson` files: those are complete and never change again. At start-up, `.open` files left
//! by a crash are completed the same way, after cutting any partial last line (a write that was
//! never acknowledged).
//!
//! The records sink writes one record per line, exactly the record's bytes. The dead-letter
//! sink writes one JSON object per rejected record: when and from which drain it came, why it was
//! rejected, where in the body it sat, and its raw bytes (`raw`, or `raw_base64` when they are
//! not UTF-8).
//!
//! This module holds the configuration and [`FileSink`]; `rotation` the files themselves,
//! `encode` what goes into them, and `syncer` how written groups become durable and settle.

mod encode;
mod rotation;
mod syncer;

use std::fs::File;
use std::io::{self, IoSlice};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sink::{Health, Job, Sink, Takes};
use crate::{PipelineError, PipelineMetrics};
use encode::{encode_rejects, record_lines};
use rotation::{finish, RotatingFile};
#[cfg(test)]
use syncer::SyncFn;
use syncer::{Settler, SyncOrder, Syncer, Written};

/// The records sink's name.
pub const RECORDS: &str = "file";
/// The dead-letter sink's name.
pub const DEAD_LETTER: &str = "dead_letter";

/// When written data is forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fdatasync` after every group of batches, before acknowledging them.
    Batch,
    /// `fdatasync` at most this often; acknowledgements wait only for the write to the OS.
    Interval(Duration),
    /// Never; the OS writes back on its own schedule.
    Never,
}

impl FsyncPolicy {
    /// The policy of `mode`; `interval` is how often [`FsyncMode::Interval`] syncs (the other
    /// modes ignore it).
    pub fn from_mode(mode: FsyncMode, interval: Duration) -> FsyncPolicy {
        match mode {
            FsyncMode::Batch => FsyncPolicy::Batch,
            FsyncMode::Interval => FsyncPolicy::Interval(interval),
            FsyncMode::Never => FsyncPolicy::Never,
        }
    }
}

/// The interval of [`FsyncPolicy::Interval`] when configuration names the mode only.
pub const DEFAULT_FSYNC_INTERVAL: Duration = Duration::from_secs(1);

crate::named_setting! {
    /// An [`FsyncPolicy`] without its interval, as configuration names it.
    pub enum FsyncMode {
        /// [`FsyncPolicy::Batch`].
        Batch = "batch",
        /// [`FsyncPolicy::Interval`].
        Interval = "interval",
        /// [`FsyncPolicy::Never`].
        Never = "never",
    }
}

/// Where and how a file sink writes.
#[derive(Debug, Clone)]
pub struct FileSinkConfig {
    /// The directory of the files (created if missing).
    pub dir: PathBuf,
    /// A file is completed once it holds at least this many bytes.
    pub max_file_bytes: u64,
    /// A file is completed once it has been open this long.
    pub max_file_age: Duration,
    /// When data is forced to disk.
    pub fsync: FsyncPolicy,
    /// After each sync, drop the synced pages from the OS page cache (`POSIX_FADV_DONTNEED`).
    /// The sink never reads its files back; keeping gigabytes of their pages cached evicts other
    /// data, and writing into recycled pages costs a fraction of claiming fresh ones. Off when a
    /// reader tails the files and should find them in memory.
    pub drop_synced_pages: bool,
}

impl FileSinkConfig {
    /// Defaults for `dir`: 128 MiB or 5 minutes per file, fsync per batch, synced pages dropped.
    pub fn new(dir: impl Into<PathBuf>) -> FileSinkConfig {
        FileSinkConfig {
            dir: dir.into(),
            max_file_bytes: 128 << 20,
            max_file_age: Duration::from_secs(300),
            fsync: FsyncPolicy::Batch,
            drop_synced_pages: true,
        }
    }
}

/// A bounded code for an I/O error, for failures and metrics.
fn io_code(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(28) => "disk_full",
        Some(13) | Some(1) => "permission_denied",
        Some(30) => "read_only",
        Some(5) => "io_error",
        _ => match e.kind() {
            io::ErrorKind::NotFound => "not_found",
            _ => "io_error",
        },
    }
}

/// A sink writing NDJSON files: the records themselves, or dead letters.
///
/// With `FsyncPolicy::Batch` a syncer thread makes each written group durable and settles it
/// while the sink already writes the next group: the disk is never idle while the CPU copies,
/// nor the CPU while the disk flushes. Groups settle in the order they were written.
pub struct FileSink {
    name: &'static str,
    takes: Takes,
    file: RotatingFile,
    buf: Vec<u8>,
    settler: Settler,
    syncer: Option<Syncer>,
}

impl std::fmt::Debug for FileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSink")
            .field("name", &self.name)
            .field("dir", &self.file.config.dir)
            .finish()
    }
}

impl FileSink {
    /// The records sink: files `records-….ndjson` in `config.dir`.
    pub fn records(
        config: FileSinkConfig,
        metrics: &PipelineMetrics,
    ) -> Result<FileSink, PipelineError> {
        FileSink::open(RECORDS, Takes::Records, "records", config, metrics)
    }

    /// The dead-letter sink: files `dead-letter-….ndjson` in `config.dir`.
    pub fn dead_letter(
        config: FileSinkConfig,
        metrics: &PipelineMetrics,
    ) -> Result<FileSink, PipelineError> {
        FileSink::open(DEAD_LETTER, Takes::Rejects, "dead-letter", config, metrics)
    }

    fn open(
        name: &'static str,
        takes: Takes,
        prefix: &'static str,
        config: FileSinkConfig,
        metrics: &PipelineMetrics,
    ) -> Result<FileSink, PipelineError> {
        let path = config.dir.display().to_string();
        let error = |source| PipelineError::Open { sink: name, path: path.clone(), source };
        let batch_sync = config.fsync == FsyncPolicy::Batch;
        let drop_synced_pages = config.drop_synced_pages;
        let dir = config.dir.clone();
        let mut file = RotatingFile::open(config, prefix).map_err(error)?;
        file.defer_dir_sync = batch_sync;
        let settler = Settler::new(name, metrics);
        let syncer = match batch_sync {
            true => Some(
                Syncer::start(settler.clone(), Box::new(File::sync_data), dir, drop_synced_pages)
                    .map_err(error)?,
            ),
            false => None,
        };
        Ok(FileSink { name, takes, file, buf: Vec::new(), settler, syncer })
    }

    /// The same sink with its syncer making data durable through `sync`.
    #[cfg(test)]
    fn with_sync(mut self, sync: SyncFn) -> FileSink {
        self.stop_syncer();
        let (dir, drop) = (self.file.config.dir.clone(), self.file.config.drop_synced_pages);
        self.syncer = Some(Syncer::start(self.settler.clone(), sync, dir, drop).unwrap());
        self
    }

    /// Stops the syncer once it has settled every group written so far.
    fn stop_syncer(&mut self) {
        if let Some(Syncer { tx, thread, .. }) = self.syncer.take() {
            drop(tx);
            if thread.join().is_err() {
                tracing::error!(sink = self.name, "the syncer thread panicked");
            }
        }
    }

    /// Leaves the current file if the syncer could not make it durable: after a failed
    /// `fdatasync`, data written before it may be lost without a word.
    fn leave_file_whose_sync_failed(&mut self) {
        if let Some(syncer) = &self.syncer {
            if self.file.current.is_some() && syncer.failed.load(Ordering::Acquire) == self.file.seq
            {
                tracing::warn!(sink = self.name, "leaving a file whose sync failed");
                let _ = self.file.complete();
                self.file.current = None;
            }
        }
    }

    /// Completes the current file if it is over its size or age, through the syncer when there
    /// is one (the writer goes on into a new file at once).
    fn rotate_if_due(&mut self, now: Instant) -> io::Result<()> {
        if !self.file.due(now) {
            return Ok(());
        }
        match (&self.syncer, self.file.current.take()) {
            (Some(syncer), Some(current)) => {
                if let Err(crossbeam_channel::SendError(SyncOrder::Finish(current))) =
                    syncer.tx.send(SyncOrder::Finish(current))
                {
                    finish(current, true, &self.file.config.dir)?;
                    self.settler.metrics.file_completed(self.name);
                }
            }
            (_, current) => {
                self.file.current = current;
                self.file.complete()?;
                self.settler.metrics.file_completed(self.name);
            }
        }
        Ok(())
    }

    /// Completes, without writing them again, the jobs whose batch this sink already wrote: a
    /// client's retry of a batch that failed elsewhere.
    fn skip_repeats(&self, jobs: &mut Vec<Job>) {
        jobs.retain_mut(|job| {
            let repeat = self.settler.is_repeat(job.batch().digest);
            if repeat {
                self.settler.metrics.retry_skipped(self.name);
                job.complete();
            }
            !repeat
        });
    }

    /// Appends the jobs' records (or dead letters) to the current file, all in one go; returns
    /// how many records and how many bytes.
    fn append_group(&mut self, jobs: &[Job]) -> io::Result<(u64, u64)> {
        let mut records = 0;
        let appended = match self.takes {
            Takes::Records => {
                let mut pieces =
                    Vec::with_capacity(jobs.iter().map(|j| j.batch().records.len()).sum());
                for job in jobs {
                    records += record_lines(job.batch(), &mut pieces);
                }
                self.file.append(&mut pieces)
            }
            Takes::Rejects => {
                self.buf.clear();
                for job in jobs {
                    records += encode_rejects(job.batch(), &mut self.buf);
                }
                self.file.append(&mut [IoSlice::new(&self.buf)])
            }
        };
        // Keep memory flat after an unusually large group.
        if self.buf.capacity() > 64 << 20 {
            self.buf = Vec::new();
        }
        Ok((records, appended?))
    }

    /// Settles a written group once it is durable: the syncer's to do when there is one, else
    /// done here after committing it as the fsync policy asks.
    fn settle(&mut self, written: Written) {
        match (&self.syncer, &self.file.current) {
            (Some(syncer), Some(current)) => {
                let order = SyncOrder::Group {
                    file: Arc::clone(&current.file),
                    seq: self.file.seq,
                    end: current.len,
                    written,
                };
                self.file.unsynced = false;
                if let Err(crossbeam_channel::SendError(SyncOrder::Group { written, .. })) =
                    syncer.tx.send(order)
                {
                    // The syncer is gone (it panicked): nothing can make this group durable.
                    let mut jobs = written.jobs;
                    self.abandon(&mut jobs, &io::Error::other("the syncer thread stopped"));
                }
            }
            _ => match self.file.commit(Instant::now()) {
                Ok(()) => self.settler.durable(written),
                Err(e) => {
                    let mut jobs = written.jobs;
                    self.abandon(&mut jobs, &e);
                }
            },
        }
    }

    /// Leaves the current file (completing it as it is) and fails `jobs`.
    fn abandon(&mut self, jobs: &mut [Job], e: &io::Error) {
        // Start afresh in a new file: the old one may be unusable (or the disk full).
        let _ = self.file.complete();
        self.file.current = None;
        self.settler.fail(jobs, e);
    }
}

impl Sink for FileSink {
    fn name(&self) -> &'static str {
        self.name
    }

    fn takes(&self) -> Takes {
        self.takes
    }

    fn write(&mut self, jobs: &mut Vec<Job>) {
        let started = Instant::now();
        self.leave_file_whose_sync_failed();
        if let Err(e) = self.rotate_if_due(started) {
            self.file.current = None;
            return self.settler.fail(jobs, &e);
        }
        // A retry of a batch this sink already wrote (it failed elsewhere) is not written again.
        self.skip_repeats(jobs);
        if jobs.is_empty() {
            return;
        }
        let (records, bytes) = match self.append_group(jobs) {
            Ok(appended) => appended,
            Err(e) => return self.abandon(jobs, &e),
        };
        self.settle(Written { jobs: std::mem::take(jobs), records, bytes, started });
    }

    fn tick(&mut self, now: Instant) {
        if let FsyncPolicy::Interval(every) = self.file.config.fsync {
            if self.file.unsynced && now.duration_since(self.file.last_sync) >= every {
                if let Err(e) = self.file.sync(now) {
                    self.settler.metrics.write_error(self.name, io_code(&e));
                }
            }
        }
        if let Err(e) = self.rotate_if_due(now) {
            tracing::error!(sink = self.name, error = %e, "cannot complete file");
            self.settler.metrics.write_error(self.name, io_code(&e));
            self.file.current = None;
        }
    }

    fn health(&self) -> Health {
        self.settler.health.clone()
    }

    fn close(&mut self) {
        // Every written group is settled before the last file is completed.
        self.stop_syncer();
        if let Err(e) = self.file.complete() {
            tracing::error!(sink = self.name, error = %e, "cannot complete file at shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::sync::Arc;

    use bytes::Bytes;
    use record::{Batch, Record, RecordMeta};

    use super::rotation::DONE_SUFFIX;
    use super::*;

    #[test]
    fn fsync_modes_parse_from_their_names_and_build_their_policies() {
        let every = Duration::from_millis(250);
        for (name, mode, policy) in [
            ("batch", FsyncMode::Batch, FsyncPolicy::Batch),
            ("interval", FsyncMode::Interval, FsyncPolicy::Interval(every)),
            ("never", FsyncMode::Never, FsyncPolicy::Never),
        ] {
            assert_eq!(name.parse::<FsyncMode>(), Ok(mode));
            assert_eq!(mode.as_str(), name);
            assert_eq!(FsyncPolicy::from_mode(mode, every), policy);
        }
        assert_eq!(
            "sometimes".parse::<FsyncMode>().unwrap_err().to_string(),
            r#""sometimes" is not one of batch, interval, never"#
        );
        assert!("Batch".parse::<FsyncMode>().is_err(), "names are exact");
    }

    #[test]
    fn a_failed_sync_fails_its_group_and_the_sink_moves_to_a_new_file() {
        use std::sync::atomic::AtomicUsize;

        use record::Dispatch;

        use crate::{Pipeline, PipelineConfig};

        let dir = tempfile::tempdir().unwrap();
        let metrics = PipelineMetrics::register(&mut Default::default());
        let syncs = Arc::new(AtomicUsize::new(0));
        let sink =
            FileSink::records(FileSinkConfig::new(dir.path()), &metrics).unwrap().with_sync({
                let syncs = Arc::clone(&syncs);
                Box::new(move |file: &File| match syncs.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(io::Error::from_raw_os_error(5)),
                    _ => file.sync_data(),
                })
            });
        let (pipeline, workers) =
            Pipeline::start(PipelineConfig::default(), vec![Box::new(sink)], metrics).unwrap();
        let block_on = |waiter: record::AckWaiter| {
            tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(waiter.wait())
        };
        let one = |line: &str| {
            let body = Bytes::from(format!("{line}\n"));
            Batch {
                drain: Arc::from("default"),
                received_at_ms: 0,
                records: vec![Record::terminated(body.clone(), RecordMeta::default())],
                body,
                rejects: Vec::new(),
                pinned_bytes: 0,
                digest: 0,
            }
        };

        let failure = block_on(pipeline.try_submit(one("{\"n\":1}")).unwrap()).unwrap_err();
        assert_eq!((failure.sink, failure.code), ("file", "io_error"));
        assert!(!pipeline.ready(), "a sink whose sync failed is not ready");
        block_on(pipeline.try_submit(one("{\"n\":2}")).unwrap()).unwrap();
        assert!(pipeline.ready());
        drop(pipeline);
        assert!(workers.join(Duration::from_secs(5)).is_empty());

        // The second batch went to a new file, not after data a failed sync may have lost.
        let mut files: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(DONE_SUFFIX))
            .collect();
        files.sort();
        assert_eq!(files.len(), 2, "{files:?}");
        assert_eq!(fs::read_to_string(&files[1]).unwrap(), "{\"n\":2}\n");
        assert_eq!(syncs.load(Ordering::SeqCst), 2);
    }
}
