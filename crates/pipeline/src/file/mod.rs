//! File sinks: NDJSON files (protobuf frames for trace drains) on local disk, rotated by size
//! and age, with a configurable fsync policy.
//!
//! A file being written is named `<prefix>-<unix ms>-<lane><seq>.ndjson.open` (`<lane>`: none
//! for the first sync lane, `b`, `c`… for the others, see `lanes`); when it is rotated
//! (or the sink closes) it is synced per the policy and renamed to `….ndjson`. Readers take only
//! `*.ndjson` files: those are complete and never change again. At start-up, `.open` files left
//! by a crash are completed the same way, after cutting any partial last line (a write that was
//! never acknowledged) and setting aside, as dead letters, lines that are not valid records
//! (`recover`). A file whose completion fails is completed again later (`retry`).
//!
//! The records sink writes one record per line, exactly the record's bytes; for trace drains,
//! whose records are binary protobuf `ResourceSpans`, one length-delimited frame per record
//! instead, into `….binpb.open` files completed to `….binpb`, each then one OTLP
//! `ExportTraceServiceRequest` (`frames`, whose recovery walks frames instead of lines). The
//! dead-letter
//! sink writes one JSON object per rejected record: when and from which drain it came, why it was
//! rejected, where in the body it sat, and its raw bytes (`raw`, or `raw_base64` when they are
//! not UTF-8).
//!
//! Files and directories are created with [`FileSinkConfig::file_mode`] and
//! [`FileSinkConfig::dir_mode`] (0640 and 0750 unless configured): records are not for every
//! local user to read. Every file-system operation goes through a [`Storage`] ([`Disk`] in
//! production), so that tests can simulate power loss underneath.
//!
//! This module holds the configuration and [`FileSink`]; `rotation` the files themselves,
//! `encode` and `frames` what goes into them, `syncer` how written groups become durable and settle,
//! `recover` the start-up recovery, `retry` the files whose completion failed and `lanes` the
//! files written and synced in parallel.

mod encode;
mod frames;
mod lanes;
mod recover;
mod retry;
mod rotation;
mod syncer;

use std::io::{self, IoSlice};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use record::DataType;

use crate::metrics::Stage;
use crate::sink::{Health, Job, Sink, Takes};
use crate::storage::{Disk, Storage};
use crate::{PipelineError, PipelineMetrics};
use encode::{encode_rejects, record_lines};
use frames::{frame_pieces, frame_prefixes};
pub use lanes::MAX_SYNC_LANES;
use lanes::{lane_tag, pick, Lane};
pub use recover::RECOVERED_INVALID_PREFIX;
use rotation::{Format, RotatingFile};
use syncer::{Settler, SyncOrder, SyncSetup, Syncer, Written};

/// The records sink's name (the log drains' sink).
pub const RECORDS: &str = "file";
/// The dead-letter sink's name.
pub const DEAD_LETTER: &str = "dead_letter";

/// The name of the records sink of `data_type`'s drains, in metrics and failures: [`RECORDS`]
/// for logs, as before the other types existed, else `file_<type>`.
pub const fn records_sink(data_type: DataType) -> &'static str {
    match data_type {
        DataType::Logs => RECORDS,
        DataType::Traces => "file_traces",
        DataType::SpeedInsights => "file_speed_insights",
        DataType::Analytics => "file_analytics",
        DataType::AuditLog => "file_audit_log",
    }
}

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

/// The sync lanes of a file sink unless configured: two lanes already keep one slow
/// `fdatasync` from holding every batch behind it (the next group goes to the other file, synced
/// by its own thread), for one more open file and thread per sink.
pub const DEFAULT_SYNC_LANES: usize = 2;

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
    /// The permission bits of the files the sink creates (exactly these, whatever the umask).
    pub file_mode: u32,
    /// The permission bits of the directories the sink creates (existing ones are left as
    /// they are).
    pub dir_mode: u32,
    /// Where crash recovery writes the lines of a crashed file that are not valid records, as
    /// dead letters (`recovered-invalid-<file>.ndjson`); `None`: this sink's own directory.
    pub invalid_dir: Option<PathBuf>,
    /// With [`FsyncPolicy::Batch`], how many files are written and synced in parallel (1 to
    /// [`MAX_SYNC_LANES`]; each a file open at a time and a syncer thread): a slow `fdatasync`
    /// holds only the batches of its own lane. Ignored by the other policies.
    pub sync_lanes: usize,
}

impl FileSinkConfig {
    /// Defaults for `dir`: 128 MiB or 5 minutes per file, fsync per batch on
    /// [`DEFAULT_SYNC_LANES`] lanes, synced pages dropped, files 0640 and directories 0750.
    pub fn new(dir: impl Into<PathBuf>) -> FileSinkConfig {
        FileSinkConfig {
            dir: dir.into(),
            max_file_bytes: 128 << 20,
            max_file_age: Duration::from_secs(300),
            fsync: FsyncPolicy::Batch,
            drop_synced_pages: true,
            file_mode: 0o640,
            dir_mode: 0o750,
            invalid_dir: None,
            sync_lanes: DEFAULT_SYNC_LANES,
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

/// A sink writing NDJSON files (frames for traces): the records themselves, or dead letters.
///
/// With `FsyncPolicy::Batch` a syncer thread makes each written group durable and settles it
/// while the sink already writes the next group: the disk is never idle while the CPU copies,
/// nor the CPU while the disk flushes. With more than one sync lane (`lanes`), groups go to
/// several files, each with its own syncer, so that one slow sync holds only its own lane's
/// groups. Within a lane, groups settle in the order they were written.
pub struct FileSink {
    name: &'static str,
    takes: Takes,
    /// At least one; more only with `FsyncPolicy::Batch`.
    lanes: Vec<Lane>,
    buf: Vec<u8>,
    settler: Settler,
}

impl std::fmt::Debug for FileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSink")
            .field("name", &self.name)
            .field("dir", &self.lanes[0].file.config.dir)
            .field("lanes", &self.lanes.len())
            .finish()
    }
}

impl FileSink {
    /// The records sink of log drains: files `records-….ndjson` in `config.dir`.
    pub fn records(
        config: FileSinkConfig,
        metrics: &PipelineMetrics,
    ) -> Result<FileSink, PipelineError> {
        FileSink::records_on(Arc::new(Disk), config, metrics)
    }

    /// The records sink of the drains of `data_type`: files `records-….ndjson` in `config.dir`
    /// (a directory per type: no file mixes types), named as [`records_sink`] says; for
    /// [`DataType::Traces`], `records-….binpb` files, each one OTLP `ExportTraceServiceRequest`.
    pub fn records_of(
        data_type: DataType,
        config: FileSinkConfig,
        metrics: &PipelineMetrics,
    ) -> Result<FileSink, PipelineError> {
        FileSink::records_of_on(Arc::new(Disk), data_type, config, metrics)
    }

    /// The records sink of the drains of `data_type`, on `storage`.
    pub fn records_of_on(
        storage: Arc<dyn Storage>,
        data_type: DataType,
        config: FileSinkConfig,
        metrics: &PipelineMetrics,
    ) -> Result<FileSink, PipelineError> {
        let takes = Takes::RecordsOf(data_type);
        FileSink::open(storage, (records_sink(data_type), takes, "records"), config, metrics)
    }

    /// The dead-letter sink: files `dead-letter-….ndjson` in `config.dir`.
    pub fn dead_letter(
        config: FileSinkConfig,
        metrics: &PipelineMetrics,
    ) -> Result<FileSink, PipelineError> {
        FileSink::dead_letter_on(Arc::new(Disk), config, metrics)
    }

    /// The records sink, on `storage`.
    pub fn records_on(
        storage: Arc<dyn Storage>,
        config: FileSinkConfig,
        metrics: &PipelineMetrics,
    ) -> Result<FileSink, PipelineError> {
        let takes = Takes::RecordsOf(DataType::Logs);
        FileSink::open(storage, (RECORDS, takes, "records"), config, metrics)
    }

    /// The dead-letter sink, on `storage`.
    pub fn dead_letter_on(
        storage: Arc<dyn Storage>,
        config: FileSinkConfig,
        metrics: &PipelineMetrics,
    ) -> Result<FileSink, PipelineError> {
        FileSink::open(storage, (DEAD_LETTER, Takes::Rejects, "dead-letter"), config, metrics)
    }

    fn open(
        storage: Arc<dyn Storage>,
        (name, takes, prefix): (&'static str, Takes, &'static str),
        config: FileSinkConfig,
        metrics: &PipelineMetrics,
    ) -> Result<FileSink, PipelineError> {
        let path = config.dir.display().to_string();
        let error = |source| PipelineError::Open { sink: name, path: path.clone(), source };
        let batch_sync = config.fsync == FsyncPolicy::Batch;
        // Lanes exist to sync in parallel: without a sync per batch there is nothing to spread.
        let lanes = match batch_sync {
            true => config.sync_lanes.clamp(1, MAX_SYNC_LANES),
            false => 1,
        };
        let (drop_synced_pages, dir) = (config.drop_synced_pages, config.dir.clone());
        let format = match takes {
            Takes::RecordsOf(DataType::Traces) => Format::Frames,
            _ => Format::Ndjson,
        };
        let storage_ = Arc::clone(&storage);
        let mut first =
            RotatingFile::open(storage_, config, (prefix, format), lane_tag(0)).map_err(error)?;
        first.defer_dir_sync = batch_sync;
        let mut files = Vec::with_capacity(lanes);
        files.extend((1..lanes).map(|lane| first.sibling(lane_tag(lane))));
        files.insert(0, first);
        let settler = Settler::new(name, metrics);
        let mut built = Vec::with_capacity(lanes);
        for (lane, file) in files.into_iter().enumerate() {
            let setup = SyncSetup {
                settler: settler.clone(),
                storage: Arc::clone(&storage),
                unfinished: file.unfinished.clone(),
                dir: dir.clone(),
                drop_synced_pages,
            };
            let syncer = match batch_sync {
                true => Some(Syncer::start(setup, lane).map_err(error)?),
                false => None,
            };
            built.push(Lane { file, syncer });
        }
        Ok(FileSink { name, takes, lanes: built, buf: Vec::new(), settler })
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

    /// Appends the jobs' records (or dead letters) to lane `at`'s current file, all in one go; returns
    /// how many records and how many bytes.
    fn append_group(&mut self, at: usize, jobs: &[Job]) -> io::Result<(u64, u64)> {
        let mut records = 0;
        let file = &mut self.lanes[at].file;
        let appended = match self.takes {
            _ if file.format == Format::Frames => {
                // The small prefixes first, into one buffer; then the pieces, the records' own
                // bytes pointing into their bodies.
                self.buf.clear();
                for job in jobs {
                    records += frame_prefixes(job.batch(), &mut self.buf);
                }
                let mut pieces = Vec::with_capacity(2 * records as usize);
                let mut at = 0;
                for job in jobs {
                    frame_pieces(job.batch(), &self.buf, &mut at, &mut pieces);
                }
                file.append(&mut pieces)
            }
            Takes::Records | Takes::RecordsOf(_) => {
                let mut pieces =
                    Vec::with_capacity(jobs.iter().map(|j| j.batch().records.len()).sum());
                for job in jobs {
                    records += record_lines(job.batch(), &mut pieces);
                }
                file.append(&mut pieces)
            }
            Takes::Rejects => {
                self.buf.clear();
                for job in jobs {
                    records += encode_rejects(job.batch(), &mut self.buf);
                }
                file.append(&mut [IoSlice::new(&self.buf)])
            }
        };
        // Keep memory flat after an unusually large group.
        if self.buf.capacity() > 64 << 20 {
            self.buf = Vec::new();
        }
        Ok((records, appended?))
    }

    /// Tries again to complete the files whose completion failed (shared by every lane), if
    /// some are due at `now` (all of them when `now` is `None`): through the first lane's
    /// syncer when there is one (never waiting for it: if it is busy, the next tick tries),
    /// else here.
    fn retry_completions(&mut self, now: Option<Instant>) {
        let first = &mut self.lanes[0];
        let due = match now {
            Some(now) => first.file.unfinished.due(now),
            None => true,
        };
        match (now, &mut first.syncer) {
            _ if !due => {}
            (Some(now), Some(syncer)) => {
                let _ = syncer.try_send(SyncOrder::Retry(now));
            }
            (_, _) => {
                let sync = first.file.config.fsync != FsyncPolicy::Never;
                let (storage, dir) = (&*first.file.storage, &first.file.config.dir);
                first.file.unfinished.retry(storage, dir, sync, now, &self.settler);
            }
        }
    }

    /// Writes `jobs` into lane `at` and hands them on to be settled.
    fn write_to(&mut self, at: usize, jobs: &mut Vec<Job>) {
        let writing = Instant::now();
        for job in jobs.iter() {
            let queued = writing.saturating_duration_since(job.queued()).as_secs_f64();
            self.settler.metrics.stage(self.name, Stage::Queue, queued, 1);
        }
        let (records, bytes) = match self.append_group(at, jobs) {
            Ok(appended) => appended,
            Err(e) => return self.lanes[at].abandon(jobs, &e, &self.settler),
        };
        let written_at = Instant::now();
        let wrote = (written_at - writing).as_secs_f64();
        self.settler.metrics.stage(self.name, Stage::Write, wrote, jobs.len());
        let jobs = std::mem::take(jobs);
        let written = Written { jobs, records, bytes, started: writing, written_at };
        self.lanes[at].settle(written, &self.settler);
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
        for lane in &mut self.lanes {
            lane.leave_file_whose_sync_failed(&self.settler);
        }
        let at = pick(&self.lanes);
        if let Err(e) = self.lanes[at].rotate_if_due(started, &self.settler, true) {
            self.lanes[at].file.current = None;
            return self.settler.fail(jobs, &e);
        }
        // A retry of a batch this sink already wrote (it failed elsewhere) is not written again.
        self.skip_repeats(jobs);
        if !jobs.is_empty() {
            self.write_to(at, jobs);
        }
    }

    fn tick(&mut self, now: Instant) {
        // Only `FsyncPolicy::Batch` has more than one lane.
        let file = &mut self.lanes[0].file;
        if let FsyncPolicy::Interval(every) = file.config.fsync {
            if file.unsynced && now.duration_since(file.last_sync) >= every {
                if let Err(e) = file.sync(now) {
                    let code = io_code(&e);
                    tracing::error!(sink = self.name, code, error = %e, "interval sync failed; records written since the last one may be lost");
                    self.settler.metrics.write_error(self.name, code);
                    self.settler.health.set_healthy(false);
                    // The kernel may have dropped the file's unsynced pages and will not say so
                    // again: nothing more goes after them.
                    if let Err(e) = file.complete() {
                        // Remembered, and completed again later.
                        tracing::error!(sink = self.name, error = %e, "cannot complete file; will try again");
                        self.settler.metrics.completion_failed(self.name, io_code(&e));
                    }
                    file.current = None;
                }
            }
        }
        for lane in &mut self.lanes {
            if let Err(e) = lane.rotate_if_due(now, &self.settler, false) {
                tracing::error!(sink = self.name, error = %e, "cannot complete file; will try again");
                lane.file.current = None;
            }
        }
        self.retry_completions(Some(now));
    }

    fn health(&self) -> Health {
        self.settler.health.clone()
    }

    fn close(&mut self) {
        // Every written group is settled before the last files are completed.
        for lane in &mut self.lanes {
            lane.stop_syncer(&self.settler);
        }
        for lane in &mut self.lanes {
            if let Err(e) = lane.file.complete() {
                tracing::error!(sink = self.name, error = %e, "cannot complete file at shutdown");
                self.settler.metrics.completion_failed(self.name, io_code(&e));
            }
        }
        // A last try for every file whose completion failed; what still fails is completed by
        // the next start-up's recovery.
        self.retry_completions(None);
    }
}

#[cfg(test)]
mod tests {
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
}
