//! A simulated disk for crash-consistency tests: a [`Storage`] that keeps what was synced apart
//! from what was only written, and at a seeded power loss keeps of the unsynced rest what a
//! real file system may keep: nothing, a prefix, the new length with some 512-byte sectors
//! never written (zeros), or all of it; of the directory changes not made durable by a
//! directory sync, a prefix in order (a metadata journal). Faults (an operation failing with `EIO`) can be
//! injected at random or for the next operation of a kind. Everything is driven by one seeded
//! generator and the sink runs single-threaded on it, so a seed replays exactly.

// Each test binary uses part of it.
#![allow(dead_code)]
pub(crate) mod seeded;
pub(crate) mod threaded;
use std::collections::{BTreeMap, HashSet};
use std::io::{self, IoSlice};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pipeline::file::FileSink;
use pipeline::storage::{LockGuard, Storage, StoredFile};
use pipeline::{Health, Job, Sink, Takes};
use record::{Batch, FieldSpan, Record, RecordMeta};

#[allow(unused_imports)]
pub(crate) use seeded::{run_seeds, seeds, Rng};

/// Kinds of operations, for injected faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Op {
    Append,
    SyncData,
    SyncAll,
    SyncDir,
    Rename,
    Create,
    SetLen,
    Remove,
    Other,
}

/// What a disk writes whole or not at all.
const SECTOR: usize = 512;

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    /// What a power loss cannot take: the data as of the last sync.
    durable: Vec<u8>,
    mode: u32,
}

#[derive(Debug, Clone)]
enum DirOp {
    Link(String, usize),
    Unlink(String),
    /// Atomic, as a journal makes it: old name gone and new one there, or neither.
    Rename(String, String, usize),
}

#[derive(Debug, Default)]
struct Dir {
    entries: BTreeMap<String, usize>,
    /// The entries as of the last directory sync, and the changes since, in order.
    durable: BTreeMap<String, usize>,
    log: Vec<DirOp>,
    mode: u32,
}

/// What the test can ask of the disk besides the storage operations.
#[derive(Debug, Default)]
pub(crate) struct Knobs {
    /// Fail (with `EIO`, no effect) the next so many operations of a kind.
    pub(crate) fail_next: BTreeMap<&'static str, u32>,
    /// Fail each operation with `EIO` once in this many (0: never).
    pub(crate) fault_one_in: u64,
    /// Pretend: syncs of these kinds succeed without making anything durable (a sink that
    /// forgot them), to prove that the checks catch it.
    pub(crate) skip: HashSet<Op>,
    /// Split a write once in this many (a short `writev`; 0: never).
    pub(crate) short_write_one_in: u64,
    /// A failed sync loses the file's unsynced bytes (they read as zeros from then on), and a
    /// later sync succeeds: Linux reports a failed writeback once per open file, and its dirty
    /// pages are marked clean all the same.
    pub(crate) failed_sync_loses_pages: bool,
}

#[derive(Debug)]
struct State {
    rng: Rng,
    ops: u64,
    /// The power goes at this operation (it and everything after fail with `EIO`).
    crash_at: Option<u64>,
    crashed: bool,
    inodes: Vec<Inode>,
    dirs: BTreeMap<PathBuf, Dir>,
    locks: HashSet<PathBuf>,
    knobs: Knobs,
}

/// The simulated disk. Clones share it.
#[derive(Debug, Clone)]
pub(crate) struct SimDisk(Arc<Mutex<State>>);

fn eio() -> io::Error {
    io::Error::from_raw_os_error(5)
}

fn split(path: &Path) -> (PathBuf, String) {
    let dir = path.parent().unwrap_or(Path::new("")).to_owned();
    (dir, path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Append => "append",
        Op::SyncData => "sync_data",
        Op::SyncAll => "sync_all",
        Op::SyncDir => "sync_dir",
        Op::Rename => "rename",
        Op::Create => "create",
        Op::SetLen => "set_len",
        Op::Remove => "remove",
        Op::Other => "other",
    }
}

impl State {
    /// Counts an operation; fails it if the power is gone (or goes now) or a fault is due.
    fn begin(&mut self, op: Op) -> io::Result<()> {
        if self.crashed {
            return Err(eio());
        }
        self.ops += 1;
        if self.crash_at.is_some_and(|at| self.ops >= at) {
            self.crashed = true;
            return Err(eio());
        }
        if let Some(left) = self.knobs.fail_next.get_mut(op_name(op)).filter(|n| **n > 0) {
            *left -= 1;
            return Err(eio());
        }
        let rate = self.knobs.fault_one_in;
        if rate > 0 && op != Op::Other && self.rng.one_in(rate) {
            return Err(eio());
        }
        Ok(())
    }

    fn dir(&mut self, dir: &Path) -> io::Result<&mut Dir> {
        self.dirs.get_mut(dir).ok_or_else(|| io::ErrorKind::NotFound.into())
    }

    fn lookup(&mut self, path: &Path) -> io::Result<usize> {
        let (dir, name) = split(path);
        self.dir(&dir)?.entries.get(&name).copied().ok_or_else(|| io::ErrorKind::NotFound.into())
    }

    fn sync_file(&mut self, ino: usize, op: Op) -> io::Result<()> {
        if let Err(e) = self.begin(op) {
            if self.knobs.failed_sync_loses_pages && !self.crashed {
                let inode = &mut self.inodes[ino];
                let from = inode.durable.len().min(inode.data.len());
                inode.data[from..].fill(0);
            }
            return Err(e);
        }
        if !self.knobs.skip.contains(&op) {
            let inode = &mut self.inodes[ino];
            inode.durable = inode.data.clone();
        }
        Ok(())
    }

    /// What a file holds after the power loss.
    fn survivor(rng: &mut Rng, inode: &Inode) -> Vec<u8> {
        let (data, durable) = (&inode.data, &inode.durable);
        if !data.starts_with(durable) {
            // Cut since the last sync: either state may be what the disk has.
            return if rng.one_in(2) { durable.clone() } else { data.clone() };
        }
        let extra = data.len() - durable.len();
        if extra == 0 {
            return durable.clone();
        }
        let mut kept = durable.clone();
        match rng.below(4) {
            0 => {}
            1 => kept.extend_from_slice(&data[durable.len()..][..rng.below(extra as u64) as usize]),
            2 => {
                // The new length made it, some of the new sectors did not (they read as zeros).
                let len = 1 + rng.below(extra as u64) as usize;
                kept.extend_from_slice(&data[durable.len()..][..len]);
                let mut sector = durable.len() / SECTOR * SECTOR;
                while sector < kept.len() {
                    if rng.one_in(2) {
                        let from = sector.max(durable.len());
                        let to = (sector + SECTOR).min(kept.len());
                        kept[from..to].fill(0);
                    }
                    sector += SECTOR;
                }
            }
            _ => kept.extend_from_slice(&data[durable.len()..]),
        }
        kept
    }
}

impl SimDisk {
    pub(crate) fn new(seed: u64) -> SimDisk {
        SimDisk(Arc::new(Mutex::new(State {
            rng: Rng::new(seed),
            ops: 0,
            crash_at: None,
            crashed: false,
            inodes: Vec::new(),
            dirs: BTreeMap::new(),
            locks: HashSet::new(),
            knobs: Knobs::default(),
        })))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the knobs.
    pub(crate) fn knobs(&self, change: impl FnOnce(&mut Knobs)) {
        change(&mut self.state().knobs);
    }

    /// The power goes `after` operations from now.
    pub(crate) fn crash_after(&self, after: u64) {
        let mut s = self.state();
        s.crash_at = Some(s.ops + after.max(1));
    }

    pub(crate) fn crashed(&self) -> bool {
        self.state().crashed
    }

    /// The machine comes back: a new disk holding what survived the power loss (all of it
    /// durable now), with no locks held and the same generator going on.
    pub(crate) fn reboot(&self) -> SimDisk {
        let mut s = self.state();
        let mut rng = s.rng.clone();
        let mut dirs = BTreeMap::new();
        let mut reachable = HashSet::new();
        for (path, dir) in &s.dirs {
            let mut entries = dir.durable.clone();
            let keep = rng.below(dir.log.len() as u64 + 1) as usize;
            for op in &dir.log[..keep] {
                match op {
                    DirOp::Link(name, ino) => entries.insert(name.clone(), *ino),
                    DirOp::Unlink(name) => entries.remove(name),
                    DirOp::Rename(old, new, ino) => {
                        entries.remove(old);
                        entries.insert(new.clone(), *ino)
                    }
                };
            }
            reachable.extend(entries.values().copied());
            let durable = entries.clone();
            dirs.insert(path.clone(), Dir { entries, durable, log: Vec::new(), mode: dir.mode });
        }
        let inodes = s
            .inodes
            .iter()
            .enumerate()
            .map(|(ino, inode)| {
                let data = match reachable.contains(&ino) {
                    true => State::survivor(&mut rng, inode),
                    false => Vec::new(),
                };
                Inode { durable: data.clone(), data, mode: inode.mode }
            })
            .collect();
        s.rng = rng.clone();
        let knobs = Knobs { skip: s.knobs.skip.clone(), ..Knobs::default() };
        SimDisk(Arc::new(Mutex::new(State {
            rng,
            ops: 0,
            crash_at: None,
            crashed: false,
            inodes,
            dirs,
            locks: HashSet::new(),
            knobs,
        })))
    }

    /// Every file of `dir` with its content.
    pub(crate) fn files(&self, dir: &Path) -> BTreeMap<String, Vec<u8>> {
        let s = self.state();
        let Some(d) = s.dirs.get(dir) else { return BTreeMap::new() };
        d.entries.iter().map(|(n, ino)| (n.clone(), s.inodes[*ino].data.clone())).collect()
    }

    /// The names in `dir`.
    pub(crate) fn names(&self, dir: &Path) -> Vec<String> {
        let s = self.state();
        s.dirs.get(dir).map(|d| d.entries.keys().cloned().collect()).unwrap_or_default()
    }

    /// The mode of the file or directory `path`.
    pub(crate) fn mode(&self, path: &Path) -> Option<u32> {
        let mut s = self.state();
        if let Some(dir) = s.dirs.get(path) {
            return Some(dir.mode);
        }
        let ino = s.lookup(path).ok()?;
        Some(s.inodes[ino].mode)
    }

    /// Puts a file in place, durably (a leftover of an earlier run).
    pub(crate) fn put(&self, path: &Path, data: &[u8]) {
        let mut s = self.state();
        let (dir, name) = split(path);
        let ino = s.inodes.len();
        s.inodes.push(Inode { data: data.to_vec(), durable: data.to_vec(), mode: 0o644 });
        let d = s.dirs.entry(dir).or_insert_with(|| Dir { mode: 0o755, ..Dir::default() });
        d.entries.insert(name.clone(), ino);
        d.durable.insert(name, ino);
    }
}

/// A file open on the simulated disk.
#[derive(Debug)]
pub(crate) struct SimFile {
    disk: SimDisk,
    ino: usize,
}

impl StoredFile for SimFile {
    fn append(&self, pieces: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut s = self.disk.state();
        s.begin(Op::Append)?;
        let mut all: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
        let rate = s.knobs.short_write_one_in;
        if rate > 0 && all.len() > 1 && s.rng.one_in(rate) {
            let n = 1 + s.rng.below(all.len() as u64 - 1) as usize;
            all.truncate(n);
        }
        s.inodes[self.ino].data.extend_from_slice(&all);
        Ok(all.len())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut s = self.disk.state();
        s.begin(Op::Other)?;
        let data = &s.inodes[self.ino].data;
        let from = (offset as usize).min(data.len());
        let n = buf.len().min(data.len() - from);
        buf[..n].copy_from_slice(&data[from..from + n]);
        Ok(n)
    }

    fn size(&self) -> io::Result<u64> {
        let mut s = self.disk.state();
        s.begin(Op::Other)?;
        Ok(s.inodes[self.ino].data.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.disk.state();
        s.begin(Op::SetLen)?;
        s.inodes[self.ino].data.resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.disk.state().sync_file(self.ino, Op::SyncData)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.disk.state().sync_file(self.ino, Op::SyncAll)
    }
}

/// The lock of a directory on the simulated disk.
struct SimLock(SimDisk, PathBuf);

impl Drop for SimLock {
    fn drop(&mut self) {
        self.0.state().locks.remove(&self.1);
    }
}

impl Storage for SimDisk {
    fn create_dir_all(&self, dir: &Path, mode: u32) -> io::Result<()> {
        let mut s = self.state();
        s.begin(Op::Other)?;
        // Directories are durable at once (the real one syncs the parent of each it creates).
        for d in dir.ancestors().filter(|d| !d.as_os_str().is_empty()) {
            s.dirs.entry(d.to_owned()).or_insert_with(|| Dir { mode, ..Dir::default() });
        }
        Ok(())
    }

    fn lock(&self, path: &Path, _mode: u32) -> io::Result<LockGuard> {
        let mut s = self.state();
        s.begin(Op::Other)?;
        if !s.locks.insert(path.to_owned()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(Box::new(SimLock(self.clone(), path.to_owned())))
    }

    fn create(&self, path: &Path, mode: u32) -> io::Result<Box<dyn StoredFile>> {
        let mut s = self.state();
        s.begin(Op::Create)?;
        let (dir, name) = split(path);
        let ino = s.inodes.len();
        let d = s.dir(&dir)?;
        if d.entries.contains_key(&name) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        d.entries.insert(name.clone(), ino);
        d.log.push(DirOp::Link(name, ino));
        s.inodes.push(Inode { mode, ..Inode::default() });
        Ok(Box::new(SimFile { disk: self.clone(), ino }))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn StoredFile>> {
        let mut s = self.state();
        s.begin(Op::Other)?;
        let ino = s.lookup(path)?;
        Ok(Box::new(SimFile { disk: self.clone(), ino }))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut s = self.state();
        s.begin(Op::Other)?;
        Ok(s.dir(dir)?.entries.keys().cloned().collect())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.begin(Op::Rename)?;
        let ((dir, old), (to_dir, new)) = (split(from), split(to));
        assert_eq!(dir, to_dir, "the sink renames within a directory");
        let d = s.dir(&dir)?;
        let ino = d.entries.remove(&old).ok_or(io::ErrorKind::NotFound)?;
        d.entries.insert(new.clone(), ino);
        d.log.push(DirOp::Rename(old, new, ino));
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.begin(Op::Remove)?;
        let (dir, name) = split(path);
        let d = s.dir(&dir)?;
        d.entries.remove(&name).ok_or(io::ErrorKind::NotFound)?;
        d.log.push(DirOp::Unlink(name));
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.begin(Op::SyncDir)?;
        if !s.knobs.skip.contains(&Op::SyncDir) {
            let d = s.dir(dir)?;
            d.durable = d.entries.clone();
            d.log.clear();
        }
        Ok(())
    }

    fn single_threaded(&self) -> bool {
        true
    }
}

/// A file sink whose ticks come from a simulated clock (milliseconds since its start), right
/// before each write; the pipeline's own ticks (on the wall clock) are passed on only when
/// `forward_ticks`, as they would make the order of operations depend on timing.
pub(crate) struct Driven {
    inner: FileSink,
    base: Instant,
    clock_ms: Arc<AtomicU64>,
    forward_ticks: bool,
}

impl Driven {
    pub(crate) fn new(inner: FileSink, clock_ms: Arc<AtomicU64>, forward_ticks: bool) -> Driven {
        Driven { inner, base: Instant::now(), clock_ms, forward_ticks }
    }

    fn now(&self) -> Instant {
        self.base + Duration::from_millis(self.clock_ms.load(Ordering::SeqCst))
    }
}

impl Sink for Driven {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn takes(&self) -> Takes {
        self.inner.takes()
    }
    fn write(&mut self, jobs: &mut Vec<Job>) {
        // The tick first: the jobs settle inside the write, and a test that moves the clock
        // once they have must not race with a tick still reading it.
        self.inner.tick(self.now());
        self.inner.write(jobs);
    }
    fn tick(&mut self, _wall_clock: Instant) {
        if self.forward_ticks {
            self.inner.tick(self.now());
        }
    }
    fn health(&self) -> Health {
        self.inner.health()
    }
    fn close(&mut self) {
        self.inner.close();
    }
}

/// A batch of records `{"id":…,"pad":…}` with these ids and pad lengths, as the decoder makes
/// one (lines of one body).
pub(crate) fn batch(ids: &[String], pads: &[usize], digest: u128) -> Batch {
    let lines: Vec<String> = ids
        .iter()
        .zip(pads)
        .map(|(id, pad)| format!(r#"{{"id":"{id}","pad":"{}"}}"#, "p".repeat(*pad)))
        .collect();
    let body = Bytes::from(lines.iter().map(|l| format!("{l}\n")).collect::<String>());
    let mut at = 0;
    let records = lines
        .iter()
        .map(|l| {
            at += l.len() + 1;
            let meta = RecordMeta { id: FieldSpan::new(7, 1, false), ..RecordMeta::default() };
            Record::terminated(body.slice(at - l.len() - 1..at), meta)
        })
        .collect();
    Batch {
        drain: Arc::from("default"),
        data_type: record::DataType::Logs,
        received_at_ms: 0,
        records,
        body,
        rejects: Vec::new(),
        pinned_bytes: 0,
        digest,
    }
}
