//! The Kafka sink's disk spool: an append-only log of batches, each acknowledged to its client once
//! it is appended and synced, produced to Kafka later in the order it was appended, and removed
//! only after the broker acknowledged every record of it.
//!
//! On disk (`dir`, one process at a time by a lock file): segment files of checksummed frames
//! (`segment`, `frame`) and a durable cursor (`cursor`) before which everything is acknowledged.
//! At start-up, segments wholly before the cursor are deleted and a torn last frame (a write a
//! crash cut) is cut off; what lies after the cursor is produced again. The cursor is written at
//! most every `CURSOR_EVERY`, so a crash can produce some batches twice (at least once); it never
//! skips one. `max_bytes` bounds the segment files: a batch that does not fit is refused.
//!
//! Everything here runs on the Kafka sink's thread; nothing is shared.

mod cursor;
pub(crate) mod frame;
mod metrics;
mod segment;

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IoSlice};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use self::cursor::Pos;
pub(crate) use self::metrics::SpoolMetrics;
use self::segment::At;
use crate::storage::{Disk, LockGuard, Storage, StoredFile};

/// Permissions of spool files: they hold the records.
pub(crate) const FILE_MODE: u32 = 0o640;
const DIR_MODE: u32 = 0o750;
/// A drained spool starts a new segment (and drops the old) once its head is this large.
const RECYCLE_BYTES: u64 = 1 << 20;

crate::named_setting! {
    /// When the Kafka sink writes a batch to its spool.
    pub enum SpoolMode {
        /// Only while no broker is reachable (and until what was spooled meanwhile is produced):
        /// otherwise a batch is acknowledged after the broker acknowledged it.
        Outage = "outage",
        /// Always, as a write-ahead log: every batch is acknowledged once it is in the spool.
        Always = "always",
    }
}

/// `[sinks.kafka.spool]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Where the segment files and the cursor live.
    pub dir: PathBuf,
    /// The most the segment files may hold; past it, batches are refused (`spool_full`).
    pub max_bytes: u64,
    /// When batches are spooled.
    pub mode: SpoolMode,
}

impl SpoolConfig {
    /// The default limit: 1 GiB.
    pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

    /// Defaults for `dir`: 1 GiB, spooling during outages only.
    pub fn new(dir: impl Into<PathBuf>) -> SpoolConfig {
        SpoolConfig { dir: dir.into(), max_bytes: Self::DEFAULT_MAX_BYTES, mode: SpoolMode::Outage }
    }
}

/// What start-up found in the spool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Bytes of unacknowledged frames, to be produced.
    pub pending_bytes: u64,
    /// Bytes of a torn last frame, cut off.
    pub cut_bytes: u64,
}

/// The result of reading at a position.
#[derive(Debug)]
pub enum Read {
    /// A frame's payload, and the position after it.
    Frame(bytes::Bytes, Pos),
    /// Nothing more has been appended.
    End,
    /// A damaged frame (the disk's fault: it was synced whole): skipped to the next segment.
    Damaged(Pos),
}

/// An open spool. The Kafka sink is its one user; it is public so that crash-consistency tests
/// can drive it on a simulated [`Storage`] the way the sink does.
pub struct Spool {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    /// Every segment (number, valid length), oldest first; the last is being appended to.
    segments: VecDeque<(u64, u64)>,
    head: Box<dyn StoredFile>,
    /// A failed append left bytes past the head's valid end that could not be cut then: they
    /// are cut before anything else is appended, so no unacknowledged frame precedes it.
    head_dirty: bool,
    reader: Option<(u64, Box<dyn StoredFile>)>,
    committed: Pos,
    durable: Pos,
    _lock: LockGuard,
}

impl fmt::Debug for Spool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.dir)
            .field("segments", &self.segments)
            .field("committed", &self.committed)
            .field("durable", &self.durable)
            .finish()
    }
}

/// Appends `bytes` whole to `file` (an append may take fewer bytes than asked).
pub(crate) fn write_all(file: &dyn StoredFile, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match file.append(&[IoSlice::new(bytes)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Opens `path` to append to, creating it if it is missing (the caller syncs the directory).
fn create_or_open(storage: &dyn Storage, path: &Path) -> io::Result<Box<dyn StoredFile>> {
    match storage.create(path, FILE_MODE) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => storage.open(path),
        file => file,
    }
}

/// Appends to `out` one frame holding `payload` as it is. The Kafka sink's payloads are batches
/// (see `frame`); the spool itself never looks inside one.
pub fn push_frame(out: &mut Vec<u8>, payload: &[u8]) {
    frame::wrap(out, payload);
}

/// Opens the last segment to append to, cutting a torn last frame off it (or starts the first
/// segment, durably); returns it and how many bytes were cut.
fn recover_head(
    storage: &dyn Storage,
    dir: &Path,
    segments: &mut VecDeque<(u64, u64)>,
    committed: Pos,
) -> io::Result<(Box<dyn StoredFile>, u64)> {
    let Some((last, len)) = segments.back_mut() else {
        let file = create_or_open(storage, &segment::path(dir, committed.segment))?;
        storage.sync_dir(dir)?;
        segments.push_back((committed.segment, 0));
        return Ok((file, 0));
    };
    let from = if *last == committed.segment { committed.offset.min(*len) } else { 0 };
    let file = storage.open(&segment::path(dir, *last))?;
    let (end, _) = segment::valid_end(&*file, from)?;
    let mut cut = 0;
    if end < *len {
        cut = *len - end;
        file.set_len(end)?;
        file.sync_all()?;
        *len = end;
    }
    Ok((file, cut))
}

impl Spool {
    /// Opens (creating) the spool in `config.dir` on the local disk, recovering what a crash
    /// left.
    pub fn open(config: &SpoolConfig) -> io::Result<(Spool, Recovered)> {
        Spool::open_on(Arc::new(Disk), config)
    }

    /// Opens (creating) the spool in `config.dir` on `storage`, recovering what a crash left.
    pub fn open_on(
        storage: Arc<dyn Storage>,
        config: &SpoolConfig,
    ) -> io::Result<(Spool, Recovered)> {
        let dir = config.dir.clone();
        storage.create_dir_all(&dir, DIR_MODE)?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            storage.sync_dir(parent)?;
        }
        let lock = storage.lock(&dir.join("lock"), FILE_MODE).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock => {
                io::Error::other(format!("spool {} is in use by another process", dir.display()))
            }
            _ => e,
        })?;
        let numbers = segment::list(&*storage, &dir)?;
        let cursor = cursor::read(&*storage, &dir)?.unwrap_or_default();
        let mut segments = VecDeque::new();
        for number in numbers {
            let path = segment::path(&dir, number);
            if number < cursor.segment {
                storage.remove(&path)?;
            } else {
                segments.push_back((number, storage.open(&path)?.size()?));
            }
        }
        // The entries found (and the removals above) may not be durable: a segment created by a
        // roll whose directory sync failed, or did not happen, becomes the head appended to.
        storage.sync_dir(&dir)?;
        let committed = match segments.front() {
            Some(&(first, _)) if first == cursor.segment => cursor,
            Some(&(first, _)) => Pos { segment: first, offset: 0 },
            None => Pos { segment: cursor.segment + 1, offset: 0 },
        };
        let (head, cut_bytes) = recover_head(&*storage, &dir, &mut segments, committed)?;
        let segment_bytes = (config.max_bytes / 8).clamp(64 << 10, 64 << 20);
        let mut spool = Spool {
            storage,
            dir,
            max_bytes: config.max_bytes,
            segment_bytes,
            segments,
            head,
            head_dirty: false,
            reader: None,
            committed,
            durable: cursor,
            _lock: lock,
        };
        spool.committed = spool.normalise(committed);
        let recovered = Recovered { pending_bytes: spool.pending_bytes(), cut_bytes };
        Ok((spool, recovered))
    }

    /// The bytes of the segment files.
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|(_, len)| len).sum()
    }

    /// The bytes of frames not yet acknowledged by the broker.
    pub(crate) fn pending_bytes(&self) -> u64 {
        let from = self.committed.segment;
        let bytes: u64 = self.segments.iter().filter(|(n, _)| *n >= from).map(|(_, l)| l).sum();
        bytes.saturating_sub(self.committed.offset)
    }

    /// How many more bytes may be appended.
    pub fn room(&self) -> u64 {
        self.max_bytes.saturating_sub(self.disk_bytes())
    }

    /// Where the next frame will be appended.
    pub fn end(&self) -> Pos {
        let (segment, offset) = *self.segments.back().unwrap_or(&(0, 0));
        Pos { segment, offset }
    }

    /// The position before which everything is acknowledged.
    pub fn committed(&self) -> Pos {
        self.committed
    }

    /// Whether everything appended has been acknowledged by the broker.
    pub fn drained(&self) -> bool {
        self.committed >= self.end()
    }

    /// Appends `frames` (whole frames) and syncs them: once this returns `Ok`, they survive a
    /// crash. On error nothing of them is kept.
    pub fn append(&mut self, frames: &[u8]) -> io::Result<()> {
        let (_, len) = *self.segments.back().unwrap_or(&(0, 0));
        if self.head_dirty {
            // Appends land at the file's end: what an earlier failure left there goes first.
            self.head.set_len(len)?;
            self.head_dirty = false;
        }
        let written = write_all(&*self.head, frames).and_then(|()| self.head.sync_data());
        if let Err(e) = written {
            // Cut what may have reached the file, so no unacknowledged frame is replayed.
            let cut = self.head.set_len(len).and_then(|()| self.head.sync_data());
            self.head_dirty = cut.is_err();
            return Err(e);
        }
        if let Some((_, len)) = self.segments.back_mut() {
            *len += frames.len() as u64;
        }
        if len + frames.len() as u64 >= self.segment_bytes {
            if let Err(e) = self.start_segment() {
                tracing::warn!(sink = "kafka", error = %e, "cannot start a spool segment");
            }
        }
        Ok(())
    }

    /// Starts a new, empty head segment, durably.
    fn start_segment(&mut self) -> io::Result<()> {
        let number = self.end().segment + 1;
        // It may exist, empty: an earlier start created it but could not sync the directory.
        let file = create_or_open(&*self.storage, &segment::path(&self.dir, number))?;
        self.storage.sync_dir(&self.dir)?;
        self.head = file;
        self.head_dirty = false;
        self.segments.push_back((number, 0));
        Ok(())
    }

    /// The frame at `pos`.
    pub fn read(&mut self, pos: Pos) -> io::Result<Read> {
        let pos = self.normalise(pos);
        let Some(&(number, len)) = self.segments.iter().find(|(n, _)| *n == pos.segment) else {
            return Ok(Read::End);
        };
        if self.reader.as_ref().is_none_or(|(n, _)| *n != number) {
            self.reader = Some((number, self.storage.open(&segment::path(&self.dir, number))?));
        }
        let Some((_, file)) = &self.reader else { return Ok(Read::End) };
        Ok(match segment::read_at(&**file, pos.offset, len)? {
            At::Frame(payload, next) => {
                Read::Frame(payload, self.normalise(Pos { segment: number, offset: next }))
            }
            At::End => Read::End,
            At::Damaged => {
                tracing::error!(
                    sink = "kafka",
                    segment = number,
                    offset = pos.offset,
                    "damaged spool frame: skipping the rest of its segment"
                );
                Read::Damaged(self.normalise(Pos { segment: number, offset: len }))
            }
        })
    }

    /// `pos`, the end of a segment that has a successor being the successor's start. A position
    /// before the committed one is the committed one: the end of a segment already deleted is
    /// where its successor starts.
    pub(crate) fn normalise(&self, pos: Pos) -> Pos {
        let mut pos = pos.max(self.committed);
        for pair in self.segments.iter().collect::<Vec<_>>().windows(2) {
            let (&(number, len), &(next, _)) = (pair[0], pair[1]);
            if number == pos.segment && pos.offset >= len {
                pos = Pos { segment: next, offset: 0 };
            }
        }
        pos
    }

    /// Records that everything before `pos` is acknowledged (durable at the next `persist`).
    pub fn commit(&mut self, pos: Pos) {
        let pos = self.normalise(pos);
        if pos > self.committed {
            self.committed = pos;
        }
    }

    /// Writes the cursor if it moved, then deletes the segments wholly before it (and, when
    /// drained, recycles a large head segment).
    pub fn persist(&mut self) -> io::Result<()> {
        if self.drained() && self.end().offset >= RECYCLE_BYTES.min(self.segment_bytes / 4) {
            self.start_segment()?;
            self.committed = self.end();
        }
        if self.committed == self.durable {
            return Ok(());
        }
        cursor::write(&*self.storage, &self.dir, self.committed)?;
        self.durable = self.committed;
        while let Some(&(number, _)) = self.segments.front() {
            if number >= self.committed.segment {
                break;
            }
            self.storage.remove(&segment::path(&self.dir, number))?;
            self.segments.pop_front();
            if self.reader.as_ref().is_some_and(|(n, _)| *n == number) {
                self.reader = None;
            }
        }
        self.storage.sync_dir(&self.dir)
    }
}

#[cfg(test)]
mod tests;
