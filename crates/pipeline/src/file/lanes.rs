//! Sync lanes: a file sink with `FsyncPolicy::Batch` writes into `sync_lanes` files at once,
//! each with its own syncer, and hands each group to the least busy lane. One slow
//! `fdatasync` then holds only the batches of its own lane: the groups written meanwhile go to
//! another file, synced by another thread, and are acknowledged as soon as their own sync is
//! done. Every lane keeps the guarantees of a single file: a group's batches are contiguous in
//! one file and acknowledged only after the `fdatasync` covering them succeeded; a failed sync
//! fails the groups it covered and the lane leaves that file.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::TrySendError;

use super::io_code;
use super::rotation::{self, finish, RotatingFile};
use super::syncer::{Settler, SyncOrder, Syncer, Written};
use crate::sink::Job;

/// The most lanes a sink may have: each is an open file and a thread.
pub const MAX_SYNC_LANES: usize = 16;

/// The letters that tell lanes' files apart, by lane: none for the first, whose names are as
/// a single lane's always were (`records-<ms>-000001…`), then `records-<ms>-b000001…`; digits
/// and letters never collide.
const LANE_TAGS: [&str; MAX_SYNC_LANES] =
    ["", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p"];

/// The letter of lane `lane` in file names.
pub(super) fn lane_tag(lane: usize) -> &'static str {
    LANE_TAGS[lane]
}

/// One lane: its current file and, with fsync per batch, its syncer.
pub(super) struct Lane {
    pub(super) file: RotatingFile,
    pub(super) syncer: Option<Syncer>,
}

/// The lane for the next group: the one with the fewest groups waiting for their sync; among
/// equals, the first. So a light load (each group synced before the next comes) writes one
/// file, as a single lane would, and the other lanes take groups only while the first ones
/// are syncing: no more files than the load needs.
pub(super) fn pick(lanes: &[Lane]) -> usize {
    (0..lanes.len()).min_by_key(|&i| lanes[i].syncer.as_ref().map_or(0, Syncer::load)).unwrap_or(0)
}

impl Lane {
    /// Stops the syncer once it has settled every group written so far; a current file whose
    /// sync failed is then cut to its acknowledged groups before anything completes it.
    pub(super) fn stop_syncer(&mut self, settler: &Settler) {
        if let Some(syncer) = self.syncer.take() {
            let failed = Arc::clone(&syncer.failed);
            if !syncer.stop() {
                tracing::error!(sink = settler.name, "the syncer thread panicked");
            }
            if let Some(current) = self.file.current.as_mut() {
                failed.cut(current);
            }
        }
    }

    /// Leaves the current file if the syncer could not make it durable: after a failed
    /// `fdatasync`, data written before it may be lost without a word. It is completed cut to
    /// its acknowledged groups: the rest was never acknowledged, and may have become holes.
    pub(super) fn leave_file_whose_sync_failed(&mut self, settler: &Settler) {
        if let Some(syncer) = &self.syncer {
            if let Some(current) = self.file.current.as_mut().filter(|c| syncer.failed.is(c.seq)) {
                tracing::warn!(sink = settler.name, "leaving a file whose sync failed");
                syncer.failed.cut(current);
                let _ = self.file.complete();
                self.file.current = None;
            }
        }
    }

    /// Completes the current file if it is over its size or age, through the syncer when there
    /// is one (the writer goes on into a new file at once). Unless `wait`, a syncer with no room
    /// for the order leaves the file as it is, to be completed by a later call: a housekeeping
    /// tick must not wait for a slow sync of a lane it is not writing to.
    pub(super) fn rotate_if_due(
        &mut self,
        now: Instant,
        settler: &Settler,
        wait: bool,
    ) -> io::Result<()> {
        if !self.file.due(now) {
            return Ok(());
        }
        match (&mut self.syncer, self.file.current.take()) {
            (Some(syncer), Some(current)) => {
                let order = SyncOrder::Finish(current);
                let refused = match wait {
                    true => syncer.send(order).err(),
                    false => match syncer.try_send(order) {
                        Ok(()) => None,
                        Err(TrySendError::Full(SyncOrder::Finish(current))) => {
                            self.file.current = Some(current);
                            return Ok(());
                        }
                        Err(TrySendError::Full(order) | TrySendError::Disconnected(order)) => {
                            Some(order)
                        }
                    },
                };
                if let Some(SyncOrder::Finish(mut current)) = refused {
                    // The syncer is gone (it panicked): complete the file here.
                    syncer.failed.cut(&mut current);
                    let storage = &*self.file.storage;
                    if let Err(incomplete) = finish(storage, current, true, &self.file.config.dir) {
                        let error = rotation::copy_error(&incomplete.error);
                        self.file.unfinished.push(incomplete);
                        return Err(error);
                    }
                    settler.metrics.file_completed(settler.name);
                }
            }
            (_, current) => {
                self.file.current = current;
                if let Err(e) = self.file.complete() {
                    settler.metrics.completion_failed(settler.name, io_code(&e));
                    return Err(e);
                }
                settler.metrics.file_completed(settler.name);
            }
        }
        Ok(())
    }

    /// Settles a written group once it is durable: the syncer's to do when there is one, else
    /// done here after committing it as the fsync policy asks.
    pub(super) fn settle(&mut self, written: Written, settler: &Settler) {
        match (&mut self.syncer, &self.file.current) {
            (Some(syncer), Some(current)) => {
                let order = SyncOrder::Group {
                    file: Arc::clone(&current.file),
                    seq: self.file.seq,
                    end: current.len,
                    written,
                };
                self.file.unsynced = false;
                if let Err(SyncOrder::Group { written, .. }) = syncer.send(order) {
                    // The syncer is gone (it panicked): nothing can make this group durable.
                    let mut jobs = written.jobs;
                    let e = io::Error::other("the syncer thread stopped");
                    self.abandon(&mut jobs, &e, settler);
                }
            }
            _ => match self.file.commit(Instant::now()) {
                Ok(()) => settler.durable(written),
                Err(e) => {
                    let mut jobs = written.jobs;
                    self.abandon(&mut jobs, &e, settler);
                }
            },
        }
    }

    /// Leaves the current file (completing it as it is) and fails `jobs`.
    ///
    /// With a syncer, the file is completed by the syncer, after the groups already handed to it:
    /// their `fdatasync` must be the first sync of the file after their writes. A sync here, on
    /// the writer's thread, could fail and take the kernel's one report of lost pages with it;
    /// the syncer's later `fdatasync` would then succeed and acknowledge groups that are gone.
    pub(super) fn abandon(&mut self, jobs: &mut [Job], e: &io::Error, settler: &Settler) {
        // Start afresh in a new file: the old one may be unusable (or the disk full).
        if let (Some(syncer), Some(current)) = (&mut self.syncer, self.file.current.take()) {
            match syncer.send(SyncOrder::Finish(current)) {
                Ok(()) => {}
                // The syncer is gone (it panicked): nothing waits for it; complete it here.
                Err(SyncOrder::Finish(mut current)) => {
                    syncer.failed.cut(&mut current);
                    self.file.current = Some(current);
                }
                Err(_) => {}
            }
        }
        let _ = self.file.complete();
        self.file.current = None;
        settler.fail(jobs, e);
    }
}
