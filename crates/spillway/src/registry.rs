//! The receiver's view of the drain registry, as a [`DrainDirectory`]: drains created or deleted
//! while the server runs take effect without a restart.
//!
//! - [`RegistryDirectory`]: the file (`<data dir>/drains.json`, written by `spillway drains
//!   create`), re-read when it changes.
//! - [`FeedDirectory`]: the shared PostgreSQL store, as the copy `control`'s feed keeps current
//!   (notified changes, periodic resyncs); never read per request, and kept serving while the
//!   database is down.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use control::postgres::feed::{self, FeedHealth, Snapshot};
use control::postgres::PgStore;
use control::{DrainEntry, DrainRegistry};
use ingest::{DrainCredentials, DrainDirectory, RequiredHeader};
use listener::SigningKey;

/// How often, at most, a lookup checks whether the registry file changed (one `stat`).
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// What identifies one version of the file: inode (writes replace it by rename), size, mtime.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

struct Cache {
    checked: Option<Instant>,
    stamp: Option<Stamp>,
    by_key: HashMap<String, DrainCredentials>,
}

/// The drain registry file as a [`DrainDirectory`].
pub struct RegistryDirectory {
    registry: DrainRegistry,
    client_secret: Option<SigningKey>,
    cache: RwLock<Cache>,
}

impl std::fmt::Debug for RegistryDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryDirectory").field("path", &self.registry.path()).finish()
    }
}

impl RegistryDirectory {
    /// The registry at `path` (which need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> RegistryDirectory {
        RegistryDirectory {
            registry: DrainRegistry::new(path),
            client_secret: None,
            cache: RwLock::new(Cache { checked: None, stamp: None, by_key: HashMap::new() }),
        }
    }

    /// Verifies the drains Vercel signs with the integration's client secret (reported as
    /// `INTEGRATION_SECRET`) with `client_secret`; without it they are not served.
    pub fn with_client_secret(mut self, client_secret: Option<SigningKey>) -> RegistryDirectory {
        self.client_secret = client_secret;
        self
    }

    fn stamp(&self) -> Option<Stamp> {
        let m = std::fs::metadata(self.registry.path()).ok()?;
        Some(Stamp { inode: m.ino(), len: m.len(), mtime: m.mtime(), mtime_nsec: m.mtime_nsec() })
    }

    /// Re-reads the file if it changed since the last look (and that look is old enough).
    fn refresh(&self) {
        let due = {
            let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
            cache.checked.is_none_or(|at| at.elapsed() >= CHECK_EVERY)
        };
        if !due {
            return;
        }
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        cache.checked = Some(Instant::now());
        let stamp = self.stamp();
        if stamp == cache.stamp {
            return;
        }
        match self.registry.load() {
            Ok(entries) => {
                let secret = self.client_secret.as_ref();
                cache.by_key = entries.into_iter().filter_map(|e| credentials(secret, e)).collect();
                cache.stamp = stamp;
                tracing::info!(drains = cache.by_key.len(), "drain registry loaded");
            }
            // Keep serving the drains known so far; try again at the next check.
            Err(e) => tracing::warn!(error = %e, "cannot read the drain registry"),
        }
    }
}

impl DrainDirectory for RegistryDirectory {
    fn lookup(&self, key: &str) -> Option<DrainCredentials> {
        self.refresh();
        self.cache.read().unwrap_or_else(|e| e.into_inner()).by_key.get(key).cloned()
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
