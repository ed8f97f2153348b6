//! The part of the edge's configuration that changes while it serves (on `SIGHUP`): the default
//! drain's secret and the previous secrets accepted during a rotation, its required headers,
//! the verify code, and the body limits and timeout. Each request reads it once ([`LiveCell`]:
//! an `Arc` behind a lock held only to clone it), so a request sees one configuration from start
//! to end, and in-flight requests finish under the one they started with.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use http::HeaderValue;
use listener::{SigningKey, Tls};

use crate::drains::RequiredHeader;
use crate::IngestConfig;

/// The configuration file's keys that [`Reloader::apply`] applies to the requests that follow
/// (the fields of `Live`); the edge's other keys are read only at start (`needs_restart`).
pub const LIVE_KEYS: [&str; 7] = [
    "vercel.drain_secret",
    "vercel.previous_drain_secrets",
    "vercel.required_headers",
    "vercel.verify_code",
    "server.body_read_timeout_secs",
    "server.max_body_bytes",
    "server.max_inflated_bytes",
];

/// One snapshot of the live configuration.
pub(crate) struct Live {
    pub(crate) drain_secret: Option<SigningKey>,
    /// Also accepted on the default drain, after `drain_secret` (tried only when it fails).
    pub(crate) previous_secrets: Arc<[SigningKey]>,
    pub(crate) drain_headers: Arc<[RequiredHeader]>,
    pub(crate) verify: Option<HeaderValue>,
    pub(crate) max_body_bytes: usize,
    pub(crate) max_inflated_bytes: usize,
    pub(crate) body_read_timeout: Duration,
}

impl Live {
    pub(crate) fn new(config: &IngestConfig) -> std::io::Result<Live> {
        let verify = match &config.verify_code {
            Some(code) => Some(HeaderValue::from_str(code).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "verify code is not a valid header value",
                )
            })?),
            None => None,
        };
        Ok(Live {
            drain_secret: config.drain_secret.clone(),
            previous_secrets: Arc::clone(&config.previous_drain_secrets),
            drain_headers: Arc::clone(&config.drain_headers),
            verify,
            max_body_bytes: config.max_body_bytes,
            max_inflated_bytes: config.max_inflated_bytes,
            body_read_timeout: config.body_read_timeout,
        })
    }
}

/// Whether `signature` is `body`'s under `secret` or, during a rotation, one of `previous`.
pub(crate) fn verifies_any(
    secret: &SigningKey,
    previous: &[SigningKey],
    body: &[u8],
    signature: &[u8],
) -> bool {
    secret.verifies(body, signature) || previous.iter().any(|key| key.verifies(body, signature))
}

/// Where the current [`Live`] is.
pub(crate) struct LiveCell(RwLock<Arc<Live>>);

impl LiveCell {
    pub(crate) fn new(live: Live) -> LiveCell {
        LiveCell(RwLock::new(Arc::new(live)))
    }

    /// The current snapshot (a reference count; the lock is released on return).
    pub(crate) fn load(&self) -> Arc<Live> {
        Arc::clone(&self.0.read().expect("live configuration lock"))
    }

    fn store(&self, live: Live) {
        *self.0.write().expect("live configuration lock") = Arc::new(live);
    }
}

/// Applies a new configuration to a running edge: see [`Reloader::apply`]. Cheap to clone.
#[derive(Clone)]
pub struct Reloader {
    cell: Arc<LiveCell>,
    /// The configuration the edge started with: what cannot change live is compared with it.
    started: Arc<IngestConfig>,
    tls: Option<Tls>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").field("tls", &self.tls).finish_non_exhaustive()
    }
}

impl Reloader {
    pub(crate) fn new(cell: Arc<LiveCell>, started: IngestConfig, tls: Option<Tls>) -> Reloader {
        Reloader { cell, started: Arc::new(started), tls }
    }

    /// Applies `new`'s live part: the drain secret and `previous_drain_secrets`, required
    /// headers, verify code, `max_body_bytes` and `max_inflated_bytes` (lowered only: the
    /// pipeline was sized for the values at start), `body_read_timeout`; and re-reads the TLS
    /// files. Everything or nothing: on `Err` (every problem, one per line) the running
    /// configuration is untouched. `Ok` lists the keys that changed but need a restart.
    pub fn apply(&self, new: &IngestConfig) -> Result<Vec<&'static str>, String> {
        let s = &self.started;
        let mut problems = Vec::new();
        if new.max_body_bytes > s.max_body_bytes {
            problems.push(format!(
                "server.max_body_bytes: raising it above {} needs a restart",
                s.max_body_bytes
            ));
        }
        if new.max_inflated_bytes > s.max_inflated_bytes {
            problems.push(format!(
                "server.max_inflated_bytes: raising it above {} needs a restart",
                s.max_inflated_bytes
            ));
        }
        if let Some(problem) = opens_unsigned(s, new) {
            problems.push(problem);
        }
        let live = Live::new(new).map_err(|e| format!("vercel.verify_code: {e}"));
        let live = live.map_err(|e| problems.push(e)).ok();
        let restart = needs_restart(s, new);
        let tls_reloaded = match (&self.tls, &new.tls) {
            (Some(tls), Some(files)) if tls.files() == files && problems.is_empty() => {
                tls.reload().map_err(|e| format!("server.tls: {e}"))
            }
            _ => Ok(()),
        };
        tls_reloaded.unwrap_or_else(|e| problems.push(e));
        match live {
            Some(live) if problems.is_empty() => {
                self.cell.store(live);
                Ok(restart)
            }
            _ => Err(problems.join("\n")),
        }
    }
}

/// Without a drain secret the default drain accepts unsigned deliveries, which the binary allows
/// on a loopback address only unless `vercel.allow_unsigned` is set. A new configuration passed
/// that check against its own `server.listen`, which applies only after a restart: it must not
/// take the secret away from an edge bound elsewhere. It may when the edge is bound to loopback,
/// or when its address is the one bound (so the check was made against it).
fn opens_unsigned(started: &IngestConfig, new: &IngestConfig) -> Option<String> {
    let bound = started.listen;
    let open = new.drain_secret.is_none() && !bound.ip().is_loopback() && new.listen != bound;
    open.then(|| {
        format!(
            "vercel.drain_secret: required while the server listens on {bound}, which is not a \
             loopback address (a new server.listen applies only after a restart)"
        )
    })
}

/// The keys of `new` that differ from `started` and are read only at start.
fn needs_restart(started: &IngestConfig, new: &IngestConfig) -> Vec<&'static str> {
    let s = started;
    [
        ("server.listen", s.listen != new.listen),
        ("server.metrics_listen", s.metrics_listen != new.metrics_listen),
        ("server.drain_path", s.drain_path != new.drain_path),
        ("server.max_connections", s.max_connections != new.max_connections),
        ("server.header_read_timeout_secs", s.header_read_timeout != new.header_read_timeout),
        ("server.ack_timeout_secs", s.ack_timeout != new.ack_timeout),
        ("server.retry_after_secs", s.retry_after_secs != new.retry_after_secs),
        ("server.shutdown_timeout_secs", s.shutdown_timeout != new.shutdown_timeout),
        ("server.drain_delay_secs", s.drain_delay != new.drain_delay),
        (
            "server.max_unverified_inflations",
            s.max_unverified_inflations != new.max_unverified_inflations,
        ),
        ("server.tls", s.tls != new.tls),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(listen: &str, secret: Option<&str>) -> IngestConfig {
        IngestConfig {
            listen: listen.parse().unwrap(),
            drain_secret: secret.map(SigningKey::new),
            ..IngestConfig::default()
        }
    }

    fn reloader(started: IngestConfig) -> Reloader {
        let cell = Arc::new(LiveCell::new(Live::new(&started).unwrap()));
        Reloader::new(cell, started, None)
    }

    #[test]
    fn a_reload_does_not_take_the_secret_from_an_edge_bound_beyond_loopback() {
        let exposed = reloader(edge("0.0.0.0:8080", Some("s")));
        // The binary moves a configuration without a secret (and without an explicit address)
        // to loopback; the edge is still bound to every interface.
        let problem = exposed.apply(&edge("127.0.0.1:8080", None)).unwrap_err();
        assert!(problem.contains("vercel.drain_secret") && problem.contains("0.0.0.0:8080"));
        assert!(exposed.cell.load().drain_secret.is_some(), "nothing applied");
        // Its own address without a secret passed the binary's check only with allow_unsigned.
        assert_eq!(exposed.apply(&edge("0.0.0.0:8080", None)), Ok(vec![]));
        assert!(exposed.cell.load().drain_secret.is_none());
        // On loopback, taking the secret away exposes nothing.
        let local = reloader(edge("127.0.0.1:8080", Some("s")));
        assert_eq!(local.apply(&edge("127.0.0.1:8080", None)), Ok(vec![]));
    }
}
