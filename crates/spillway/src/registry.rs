//! The receiver's view of the drain registry, as a [`DrainDirectory`]: drains created or deleted
//! while the server runs take effect without a restart.
//!
//! - [`RegistryDirectory`]: the file (`<data dir>/drains.json`, written by `spillway drains
//!   create`), re-read by a thread of its own when it changes; never read per request.
//! - [`FeedDirectory`]: the shared PostgreSQL store, as the copy `control`'s feed keeps current
//!   (notified changes, periodic resyncs); never read per request, and kept serving while the
//!   database is down.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use control::postgres::feed::{self, FeedHealth, Snapshot};
use control::postgres::PgStore;
use control::{DrainEntry, DrainRegistry};
use ingest::{DrainCredentials, DrainDirectory, RequiredHeader};
use listener::SigningKey;

/// How often the registry file is checked for a change (one `stat`), off the request path.
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// What identifies one version of the file: inode (writes replace it by rename), size, mtime.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

/// The file, and the drains last read from it.
struct Loaded {
    registry: DrainRegistry,
    client_secret: Option<SigningKey>,
    /// Only the refreshing thread (and the first load) touches it.
    stamp: Mutex<Option<Stamp>>,
    by_key: RwLock<HashMap<String, DrainCredentials>>,
}

/// The drain registry file as a [`DrainDirectory`]. A thread of its own re-reads the file when
/// it changes (checked every `CHECK_EVERY`) and swaps the new copy in: a lookup never waits on
/// the disk, nor on a read of the file. The thread ends once the directory is dropped.
pub struct RegistryDirectory {
    loaded: Arc<Loaded>,
}

impl std::fmt::Debug for RegistryDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryDirectory").field("path", &self.loaded.registry.path()).finish()
    }
}

impl RegistryDirectory {
    /// The registry at `path` (which need not exist yet), read once now and then watched.
    /// Drains Vercel signs with the integration's client secret (reported as
    /// `INTEGRATION_SECRET`) are verified with `client_secret`; without it they are not served.
    pub fn start(
        path: impl Into<PathBuf>,
        client_secret: Option<SigningKey>,
    ) -> std::io::Result<RegistryDirectory> {
        let loaded = Arc::new(Loaded {
            registry: DrainRegistry::new(path),
            client_secret,
            stamp: Mutex::new(None),
            by_key: RwLock::new(HashMap::new()),
        });
        loaded.refresh();
        let watched = Arc::downgrade(&loaded);
        std::thread::Builder::new().name("drain-registry".into()).spawn(move || loop {
            std::thread::sleep(CHECK_EVERY);
            match watched.upgrade() {
                Some(loaded) => loaded.refresh(),
                None => return,
            }
        })?;
        Ok(RegistryDirectory { loaded })
    }
}

impl Loaded {
    fn stamp(&self) -> Option<Stamp> {
        let m = std::fs::metadata(self.registry.path()).ok()?;
        Some(Stamp { inode: m.ino(), len: m.len(), mtime: m.mtime(), mtime_nsec: m.mtime_nsec() })
    }

    /// Re-reads the file if it changed since the last read.
    fn refresh(&self) {
        let mut last = self.stamp.lock().unwrap_or_else(|e| e.into_inner());
        let stamp = self.stamp();
        if stamp == *last {
            return;
        }
        match self.registry.load() {
            Ok(entries) => {
                let secret = self.client_secret.as_ref();
                let fresh: HashMap<String, DrainCredentials> =
                    entries.into_iter().filter_map(|e| credentials(secret, e)).collect();
                tracing::info!(drains = fresh.len(), "drain registry loaded");
                *self.by_key.write().unwrap_or_else(|e| e.into_inner()) = fresh;
                *last = stamp;
            }
            // Keep serving the drains known so far; try again at the next check.
            Err(e) => tracing::warn!(error = %e, "cannot read the drain registry"),
        }
    }
}

impl DrainDirectory for RegistryDirectory {
    fn lookup(&self, key: &str) -> Option<DrainCredentials> {
        self.loaded.by_key.read().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }
}

/// What the edge needs to serve registered drain `e` at its path key; `None` (logged) when
/// it cannot be served safely.
fn credentials(
    client_secret: Option<&SigningKey>,
    e: DrainEntry,
) -> Option<(String, DrainCredentials)> {
    let secret = if e.integration_secret {
        let Some(secret) = client_secret.cloned() else {
            tracing::warn!(
                drain = e.id,
                "drain signed with the integration secret, which is not configured: not served"
            );
            return None;
        };
        secret
    } else {
        e.secret.signing_key()
    };
    let headers: Result<Vec<RequiredHeader>, _> =
        e.headers.iter().map(|h| RequiredHeader::new(&h.name, h.value.expose())).collect();
    let headers = match headers {
        Ok(headers) => headers,
        // Serving the drain without the check would accept what its owner meant to refuse.
        Err(error) => {
            tracing::warn!(drain = e.id, %error, "drain's required header is invalid: not served");
            return None;
        }
    };
    let credentials = DrainCredentials {
        name: Arc::from(e.id.as_str()),
        secret,
        headers: headers.into(),
        data_type: e.data_type,
    };
    Some((e.path_key, credentials))
}

/// The shared store's drains, as the copy its feed keeps current.
pub struct FeedDirectory {
    by_key: Arc<RwLock<HashMap<String, DrainCredentials>>>,
    health: FeedHealth,
}

impl std::fmt::Debug for FeedDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedDirectory").field("up", &self.health.is_up()).finish()
    }
}

impl FeedDirectory {
    /// Starts the feed of `store` on the current runtime; drains signed with the integration's
    /// secret are verified with `client_secret` (not served without it).
    pub fn spawn(store: PgStore, client_secret: Option<SigningKey>) -> FeedDirectory {
        let by_key = Arc::new(RwLock::new(HashMap::new()));
        let copy = Arc::clone(&by_key);
        let apply: feed::Apply = Arc::new(move |snapshot: &Snapshot| {
            let fresh: HashMap<String, DrainCredentials> = snapshot
                .values()
                .filter_map(|e| credentials(client_secret.as_ref(), e.clone()))
                .collect();
            *copy.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        });
        let (health, _task) = feed::spawn(store, apply);
        FeedDirectory { by_key, health }
    }

    /// How the feed is doing.
    pub fn health(&self) -> &FeedHealth {
        &self.health
    }
}

impl DrainDirectory for FeedDirectory {
    fn lookup(&self, key: &str) -> Option<DrainCredentials> {
        self.by_key.read().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    fn degraded(&self) -> bool {
        !self.health.is_up()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, key: &str) -> DrainEntry {
        DrainEntry {
            id: id.into(),
            path_key: key.into(),
            secret: control::Secret::new("s"),
            team_id: None,
            kind: control::DrainKind::SelfServed,
            created_at_ms: 1,
            configuration_id: None,
            integration_secret: false,
            data_type: Default::default(),
            headers: Vec::new(),
        }
    }

    #[test]
    fn lookups_read_the_copy_while_the_file_is_read_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drains.json");
        DrainRegistry::new(&path).insert(entry("drn_one", "k1")).unwrap();
        let directory = Arc::new(RegistryDirectory::start(&path, None).unwrap());
        assert!(directory.lookup("k1").is_some(), "read once at start");

        // A refresh in progress (holding the file's stamp, as a slow read would) does not hold
        // a lookup up.
        let reading = directory.loaded.stamp.lock().unwrap();
        let looking = Arc::clone(&directory);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(looking.lookup("k1").is_some()).unwrap());
        let found = rx.recv_timeout(Duration::from_secs(10));
        drop(reading);
        assert_eq!(found, Ok(true), "a lookup waited for the file to be read");

        // A drain added to the file is served without a lookup asking for it.
        DrainRegistry::new(&path).insert(entry("drn_two", "k2")).unwrap();
        let picked =
            testkit::wait_until(Duration::from_secs(10), || directory.lookup("k2").is_some());
        assert!(picked, "the new drain was never read");
        // Dropped, the directory's thread ends (it holds only a weak reference).
        let weak = Arc::downgrade(&directory.loaded);
        drop(directory);
        assert!(testkit::wait_until(Duration::from_secs(10), || weak.upgrade().is_none()));
    }
}
