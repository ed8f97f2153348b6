//! `SIGHUP`: re-read the configuration file (and the environment over it) and apply what can
//! change live through `ingest::Reloader` (drain secret and previous secrets, required headers,
//! verify code, body limits, TLS files) and the log filter. Everything or nothing: a new
//! configuration with any problem changes nothing, each problem is logged, and
//! `spillway_config_reloads_total{result="error"}` counts it (`result="ok"` counts the others).
//! Every other key of the file that changed since the start is named in a warning (never its
//! value): it applies only after a restart.

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
    /// That file's keys and values when the server started, to name the changed keys that a
    /// reload does not apply.
    pub(crate) started: Option<toml::Table>,
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
        let outcome = config::load_with_table(self.path.as_deref(), env)
            .map_err(|e| crate::error_chain(&e))
            .and_then(|(config, table)| self.apply(&config, table));
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

    /// Applies `config`, read from a file whose keys and values are `table`; returns the
    /// changed keys that apply only after a restart.
    fn apply(&self, config: &Config, table: Option<toml::Table>) -> Result<Vec<String>, String> {
        let commit = self.extra.as_ref().map(|extra| extra(config)).transpose()?;
        let edge = self.reloader.apply(&config.ingest)?;
        if let Some(commit) = commit {
            commit();
        }
        // The environment cannot change under a running process: only the file can.
        let changed = match (&self.started, table) {
            (Some(started), Some(now)) => changed_keys(started, &now),
            _ => Vec::new(),
        };
        Ok(restart_keys(edge, changed))
    }
}

/// The file's keys that a reload applies beside the edge's ([`ingest::LIVE_KEYS`]), or checks
/// again (`vercel.allow_unsigned`); every other changed key of the file applies only after a
/// restart.
const OWN_LIVE_KEYS: [&str; 2] = ["log_level", "vercel.allow_unsigned"];

/// Every key of the file that a reload applies or checks.
fn live_keys() -> impl Iterator<Item = &'static str> {
    ingest::LIVE_KEYS.into_iter().chain(OWN_LIVE_KEYS)
}

/// The dotted keys set, unset or changed between two readings of the file, in order: the keys of
/// a table are named one by one, an array counts as one key (`sinks.kafka.routes`).
fn changed_keys(before: &toml::Table, after: &toml::Table) -> Vec<String> {
    fn walk(prefix: &str, before: &toml::Table, after: &toml::Table, out: &mut Vec<String>) {
        // A table, or nothing (a table then on the other side only): its keys one by one.
        fn table<'a>(
            value: Option<&'a toml::Value>,
            empty: &'a toml::Table,
        ) -> Option<&'a toml::Table> {
            match value {
                Some(toml::Value::Table(t)) => Some(t),
                None => Some(empty),
                Some(_) => None,
            }
        }
        let empty = toml::Table::new();
        let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        for key in keys {
            let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            let (b, a) = (before.get(key), after.get(key));
            if b == a {
                continue;
            }
            match (table(b, &empty), table(a, &empty)) {
                (Some(b), Some(a)) => walk(&path, b, a, out),
                _ => out.push(path),
            }
        }
    }
    let mut out = Vec::new();
    walk("", before, after, &mut out);
    out
}

/// The edge's own list of changed start-only keys, then every other changed key of the file
/// that is neither applied live nor inside a key already named (`server.tls.cert_path` under
/// `server.tls`).
fn restart_keys(edge: Vec<&'static str>, changed: Vec<String>) -> Vec<String> {
    let mut keys: Vec<String> = edge.into_iter().map(String::from).collect();
    for key in changed {
        let named = keys.iter().any(|k| key == *k || key.starts_with(&format!("{k}.")));
        if !named && !live_keys().any(|live| live == key) {
            keys.push(key);
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn every_changed_key_of_the_file_is_named_once_and_live_ones_not_at_all() {
        let before = table(
            "log_level = \"info\"\n[server]\nmax_body_bytes = 1\nmax_held_body_bytes = 2\n\
             tls = { cert_path = \"a\", key_path = \"k\" }\n[vercel]\ndrain_secret = \"s1\"\n\
             [pipeline]\nmax_in_flight_batches = 8\n[sinks.kafka]\nbrokers = \"b:1\"\n\
             [[sinks.kafka.routes]]\nfield = \"source\"\nvalue = \"edge\"\ntopic = \"t\"\n",
        );
        let after = table(
            "log_level = \"debug\"\n[server]\nmax_body_bytes = 0\nmax_held_body_bytes = 3\n\
             tls = { cert_path = \"b\", key_path = \"k\" }\n[vercel]\ndrain_secret = \"s2\"\n\
             [pipeline]\nmax_in_flight_batches = 8\nmax_group_batches = 4\n\
             [sinks.kafka]\nbrokers = \"b:1\"\n\
             [[sinks.kafka.routes]]\nfield = \"source\"\nvalue = \"edge\"\ntopic = \"u\"\n[store]\npool_size = 2\n",
        );
        let changed = changed_keys(&before, &after);
        assert_eq!(
            changed,
            [
                "log_level",
                "pipeline.max_group_batches",
                "server.max_body_bytes",
                "server.max_held_body_bytes",
                "server.tls.cert_path",
                "sinks.kafka.routes",
                "store.pool_size",
                "vercel.drain_secret",
            ]
        );
        assert_eq!(
            restart_keys(vec!["server.tls"], changed),
            [
                "server.tls",
                "pipeline.max_group_batches",
                "server.max_held_body_bytes",
                "sinks.kafka.routes",
                "store.pool_size",
            ]
        );
        assert!(changed_keys(&after, &after).is_empty());
    }

    /// Each live key is one the file may hold (its sections refuse unknown keys).
    #[test]
    fn live_keys_are_keys_of_the_file() {
        for key in live_keys() {
            let value = match key {
                "vercel.allow_unsigned" => "true",
                "vercel.previous_drain_secrets" | "vercel.required_headers" => "[\"a: b\"]",
                k if k.starts_with("server.") => "1",
                _ => "\"x\"",
            };
            let text = match key.rsplit_once('.') {
                Some((section, name)) => format!("[{section}]\n{name} = {value}"),
                None => format!("{key} = {value}"),
            };
            assert!(crate::config::RawConfig::from_toml(&text).is_ok(), "{key}");
        }
        assert!(crate::config::RawConfig::from_toml("[vercel]\ndrain_secrets = \"x\"").is_err());
    }
}
