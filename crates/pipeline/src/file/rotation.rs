//! The file a sink writes into: an append-only NDJSON file that rotates by size and age, the
//! completion of a file (sync, rename from `.ndjson.open` to `.ndjson`), the crash recovery of
//! `.open` files an earlier process left, and dropping synced pages from the page cache.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::{FileSinkConfig, FsyncPolicy};

const OPEN_SUFFIX: &str = ".ndjson.open";
pub(super) const DONE_SUFFIX: &str = ".ndjson";

/// The file being written.
pub(super) struct Current {
    /// Shared with the syncer, which makes written data durable while the next write proceeds.
    pub(super) file: Arc<File>,
    path: PathBuf,
    pub(super) len: u64,
    /// Where the synced pages dropped from the page cache end (interval policy).
    dropped: u64,
    opened: Instant,
}

/// An append-only NDJSON file that rotates by size and age.
pub(super) struct RotatingFile {
    pub(super) config: FileSinkConfig,
    /// Held for the sink's life: a second process must not write (or recover) here.
    _lock: File,
    prefix: &'static str,
    pub(super) current: Option<Current>,
    /// The number of the newest file opened.
    pub(super) seq: u64,
    pub(super) last_sync: Instant,
    pub(super) unsynced: bool,
    /// New files' directory entries are synced by the syncer, before anything in them is
    /// acknowledged, instead of on the writer's path.
    pub(super) defer_dir_sync: bool,
}

fn millis_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
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
    pub(super) fn open(config: FileSinkConfig, prefix: &'static str) -> io::Result<RotatingFile> {
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
    pub(super) fn append(&mut self, mut pieces: &mut [IoSlice<'_>]) -> io::Result<u64> {
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
                current.dropped = drop_pages(&current.file, current.dropped, current.len);
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

    /// Syncs (unless the policy is `Never`), closes and renames the current file to `.ndjson`.
    pub(super) fn complete(&mut self) -> io::Result<()> {
        let Some(current) = self.current.take() else { return Ok(()) };
        self.unsynced = false;
        finish(current, self.config.fsync != FsyncPolicy::Never, &self.config.dir)
    }
}

/// Completes a file: syncs it (when `sync`), closes it and renames it to `.ndjson`; an empty
/// file is removed instead.
pub(super) fn finish(current: Current, sync: bool, dir: &Path) -> io::Result<()> {
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
pub(super) fn drop_pages(file: &File, from: u64, to: u64) -> u64 {
    const PAGE: u64 = 4096;
    let end = to / PAGE * PAGE;
    if end <= from {
        return from;
    }
    let len = std::num::NonZeroU64::new(end - from);
    let _ = rustix::fs::fadvise(file, from, len, rustix::fs::Advice::DontNeed);
    end
}
