//! The configuration as written: a TOML file whose every key is optional, then the `SPILLWAY_*`
//! environment variables over it. Nothing is checked here but the TOML grammar and key names;
//! the values are validated by the sections' translations (`config::edge`, `config::sinks`,
//! `config::integration`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;

/// The variable naming the data directory (also read by the drain commands).
pub const DATA_DIR_VAR: &str = "SPILLWAY_DATA_DIR";
/// The variable overriding the Vercel API's base URL (also read by the drain commands).
pub const API_URL_VAR: &str = "SPILLWAY_VERCEL_API_URL";

type Overlay = fn(&mut RawConfig, String);

/// Environment variables that override the file, with the key each one sets (deploy tooling and
/// tests rely on them). `SPILLWAY_MAX_BODY_BYTES`, a number, is read apart.
pub const ENV_OVERRIDES: [(&str, Overlay); 15] = [
    ("SPILLWAY_LISTEN", |raw, v| raw.server.listen = Some(v)),
    ("SPILLWAY_DRAIN_SECRET", |raw, v| raw.vercel.drain_secret = Some(v)),
    ("SPILLWAY_DRAIN_HEADER", |raw, v| raw.vercel.required_headers = Some(vec![v])),
    ("SPILLWAY_VERIFY_CODE", |raw, v| raw.vercel.verify_code = Some(v)),
    (DATA_DIR_VAR, |raw, v| raw.data_dir = Some(PathBuf::from(v))),
    ("SPILLWAY_KAFKA_BROKERS", |raw, v| raw.kafka().brokers = Some(v)),
    ("SPILLWAY_KAFKA_TOPIC", |raw, v| raw.kafka().topic = Some(v)),
    ("SPILLWAY_VERCEL_CLIENT_ID", |raw, v| raw.integration().client_id = Some(v)),
    ("SPILLWAY_VERCEL_CLIENT_SECRET", |raw, v| raw.integration().client_secret = Some(v)),
    ("SPILLWAY_VERCEL_REDIRECT_URL", |raw, v| raw.integration().redirect_url = Some(v)),
    (API_URL_VAR, |raw, v| raw.integration().api_url = Some(v)),
    ("SPILLWAY_CONTROL_LISTEN", |raw, v| raw.integration().listen = Some(v)),
    (super::store::DATABASE_URL_VAR, |raw, v| raw.store.database_url = Some(v)),
    (super::store::STORE_KEY_VAR, |raw, v| raw.store.key = Some(v)),
    (super::store::PREVIOUS_KEYS_VAR, |raw, v| raw.store.previous_keys = Some(v)),
];

/// The configuration file as written; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Root of local state (`./spillway-data`).
    pub data_dir: Option<PathBuf>,
    /// The log filter (`info`); `RUST_LOG`, when set, wins.
    pub log_level: Option<String>,
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
    /// `[store]`: where drains and installations live.
    #[serde(default)]
    pub store: RawStore,
}

/// `[store]`: `database_url` set moves the drain registry and the installations into
/// PostgreSQL. `Debug` shows neither the URL (it may hold a password) nor the keys.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawStore {
    pub database_url: Option<String>,
    /// 32 bytes, base64; better given as `SPILLWAY_STORE_KEY` than written in a file.
    pub key: Option<String>,
    /// Comma-separated, base64: still opened, never used to seal (during a rotation).
    pub previous_keys: Option<String>,
    pub pool_size: Option<u64>,
    pub connect_timeout_secs: Option<u64>,
    pub query_timeout_secs: Option<u64>,
    pub resync_secs: Option<u64>,
    pub max_backoff_secs: Option<u64>,
}

impl std::fmt::Debug for RawStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = self.database_url.as_deref().map(control::postgres::describe_url);
        f.debug_struct("RawStore")
            .field("database_url", &at)
            .field("key", &self.key.as_ref().map(|_| "[redacted]"))
            .field("previous_keys", &self.previous_keys.as_ref().map(|_| "[redacted]"))
            .field("pool_size", &self.pool_size)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("query_timeout_secs", &self.query_timeout_secs)
            .field("resync_secs", &self.resync_secs)
            .field("max_backoff_secs", &self.max_backoff_secs)
            .finish()
    }
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
    pub slug: Option<String>,
    pub allowed_teams: Option<Vec<String>>,
    pub require_state: Option<bool>,
    pub data_types: Option<Vec<String>>,
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
            .field("slug", &self.slug)
            .field("allowed_teams", &self.allowed_teams)
            .field("require_state", &self.require_state)
            .field("data_types", &self.data_types)
            .finish()
    }
}

/// `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawServer {
    pub listen: Option<String>,
    pub metrics_listen: Option<String>,
    pub drain_path: Option<String>,
    pub max_body_bytes: Option<u64>,
    pub max_inflated_bytes: Option<u64>,
    pub max_connections: Option<u64>,
    pub header_read_timeout_secs: Option<u64>,
    pub body_read_timeout_secs: Option<u64>,
    pub ack_timeout_secs: Option<u64>,
    pub retry_after_secs: Option<u64>,
    pub shutdown_timeout_secs: Option<u64>,
    pub drain_delay_secs: Option<u64>,
    pub max_unverified_inflations: Option<u64>,
    pub max_held_body_bytes: Option<u64>,
    pub max_concurrent_decodes: Option<u64>,
    pub dedup_ids: Option<u64>,
    pub dedup_window_secs: Option<u64>,
    pub v1_traces: Option<bool>,
    pub trusted_proxies: Option<Vec<String>>,
    pub tls: Option<RawTls>,
}

/// `[server.tls]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawTls {
    pub cert_path: Option<PathBuf>,
    pub key_path: Option<PathBuf>,
    pub poll_interval_secs: Option<u64>,
}

/// `[vercel]`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawVercel {
    pub drain_secret: Option<String>,
    /// Also accepted while a new `drain_secret` rolls out; credentials.
    pub previous_drain_secrets: Option<Vec<String>>,
    /// `"Name: value"` each; the values are credentials.
    pub required_headers: Option<Vec<String>>,
    pub verify_code: Option<String>,
    /// Accept unsigned deliveries on a non-loopback address (no `drain_secret`), on purpose.
    pub allow_unsigned: Option<bool>,
}

impl std::fmt::Debug for RawVercel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let header_names: Option<Vec<&str>> = self.required_headers.as_ref().map(|headers| {
            headers.iter().map(|h| h.split_once(':').map_or("[redacted]", |(n, _)| n)).collect()
        });
        f.debug_struct("RawVercel")
            .field("drain_secret", &self.drain_secret.as_ref().map(|_| "[redacted]"))
            .field(
                "previous_drain_secrets",
                &self.previous_drain_secrets.as_ref().map(|s| vec!["[redacted]"; s.len()]),
            )
            .field("required_headers", &header_names)
            .field("verify_code", &self.verify_code)
            .field("allow_unsigned", &self.allow_unsigned)
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

/// `[sinks.kafka]`: present (or `SPILLWAY_KAFKA_BROKERS` set) enables the Kafka sink. `Debug`
/// redacts the properties that hold secrets.
#[derive(Default, Deserialize)]
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
    /// `[sinks.kafka.topics]`: the topic of each data type but logs.
    #[serde(default)]
    pub topics: RawKafkaTopics,
    /// `[sinks.kafka.spool]`: present enables the disk spool.
    pub spool: Option<RawKafkaSpool>,
}

/// `[sinks.kafka.topics]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawKafkaTopics {
    pub speed_insights: Option<String>,
    pub analytics: Option<String>,
    pub audit_log: Option<String>,
    pub traces: Option<String>,
}

/// `[sinks.kafka.spool]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawKafkaSpool {
    pub dir: Option<PathBuf>,
    pub max_bytes: Option<u64>,
    pub mode: Option<String>,
}

impl std::fmt::Debug for RawKafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let properties: Vec<(&str, &str)> =
            self.properties.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        f.debug_struct("RawKafkaSink")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("compression", &self.compression)
            .field("linger_ms", &self.linger_ms)
            .field("batch_bytes", &self.batch_bytes)
            .field("queue_max_messages", &self.queue_max_messages)
            .field("queue_max_kbytes", &self.queue_max_kbytes)
            .field("message_timeout_ms", &self.message_timeout_ms)
            .field("create_topics", &self.create_topics)
            .field("partitions", &self.partitions)
            .field("replication_factor", &self.replication_factor)
            .field("properties", &pipeline::kafka_properties::Redacted(&properties))
            .field("routes", &self.routes)
            .field("topics", &self.topics)
            .finish()
    }
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
    pub sync_lanes: Option<usize>,
    /// Octal, as a string: `"0640"`.
    pub file_mode: Option<String>,
    /// Octal, as a string: `"0750"`.
    pub dir_mode: Option<String>,
}
/// A TOML error as it may be printed or logged: the key and line, and what was wrong, without
/// the value. serde's message quotes it (`invalid type: string "…", expected a sequence`), and it
/// may be a secret written where a list or a number belongs (`required_headers = "Bearer …"`).
fn toml_error(e: &toml::de::Error, text: &str) -> String {
    let message = e.message();
    let without_value = |rest: &str, kind: &str| {
        // The value comes before the last ", expected": what it should have been.
        let expected = rest.rfind(", expected ").map_or("", |at| &rest[at..]);
        format!("{kind}{expected}")
    };
    let invalid = ["invalid type: ", "invalid value: "]
        .into_iter()
        .find_map(|prefix| message.strip_prefix(prefix).map(|rest| (prefix, rest)));
    let message = if let Some((prefix, rest)) = invalid {
        // The kind of value alone: `string`, `integer`, …
        let unexpected = rest.split([' ', ',']).next().unwrap_or_default();
        format!("{prefix}{}", without_value(rest, unexpected))
    } else if let Some(rest) = message.strip_prefix("unknown variant ") {
        format!("unknown variant{}", without_value(rest, ""))
    } else {
        message.to_owned()
    };
    let Some(before) = e.span().and_then(|span| text.get(..span.start)) else { return message };
    let line = before.matches('\n').count() + 1;
    let start_of_line = &before[before.rfind('\n').map_or(0, |at| at + 1)..];
    // What comes before the line's `=` is its key only if it reads as one: on a line that goes
    // on an array (`  "c2VjcmV0==", 5,`) it would be part of a value.
    let is_key = |key: &str| {
        let bare = |c: char| c.is_ascii_alphanumeric() || "_-. ".contains(c);
        !key.is_empty()
            && key.chars().all(|c| bare(c) || c == '"' || c == '\'')
            && key.matches('"').count().is_multiple_of(2)
            && key.matches('\'').count().is_multiple_of(2)
    };
    match start_of_line.split_once('=') {
        Some((key, _)) if is_key(key.trim()) => format!("{} (line {line}): {message}", key.trim()),
        _ => format!("line {line}: {message}"),
    }
}

impl RawConfig {
    /// Reads a TOML file: its settings, and its keys and values as written (from one read).
    pub fn from_file(path: &Path) -> Result<(RawConfig, toml::Table), ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let parse = |message| ConfigError::Parse { path: path.to_owned(), message };
        let raw = RawConfig::from_toml(&text).map_err(parse)?;
        // What parsed into settings parses as a table.
        let table = text.parse().map_err(|e: toml::de::Error| parse(toml_error(&e, &text)))?;
        Ok((raw, table))
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<RawConfig, String> {
        toml::from_str(text).map_err(|e| toml_error(&e, text))
    }

    /// Applies the `SPILLWAY_*` overrides from `env` (a lookup, so tests need not touch the
    /// process environment). Unparsable numbers are reported in `problems`.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>, problems: &mut Vec<String>) {
        for (key, overlay) in ENV_OVERRIDES {
            if let Some(value) = env(key) {
                overlay(self, value);
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

    fn kafka(&mut self) -> &mut RawKafkaSink {
        self.sinks.kafka.get_or_insert_with(RawKafkaSink::default)
    }

    fn integration(&mut self) -> &mut RawIntegration {
        self.integration.get_or_insert_with(RawIntegration::default)
    }
}
