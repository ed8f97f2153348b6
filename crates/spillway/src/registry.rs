//! The receiver's view of the drain registry (`<data dir>/drains.json`, written by
//! `spillway drains create`): a [`DrainDirectory`] that re-reads the file when it changes, so
//! drains created or deleted while the server runs take effect without a restart.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

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
                cache.by_key = entries.into_iter().filter_map(|e| self.credentials(e)).collect();
                cache.stamp = stamp;
                tracing::info!(drains = cache.by_key.len(), "drain registry loaded");
            }
            // Keep serving the drains known so far; try again at the next check.
            Err(e) => tracing::warn!(error = %e, "cannot read the drain registry"),
        }
    }

    /// What the edge needs to serve registered drain `e` at its path key; `None` (logged) when
    /// it cannot be served safely.
    fn credentials(&self, e: DrainEntry) -> Option<(String, DrainCredentials)> {
        let secret = if e.integration_secret {
            let Some(secret) = self.client_secret.clone() else {
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
        let credentials =
            DrainCredentials { name: Arc::from(e.id.as_str()), secret, headers: headers.into() };
        Some((e.path_key, credentials))
    }
}

impl DrainDirectory for RegistryDirectory {
    fn lookup(&self, key: &str) -> Option<DrainCredentials> {
        self.refresh();
        self.cache.read().unwrap_or_else(|e| e.into_inner()).by_key.get(key).cloned()
    }
}
