//! The storage a durable sink writes through: the few file-system operations it really uses
//! (create and open files, append with `writev`, read back for recovery, `fdatasync`/`fsync`,
//! cut, rename, remove, list and sync a directory), as a trait.
//!
//! [`Disk`] is the production implementation, a thin layer over `std::fs` and `rustix`: each
//! method is the one system call it names. The trait exists so that tests can put a simulated
//! disk underneath (one that keeps unsynced writes apart and loses or tears them at a seeded
//! power loss) and prove that what was acknowledged survives. Calls go through `dyn` once per
//! write group, never per record, next to a system call each: the cost does not show.

use std::any::Any;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Something held for as long as a directory is this process's (a lock file).
pub type LockGuard = Box<dyn Any + Send + Sync>;

/// A file opened through a [`Storage`].
pub trait StoredFile: Send + Sync + fmt::Debug {
    /// Appends `pieces` at the end of the file with one `writev`; returns how many bytes went in
    /// (possibly fewer than asked, as `writev` may).
    fn append(&self, pieces: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Reads from `offset` into `buf`; returns how many bytes were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// The file's length in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Cuts (or extends) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// `fdatasync`: the data written so far is durable once this returns.
    fn sync_data(&self) -> io::Result<()>;
    /// `fsync`: data and metadata.
    fn sync_all(&self) -> io::Result<()>;
    /// Advice: the bytes `from..to` need not stay in the page cache. Ignored by default.
    fn drop_cache(&self, _from: u64, _to: u64) {}
}

/// The file-system operations a durable sink uses.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Creates `dir` and any missing parent, durably; directories created get exactly `mode`.
    fn create_dir_all(&self, dir: &Path, mode: u32) -> io::Result<()>;
    /// Takes the lock file `path` (created with `mode` if missing) for as long as the guard
    /// lives; fails with `WouldBlock` if another holder has it.
    fn lock(&self, path: &Path, mode: u32) -> io::Result<LockGuard>;
    /// Creates a new file to append to, with exactly `mode`; fails if `path` exists.
    fn create(&self, path: &Path, mode: u32) -> io::Result<Box<dyn StoredFile>>;
    /// Opens an existing file to read, cut and append to (recovery, or going on with it).
    fn open(&self, path: &Path) -> io::Result<Box<dyn StoredFile>>;
    /// The names of the entries of `dir` (names that are not UTF-8 are left out).
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file `path`.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the entries of `dir` (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Whether the sink must do all its work on its writer thread (no syncer thread), so that a
    /// simulated storage sees the same operations in the same order each time it replays a seed.
    fn single_threaded(&self) -> bool {
        false
    }
}

/// The local file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct Disk;

impl StoredFile for File {
    fn append(&self, pieces: &[IoSlice<'_>]) -> io::Result<usize> {
        // The file is opened in append mode: every write lands at the end.
        (&*self).write_vectored(pieces)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }

    fn drop_cache(&self, from: u64, to: u64) {
        if let Some(len) = std::num::NonZeroU64::new(to.saturating_sub(from)) {
            let _ = rustix::fs::fadvise(self, from, Some(len), rustix::fs::Advice::DontNeed);
        }
    }
}

impl Storage for Disk {
    fn create_dir_all(&self, dir: &Path, mode: u32) -> io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            self.create_dir_all(parent, mode)?;
        }
        match fs::DirBuilder::new().mode(mode).create(dir) {
            // The umask may have taken bits away: set exactly what was asked. The new entry is
            // made durable too: files acknowledged in it must not vanish with it at a power loss.
            Ok(()) => {
                fs::set_permissions(dir, fs::Permissions::from_mode(mode))?;
                match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                    Some(parent) => self.sync_dir(parent),
                    None => Ok(()),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn lock(&self, path: &Path, mode: u32) -> io::Result<LockGuard> {
        let file =
            OpenOptions::new().create(true).truncate(false).write(true).mode(mode).open(path)?;
        file.try_lock().map_err(|_| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                "another process is writing to this directory",
            )
        })?;
        Ok(Box::new(file))
    }

    fn create(&self, path: &Path, mode: u32) -> io::Result<Box<dyn StoredFile>> {
        let file = OpenOptions::new().create_new(true).append(true).mode(mode).open(path)?;
        // The umask may have taken bits away: set exactly what was asked (one call per file).
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        Ok(Box::new(file))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn StoredFile>> {
        // Append mode: `append` writes at the end, as it promises, on a file opened here too.
        Ok(Box::new(OpenOptions::new().read(true).append(true).open(path)?))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_creates_files_and_directories_with_exactly_the_modes_asked() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        Disk.create_dir_all(&dir, 0o750).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root.path().join("a")), 0o750);
        assert_eq!(mode(&dir), 0o750);
        let file = Disk.create(&dir.join("f"), 0o640).unwrap();
        assert_eq!(mode(&dir.join("f")), 0o640);
        assert_eq!(file.append(&[IoSlice::new(b"ab"), IoSlice::new(b"c\n")]).unwrap(), 4);
        let mut buf = [0u8; 8];
        let read = Disk.open(&dir.join("f")).unwrap();
        assert_eq!(read.size().unwrap(), 4);
        assert_eq!(read.read_at(&mut buf, 1).unwrap(), 3);
        assert_eq!(&buf[..3], b"bc\n");
        // A file opened again is appended to at its end, never over what it holds.
        assert_eq!(read.append(&[IoSlice::new(b"d\n")]).unwrap(), 2);
        assert_eq!(fs::read(dir.join("f")).unwrap(), b"abc\nd\n");
        assert!(Disk.create(&dir.join("f"), 0o640).is_err(), "create never replaces");
        assert_eq!(Disk.list(&dir).unwrap(), vec!["f".to_owned()]);
        let held = Disk.lock(&dir.join(".lock"), 0o640).unwrap();
        assert_eq!(
            Disk.lock(&dir.join(".lock"), 0o640).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        drop(held);
        Disk.lock(&dir.join(".lock"), 0o640).unwrap();
    }
}
