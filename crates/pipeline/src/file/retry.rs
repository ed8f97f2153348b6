//! Files whose completion (sync, rename to `.ndjson`, directory sync) failed. Until they are
//! complete, readers (who take only `.ndjson` files) cannot see acknowledged records in them, so
//! they are completed again with a bounded backoff: from the syncer when the sink has one, else
//! from the sink's tick; never on the writer's path of a write.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::io_code;
use super::rotation::{complete_path, Incomplete};
use super::syncer::Settler;
use crate::storage::Storage;

/// The first retry waits this long after the failure is first seen; each failure doubles it.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// At most this many files are remembered; past it the oldest is left to the next start-up's
/// recovery (which completes every `.open` file), with an error in the log.
const MAX_UNFINISHED: usize = 1024;

/// A file to complete again.
#[derive(Debug)]
struct Pending {
    path: PathBuf,
    renamed: bool,
    cut: Option<u64>,
    failures: u32,
    /// When to try next; set by the first tick that sees the file, so that every time in here
    /// comes from the caller's clock.
    next_at: Option<Instant>,
}

/// The files whose completion failed, shared by a sink and its syncer.
#[derive(Debug, Clone, Default)]
pub(super) struct Unfinished(Arc<Mutex<VecDeque<Pending>>>);

fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF.saturating_mul(1 << failures.saturating_sub(1).min(16)).min(MAX_BACKOFF)
}

impl Unfinished {
    /// Remembers a file whose completion failed.
    pub(super) fn push(&self, incomplete: Incomplete) {
        let mut pending = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.len() >= MAX_UNFINISHED {
            if let Some(oldest) = pending.pop_front() {
                tracing::error!(path = %oldest.path.display(), "too many files to complete; this one is left to the next start");
            }
        }
        let Incomplete { path, renamed, cut, .. } = incomplete;
        pending.push_back(Pending { path, renamed, cut, failures: 1, next_at: None });
    }

    /// Whether some file is due for another try at `now` (and schedules the ones seen first).
    pub(super) fn due(&self, now: Instant) -> bool {
        let mut pending = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut due = false;
        for p in pending.iter_mut() {
            let at = *p.next_at.get_or_insert_with(|| now + backoff(p.failures));
            due |= at <= now;
        }
        due
    }

    /// Tries again to complete every file due at `now` (every file when `now` is `None`: at
    /// shutdown); reschedules the ones that fail again.
    pub(super) fn retry(
        &self,
        storage: &dyn Storage,
        dir: &Path,
        sync: bool,
        now: Option<Instant>,
        settler: &Settler,
    ) {
        let taken: VecDeque<Pending> = {
            let mut pending = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            let (due, wait) =
                std::mem::take(&mut *pending).into_iter().partition(|p| match (now, p.next_at) {
                    (None, _) => true,
                    (Some(now), Some(at)) => at <= now,
                    (Some(_), None) => false,
                });
            *pending = wait;
            due
        };
        for mut p in taken {
            let path = p.path.clone();
            match retry_one(storage, p.path, p.renamed, p.cut, sync, dir) {
                Ok(()) => {
                    tracing::info!(sink = settler.name, path = %path.display(), "completed a file on a later try");
                    settler.metrics.file_completed(settler.name);
                }
                Err(gone) if !gone.renamed && gone.error.kind() == io::ErrorKind::NotFound => {
                    tracing::warn!(sink = settler.name, path = %path.display(), "a file to complete is gone");
                }
                Err(incomplete) => {
                    settler.metrics.completion_failed(settler.name, io_code(&incomplete.error));
                    p = Pending {
                        path: incomplete.path,
                        renamed: incomplete.renamed,
                        cut: incomplete.cut,
                        failures: p.failures + 1,
                        next_at: now.map(|now| now + backoff(p.failures + 1)),
                    };
                    self.0.lock().unwrap_or_else(PoisonError::into_inner).push_back(p);
                }
            }
        }
    }
}

/// One more try: cut what a failed write left (`cut`), sync the file's data (unless only the
/// directory sync is missing), rename it, sync the directory.
fn retry_one(
    storage: &dyn Storage,
    path: PathBuf,
    renamed: bool,
    cut: Option<u64>,
    sync: bool,
    dir: &Path,
) -> Result<(), Incomplete> {
    if !renamed && (sync || cut.is_some()) {
        let synced = storage.open(&path).and_then(|file| {
            if let Some(len) = cut {
                file.set_len(len)?;
            }
            match sync {
                true => file.sync_all(),
                false => Ok(()),
            }
        });
        if let Err(error) = synced {
            return Err(Incomplete { path, renamed, cut, error });
        }
    }
    complete_path(storage, path, renamed, sync, dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_bound() {
        let waits: Vec<u64> = (1..10).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
