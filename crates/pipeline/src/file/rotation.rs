//! The file a sink writes into: an append-only file (NDJSON, or protobuf frames for traces) that
//! rotates by size and age, the completion of a file (sync, rename from `….open` to `.ndjson` or
//! `.binpb`), and dropping synced pages from the page cache. Everything goes through the sink's
//! [`Storage`].

use std::io::{self, IoSlice};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::recover::recover;
use super::retry::Unfinished;
use super::{FileSinkConfig, FsyncPolicy};
use crate::storage::{LockGuard, Storage, StoredFile};

pub(super) const OPEN_SUFFIX: &str = ".ndjson.open";
pub(super) const DONE_SUFFIX: &str = ".ndjson";
/// The name of a frames file being written (`frames`); `.binpb` once complete.
pub(super) const FRAMES_OPEN: &str = ".binpb.open";

/// What a sink's files hold, as their names say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    /// One record or dead letter per line: `….ndjson`.
    Ndjson,
    /// Protobuf frames, one record each (`frames`): `….binpb`.
    Frames,
}

impl Format {
    fn open_suffix(self) -> &'static str {
        match self {
            Format::Ndjson => OPEN_SUFFIX,
            Format::Frames => FRAMES_OPEN,
        }
    }
}

/// The file being written.
pub(super) struct Current {
    /// Shared with the syncer, which makes written data durable while the next write proceeds.
    pub(super) file: Arc<dyn StoredFile>,
    pub(super) path: PathBuf,
    /// Its number in the lane (`RotatingFile::seq` when it was opened).
    pub(super) seq: u64,
    pub(super) len: u64,
    /// Where the synced pages dropped from the page cache end (interval policy).
    dropped: u64,
    opened: Instant,
    /// A failed write could not be cut back: bytes past `len` must go before completion.
    torn: bool,
}

impl Current {
    /// Keeps only the first `end` bytes when it is completed: what a failed sync may have lost
    /// (never acknowledged) goes, so a completed file never holds the holes it could leave.
    pub(super) fn keep_only(&mut self, end: u64) {
        if end < self.len {
            self.len = end;
            self.torn = true;
        }
    }
}

/// An append-only file that rotates by size and age.
pub(super) struct RotatingFile {
    pub(super) config: FileSinkConfig,
    pub(super) format: Format,
    pub(super) storage: Arc<dyn Storage>,
    /// Held for the sink's life by its first lane: a second process must not write (or
    /// recover) here.
    _lock: Option<LockGuard>,
    prefix: &'static str,
    /// The lane's letter in file names (`records-<ms>-b000001…`), so that lanes' names never
    /// collide; empty for the first lane, whose names are as they always were.
    lane: &'static str,
    pub(super) current: Option<Current>,
    /// The number of the newest file opened.
    pub(super) seq: u64,
    pub(super) last_sync: Instant,
    pub(super) unsynced: bool,
    /// New files' directory entries are synced by the syncer, before anything in them is
    /// acknowledged, instead of on the writer's path.
    pub(super) defer_dir_sync: bool,
    /// Files whose completion failed, completed again later.
    pub(super) unfinished: Unfinished,
}

pub(super) fn millis_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `….ndjson.open` → `….ndjson`, `….binpb.open` → `….binpb`.
pub(super) fn done_path(open: &Path) -> PathBuf {
    let path = open.to_string_lossy();
    PathBuf::from(path.strip_suffix(".open").unwrap_or(&path))
}

impl RotatingFile {
    pub(super) fn open(
        storage: Arc<dyn Storage>,
        config: FileSinkConfig,
        (prefix, format): (&'static str, Format),
        lane: &'static str,
    ) -> io::Result<RotatingFile> {
        storage.create_dir_all(&config.dir, config.dir_mode)?;
        let lock = storage.lock(&config.dir.join(format!(".{prefix}.lock")), config.file_mode)?;
        let recovered = recover(&*storage, &config, prefix)?;
        if recovered > 0 {
            tracing::info!(dir = %config.dir.display(), files = recovered, "completed files left open by an earlier run");
        }
        Ok(RotatingFile {
            config,
            format,
            storage,
            _lock: Some(lock),
            prefix,
            lane,
            current: None,
            seq: 0,
            last_sync: Instant::now(),
            unsynced: false,
            defer_dir_sync: false,
            unfinished: Unfinished::default(),
        })
    }

    /// Another lane's file in the same directory (after this one's lock and recovery), sharing
    /// the files whose completion failed.
    pub(super) fn sibling(&self, lane: &'static str) -> RotatingFile {
        RotatingFile {
            config: self.config.clone(),
            format: self.format,
            storage: Arc::clone(&self.storage),
            _lock: None,
            prefix: self.prefix,
            lane,
            current: None,
            seq: 0,
            last_sync: Instant::now(),
            unsynced: false,
            defer_dir_sync: self.defer_dir_sync,
            unfinished: self.unfinished.clone(),
        }
    }

    fn current(&mut self) -> io::Result<&mut Current> {
        if self.current.is_none() {
            self.seq += 1;
            let suffix = self.format.open_suffix();
            let (prefix, lane, ms, seq) = (self.prefix, self.lane, millis_now(), self.seq);
            let name = format!("{prefix}-{ms:013}-{lane}{seq:06}{suffix}");
            let path = self.config.dir.join(name);
            let file = self.storage.create(&path, self.config.file_mode)?;
            if self.config.fsync != FsyncPolicy::Never && !self.defer_dir_sync {
                self.storage.sync_dir(&self.config.dir)?;
            }
            let file = Arc::from(file);
            self.current = Some(Current {
                file,
                path,
                seq,
                len: 0,
                dropped: 0,
                opened: Instant::now(),
                torn: false,
            });
        }
        Ok(self.current.as_mut().expect("current was just set"))
    }

    /// Appends `pieces` (together, whole lines or frames) with as few `writev` calls as the kernel allows.
    /// On failure the file is cut back to where it was, so that no partial line or frame of an
    /// unacknowledged write remains.
    pub(super) fn append(&mut self, mut pieces: &mut [IoSlice<'_>]) -> io::Result<u64> {
        let current = self.current()?;
        let mut written = 0u64;
        while !pieces.is_empty() {
            match current.file.append(pieces) {
                Ok(0) => {
                    current.torn |= current.file.set_len(current.len).is_err();
                    return Err(io::ErrorKind::WriteZero.into());
                }
                Ok(n) => {
                    written += n as u64;
                    IoSlice::advance_slices(&mut pieces, n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    current.torn |= current.file.set_len(current.len).is_err();
                    return Err(e);
                }
            }
        }
        current.len += written;
        self.unsynced = true;
        Ok(written)
    }

    /// Makes appended data durable as the policy asks before acknowledging it.
    pub(super) fn commit(&mut self, now: Instant) -> io::Result<()> {
        match self.config.fsync {
            FsyncPolicy::Batch => self.sync(now),
            FsyncPolicy::Interval(every) if now.duration_since(self.last_sync) >= every => {
                self.sync(now)
            }
            FsyncPolicy::Interval(_) | FsyncPolicy::Never => Ok(()),
        }
    }

    pub(super) fn sync(&mut self, now: Instant) -> io::Result<()> {
        if let (true, Some(current)) = (self.unsynced, self.current.as_mut()) {
            current.file.sync_data()?;
            if self.config.drop_synced_pages {
                current.dropped = drop_pages(&*current.file, current.dropped, current.len);
            }
        }
        self.unsynced = false;
        self.last_sync = now;
        Ok(())
    }

    /// Whether the current file is over its size or age.
    pub(super) fn due(&self, now: Instant) -> bool {
        self.current.as_ref().is_some_and(|c| {
            c.len >= self.config.max_file_bytes
                || (c.len > 0 && now.duration_since(c.opened) >= self.config.max_file_age)
        })
    }

    /// Syncs (unless the policy is `Never`), closes and renames the current file to `.ndjson`
    /// (`.binpb`).
    /// A file that cannot be completed is remembered and completed again later.
    pub(super) fn complete(&mut self) -> io::Result<()> {
        let Some(current) = self.current.take() else { return Ok(()) };
        self.unsynced = false;
        let sync = self.config.fsync != FsyncPolicy::Never;
        finish(&*self.storage, current, sync, &self.config.dir).map_err(|incomplete| {
            let error = copy_error(&incomplete.error);
            self.unfinished.push(incomplete);
            error
        })
    }
}

/// A file whose completion failed: where it is, and how far its completion got.
#[derive(Debug)]
pub(super) struct Incomplete {
    /// The `….open` path.
    pub(super) path: PathBuf,
    /// Renamed already; only the directory sync is missing.
    pub(super) renamed: bool,
    /// A failed write left bytes past this length, to cut before the file is complete.
    pub(super) cut: Option<u64>,
    pub(super) error: io::Error,
}

/// Completes a file: syncs it (when `sync`), closes it and renames it to its complete name, then syncs
/// the directory; an empty file is removed instead.
pub(super) fn finish(
    storage: &dyn Storage,
    current: Current,
    sync: bool,
    dir: &Path,
) -> Result<(), Incomplete> {
    let Current { file, path, len, torn, .. } = current;
    if len == 0 {
        // Nothing in it was ever acknowledged. Emptied first when something is to go (a failed
        // write's or a failed sync's bytes): recovery would complete a leftover that is not
        // empty, and removes an empty one.
        if let Err(error) = if torn { file.set_len(0) } else { Ok(()) } {
            return Err(Incomplete { path, renamed: false, cut: Some(0), error });
        }
        drop(file);
        return storage.remove(&path).map_err(|error| Incomplete {
            path,
            renamed: true,
            cut: None,
            error,
        });
    }
    // A completed file holds whole lines (frames) only: cut what a failed write left.
    if let Err(error) = if torn { file.set_len(len) } else { Ok(()) } {
        return Err(Incomplete { path, renamed: false, cut: Some(len), error });
    }
    if sync {
        if let Err(error) = file.sync_all() {
            return Err(Incomplete { path, renamed: false, cut: None, error });
        }
    }
    drop(file);
    complete_path(storage, path, false, sync, dir)
}

/// Renames a closed, synced `….open` file to its complete name (unless `renamed`) and syncs the
/// directory (when `sync`).
pub(super) fn complete_path(
    storage: &dyn Storage,
    path: PathBuf,
    renamed: bool,
    sync: bool,
    dir: &Path,
) -> Result<(), Incomplete> {
    if !renamed {
        if let Err(error) = storage.rename(&path, &done_path(&path)) {
            return Err(Incomplete { path, renamed: false, cut: None, error });
        }
    }
    match sync {
        true => storage.sync_dir(dir).map_err(|error| Incomplete {
            path,
            renamed: true,
            cut: None,
            error,
        }),
        false => Ok(()),
    }
}

/// An `io::Error` like `e` (which cannot be cloned), for a second owner.
pub(super) fn copy_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

/// Drops the pages of `file` from `from` to `to` (synced data) out of the page cache, except a
/// partly written last page, which the next append would otherwise read back in. Returns where
/// the dropped range now ends. Advice only: a refusal changes nothing that matters.
pub(super) fn drop_pages(file: &dyn StoredFile, from: u64, to: u64) -> u64 {
    const PAGE: u64 = 4096;
    let end = to / PAGE * PAGE;
    if end <= from {
        return from;
    }
    file.drop_cache(from, end);
    end
}
