//! Configuration in two stages: [`RawConfig`] as read from TOML and the environment, then
//! [`Config`], validated, with every problem reported at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ingest::{IngestConfig, RequiredHeader};
use listener::SigningKey;
use std::collections::BTreeMap;

use pipeline::file::{FileSinkConfig, FsyncMode, FsyncPolicy};
use pipeline::kafka::{KafkaSinkConfig, Route, RouteField};
use pipeline::PipelineConfig;
use serde::Deserialize;

use control::IntegrationConfig;

/// Environment variables that override the file (deploy tooling and tests rely on them).
pub const ENV_OVERRIDES: [&str; 13] = [
    "SPILLWAY_LISTEN",
    "SPILLWAY_DRAIN_SECRET",
    "SPILLWAY_DRAIN_HEADER",
    "SPILLWAY_VERIFY_CODE",
    "SPILLWAY_DATA_DIR",
    "SPILLWAY_MAX_BODY_BYTES",
    "SPILLWAY_KAFKA_BROKERS",
    "SPILLWAY_KAFKA_TOPIC",
    "SPILLWAY_VERCEL_CLIENT_ID",
    "SPILLWAY_VERCEL_CLIENT_SECRET",
    "SPILLWAY_VERCEL_REDIRECT_URL",
    "SPILLWAY_VERCEL_API_URL",
    "SPILLWAY_CONTROL_LISTEN",
];

/// The configuration file as written; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Root of local state (`./spillway-data`).
    pub data_dir: Option<PathBuf>,
    /// `[server]`.
    #[serde(default)]
    pub server: RawServer,
    /// `[vercel]`.
    #[serde(default)]
    pub vercel: RawVercel,
    /// `[pipeline]`.
    #[serde(default)]
    pub pipeline: RawPipeline,
    /// `[sinks.*]`.
    #[serde(default)]
    pub sinks: RawSinks,
    /// `[integration]`: the Vercel integration's install flow and webhooks.
    pub integration: Option<RawIntegration>,
}

/// `[integration]`: with client id, client secret and redirect URL all set, `serve` also runs
/// the control-plane listener.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawIntegration {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub redirect_url: Option<String>,
    pub api_url: Option<String>,
    pub listen: Option<String>,
    pub drain_url: Option<String>,
    pub create_drain: Option<bool>,
    pub project_env: Option<String>,
}

impl std::fmt::Debug for RawIntegration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawIntegration")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "[redacted]"))
            .field("redirect_url", &self.redirect_url)
            .field("api_url", &self.api_url)
            .field("listen", &self.listen)
            .field("drain_url", &self.drain_url)
            .field("create_drain", &self.create_drain)
            .field("project_env", &self.project_env)
            .finish()
    }
}

/// `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawServer {
    pub listen: Option<String>,
    pub drain_path: Option<String>,
    pub max_body_bytes: Option<u64>,
    pub max_inflated_bytes: Option<u64>,
    pub max_connections: Option<u64>,
    pub header_read_timeout_secs: Option<u64>,
    pub body_read_timeout_secs: Option<u64>,
    pub ack_timeout_secs: Option<u64>,
    pub retry_after_secs: Option<u64>,
    pub shutdown_timeout_secs: Option<u64>,
}

/// `[vercel]`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawVercel {
    pub drain_secret: Option<String>,
    /// `"Name: value"` each; the values are credentials.
    pub required_headers: Option<Vec<String>>,
    pub verify_code: Option<String>,
}

impl std::fmt::Debug for RawVercel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let header_names: Option<Vec<&str>> = self.required_headers.as_ref().map(|headers| {
            headers.iter().map(|h| h.split_once(':').map_or("[redacted]", |(n, _)| n)).collect()
        });
        f.debug_struct("RawVercel")
            .field("drain_secret", &self.drain_secret.as_ref().map(|_| "[redacted]"))
            .field("required_headers", &header_names)
            .field("verify_code", &self.verify_code)
            .finish()
    }
}

/// `[pipeline]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawPipeline {
    pub max_in_flight_batches: Option<u64>,
    pub max_in_flight_bytes: Option<u64>,
    pub max_group_batches: Option<u64>,
}

/// `[sinks]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawSinks {
    #[serde(default)]
    pub file: RawFileSink,
    #[serde(default)]
    pub dead_letter: RawFileSink,
    pub kafka: Option<RawKafkaSink>,
}

/// `[sinks.kafka]`: present (or `SPILLWAY_KAFKA_BROKERS` set) enables the Kafka sink.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawKafkaSink {
    pub brokers: Option<String>,
    pub topic: Option<String>,
    pub compression: Option<String>,
    pub linger_ms: Option<u64>,
    pub batch_bytes: Option<u64>,
    pub queue_max_messages: Option<u64>,
    pub queue_max_kbytes: Option<u64>,
    pub message_timeout_ms: Option<u64>,
    pub create_topics: Option<bool>,
    pub partitions: Option<u64>,
    pub replication_factor: Option<u64>,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

/// `[[sinks.kafka.routes]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawRoute {
    pub field: String,
    pub value: String,
    pub topic: String,
}

/// `[sinks.file]` and `[sinks.dead_letter]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawFileSink {
    pub enabled: Option<bool>,
    pub dir: Option<PathBuf>,
    pub max_file_bytes: Option<u64>,
    pub max_file_age_secs: Option<u64>,
    pub fsync: Option<String>,
    pub fsync_interval_ms: Option<u64>,
    pub drop_synced_pages: Option<bool>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Root of local state.
    pub data_dir: PathBuf,
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

impl RawConfig {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        RawConfig::from_toml(&text)
            .map_err(|message| ConfigError::Parse { path: path.to_owned(), message })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<RawConfig, String> {
        toml::from_str(text).map_err(|e| e.message().to_owned())
    }

    /// Applies the `SPILLWAY_*` overrides from `env` (a lookup, so tests need not touch the
    /// process environment). Unparsable numbers are reported by [`RawConfig::validate`].
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>, problems: &mut Vec<String>) {
        if let Some(v) = env("SPILLWAY_LISTEN") {
            self.server.listen = Some(v);
        }
        if let Some(v) = env("SPILLWAY_DRAIN_SECRET") {
            self.vercel.drain_secret = Some(v);
        }
        if let Some(v) = env("SPILLWAY_DRAIN_HEADER") {
            self.vercel.required_headers = Some(vec![v]);
        }
        if let Some(v) = env("SPILLWAY_VERIFY_CODE") {
            self.vercel.verify_code = Some(v);
        }
        if let Some(v) = env("SPILLWAY_DATA_DIR") {
            self.data_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = env("SPILLWAY_KAFKA_BROKERS") {
            self.sinks.kafka.get_or_insert_with(RawKafkaSink::default).brokers = Some(v);
        }
        if let Some(v) = env("SPILLWAY_KAFKA_TOPIC") {
            self.sinks.kafka.get_or_insert_with(RawKafkaSink::default).topic = Some(v);
        }
        let integration_env = [
            ("SPILLWAY_VERCEL_CLIENT_ID", 0),
            ("SPILLWAY_VERCEL_CLIENT_SECRET", 1),
            ("SPILLWAY_VERCEL_REDIRECT_URL", 2),
            ("SPILLWAY_VERCEL_API_URL", 3),
            ("SPILLWAY_CONTROL_LISTEN", 4),
        ];
        for (key, field) in integration_env {
            if let Some(v) = env(key) {
                let raw = self.integration.get_or_insert_with(RawIntegration::default);
                let slot = match field {
                    0 => &mut raw.client_id,
                    1 => &mut raw.client_secret,
                    2 => &mut raw.redirect_url,
                    3 => &mut raw.api_url,
                    _ => &mut raw.listen,
                };
                *slot = Some(v);
            }
        }
        if let Some(v) = env("SPILLWAY_MAX_BODY_BYTES") {
            match v.trim().parse() {
                Ok(n) => self.server.max_body_bytes = Some(n),
                Err(_) => problems
                    .push(format!("SPILLWAY_MAX_BODY_BYTES: {v:?} is not a whole number of bytes")),
            }
        }
    }

    /// Validates every value, collecting all problems.
    pub fn validate(self, mut problems: Vec<String>) -> Result<Config, ConfigError> {
        let data_dir = self.data_dir.unwrap_or_else(|| PathBuf::from("./spillway-data"));
        let s = &self.server;
        let listen_text = s.listen.clone().unwrap_or_else(|| "0.0.0.0:8080".into());
        let listen: SocketAddr = listen_text.parse().unwrap_or_else(|_| {
            problems.push(format!(
                "server.listen: {listen_text:?} is not an address like 0.0.0.0:8080"
            ));
            SocketAddr::from(([0, 0, 0, 0], 8080))
        });
        let mut ingest = IngestConfig::new(listen);
        if let Some(path) = &s.drain_path {
            if !path.starts_with('/') || path.len() < 2 {
                problems
                    .push(format!("server.drain_path: {path:?} must start with / and name a path"));
            }
            ingest.drain_path = path.clone();
        }
        let mut limit = |name: &str, value: Option<u64>, default: u64, min: u64, max: u64| -> u64 {
            let v = value.unwrap_or(default);
            if v < min || v > max {
                problems.push(format!("{name}: {v} is out of range ({min}..={max})"));
                return default;
            }
            v
        };
        const GIB: u64 = 1 << 30;
        ingest.max_body_bytes =
            limit("server.max_body_bytes", s.max_body_bytes, 16 << 20, 1024, GIB) as usize;
        ingest.max_inflated_bytes =
            limit("server.max_inflated_bytes", s.max_inflated_bytes, 64 << 20, 1024, 2 * GIB)
                as usize;
        ingest.max_connections =
            limit("server.max_connections", s.max_connections, 1024, 1, 1 << 20) as usize;
        ingest.header_read_timeout = Duration::from_secs(limit(
            "server.header_read_timeout_secs",
            s.header_read_timeout_secs,
            10,
            1,
            3600,
        ));
        ingest.body_read_timeout = Duration::from_secs(limit(
            "server.body_read_timeout_secs",
            s.body_read_timeout_secs,
            30,
            1,
            3600,
        ));
        ingest.ack_timeout =
            Duration::from_secs(limit("server.ack_timeout_secs", s.ack_timeout_secs, 20, 1, 3600));
        ingest.retry_after_secs =
            limit("server.retry_after_secs", s.retry_after_secs, 1, 1, 3600) as u32;
        ingest.shutdown_timeout = Duration::from_secs(limit(
            "server.shutdown_timeout_secs",
            s.shutdown_timeout_secs,
            30,
            1,
            3600,
        ));

        let p = &self.pipeline;
        let pipeline = PipelineConfig {
            max_in_flight_batches: limit(
                "pipeline.max_in_flight_batches",
                p.max_in_flight_batches,
                128,
                1,
                1 << 16,
            ) as usize,
            max_in_flight_bytes: limit(
                "pipeline.max_in_flight_bytes",
                p.max_in_flight_bytes,
                128 << 20,
                1 << 20,
                64 * GIB,
            ) as usize,
            max_group_batches: limit("pipeline.max_group_batches", p.max_group_batches, 64, 1, 4096)
                as usize,
            ..PipelineConfig::default()
        };
        if pipeline.max_in_flight_bytes < ingest.max_inflated_bytes {
            problems.push(format!(
                "pipeline.max_in_flight_bytes ({}) must be at least server.max_inflated_bytes ({})",
                pipeline.max_in_flight_bytes, ingest.max_inflated_bytes
            ));
        }

        match self.vercel.drain_secret {
            Some(secret) if secret.trim().is_empty() => problems.push(
                "vercel.drain_secret: is empty (leave it unset to accept unsigned deliveries)"
                    .into(),
            ),
            Some(secret) => ingest.drain_secret = Some(SigningKey::new(secret)),
            None => {}
        }
        let mut required = Vec::new();
        for (i, text) in self.vercel.required_headers.iter().flatten().enumerate() {
            match RequiredHeader::parse(text) {
                Ok(header) => required.push(header),
                Err(e) => problems.push(format!("vercel.required_headers[{i}]: {e}")),
            }
        }
        ingest.drain_headers = required.into();
        if let Some(code) = self.vercel.verify_code {
            if code.is_empty() || !code.bytes().all(|b| b.is_ascii_graphic()) {
                problems.push("vercel.verify_code: must be printable ASCII without spaces".into());
            }
            ingest.verify_code = Some(code);
        }
        ingest.drain_name = Arc::from("default");

        let file_enabled = self.sinks.file.enabled.unwrap_or(true);
        let file_sink =
            file_sink_config("sinks.file", &self.sinks.file, data_dir.join("logs"), &mut problems);
        let dead_letter = file_sink_config(
            "sinks.dead_letter",
            &self.sinks.dead_letter,
            data_dir.join("dead-letter"),
            &mut problems,
        );
        if self.sinks.dead_letter.enabled == Some(false) {
            problems
                .push("sinks.dead_letter.enabled: the dead-letter sink cannot be disabled".into());
        }
        let kafka = self.sinks.kafka.as_ref().map(|raw| kafka_sink_config(raw, &mut problems));
        if !file_enabled && kafka.is_none() {
            problems.push(
                "sinks.file.enabled: no sink for records would remain; keep the file sink or configure Kafka".into(),
            );
        }
        let integration =
            self.integration.as_ref().and_then(|raw| integration_config(raw, &mut problems));
        if problems.is_empty() {
            Ok(Config {
                data_dir,
                ingest,
                pipeline,
                file_sink: file_enabled.then_some(file_sink),
                dead_letter,
                kafka,
                integration,
            })
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

fn file_sink_config(
    name: &str,
    raw: &RawFileSink,
    default_dir: PathBuf,
    problems: &mut Vec<String>,
) -> FileSinkConfig {
    let mut config = FileSinkConfig::new(raw.dir.clone().unwrap_or(default_dir));
    if let Some(bytes) = raw.max_file_bytes {
        if bytes < 1024 {
            problems.push(format!("{name}.max_file_bytes: {bytes} is below 1024"));
        }
        config.max_file_bytes = bytes;
    }
    if let Some(secs) = raw.max_file_age_secs {
        if secs == 0 {
            problems.push(format!("{name}.max_file_age_secs: must be at least 1"));
        }
        config.max_file_age = Duration::from_secs(secs);
    }
    let interval = Duration::from_millis(raw.fsync_interval_ms.unwrap_or(1000));
    match raw.fsync.as_deref().map(str::parse::<FsyncMode>) {
        None => {}
        Some(Ok(FsyncMode::Interval)) if interval.is_zero() => {
            problems.push(format!("{name}.fsync_interval_ms: must be at least 1"))
        }
        Some(Ok(mode)) => config.fsync = FsyncPolicy::from_mode(mode, interval),
        Some(Err(e)) => problems.push(format!("{name}.fsync: {e}")),
    }
    config.drop_synced_pages = raw.drop_synced_pages.unwrap_or(config.drop_synced_pages);
    config
}

fn kafka_sink_config(raw: &RawKafkaSink, problems: &mut Vec<String>) -> KafkaSinkConfig {
    let brokers = raw.brokers.clone().unwrap_or_default();
    if brokers.trim().is_empty() {
        problems.push(
            "sinks.kafka.brokers: required (host:port[,host:port]); or set SPILLWAY_KAFKA_BROKERS"
                .into(),
        );
    }
    let mut c = KafkaSinkConfig::new(brokers);
    let mut bounded = |name: &str, value: Option<u64>, default: u64, min: u64, max: u64| -> u64 {
        let v = value.unwrap_or(default);
        if v < min || v > max {
            problems.push(format!("sinks.kafka.{name}: {v} is out of range ({min}..={max})"));
            return default;
        }
        v
    };
    c.linger_ms = bounded("linger_ms", raw.linger_ms, 5, 0, 60_000) as u32;
    c.batch_bytes = bounded("batch_bytes", raw.batch_bytes, 1 << 20, 1, i32::MAX as u64) as u32;
    c.queue_max_messages =
        bounded("queue_max_messages", raw.queue_max_messages, 100_000, 1, 10_000_000) as u32;
    c.queue_max_kbytes =
        bounded("queue_max_kbytes", raw.queue_max_kbytes, 64 * 1024, 1024, 16 * 1024 * 1024) as u32;
    c.message_timeout = Duration::from_millis(bounded(
        "message_timeout_ms",
        raw.message_timeout_ms,
        30_000,
        1000,
        3_600_000,
    ));
    c.partitions = bounded("partitions", raw.partitions, 3, 1, 10_000) as i32;
    c.replication_factor = bounded("replication_factor", raw.replication_factor, 1, 1, 100) as i32;
    if let Some(topic) = &raw.topic {
        c.topic = topic.clone();
    }
    c.create_topics = raw.create_topics.unwrap_or(true);
    if let Some(compression) = &raw.compression {
        match compression.parse() {
            Ok(compression) => c.compression = compression,
            Err(e) => problems.push(format!("sinks.kafka.compression: {e}")),
        }
    }
    let valid_topic = |t: &str| {
        !t.is_empty()
            && t.len() <= 249
            && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    let mut topics = vec![("sinks.kafka.topic".to_owned(), c.topic.clone())];
    for (i, route) in raw.routes.iter().enumerate() {
        let field = match route.field.parse::<RouteField>() {
            Ok(field) => field,
            Err(e) => {
                problems.push(format!("sinks.kafka.routes[{i}].field: {e}"));
                continue;
            }
        };
        topics.push((format!("sinks.kafka.routes[{i}].topic"), route.topic.clone()));
        c.routes.push(Route { field, value: route.value.clone(), topic: route.topic.clone() });
    }
    for (name, topic) in topics {
        if !valid_topic(&topic) {
            problems.push(format!(
                "{name}: {topic:?} is not a valid topic name ([a-zA-Z0-9._-], 1 to 249 characters)"
            ));
        }
    }
    c.properties = raw.properties.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    c
}

/// `[integration]`: `None` when client id, secret and redirect URL are all unset.
fn integration_config(
    raw: &RawIntegration,
    problems: &mut Vec<String>,
) -> Option<IntegrationConfig> {
    fn given(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }
    let required = [
        ("client_id", "SPILLWAY_VERCEL_CLIENT_ID", given(&raw.client_id)),
        ("client_secret", "SPILLWAY_VERCEL_CLIENT_SECRET", given(&raw.client_secret)),
        ("redirect_url", "SPILLWAY_VERCEL_REDIRECT_URL", given(&raw.redirect_url)),
    ];
    if required.iter().all(|(_, _, v)| v.is_none()) {
        return None;
    }
    for (key, env, value) in &required {
        if value.is_none() {
            problems.push(format!(
                "integration.{key}: required with the other integration credentials; or set {env}"
            ));
        }
    }
    let http_url = |key: &str, value: &str, problems: &mut Vec<String>| {
        let ok = url::Url::parse(value)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && !u.cannot_be_a_base());
        if !ok {
            problems.push(format!("integration.{key}: {value:?} is not an http(s) URL"));
        }
    };
    let listen_text = given(&raw.listen).unwrap_or("127.0.0.1:8081");
    let listen: SocketAddr = listen_text.parse().unwrap_or_else(|_| {
        problems.push(format!(
            "integration.listen: {listen_text:?} is not an address like 127.0.0.1:8081"
        ));
        SocketAddr::from(([127, 0, 0, 1], 8081))
    });
    let api_url = given(&raw.api_url).unwrap_or(control::DEFAULT_BASE_URL).to_owned();
    http_url("api_url", &api_url, problems);
    let create_drain = raw.create_drain.unwrap_or(true);
    let drain_url = given(&raw.drain_url).map(str::to_owned);
    match &drain_url {
        Some(url) => http_url("drain_url", url, problems),
        None if create_drain => problems.push(
            "integration.drain_url: required to create drains (or set create_drain = false)".into(),
        ),
        None => {}
    }
    let project_env = given(&raw.project_env).map(str::to_owned);
    if let Some(key) = &project_env {
        let valid = key.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            problems.push(format!("integration.project_env: {key:?} is not a variable name"));
        }
    }
    let [(_, _, client_id), (_, _, client_secret), (_, _, redirect_url)] = required;
    if let Some(redirect_url) = redirect_url {
        http_url("redirect_url", redirect_url, problems);
    }
    Some(IntegrationConfig {
        client_id: client_id.unwrap_or_default().to_owned(),
        client_secret: control::Secret::new(client_secret.unwrap_or_default()),
        redirect_url: redirect_url.unwrap_or_default().to_owned(),
        api_url,
        listen,
        drain_url,
        create_drain,
        project_env,
        ..IntegrationConfig::default()
    })
}

/// Reads the optional file, applies the environment and validates.
pub fn load(
    path: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut raw = match path {
        Some(path) => RawConfig::from_file(path)?,
        None => RawConfig::default(),
    };
    let mut problems = Vec::new();
    raw.apply_env(env, &mut problems);
    raw.validate(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_embedded_default_needs_no_file() {
        let config = load(None, no_env).unwrap();
        assert_eq!(config.ingest.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(config.ingest.drain_path, "/vercel/logs");
        assert!(config.ingest.drain_secret.is_none());
        assert_eq!(config.file_sink.unwrap().dir, PathBuf::from("./spillway-data/logs"));
        assert_eq!(config.dead_letter.dir, PathBuf::from("./spillway-data/dead-letter"));
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut raw = RawConfig::from_toml(
            "data_dir = \"/srv/a\"\n[server]\nlisten = \"127.0.0.1:1\"\nmax_body_bytes = 2048\n",
        )
        .unwrap();
        let env = |k: &str| match k {
            "SPILLWAY_LISTEN" => Some("127.0.0.1:9999".to_owned()),
            "SPILLWAY_DATA_DIR" => Some("/srv/b".to_owned()),
            "SPILLWAY_MAX_BODY_BYTES" => Some("4096".to_owned()),
            "SPILLWAY_DRAIN_SECRET" => Some("s3cret".to_owned()),
            "SPILLWAY_VERIFY_CODE" => Some("vc".to_owned()),
            _ => None,
        };
        let mut problems = Vec::new();
        raw.apply_env(env, &mut problems);
        let config = raw.validate(problems).unwrap();
        assert_eq!(config.ingest.listen.port(), 9999);
        assert_eq!(config.data_dir, PathBuf::from("/srv/b"));
        assert_eq!(config.ingest.max_body_bytes, 4096);
        assert!(config
            .ingest
            .drain_secret
            .unwrap()
            .verifies(b"x", SigningKey::new("s3cret").sign(b"x").as_bytes()));
        assert_eq!(config.ingest.verify_code.as_deref(), Some("vc"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let raw = RawConfig::from_toml(
            "[server]\nlisten = \"nowhere\"\nmax_connections = 0\ndrain_path = \"logs\"\n\
             [sinks.file]\nfsync = \"sometimes\"\nmax_file_bytes = 10\n",
        )
        .unwrap();
        let mut problems = Vec::new();
        raw_apply(&mut problems);
        let Err(ConfigError::Invalid(problems)) = raw.validate(problems) else {
            panic!("accepted")
        };
        let text = problems.join("\n");
        for needle in [
            "server.listen",
            "server.max_connections",
            "server.drain_path",
            "sinks.file.fsync",
            "sinks.file.max_file_bytes",
            "SPILLWAY_MAX_BODY_BYTES",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
    }

    fn raw_apply(problems: &mut Vec<String>) {
        let mut other = RawConfig::default();
        other.apply_env(|k| (k == "SPILLWAY_MAX_BODY_BYTES").then(|| "lots".to_owned()), problems);
    }

    #[test]
    fn the_documented_example_is_valid_and_states_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/spillway.toml");
        let documented = load(Some(&path), no_env).unwrap();
        let embedded = load(None, no_env).unwrap();
        assert_eq!(format!("{documented:?}"), format!("{embedded:?}"));
    }

    #[test]
    fn kafka_is_enabled_by_its_brokers_and_validated() {
        let env = |k: &str| match k {
            "SPILLWAY_KAFKA_BROKERS" => Some("127.0.0.1:9092".to_owned()),
            "SPILLWAY_KAFKA_TOPIC" => Some("logs-x".to_owned()),
            _ => None,
        };
        let kafka = load(None, env).unwrap().kafka.unwrap();
        assert_eq!((kafka.brokers.as_str(), kafka.topic.as_str()), ("127.0.0.1:9092", "logs-x"));
        assert_eq!(kafka.compression, pipeline::kafka::Compression::Lz4);
        assert!(load(None, no_env).unwrap().kafka.is_none());

        let raw = RawConfig::from_toml(
            "[sinks.kafka]\ncompression = \"brotli\"\ntopic = \"bad topic\"\n\
             [[sinks.kafka.routes]]\nfield = \"colour\"\nvalue = \"x\"\ntopic = \"t\"\n",
        )
        .unwrap();
        let Err(ConfigError::Invalid(problems)) = raw.validate(Vec::new()) else {
            panic!("accepted")
        };
        let text = problems.join("\n");
        for needle in [
            "sinks.kafka.brokers",
            "sinks.kafka.compression",
            "sinks.kafka.topic",
            "routes[0].field",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }

        let raw = RawConfig::from_toml(
            "[sinks.file]\nenabled = false\n[sinks.kafka]\nbrokers = \"b:1\"\n\
             [sinks.kafka.properties]\n\"socket.timeout.ms\" = \"1000\"\n\
             [[sinks.kafka.routes]]\nfield = \"source\"\nvalue = \"edge\"\ntopic = \"edge-logs\"\n",
        )
        .unwrap();
        let config = raw.validate(Vec::new()).unwrap();
        assert!(config.file_sink.is_none());
        let kafka = config.kafka.unwrap();
        assert_eq!(kafka.properties, vec![("socket.timeout.ms".to_owned(), "1000".to_owned())]);
        assert_eq!(kafka.routes[0].topic, "edge-logs");
    }

    #[test]
    fn the_integration_needs_all_three_credentials_and_a_drain_url() {
        assert!(load(None, no_env).unwrap().integration.is_none());
        let env = |k: &str| match k {
            "SPILLWAY_VERCEL_CLIENT_ID" => Some("oac_1".to_owned()),
            "SPILLWAY_VERCEL_CLIENT_SECRET" => Some("hunter2".to_owned()),
            "SPILLWAY_VERCEL_REDIRECT_URL" => Some("https://x.example/cb".to_owned()),
            "SPILLWAY_VERCEL_API_URL" => Some("http://127.0.0.1:1".to_owned()),
            "SPILLWAY_CONTROL_LISTEN" => Some("127.0.0.1:0".to_owned()),
            _ => None,
        };
        let mut raw = RawConfig::from_toml(
            "[integration]\ndrain_url = \"https://logs.example/vercel/logs\"\nproject_env = \"LOG_URL\"\n",
        )
        .unwrap();
        let mut problems = Vec::new();
        raw.apply_env(env, &mut problems);
        let config = raw.validate(problems).unwrap();
        let integration = config.integration.clone().unwrap();
        assert_eq!(integration.client_id, "oac_1");
        assert_eq!(integration.api_url, "http://127.0.0.1:1");
        assert_eq!(integration.listen.port(), 0);
        assert!(integration.create_drain);
        assert_eq!(integration.project_env.as_deref(), Some("LOG_URL"));
        assert!(!format!("{config:?}").contains("hunter2"));

        let raw = RawConfig::from_toml(
            "[integration]\nclient_id = \"oac_1\"\nlisten = \"x\"\nproject_env = \"1 A\"\n",
        )
        .unwrap();
        let Err(ConfigError::Invalid(problems)) = raw.validate(Vec::new()) else {
            panic!("accepted")
        };
        let text = problems.join("\n");
        for needle in [
            "integration.client_secret",
            "integration.redirect_url",
            "integration.listen",
            "integration.drain_url",
            "integration.project_env",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = RawConfig::from_toml("[server]\nlisten_addr = \"x\"\n").unwrap_err();
        assert!(err.contains("listen_addr"), "{err}");
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let raw = RawConfig::from_toml(
            "[vercel]\ndrain_secret = \"hunter2\"\n\
             required_headers = [\"Authorization: Bearer tok-hunter3\"]\n",
        )
        .unwrap();
        assert!(!format!("{raw:?}").contains("hunter"));
        // A header written without its name shows nothing of the value either.
        let nameless =
            RawConfig::from_toml("[vercel]\nrequired_headers = [\"Bearer tok-hunter4\"]\n")
                .unwrap();
        assert!(!format!("{nameless:?}").contains("hunter"), "{nameless:?}");
        let config = raw.validate(Vec::new()).unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter"), "{shown}");
        assert!(shown.contains("authorization"), "{shown}");
    }

    #[test]
    fn required_headers_come_from_the_file_or_the_environment_and_are_checked() {
        let raw = RawConfig::from_toml(
            "[vercel]\nrequired_headers = [\"X-Drain-Token: a\", \"Authorization: Bearer b\"]\n",
        )
        .unwrap();
        let names: Vec<String> = raw
            .validate(Vec::new())
            .unwrap()
            .ingest
            .drain_headers
            .iter()
            .map(|h| h.name().to_owned())
            .collect();
        assert_eq!(names, ["x-drain-token", "authorization"]);

        let env = |k: &str| (k == "SPILLWAY_DRAIN_HEADER").then(|| "X-Token: t1".to_owned());
        let headers = load(None, env).unwrap().ingest.drain_headers;
        assert_eq!(headers.len(), 1);
        assert_eq!(headers[0].name(), "x-token");

        let raw = RawConfig::from_toml(
            "[vercel]\nrequired_headers = [\"no colon here\", \"x-vercel-signature: s\", \"ok: v\"]\n",
        )
        .unwrap();
        let Err(ConfigError::Invalid(problems)) = raw.validate(Vec::new()) else {
            panic!("accepted")
        };
        let text = problems.join("\n");
        assert!(text.contains("vercel.required_headers[0]: expected"), "{text}");
        assert!(text.contains("vercel.required_headers[1]: x-vercel-signature"), "{text}");
        assert!(!text.contains("[2]"), "{text}");
    }
}
