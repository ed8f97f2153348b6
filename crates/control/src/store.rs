//! `JsonStore`: a small versioned JSON file of entries on local disk, shared by the drain
//! registry and the installation store.
//!
//! The file is `{"version":1,"<field>":[…]}`. Every change is a read-modify-write under an
//! exclusive lock on `<file>.lock` (so two processes never lose an update), written to a
//! temporary file in the same directory, fsynced and renamed over the old file (so a reader or a
//! crash sees the old or the new contents, never a mix). Reads take no lock: a rename is atomic.
//! The file, its lock and its temporary siblings are created with mode `0600`: these files hold
//! secrets in clear.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::marker::PhantomData;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The on-disk format version this code reads and writes.
const FORMAT_VERSION: u32 = 1;
/// Mode of the file, its lock and its temporary files: owner read/write only.
const FILE_MODE: u32 = 0o600;

/// Why a store file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("local store {path}: {action}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not one this version understands; it is left untouched.
    #[error("local store {path} is unreadable: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The OS random number generator failed.
    #[error("no randomness available: {0}")]
    Random(String),
    /// The shared store cannot be reached (down, restarting, pool exhausted). Control
    /// operations answer `503 store_unavailable`; the receiver keeps serving its snapshot.
    #[error("the store at {at} is unavailable: {reason}")]
    Unavailable {
        /// Host, port and database; never the password.
        at: String,
        /// What failed.
        reason: String,
    },
    /// The shared store refused an operation (anything but a lost connection).
    #[error("the store at {at} refused the operation: {reason}")]
    Database {
        /// Host, port and database; never the password.
        at: String,
        /// The server's message.
        reason: String,
    },
    /// The change would give two drains one path key.
    #[error("another drain already has path key {path_key}")]
    Conflict {
        /// The path key.
        path_key: String,
    },
    /// A sealed value could not be sealed or opened.
    #[error("sealed value {place}: {reason}")]
    Sealed {
        /// Table, column and row.
        place: String,
        /// Why.
        reason: &'static str,
    },
}

impl StoreError {
    /// Whether the store could not be reached at all (retry later), as opposed to a refusal.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// Runs a store operation (small, locking, fsyncing) on tokio's blocking pool, so no async
/// worker waits on the disk.
pub(crate) async fn blocking<R: Send + 'static>(work: impl FnOnce() -> R + Send + 'static) -> R {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// A file of `T` entries under the key `field`. Cheap; holds no file open between calls.
pub struct JsonStore<T> {
    path: PathBuf,
    lock_path: PathBuf,
    field: &'static str,
    entries: PhantomData<fn() -> T>,
}

impl<T> Clone for JsonStore<T> {
    fn clone(&self) -> JsonStore<T> {
        JsonStore {
            path: self.path.clone(),
            lock_path: self.lock_path.clone(),
            field: self.field,
            entries: PhantomData,
        }
    }
}

impl<T> fmt::Debug for JsonStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonStore").field("path", &self.path).field("field", &self.field).finish()
    }
}

impl<T: Serialize + DeserializeOwned> JsonStore<T> {
    /// The store at `path` (created on the first change, with its directory), its entries under
    /// `field`.
    pub fn new(path: impl Into<PathBuf>, field: &'static str) -> JsonStore<T> {
        let path = path.into();
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".lock");
        JsonStore { path, lock_path: lock_path.into(), field, entries: PhantomData }
    }

    /// Where the store is kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry; none when the file does not exist yet.
    pub fn load(&self) -> Result<Vec<T>, StoreError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(self.io("read", source)),
        };
        let corrupt = |reason: String| StoreError::Corrupt { path: self.path.clone(), reason };
        let mut file: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let version = file.get("version").and_then(serde_json::Value::as_u64);
        if version != Some(u64::from(FORMAT_VERSION)) {
            let shown = file.get("version").map_or_else(|| "none".to_owned(), |v| v.to_string());
            return Err(corrupt(format!("format version {shown} is not supported")));
        }
        let entries = file.remove(self.field).unwrap_or(serde_json::Value::Array(Vec::new()));
        serde_json::from_value(entries).map_err(|e| corrupt(format!("{}: {e}", self.field)))
    }

    /// Applies `change` to the entries under the exclusive lock and writes the result
    /// atomically. Nothing is written if reading fails (a corrupt file stays as it is).
    pub fn update<R>(&self, change: impl FnOnce(&mut Vec<T>) -> R) -> Result<R, StoreError> {
        let dir = self.dir();
        std::fs::create_dir_all(&dir).map_err(|e| io_at(&dir, "create directory", e))?;
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(&self.lock_path)
            .map_err(|e| io_at(&self.lock_path, "open lock file", e))?;
        lock.lock().map_err(|e| io_at(&self.lock_path, "lock", e))?;
        let mut entries = self.load()?;
        let result = change(&mut entries);
        self.write(&entries)?;
        // Dropping `lock` releases it, after the rename.
        drop(lock);
        Ok(result)
    }

    fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        }
    }

    /// Writes `entries` to a `0600` temporary file beside the store, fsyncs it, renames it over
    /// the store and fsyncs the directory.
    fn write(&self, entries: &[T]) -> Result<(), StoreError> {
        let file = serde_json::json!({ "version": FORMAT_VERSION, self.field: entries });
        let mut bytes = serde_json::to_vec_pretty(&file).expect("store entries serialize");
        bytes.push(b'\n');
        let dir = self.dir();
        let name = self
            .path
            .file_name()
            .map_or_else(|| "store.json".into(), |n| n.to_string_lossy().into_owned());
        let temp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), random_hex(4)?));
        let written = (|| {
            let mut out = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .open(&temp)
                .map_err(|e| io_at(&temp, "create temporary file", e))?;
            out.write_all(&bytes).map_err(|e| io_at(&temp, "write", e))?;
            out.sync_all().map_err(|e| io_at(&temp, "fsync", e))?;
            std::fs::rename(&temp, &self.path).map_err(|e| self.io("rename into place", e))
        })();
        if written.is_err() {
            // Best effort: a leftover temporary file is harmless, only untidy.
            let _ = std::fs::remove_file(&temp);
            return written;
        }
        File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| io_at(&dir, "fsync directory", e))
    }

    fn io(&self, action: &'static str, source: std::io::Error) -> StoreError {
        io_at(&self.path, action, source)
    }
}

fn io_at(path: &Path, action: &'static str, source: std::io::Error) -> StoreError {
    StoreError::Io { path: path.to_owned(), action, source }
}

/// `bytes` random bytes from the OS as lowercase hex.
pub(crate) fn random_hex(bytes: usize) -> Result<String, StoreError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| StoreError::Random(e.to_string()))?;
    Ok(hex::encode(buf))
}
