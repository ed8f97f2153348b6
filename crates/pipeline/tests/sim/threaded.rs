//! The simulated disk with the sink's syncer threads running (the plain [`SimDisk`] asks the
//! sink to sync on its writer's thread, for exact replays), and a gate that holds the next
//! `fdatasync` until the test lets it go: how a test makes one sync slow without sleeping.

use std::io::{self, IoSlice};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use pipeline::storage::{LockGuard, Storage, StoredFile};

use super::SimDisk;

/// Where the gate is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum GateState {
    #[default]
    Open,
    /// The next `sync_data` stops until released.
    Armed,
    /// A `sync_data` is stopped at the gate.
    Holding,
}

#[derive(Debug, Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

/// A [`SimDisk`] whose sink runs its syncers on their own threads. Clones share the gate.
#[derive(Debug, Clone)]
pub(crate) struct Threaded {
    pub(crate) disk: SimDisk,
    gate: Arc<Gate>,
}

impl Threaded {
    pub(crate) fn new(disk: SimDisk) -> Threaded {
        Threaded { disk, gate: Arc::default() }
    }

    /// The next `sync_data` (of any file) waits at the gate until [`Threaded::release`].
    pub(crate) fn hold_next_sync(&self) {
        *self.gate.state.lock().unwrap() = GateState::Armed;
    }

    /// Waits (bounded) until a sync is held at the gate; returns whether one is.
    pub(crate) fn wait_until_held(&self, within: Duration) -> bool {
        let state = self.gate.state.lock().unwrap();
        let (state, _) = self
            .gate
            .changed
            .wait_timeout_while(state, within, |s| *s != GateState::Holding)
            .unwrap();
        *state == GateState::Holding
    }

    /// Lets the held sync (if any) go on, and opens the gate.
    pub(crate) fn release(&self) {
        *self.gate.state.lock().unwrap() = GateState::Open;
        self.gate.changed.notify_all();
    }

    fn pass(&self) {
        let mut state = self.gate.state.lock().unwrap();
        if *state == GateState::Armed {
            *state = GateState::Holding;
            self.gate.changed.notify_all();
            // Held until the test releases it; a test that forgets fails on its own timeouts.
            drop(self.gate.changed.wait_while(state, |s| *s == GateState::Holding).unwrap());
        }
    }

    fn wrap(&self, file: Box<dyn StoredFile>) -> Box<dyn StoredFile> {
        Box::new(GatedFile { file, threaded: self.clone() })
    }
}

#[derive(Debug)]
struct GatedFile {
    file: Box<dyn StoredFile>,
    threaded: Threaded,
}

impl StoredFile for GatedFile {
    fn append(&self, pieces: &[IoSlice<'_>]) -> io::Result<usize> {
        self.file.append(pieces)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }
    fn size(&self) -> io::Result<u64> {
        self.file.size()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.threaded.pass();
        self.file.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.file.sync_all()
    }
}

impl Storage for Threaded {
    fn create_dir_all(&self, dir: &Path, mode: u32) -> io::Result<()> {
        self.disk.create_dir_all(dir, mode)
    }
    fn lock(&self, path: &Path, mode: u32) -> io::Result<LockGuard> {
        self.disk.lock(path, mode)
    }
    fn create(&self, path: &Path, mode: u32) -> io::Result<Box<dyn StoredFile>> {
        Ok(self.wrap(self.disk.create(path, mode)?))
    }
    fn open(&self, path: &Path) -> io::Result<Box<dyn StoredFile>> {
        Ok(self.wrap(self.disk.open(path)?))
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.disk.list(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.disk.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.disk.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.disk.sync_dir(dir)
    }
    fn single_threaded(&self) -> bool {
        false
    }
}
