//! `SIGHUP`: re-read the configuration file (and the environment over it) and apply what can
//! change live through `ingest::Reloader` (drain secret and previous secrets, required headers,
//! verify code, body limits, TLS files) and the log filter. Everything or nothing: a new
//! configuration with any problem changes nothing, each problem is logged, and
//! `spillway_config_reloads_total{result="error"}` counts it (`result="ok"` counts the others).

use std::path::PathBuf;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::signal::unix::Signal;
use tracing_subscriber::EnvFilter;

use crate::config::{self, Config};

type Reloads = Family<[(&'static str, &'static str); 1], Counter>;

/// Applies a reloaded configuration's part that lives outside the edge (the log filter):
/// `Err` (a problem) changes nothing; `Ok` is called only once every check passed.
pub type Extra = Box<dyn Fn(&Config) -> Result<Box<dyn FnOnce() + Send>, String> + Send + Sync>;

/// What changes the process's log filter.
pub type LogHandle = tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>;

/// The [`Extra`] that sets the log filter to a configuration's `log_level`, unless `RUST_LOG`
/// is set (it then wins, at start and at every reload).
pub fn log_filter(handle: LogHandle) -> Extra {
    Box::new(move |config: &Config| {
        if std::env::var_os("RUST_LOG").is_some() {
            return Ok(Box::new(|| {}));
        }
        let filter =
            EnvFilter::try_new(&config.log_level).map_err(|e| format!("log_level: {e}"))?;
        let handle = handle.clone();
        Ok(Box::new(move || {
            if let Err(e) = handle.reload(filter) {
                tracing::error!(error = %e, "log filter not changed");
            }
        }))
    })
}

/// Counts reloads; registered before the registry is shared.
#[derive(Debug, Clone)]
pub(crate) struct ReloadMetrics(Reloads);

impl ReloadMetrics {
    pub(crate) fn register(registry: &mut Registry) -> ReloadMetrics {
        let reloads = Reloads::default();
        registry.sub_registry_with_prefix("spillway").register(
            "config_reloads",
            "Configuration reloads on SIGHUP, by result (ok, error: nothing changed)",
            reloads.clone(),
        );
        for result in ["ok", "error"] {
            let _ = reloads.get_or_create(&[("result", result)]);
        }
        ReloadMetrics(reloads)
    }
}

/// What a `SIGHUP` reloads.
pub struct ConfigReload {
    pub(crate) reloader: ingest::Reloader,
    pub(crate) metrics: ReloadMetrics,
    /// The file read at start (`None`: the embedded defaults and the environment).
    pub(crate) path: Option<PathBuf>,
    pub(crate) extra: Option<Extra>,
}

impl std::fmt::Debug for ConfigReload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigReload").field("path", &self.path).finish_non_exhaustive()
    }
}

impl ConfigReload {
    /// Reloads at every signal received on `hangups`, until the process ends.
    pub(crate) fn spawn(self, mut hangups: Signal) {
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the configuration");
                self.reload();
            }
        });
    }

    /// Re-reads and applies the configuration; returns whether it was applied.
    pub(crate) fn reload(&self) -> bool {
        let env = |key: &str| std::env::var(key).ok();
        let outcome = config::load(self.path.as_deref(), env)
            .map_err(|e| crate::error_chain(&e))
            .and_then(|config| self.apply(&config));
        match outcome {
            Ok(restart) => {
                self.metrics.0.get_or_create(&[("result", "ok")]).inc();
                if !restart.is_empty() {
                    tracing::warn!(keys = ?restart, "changed keys that apply only after a restart");
                }
                tracing::info!("configuration reloaded");
                true
            }
            Err(problems) => {
                self.metrics.0.get_or_create(&[("result", "error")]).inc();
                for problem in problems.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    tracing::error!(problem, "configuration not reloaded");
                }
                tracing::error!("configuration not reloaded: the previous one keeps serving");
                false
            }
        }
    }

    fn apply(&self, config: &Config) -> Result<Vec<&'static str>, String> {
        let commit = self.extra.as_ref().map(|extra| extra(config)).transpose()?;
        let restart = self.reloader.apply(&config.ingest)?;
        if let Some(commit) = commit {
            commit();
        }
        Ok(restart)
    }
}
