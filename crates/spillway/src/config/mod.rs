//! Configuration in two stages: [`RawConfig`] as read from TOML and the environment
//! (`raw.rs`), then [`Config`], validated, with every problem reported at once and named by its
//! key path. Each section is translated into its crate's own config (`edge.rs`: `[server]`,
//! `[vercel]`, `[pipeline]`; `sinks.rs`: `[sinks.*]`; `integration.rs`: `[integration]`; `store.rs`: `[store]`),
//! starting from that crate's `Default`, the one home of its defaults.

mod edge;
mod integration;
mod raw;
mod sinks;
mod store;

use std::path::{Path, PathBuf};

use control::postgres::PgConfig;
use control::IntegrationConfig;
use ingest::IngestConfig;
use pipeline::file::FileSinkConfig;
use pipeline::kafka::KafkaSinkConfig;
use pipeline::PipelineConfig;

pub use raw::{
    RawConfig, RawFileSink, RawIntegration, RawKafkaSink, RawPipeline, RawRoute, RawServer,
    RawSinks, RawStore, RawVercel, API_URL_VAR, DATA_DIR_VAR, ENV_OVERRIDES,
};
pub use store::{DATABASE_URL_VAR, PREVIOUS_KEYS_VAR, STORE_KEY_VAR};

/// The log filter when none is configured.
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// The data directory when none is configured.
pub const DEFAULT_DATA_DIR: &str = "./spillway-data";

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Root of local state.
    pub data_dir: PathBuf,
    /// The log filter (`tracing_subscriber::EnvFilter` directives); `RUST_LOG` wins when set.
    pub log_level: String,
    /// The HTTP edge.
    pub ingest: IngestConfig,
    /// The pipeline's limits.
    pub pipeline: PipelineConfig,
    /// The records file sink, when enabled.
    pub file_sink: Option<FileSinkConfig>,
    /// The dead-letter sink.
    pub dead_letter: FileSinkConfig,
    /// The Kafka sink, when enabled.
    pub kafka: Option<KafkaSinkConfig>,
    /// The integration's control-plane listener, when the integration is configured.
    pub integration: Option<IntegrationConfig>,
    /// The shared PostgreSQL store, when `store.database_url` is set (else the data
    /// directory's files).
    pub store: Option<PgConfig>,
}

/// The configuration could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys.
    #[error("{path} is not a valid configuration: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// One or more values are invalid; every problem found is listed.
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

/// The problems found so far, each named by its key path.
struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, problem: impl Into<String>) {
        self.0.push(problem.into());
    }

    /// `value` (else `default`) if within `min..=max`; else a problem, and `default`.
    fn range(&mut self, key: &str, value: Option<u64>, default: u64, min: u64, max: u64) -> u64 {
        let v = value.unwrap_or(default);
        if v < min || v > max {
            self.push(format!("{key}: {v} is out of range ({min}..={max})"));
            return default;
        }
        v
    }
}

impl RawConfig {
    /// Validates every value, collecting all problems (after `problems` found earlier).
    pub fn validate(self, problems: Vec<String>) -> Result<Config, ConfigError> {
        let mut problems = Problems(problems);
        let data_dir = self.data_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let log_level = self.log_level.unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_owned());
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_level) {
            problems.push(format!("log_level: {log_level:?} is not a log filter: {e}"));
        }
        let ingest = edge::ingest_config(&self.server, self.vercel, &mut problems);
        let pipeline = edge::pipeline_config(&self.pipeline, &ingest, &mut problems);
        let sinks = sinks::sinks_config(&self.sinks, &data_dir, &mut problems);
        let integration = self
            .integration
            .as_ref()
            .and_then(|raw| integration::integration_config(raw, &mut problems));
        let store = store::store_config(&self.store, &mut problems);
        if !problems.0.is_empty() {
            return Err(ConfigError::Invalid(problems.0));
        }
        Ok(Config {
            data_dir,
            log_level,
            ingest,
            pipeline,
            file_sink: sinks.file,
            dead_letter: sinks.dead_letter,
            kafka: sinks.kafka,
            integration,
            store,
        })
    }
}

/// The shared store the environment configures (`SPILLWAY_DATABASE_URL`, `SPILLWAY_STORE_KEY`,
/// `SPILLWAY_STORE_PREVIOUS_KEYS`), for the commands that act on the store outside `serve`;
/// `None` when no database URL is set.
pub fn store_from_env(
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<PgConfig>, ConfigError> {
    let raw = RawStore {
        database_url: env(DATABASE_URL_VAR),
        key: env(STORE_KEY_VAR),
        previous_keys: env(PREVIOUS_KEYS_VAR),
        ..RawStore::default()
    };
    let mut problems = Problems(Vec::new());
    let store = store::store_config(&raw, &mut problems);
    if !problems.0.is_empty() {
        return Err(ConfigError::Invalid(problems.0));
    }
    Ok(store)
}

/// Reads the optional file, applies the environment and validates.
pub fn load(
    path: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    load_with_table(path, env).map(|(config, _)| config)
}

/// [`load`], and the file's keys and values as read (`None` without a file), from one read of
/// it: what a reload compares to name the keys that changed.
pub fn load_with_table(
    path: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(Config, Option<toml::Table>), ConfigError> {
    let (mut raw, table) = match path {
        Some(path) => RawConfig::from_file(path).map(|(raw, table)| (raw, Some(table)))?,
        None => (RawConfig::default(), None),
    };
    let mut problems = Vec::new();
    raw.apply_env(env, &mut problems);
    Ok((raw.validate(problems)?, table))
}
