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

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use crossbeam_channel::{Receiver, Sender};
use record::{Batch, SinkFailure};

use crate::dedup::DedupWindow;
use crate::sink::{Health, Job, Sink, Takes};
use crate::{PipelineError, PipelineMetrics};

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

const OPEN_SUFFIX: &str = ".ndjson.open";
const DONE_SUFFIX: &str = ".ndjson";

struct Current {
    /// Shared with the syncer, which makes written data durable while the next write proceeds.
    file: Arc<File>,
    path: PathBuf,
    len: u64,
    /// Where the synced pages dropped from the page cache end (interval policy).
    dropped: u64,
    opened: Instant,
}

/// An append-only NDJSON file that rotates by size and age.
struct RotatingFile {
    config: FileSinkConfig,
    /// Held for the sink's life: a second process must not write (or recover) here.
    _lock: File,
    prefix: &'static str,
    current: Option<Current>,
    seq: u64,
    last_sync: Instant,
    unsynced: bool,
    /// New files' directory entries are synced by the syncer, before anything in them is
    /// acknowledged, instead of on the writer's path.
    defer_dir_sync: bool,
}

fn millis_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Completes `.open` files left by an earlier process: cuts a partial last line, renames.
fn recover(dir: &Path, prefix: &str) -> io::Result<usize> {
    let mut recovered = 0;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if !(name.starts_with(prefix) && name.ends_with(OPEN_SUFFIX)) {
            continue;
        }
        let mut file = OpenOptions::new().read(true).write(true).open(&path)?;
        let len = file.metadata()?.len();
        let keep = end_of_last_line(&mut file, len)?;
        if keep < len {
            file.set_len(keep)?;
        }
        file.sync_all()?;
        let done = path
            .with_file_name(format!("{}{DONE_SUFFIX}", &name[..name.len() - OPEN_SUFFIX.len()]));
        if keep == 0 {
            fs::remove_file(&path)?;
        } else {
            fs::rename(&path, &done)?;
            recovered += 1;
        }
    }
    sync_dir(dir)?;
    Ok(recovered)
}

/// Where the last complete line of a file of `len` bytes ends, reading backwards from the end
/// in bounded chunks (files can be large; only their tail matters).
fn end_of_last_line(file: &mut File, len: u64) -> io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut chunk = vec![0u8; 64 * 1024];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let part = &mut chunk[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(part)?;
        if let Some(i) = part.iter().rposition(|b| *b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

impl RotatingFile {
    fn open(config: FileSinkConfig, prefix: &'static str) -> io::Result<RotatingFile> {
        fs::create_dir_all(&config.dir)?;
        let lock = File::create(config.dir.join(format!(".{prefix}.lock")))?;
        lock.try_lock().map_err(|_| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                "another process is writing to this directory",
            )
        })?;
        let recovered = recover(&config.dir, prefix)?;
        if recovered > 0 {
            tracing::info!(dir = %config.dir.display(), files = recovered, "completed files left open by an earlier run");
        }
        Ok(RotatingFile {
            config,
            _lock: lock,
            prefix,
            current: None,
            seq: 0,
            last_sync: Instant::now(),
            unsynced: false,
            defer_dir_sync: false,
        })
    }

    fn current(&mut self) -> io::Result<&mut Current> {
        if self.current.is_none() {
            self.seq += 1;
            let name = format!("{}-{:013}-{:06}{OPEN_SUFFIX}", self.prefix, millis_now(), self.seq);
            let path = self.config.dir.join(name);
            let file = OpenOptions::new().create_new(true).append(true).open(&path)?;
            if self.config.fsync != FsyncPolicy::Never && !self.defer_dir_sync {
                sync_dir(&self.config.dir)?;
            }
            let file = Arc::new(file);
            self.current = Some(Current { file, path, len: 0, dropped: 0, opened: Instant::now() });
        }
        Ok(self.current.as_mut().expect("current was just set"))
    }

    /// Appends `pieces` (together, whole lines) with as few `writev` calls as the kernel allows.
    /// On failure the file is cut back to where it was, so that no partial line of an
    /// unacknowledged write remains.
    fn append(&mut self, mut pieces: &mut [IoSlice<'_>]) -> io::Result<u64> {
        let current = self.current()?;
        let mut written = 0u64;
        while !pieces.is_empty() {
            match (&*current.file).write_vectored(pieces) {
                Ok(0) => {
                    let _ = current.file.set_len(current.len);
                    return Err(io::ErrorKind::WriteZero.into());
                }
                Ok(n) => {
                    written += n as u64;
                    IoSlice::advance_slices(&mut pieces, n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = current.file.set_len(current.len);
                    return Err(e);
                }
            }
        }
        current.len += written;
        self.unsynced = true;
        Ok(written)
    }

    /// Makes appended data durable as the policy asks before acknowledging it.
    fn commit(&mut self, now: Instant) -> io::Result<()> {
        match self.config.fsync {
            FsyncPolicy::Batch => self.sync(now),
            FsyncPolicy::Interval(every) if now.duration_since(self.last_sync) >= every => {
                self.sync(now)
            }
            FsyncPolicy::Interval(_) | FsyncPolicy::Never => Ok(()),
        }
    }

    fn sync(&mut self, now: Instant) -> io::Result<()> {
        if let (true, Some(current)) = (self.unsynced, self.current.as_mut()) {
            current.file.sync_data()?;
            if self.config.drop_synced_pages {
                current.dropped = drop_pages(&current.file, current.dropped, current.len);
            }
        }
        self.unsynced = false;
        self.last_sync = now;
        Ok(())
    }

    /// Whether the current file is over its size or age.
    fn due(&self, now: Instant) -> bool {
        self.current.as_ref().is_some_and(|c| {
            c.len >= self.config.max_file_bytes
                || (c.len > 0 && now.duration_since(c.opened) >= self.config.max_file_age)
        })
    }

    /// Syncs (unless the policy is `Never`), closes and renames the current file to `.ndjson`.
    fn complete(&mut self) -> io::Result<()> {
        let Some(current) = self.current.take() else { return Ok(()) };
        self.unsynced = false;
        finish(current, self.config.fsync != FsyncPolicy::Never, &self.config.dir)
    }
}

/// Completes a file: syncs it (when `sync`), closes it and renames it to `.ndjson`; an empty
/// file is removed instead.
fn finish(current: Current, sync: bool, dir: &Path) -> io::Result<()> {
    if current.len == 0 {
        drop(current.file);
        return fs::remove_file(&current.path);
    }
    if sync {
        current.file.sync_all()?;
    }
    let path = current.path.to_string_lossy();
    let done = PathBuf::from(format!("{}{DONE_SUFFIX}", &path[..path.len() - OPEN_SUFFIX.len()]));
    fs::rename(&current.path, &done)?;
    if sync {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Drops the pages of `file` from `from` to `to` (synced data) out of the page cache, except a
/// partly written last page, which the next append would otherwise read back in. Returns where
/// the dropped range now ends. Advice only: a refusal changes nothing that matters.
fn drop_pages(file: &File, from: u64, to: u64) -> u64 {
    const PAGE: u64 = 4096;
    let end = to / PAGE * PAGE;
    if end <= from {
        return from;
    }
    let len = std::num::NonZeroU64::new(end - from);
    let _ = rustix::fs::fadvise(file, from, len, rustix::fs::Advice::DontNeed);
    end
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

/// How many recently written batches a file sink remembers, to skip clients' retries.
const DEDUP_BATCHES: usize = 4096;

/// How many written groups may wait for the syncer before the writer waits for it.
const SYNC_QUEUE: usize = 2;

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

/// The batch's records as whole lines, pointing into the received body (no copy). Lines that
/// follow each other in the body (an NDJSON body's, as a rule) go out as one piece: the kernel
/// copies one large piece into the page cache markedly faster than a thousand 1 KiB ones.
fn record_lines<'a>(batch: &'a Batch, pieces: &mut Vec<IoSlice<'a>>) -> u64 {
    let body: &'a [u8] = &batch.body;
    // The run of adjacent lines not yet pushed, as a range of `body`.
    let mut run = 0..0;
    for record in &batch.records {
        match record.line() {
            Some(line) => match offset_in(body, line) {
                Some(at) if run.end == at && !run.is_empty() => run.end += line.len(),
                Some(at) => {
                    push_run(body, &mut run, pieces);
                    run = at..at + line.len();
                }
                None => {
                    push_run(body, &mut run, pieces);
                    pieces.push(IoSlice::new(line));
                }
            },
            None => {
                push_run(body, &mut run, pieces);
                pieces.push(IoSlice::new(record.bytes()));
                pieces.push(IoSlice::new(b"\n"));
            }
        }
    }
    push_run(body, &mut run, pieces);
    batch.records.len() as u64
}

/// Where `part` starts in `whole`, if it lies entirely inside it.
fn offset_in(whole: &[u8], part: &[u8]) -> Option<usize> {
    let at = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (at <= whole.len() && part.len() <= whole.len() - at).then_some(at)
}

fn push_run<'a>(body: &'a [u8], run: &mut std::ops::Range<usize>, pieces: &mut Vec<IoSlice<'a>>) {
    if run.start < run.end {
        pieces.push(IoSlice::new(&body[run.clone()]));
    }
    *run = 0..0;
}

fn encode_rejects(batch: &Batch, buf: &mut Vec<u8>) -> u64 {
    for reject in &batch.rejects {
        let mut line = serde_json::Map::new();
        line.insert("received_at_ms".into(), batch.received_at_ms.into());
        line.insert("drain".into(), batch.drain.as_ref().into());
        line.insert("reason".into(), reject.reason.code().into());
        line.insert("offset".into(), reject.offset.into());
        match std::str::from_utf8(&reject.raw) {
            Ok(text) => line.insert("raw".into(), text.into()),
            Err(_) => line.insert(
                "raw_base64".into(),
                base64::engine::general_purpose::STANDARD.encode(&reject.raw).into(),
            ),
        };
        // Serializing a map of plain values into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *buf, &line);
        buf.push(b'\n');
    }
    batch.rejects.len() as u64
}

/// A written group waiting to be settled.
struct Written {
    jobs: Vec<Job>,
    records: u64,
    bytes: u64,
    started: Instant,
}

/// Settles written groups: shared by the sink and its syncer.
#[derive(Clone)]
struct Settler {
    name: &'static str,
    /// Digests of the batches made durable lately (see `dedup`).
    recent: Arc<Mutex<DedupWindow>>,
    health: Health,
    metrics: PipelineMetrics,
}

impl Settler {
    fn is_repeat(&self, digest: u128) -> bool {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner).contains(digest)
    }

    fn durable(&self, mut written: Written) {
        self.health.set_healthy(true);
        self.metrics.written(
            self.name,
            written.records,
            written.bytes,
            written.started.elapsed().as_secs_f64(),
        );
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        for job in &mut written.jobs {
            recent.insert(job.batch().digest);
            job.complete();
        }
    }

    fn fail(&self, jobs: &mut [Job], e: &io::Error) {
        let code = io_code(e);
        tracing::error!(sink = self.name, code, error = %e, "write failed; batches answered 503");
        self.metrics.write_error(self.name, code);
        self.health.set_healthy(false);
        for job in jobs {
            job.fail(SinkFailure { sink: self.name, code });
        }
    }
}

/// Work for the syncer, done in the order it was written.
enum SyncOrder {
    /// A group written to file number `seq`, ending at byte `end`, to be made durable before
    /// it is settled.
    Group { file: Arc<File>, seq: u64, end: u64, written: Written },
    /// A rotated file to complete (sync, rename, directory sync), off the writer's path.
    Finish(Current),
}

/// How the syncer makes a file's written data durable (`File::sync_data`; tests inject faults).
type SyncFn = Box<dyn FnMut(&File) -> io::Result<()> + Send>;

/// The syncer thread of a sink with `FsyncPolicy::Batch`.
struct Syncer {
    tx: Sender<SyncOrder>,
    thread: JoinHandle<()>,
    /// The number of the last file whose sync failed (0: none). The sink leaves that file: after
    /// a failed `fdatasync` the kernel may have dropped its dirty pages and will not say so twice.
    failed: Arc<AtomicU64>,
}

impl Syncer {
    fn start(
        settler: Settler,
        sync: SyncFn,
        dir: PathBuf,
        drop_synced_pages: bool,
    ) -> io::Result<Syncer> {
        let (tx, rx) = crossbeam_channel::bounded(SYNC_QUEUE);
        let failed = Arc::new(AtomicU64::new(0));
        let thread = std::thread::Builder::new().name(format!("sync-{}", settler.name)).spawn({
            let failed = Arc::clone(&failed);
            move || Syncer::run(&rx, &settler, &failed, sync, &dir, drop_synced_pages)
        })?;
        Ok(Syncer { tx, thread, failed })
    }

    /// Syncs and settles orders as they come; orders that queued up during a sync share the
    /// next one (a second group commit).
    fn run(
        rx: &Receiver<SyncOrder>,
        settler: &Settler,
        failed: &AtomicU64,
        mut sync: SyncFn,
        dir: &Path,
        drop_synced_pages: bool,
    ) {
        let mut orders = Vec::new();
        // The file whose synced pages are being dropped, and where the dropped range ends.
        let mut dropped = (0, 0);
        // The newest file whose directory entry is durable.
        let mut dir_synced = 0;
        while let Ok(order) = rx.recv() {
            orders.push(order);
            orders.extend(rx.try_iter());
            // Every order drained here was written before the first sync below starts, so one
            // sync per file covers them all.
            let mut synced: Option<(u64, io::Result<()>)> = None;
            for order in orders.drain(..) {
                let (file, seq, end, mut written) = match order {
                    SyncOrder::Group { file, seq, end, written } => (file, seq, end, written),
                    SyncOrder::Finish(current) => {
                        match finish(current, true, dir) {
                            Ok(()) => settler.metrics.file_completed(settler.name),
                            Err(e) => {
                                tracing::error!(sink = settler.name, error = %e, "cannot complete file");
                                settler.metrics.write_error(settler.name, io_code(&e));
                            }
                        }
                        continue;
                    }
                };
                let result = match &synced {
                    Some((s, result)) if *s == seq => result.as_ref().map(|_| ()).map_err(copy),
                    _ if failed.load(Ordering::Acquire) == seq => {
                        Err(io::Error::other("an earlier sync of this file failed"))
                    }
                    _ => {
                        let mut result = Ok(());
                        if seq > dir_synced {
                            result = sync_dir(dir);
                            dir_synced = seq;
                        }
                        let result = result.and_then(|()| sync(&file));
                        let shared = result.as_ref().map(|_| ()).map_err(copy);
                        synced = Some((seq, result));
                        shared
                    }
                };
                match result {
                    Ok(()) => {
                        if drop_synced_pages {
                            let from = if dropped.0 == seq { dropped.1 } else { 0 };
                            dropped = (seq, drop_pages(&file, from, end));
                        }
                        settler.durable(written);
                    }
                    Err(e) => {
                        failed.store(seq, Ordering::Release);
                        settler.fail(&mut written.jobs, &e);
                    }
                }
            }
        }
    }
}

/// An `io::Error` for each group a failed sync covered.
fn copy(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
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
        let settler = Settler {
            name,
            recent: Arc::new(Mutex::new(DedupWindow::new(DEDUP_BATCHES))),
            health: Health::new(),
            metrics: metrics.clone(),
        };
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
        if let Some(syncer) = &self.syncer {
            if self.file.current.is_some() && syncer.failed.load(Ordering::Acquire) == self.file.seq
            {
                tracing::warn!(sink = self.name, "leaving a file whose sync failed");
                let _ = self.file.complete();
                self.file.current = None;
            }
        }
        if let Err(e) = self.rotate_if_due(started) {
            self.file.current = None;
            return self.settler.fail(jobs, &e);
        }
        // A retry of a batch this sink already wrote (it failed elsewhere) is not written again.
        jobs.retain_mut(|job| {
            let repeat = self.settler.is_repeat(job.batch().digest);
            if repeat {
                self.settler.metrics.retry_skipped(self.name);
                job.complete();
            }
            !repeat
        });
        if jobs.is_empty() {
            return;
        }
        let mut records = 0;
        let appended = match self.takes {
            Takes::Records => {
                let mut pieces =
                    Vec::with_capacity(jobs.iter().map(|j| j.batch().records.len()).sum());
                for job in jobs.iter() {
                    records += record_lines(job.batch(), &mut pieces);
                }
                self.file.append(&mut pieces)
            }
            Takes::Rejects => {
                self.buf.clear();
                for job in jobs.iter() {
                    records += encode_rejects(job.batch(), &mut self.buf);
                }
                self.file.append(&mut [IoSlice::new(&self.buf)])
            }
        };
        // Keep memory flat after an unusually large group.
        if self.buf.capacity() > 64 << 20 {
            self.buf = Vec::new();
        }
        let bytes = match appended {
            Ok(bytes) => bytes,
            Err(e) => return self.abandon(jobs, &e),
        };
        let written = Written { jobs: std::mem::take(jobs), records, bytes, started };
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
    use std::sync::Arc;

    use bytes::Bytes;
    use record::{Record, RecordMeta};

    use super::*;

    #[test]
    fn adjacent_lines_of_the_body_go_out_as_one_piece() {
        let body = Bytes::from_static(b"a\nb\nnot a record\nc\n");
        let records = vec![
            Record::terminated(body.slice(0..2), RecordMeta::default()),
            Record::terminated(body.slice(2..4), RecordMeta::default()),
            // The rejected line between is skipped, so `c` starts a new piece.
            Record::terminated(body.slice(17..19), RecordMeta::default()),
            // Compacted array elements and slow-path records live elsewhere.
            Record::new(Bytes::from_static(b"d"), RecordMeta::default()),
            Record::terminated(Bytes::from_static(b"e\n"), RecordMeta::default()),
        ];
        let batch = Batch {
            drain: Arc::from("default"),
            received_at_ms: 0,
            records,
            body,
            rejects: Vec::new(),
            pinned_bytes: 0,
            digest: 0,
        };
        let mut pieces = Vec::new();
        assert_eq!(record_lines(&batch, &mut pieces), 5);
        let pieces: Vec<&[u8]> = pieces.iter().map(|p| &p[..]).collect();
        assert_eq!(pieces, [&b"a\nb\n"[..], b"c\n", b"d", b"\n", b"e\n"]);
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

    #[test]
    fn a_slice_is_inside_only_when_all_of_it_is() {
        let whole = b"0123456789";
        assert_eq!(offset_in(whole, &whole[3..7]), Some(3));
        assert_eq!(offset_in(whole, &whole[10..]), Some(10));
        assert_eq!(offset_in(&whole[..5], &whole[3..7]), None);
        assert_eq!(offset_in(&whole[5..], &whole[3..7]), None);
    }
}
