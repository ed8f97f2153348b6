//! Settling written groups, and the syncer thread of a sink with `FsyncPolicy::Batch`: it makes
//! each written group durable (one `fdatasync` for every group queued meanwhile) and settles it
//! while the sink already writes the next, and completes rotated files off the writer's path.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use record::SinkFailure;

use super::io_code;
use super::rotation::{drop_pages, finish, sync_dir, Current};
use crate::dedup::DedupWindow;
use crate::sink::{Health, Job};
use crate::PipelineMetrics;

/// How many recently written batches a file sink remembers, to skip clients' retries.
const DEDUP_BATCHES: usize = 4096;

/// How many written groups may wait for the syncer before the writer waits for it.
const SYNC_QUEUE: usize = 2;

/// A written group waiting to be settled.
pub(super) struct Written {
    pub(super) jobs: Vec<Job>,
    pub(super) records: u64,
    pub(super) bytes: u64,
    pub(super) started: Instant,
}

/// Settles written groups: shared by the sink and its syncer.
#[derive(Clone)]
pub(super) struct Settler {
    pub(super) name: &'static str,
    /// Digests of the batches made durable lately (see `dedup`).
    recent: Arc<Mutex<DedupWindow>>,
    pub(super) health: Health,
    pub(super) metrics: PipelineMetrics,
}

impl Settler {
    pub(super) fn new(name: &'static str, metrics: &PipelineMetrics) -> Settler {
        Settler {
            name,
            recent: Arc::new(Mutex::new(DedupWindow::new(DEDUP_BATCHES))),
            health: Health::new(),
            metrics: metrics.clone(),
        }
    }

    pub(super) fn is_repeat(&self, digest: u128) -> bool {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner).contains(digest)
    }

    pub(super) fn durable(&self, mut written: Written) {
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

    pub(super) fn fail(&self, jobs: &mut [Job], e: &io::Error) {
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
pub(super) enum SyncOrder {
    /// A group written to file number `seq`, ending at byte `end`, to be made durable before
    /// it is settled.
    Group { file: Arc<File>, seq: u64, end: u64, written: Written },
    /// A rotated file to complete (sync, rename, directory sync), off the writer's path.
    Finish(Current),
}

/// How the syncer makes a file's written data durable (`File::sync_data`; tests inject faults).
pub(super) type SyncFn = Box<dyn FnMut(&File) -> io::Result<()> + Send>;

/// The syncer thread of a sink with `FsyncPolicy::Batch`.
pub(super) struct Syncer {
    pub(super) tx: Sender<SyncOrder>,
    pub(super) thread: JoinHandle<()>,
    /// The number of the last file whose sync failed (0: none). The sink leaves that file: after
    /// a failed `fdatasync` the kernel may have dropped its dirty pages and will not say so twice.
    pub(super) failed: Arc<AtomicU64>,
}

impl Syncer {
    pub(super) fn start(
        settler: Settler,
        sync: SyncFn,
        dir: PathBuf,
        drop_synced_pages: bool,
    ) -> io::Result<Syncer> {
        let (tx, rx) = crossbeam_channel::bounded(SYNC_QUEUE);
        let failed = Arc::new(AtomicU64::new(0));
        let name = format!("sync-{}", settler.name);
        let worker = SyncWorker {
            settler,
            failed: Arc::clone(&failed),
            sync,
            dir,
            drop_synced_pages,
            dropped: (0, 0),
            dir_synced: 0,
            synced: None,
        };
        let thread = std::thread::Builder::new().name(name).spawn(move || worker.run(&rx))?;
        Ok(Syncer { tx, thread, failed })
    }
}

/// The syncer thread's side: what it syncs with and what it remembers between orders.
struct SyncWorker {
    settler: Settler,
    failed: Arc<AtomicU64>,
    sync: SyncFn,
    dir: PathBuf,
    drop_synced_pages: bool,
    /// The file whose synced pages are being dropped, and where the dropped range ends.
    dropped: (u64, u64),
    /// The newest file whose directory entry is durable.
    dir_synced: u64,
    /// The sync of this round of orders, if any: the file it covered and its outcome.
    synced: Option<(u64, io::Result<()>)>,
}

impl SyncWorker {
    /// Syncs and settles orders as they come; orders that queued up during a sync share the
    /// next one (a second group commit).
    fn run(mut self, rx: &Receiver<SyncOrder>) {
        let mut orders = Vec::new();
        while let Ok(order) = rx.recv() {
            orders.push(order);
            orders.extend(rx.try_iter());
            // Every order drained here was written before the first sync below starts, so one
            // sync per file covers them all.
            self.synced = None;
            for order in orders.drain(..) {
                match order {
                    SyncOrder::Group { file, seq, end, written } => {
                        self.settle(&file, seq, end, written)
                    }
                    SyncOrder::Finish(current) => self.finish(current),
                }
            }
        }
    }

    /// Completes a rotated file.
    fn finish(&self, current: Current) {
        let settler = &self.settler;
        match finish(current, true, &self.dir) {
            Ok(()) => settler.metrics.file_completed(settler.name),
            Err(e) => {
                tracing::error!(sink = settler.name, error = %e, "cannot complete file");
                settler.metrics.write_error(settler.name, io_code(&e));
            }
        }
    }

    /// Settles a group written to file `seq` up to `end`: durable once that file is synced,
    /// failed (and the file marked failed) if it cannot be.
    fn settle(&mut self, file: &File, seq: u64, end: u64, mut written: Written) {
        match self.make_durable(file, seq) {
            Ok(()) => {
                if self.drop_synced_pages {
                    let from = if self.dropped.0 == seq { self.dropped.1 } else { 0 };
                    self.dropped = (seq, drop_pages(file, from, end));
                }
                self.settler.durable(written);
            }
            Err(e) => {
                self.failed.store(seq, Ordering::Release);
                self.settler.fail(&mut written.jobs, &e);
            }
        }
    }

    /// Makes what was written to file `seq` durable: this round's sync of it if there was one,
    /// an error if an earlier sync of it failed, else a new sync (after its directory entry's).
    fn make_durable(&mut self, file: &File, seq: u64) -> io::Result<()> {
        match &self.synced {
            Some((s, result)) if *s == seq => return result.as_ref().map(|_| ()).map_err(copy),
            _ if self.failed.load(Ordering::Acquire) == seq => {
                return Err(io::Error::other("an earlier sync of this file failed"))
            }
            _ => {}
        }
        let mut result = Ok(());
        if seq > self.dir_synced {
            result = sync_dir(&self.dir);
            self.dir_synced = seq;
        }
        let result = result.and_then(|()| (self.sync)(file));
        let shared = result.as_ref().map(|_| ()).map_err(copy);
        self.synced = Some((seq, result));
        shared
    }
}

/// An `io::Error` for each group a failed sync covered.
fn copy(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}
