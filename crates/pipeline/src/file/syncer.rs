//! Settling written groups, and the syncer thread of a sink with `FsyncPolicy::Batch`: it makes
//! each written group durable (one `fdatasync` for every group queued meanwhile) and settles it
//! while the sink already writes the next, and completes rotated files off the writer's path
//! (and again later, when a completion failed).

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use record::SinkFailure;

use super::io_code;
use super::retry::Unfinished;
use super::rotation::{copy_error, drop_pages, finish, Current};
use crate::dedup::DedupWindow;
use crate::metrics::Stage;
use crate::sink::{Health, Job};
use crate::storage::{Storage, StoredFile};
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
    /// When the write ended and the group went on to be synced (the sync stage's start).
    pub(super) written_at: Instant,
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
        let synced = written.written_at.elapsed().as_secs_f64();
        self.metrics.stage(self.name, Stage::Sync, synced, written.jobs.len());
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

/// The number of a lane's last file whose sync failed (0: none), and where its acknowledged
/// groups end: it is completed cut there, since what follows was never acknowledged and the
/// failed sync may have left holes in it.
#[derive(Debug, Default)]
pub(super) struct Failed {
    seq: AtomicU64,
    /// Stored before `seq`.
    end: AtomicU64,
}

impl Failed {
    /// Whether the sync of file `seq` failed.
    pub(super) fn is(&self, seq: u64) -> bool {
        self.seq.load(Ordering::Acquire) == seq
    }

    /// Records the first failed sync of file `seq`, whose acknowledged groups end at `end`.
    fn record(&self, seq: u64, end: u64) {
        if !self.is(seq) {
            self.end.store(end, Ordering::Release);
            self.seq.store(seq, Ordering::Release);
        }
    }

    /// Cuts `current` to its acknowledged groups if its sync failed.
    pub(super) fn cut(&self, current: &mut Current) {
        if self.is(current.seq) {
            current.keep_only(self.end.load(Ordering::Acquire));
        }
    }
}

/// Work for the syncer, done in the order it was written.
pub(super) enum SyncOrder {
    /// A group written to file number `seq`, ending at byte `end`, to be made durable before
    /// it is settled.
    Group { file: Arc<dyn StoredFile>, seq: u64, end: u64, written: Written },
    /// A rotated file to complete (sync, rename, directory sync), off the writer's path.
    Finish(Current),
    /// Try again to complete the files whose completion failed and are due at this time.
    Retry(Instant),
}

/// Where the syncer's work runs.
enum Runner {
    /// Its own thread: the usual case.
    Thread(JoinHandle<()>),
    /// The writer's thread, right after each order (a storage that asks for one thread).
    Inline(Box<SyncWorker>, Receiver<SyncOrder>),
}

/// The syncer of a sink with `FsyncPolicy::Batch`.
pub(super) struct Syncer {
    tx: Sender<SyncOrder>,
    runner: Runner,
    /// The last file whose sync failed. The sink leaves that file: after a failed `fdatasync`
    /// the kernel may have dropped its dirty pages and will not say so twice.
    pub(super) failed: Arc<Failed>,
    /// Groups handed over and not yet settled: how busy this lane is (see `lanes`).
    pending: Arc<AtomicUsize>,
}

/// What the syncer needs besides its orders.
pub(super) struct SyncSetup {
    pub(super) settler: Settler,
    pub(super) storage: Arc<dyn Storage>,
    pub(super) unfinished: Unfinished,
    pub(super) dir: PathBuf,
    pub(super) drop_synced_pages: bool,
}

impl Syncer {
    /// Starts the syncer of lane `lane` (which only names its thread).
    pub(super) fn start(setup: SyncSetup, lane: usize) -> io::Result<Syncer> {
        let (tx, rx) = crossbeam_channel::bounded(SYNC_QUEUE);
        let failed = Arc::new(Failed::default());
        let pending = Arc::new(AtomicUsize::new(0));
        let name = format!("sync-{}-{lane}", setup.settler.name);
        let inline = setup.storage.single_threaded();
        let worker = SyncWorker {
            settler: setup.settler,
            failed: Arc::clone(&failed),
            pending: Arc::clone(&pending),
            storage: setup.storage,
            unfinished: setup.unfinished,
            dir: setup.dir,
            drop_synced_pages: setup.drop_synced_pages,
            dropped: (0, 0),
            durable_end: (0, 0),
            dir_synced: 0,
            synced: None,
        };
        let runner = match inline {
            true => Runner::Inline(Box::new(worker), rx),
            false => Runner::Thread(
                std::thread::Builder::new().name(name).spawn(move || worker.run(&rx))?,
            ),
        };
        Ok(Syncer { tx, runner, failed, pending })
    }

    /// Groups handed over and not yet settled.
    pub(super) fn load(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Hands `order` over (waiting while `SYNC_QUEUE` orders wait); gives it back if the syncer
    /// thread is gone.
    pub(super) fn send(&mut self, order: SyncOrder) -> Result<(), SyncOrder> {
        let group = matches!(order, SyncOrder::Group { .. });
        // Counted before the syncer can see it, so that its decrement never comes first.
        if group {
            self.pending.fetch_add(1, Ordering::AcqRel);
        }
        if let Err(crossbeam_channel::SendError(order)) = self.tx.send(order) {
            if group {
                self.pending.fetch_sub(1, Ordering::AcqRel);
            }
            return Err(order);
        }
        self.run_inline();
        Ok(())
    }

    /// Hands `order` (not a group) over unless that would wait; gives it back if it would, or
    /// if the syncer thread is gone.
    pub(super) fn try_send(&mut self, order: SyncOrder) -> Result<(), TrySendError<SyncOrder>> {
        debug_assert!(!matches!(order, SyncOrder::Group { .. }), "groups are counted: send");
        self.tx.try_send(order)?;
        self.run_inline();
        Ok(())
    }

    /// With an inline runner, does what was handed over now.
    fn run_inline(&mut self) {
        if let Runner::Inline(worker, rx) = &mut self.runner {
            worker.round(rx.try_iter().collect());
        }
    }

    /// Stops once every order handed over is done; returns whether the thread ended cleanly.
    pub(super) fn stop(self) -> bool {
        drop(self.tx);
        match self.runner {
            Runner::Thread(thread) => thread.join().is_ok(),
            Runner::Inline(..) => true,
        }
    }
}

/// The syncer's side: what it syncs with and what it remembers between orders.
struct SyncWorker {
    settler: Settler,
    failed: Arc<Failed>,
    pending: Arc<AtomicUsize>,
    storage: Arc<dyn Storage>,
    unfinished: Unfinished,
    dir: PathBuf,
    drop_synced_pages: bool,
    /// The file whose synced pages are being dropped, and where the dropped range ends.
    dropped: (u64, u64),
    /// The file last synced, and where its last group made durable ends.
    durable_end: (u64, u64),
    /// The newest file whose directory entry is durable.
    dir_synced: u64,
    /// The sync of this round of orders, if any: the file it covered and its outcome.
    synced: Option<(u64, io::Result<()>)>,
}

impl SyncWorker {
    /// Syncs and settles orders as they come; orders that queued up during a sync share the
    /// next one (a second group commit).
    fn run(mut self, rx: &Receiver<SyncOrder>) {
        while let Ok(order) = rx.recv() {
            let mut orders = vec![order];
            orders.extend(rx.try_iter());
            self.round(orders);
        }
    }

    /// Does a round of orders.
    fn round(&mut self, orders: Vec<SyncOrder>) {
        // Every order drained here was written before the first sync below starts, so one
        // sync per file covers them all.
        self.synced = None;
        for order in orders {
            match order {
                SyncOrder::Group { file, seq, end, written } => {
                    self.settle(&*file, seq, end, written)
                }
                SyncOrder::Finish(current) => self.finish(current),
                SyncOrder::Retry(now) => {
                    self.unfinished.retry(&*self.storage, &self.dir, true, Some(now), &self.settler)
                }
            }
        }
    }

    /// Completes a rotated file; one that cannot be completed is tried again later. One whose
    /// sync failed is cut to its acknowledged groups first.
    fn finish(&self, mut current: Current) {
        self.failed.cut(&mut current);
        let settler = &self.settler;
        match finish(&*self.storage, current, true, &self.dir) {
            Ok(()) => settler.metrics.file_completed(settler.name),
            Err(incomplete) => {
                let code = io_code(&incomplete.error);
                tracing::error!(sink = settler.name, error = %incomplete.error, "cannot complete file; will try again");
                settler.metrics.completion_failed(settler.name, code);
                self.unfinished.push(incomplete);
            }
        }
    }

    /// Settles a group written to file `seq` up to `end`: durable once that file is synced,
    /// failed (and the file marked failed) if it cannot be.
    fn settle(&mut self, file: &dyn StoredFile, seq: u64, end: u64, mut written: Written) {
        let synced = self.make_durable(file, seq);
        // Free before the acknowledgements go out: a client that sends its next batch once
        // this one is acknowledged finds this lane free again (and a light load one file).
        self.pending.fetch_sub(1, Ordering::AcqRel);
        match synced {
            Ok(()) => {
                self.durable_end = (seq, end);
                self.settler.durable(written);
                // After the acknowledgements: dropping a group's pages takes a fraction of a
                // millisecond that no batch needs to wait for.
                if self.drop_synced_pages {
                    let from = if self.dropped.0 == seq { self.dropped.1 } else { 0 };
                    self.dropped = (seq, drop_pages(file, from, end));
                }
            }
            Err(e) => {
                let durable = if self.durable_end.0 == seq { self.durable_end.1 } else { 0 };
                self.failed.record(seq, durable);
                self.settler.fail(&mut written.jobs, &e);
            }
        }
    }

    /// Makes what was written to file `seq` durable: this round's sync of it if there was one,
    /// an error if an earlier sync of it failed, else a new sync (after its directory entry's).
    fn make_durable(&mut self, file: &dyn StoredFile, seq: u64) -> io::Result<()> {
        match &self.synced {
            Some((s, result)) if *s == seq => {
                return result.as_ref().map(|_| ()).map_err(copy_error)
            }
            _ if self.failed.is(seq) => {
                return Err(io::Error::other("an earlier sync of this file failed"))
            }
            _ => {}
        }
        let mut result = Ok(());
        if seq > self.dir_synced {
            result = self.storage.sync_dir(&self.dir);
            self.dir_synced = seq;
        }
        let result = result.and_then(|()| {
            let started = Instant::now();
            let synced = file.sync_data();
            self.settler.metrics.fdatasync(self.settler.name, started.elapsed().as_secs_f64());
            synced
        });
        let shared = result.as_ref().map(|_| ()).map_err(copy_error);
        self.synced = Some((seq, result));
        shared
    }
}
