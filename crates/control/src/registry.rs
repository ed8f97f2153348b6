//! `DrainRegistry`: the local record of the drains Spillway created (`<data dir>/drains.json`),
//! with each drain's path key and signing secret.
//!
//! The receiver needs every drain's secret to check signatures, so the secrets are stored **in
//! clear**: the file and its temporary siblings are created with mode `0600` and are never
//! world-readable. In memory a secret is a [`Secret`], whose `Debug` is redacted.
//!
//! Every change is a read-modify-write under an exclusive lock on `<file>.lock` (so two CLI
//! processes never lose an update), written to a temporary file in the same directory, fsynced
//! and renamed over the old file (so a reader or a crash sees the old or the new contents, never
//! a mix). Reads take no lock: a rename is atomic.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Secret;

/// The on-disk format version this code reads and writes.
const FORMAT_VERSION: u32 = 1;
/// Mode of the registry, its lock and its temporary files: owner read/write only.
const FILE_MODE: u32 = 0o600;
/// Random bytes in a path key (hex: twice as many characters).
const PATH_KEY_BYTES: usize = 16;
/// Random bytes in a drain secret (hex: twice as many characters).
const SECRET_BYTES: usize = 32;

/// Who created a drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DrainKind {
    /// Created with a user or team token (`spillway drains create`).
    SelfServed,
}

/// One drain Spillway created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainEntry {
    /// Vercel's id, `drn_…`.
    pub id: String,
    /// The drain's own path segment on the receiver (URL-safe, random).
    pub path_key: String,
    /// The signature verification secret Vercel signs deliveries with.
    pub secret: Secret,
    /// The team owning the drain, if any.
    #[serde(default)]
    pub team_id: Option<String>,
    /// Who created it.
    pub kind: DrainKind,
    /// When it was created, Unix milliseconds.
    pub created_at_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct RegistryFile {
    version: u32,
    drains: Vec<DrainEntry>,
}

/// Why the registry could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A file operation failed.
    #[error("drain registry {path}: {action}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a registry this version understands; it is left untouched.
    #[error("drain registry {path} is unreadable: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The OS random number generator failed.
    #[error("no randomness available: {0}")]
    Random(String),
}

/// The registry file at a given path. Cheap; holds no file open between calls.
#[derive(Debug, Clone)]
pub struct DrainRegistry {
    path: PathBuf,
    lock_path: PathBuf,
}

impl DrainRegistry {
    /// The registry stored at `path` (created on the first change, with its directory).
    pub fn new(path: impl Into<PathBuf>) -> DrainRegistry {
        let path = path.into();
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".lock");
        DrainRegistry { path, lock_path: lock_path.into() }
    }

    /// Where the registry is stored.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry; none when the file does not exist yet.
    pub fn load(&self) -> Result<Vec<DrainEntry>, RegistryError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(self.io("read", source)),
        };
        let corrupt = |reason: String| RegistryError::Corrupt { path: self.path.clone(), reason };
        let file: RegistryFile =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if file.version != FORMAT_VERSION {
            return Err(corrupt(format!("format version {} is not supported", file.version)));
        }
        Ok(file.drains)
    }

    /// The entry of drain `id`, if registered.
    pub fn get(&self, id: &str) -> Result<Option<DrainEntry>, RegistryError> {
        Ok(self.load()?.into_iter().find(|e| e.id == id))
    }

    /// Applies `change` to the entries under the exclusive lock and writes the result
    /// atomically. Nothing is written if reading fails (a corrupt file stays as it is).
    pub fn update<R>(
        &self,
        change: impl FnOnce(&mut Vec<DrainEntry>) -> R,
    ) -> Result<R, RegistryError> {
        let dir = self.dir();
        std::fs::create_dir_all(&dir).map_err(|e| self.io_at(&dir, "create directory", e))?;
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(&self.lock_path)
            .map_err(|e| self.io_at(&self.lock_path, "open lock file", e))?;
        lock.lock().map_err(|e| self.io_at(&self.lock_path, "lock", e))?;
        let mut entries = self.load()?;
        let result = change(&mut entries);
        self.write(&entries)?;
        // Dropping `lock` releases it, after the rename.
        drop(lock);
        Ok(result)
    }

    /// Adds `entry`, replacing any entry with the same id.
    pub fn insert(&self, entry: DrainEntry) -> Result<(), RegistryError> {
        self.update(|entries| {
            entries.retain(|e| e.id != entry.id);
            entries.push(entry);
        })
    }

    /// Removes the entry of drain `id`, returning it if there was one.
    pub fn remove(&self, id: &str) -> Result<Option<DrainEntry>, RegistryError> {
        self.update(|entries| {
            let index = entries.iter().position(|e| e.id == id)?;
            Some(entries.remove(index))
        })
    }

    fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        }
    }

    /// Writes `entries` to a `0600` temporary file beside the registry, fsyncs it, renames it
    /// over the registry and fsyncs the directory.
    fn write(&self, entries: &[DrainEntry]) -> Result<(), RegistryError> {
        let file = RegistryFile { version: FORMAT_VERSION, drains: entries.to_vec() };
        let mut bytes = serde_json::to_vec_pretty(&file).expect("registry entries serialize");
        bytes.push(b'\n');
        let dir = self.dir();
        let name = self
            .path
            .file_name()
            .map_or_else(|| "drains.json".into(), |n| n.to_string_lossy().into_owned());
        let temp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), random_hex(4)?));
        let written = (|| {
            let mut out = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .open(&temp)
                .map_err(|e| self.io_at(&temp, "create temporary file", e))?;
            out.write_all(&bytes).map_err(|e| self.io_at(&temp, "write", e))?;
            out.sync_all().map_err(|e| self.io_at(&temp, "fsync", e))?;
            std::fs::rename(&temp, &self.path).map_err(|e| self.io("rename into place", e))
        })();
        if written.is_err() {
            // Best effort: a leftover temporary file is harmless, only untidy.
            let _ = std::fs::remove_file(&temp);
            return written;
        }
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io_at(&dir, "fsync directory", e))
    }

    fn io(&self, action: &'static str, source: std::io::Error) -> RegistryError {
        self.io_at(&self.path, action, source)
    }

    fn io_at(&self, path: &Path, action: &'static str, source: std::io::Error) -> RegistryError {
        RegistryError::Io { path: path.to_owned(), action, source }
    }
}

/// A new random path key: 16 bytes as 32 lowercase hex characters (URL-safe).
pub fn generate_path_key() -> Result<String, RegistryError> {
    random_hex(PATH_KEY_BYTES)
}

/// A new random drain secret: 32 bytes as 64 lowercase hex characters.
pub fn generate_secret() -> Result<Secret, RegistryError> {
    random_hex(SECRET_BYTES).map(Secret::new)
}

fn random_hex(bytes: usize) -> Result<String, RegistryError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| RegistryError::Random(e.to_string()))?;
    Ok(hex::encode(buf))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::{Arc, Barrier};

    use super::*;

    fn entry(id: &str) -> DrainEntry {
        DrainEntry {
            id: id.to_owned(),
            path_key: generate_path_key().unwrap(),
            secret: generate_secret().unwrap(),
            team_id: Some("team_1".to_owned()),
            kind: DrainKind::SelfServed,
            created_at_ms: 1_700_000_000_000,
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn entries_round_trip_and_the_file_is_0600() {
        let dir = tempfile::tempdir().unwrap();
        let registry = DrainRegistry::new(dir.path().join("sub/drains.json"));
        assert!(registry.load().unwrap().is_empty());
        let (a, b) = (entry("drn_a"), entry("drn_b"));
        registry.insert(a.clone()).unwrap();
        registry.insert(b.clone()).unwrap();
        assert_eq!(registry.load().unwrap(), vec![a.clone(), b.clone()]);
        assert_eq!(registry.get("drn_b").unwrap(), Some(b.clone()));
        assert_eq!(mode(registry.path()), 0o600);
        assert_eq!(mode(&dir.path().join("sub/drains.json.lock")), 0o600);

        let on_disk: serde_json::Value =
            serde_json::from_slice(&std::fs::read(registry.path()).unwrap()).unwrap();
        assert_eq!(on_disk["version"], 1);
        assert_eq!(on_disk["drains"][0]["kind"], "self-served");
        assert_eq!(on_disk["drains"][0]["secret"], a.secret.expose());
        assert_eq!(on_disk["drains"][0]["pathKey"].as_str().unwrap().len(), 32);

        assert_eq!(registry.remove("drn_a").unwrap(), Some(a));
        assert_eq!(registry.remove("drn_a").unwrap(), None);
        assert_eq!(registry.load().unwrap(), vec![b]);
    }

    #[test]
    fn debug_of_an_entry_does_not_show_the_secret() {
        let e = entry("drn_a");
        assert!(!format!("{e:?}").contains(e.secret.expose()));
    }

    #[test]
    fn a_write_replaces_a_world_readable_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drains.json");
        std::fs::write(&path, r#"{"version":1,"drains":[]}"#).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let registry = DrainRegistry::new(&path);
        registry.insert(entry("drn_a")).unwrap();
        assert_eq!(mode(&path), 0o600);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["drains.json", "drains.json.lock"]);
    }

    #[test]
    fn a_corrupt_file_is_reported_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drains.json");
        std::fs::write(&path, b"{\"version\":1,\"drains\":[").unwrap();
        let registry = DrainRegistry::new(&path);
        assert!(matches!(registry.load(), Err(RegistryError::Corrupt { .. })));
        assert!(matches!(registry.insert(entry("drn_a")), Err(RegistryError::Corrupt { .. })));
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"version\":1,\"drains\":[");
        std::fs::write(&path, br#"{"version":2,"drains":[]}"#).unwrap();
        assert!(matches!(registry.load(), Err(RegistryError::Corrupt { .. })));
    }

    #[test]
    fn a_failed_update_writes_nothing_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let registry = DrainRegistry::new(dir.path().join("drains.json"));
        let a = entry("drn_a");
        registry.insert(a.clone()).unwrap();
        // A registry path that is a directory can be neither read nor replaced.
        let blocked = dir.path().join("blocked.json");
        std::fs::create_dir(&blocked).unwrap();
        let err = DrainRegistry::new(&blocked).insert(entry("drn_b")).unwrap_err();
        assert!(matches!(err, RegistryError::Io { .. }), "{err}");
        assert!(blocked.is_dir());
        assert_eq!(registry.load().unwrap(), vec![a]);
        let leftovers = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".tmp"))
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn concurrent_updates_from_separate_handles_are_never_lost() {
        const THREADS: usize = 8;
        const PER_THREAD: usize = 10;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drains.json");
        let barrier = Arc::new(Barrier::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (path, barrier) = (path.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    // One registry (and so one lock file description) per thread, as two
                    // processes would have.
                    let registry = DrainRegistry::new(path);
                    barrier.wait();
                    for i in 0..PER_THREAD {
                        registry.insert(entry(&format!("drn_{t}_{i}"))).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let entries = DrainRegistry::new(&path).load().unwrap();
        assert_eq!(entries.len(), THREADS * PER_THREAD);
    }

    #[test]
    fn generated_keys_and_secrets_are_hex_and_distinct() {
        let (k1, k2) = (generate_path_key().unwrap(), generate_path_key().unwrap());
        assert_eq!(k1.len(), 32);
        assert!(k1.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(k1, k2);
        let secret = generate_secret().unwrap();
        assert_eq!(secret.expose().len(), 64);
        assert_ne!(secret, generate_secret().unwrap());
    }
}
