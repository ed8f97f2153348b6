//! `[sinks.file]`, `[sinks.dead_letter]` and `[sinks.kafka]` into the pipeline's sink configs.

use std::path::Path;
use std::time::Duration;

use pipeline::file::{
    FileSinkConfig, FsyncMode, FsyncPolicy, DEFAULT_FSYNC_INTERVAL, MAX_SYNC_LANES,
};
use pipeline::kafka::{KafkaSinkConfig, Route, RouteField};
use pipeline::spool::SpoolConfig;

use super::raw::{RawFileSink, RawKafkaSink, RawKafkaSpool, RawSinks};
use super::Problems;

/// The validated sinks.
pub(super) struct Sinks {
    pub(super) file: Option<FileSinkConfig>,
    pub(super) dead_letter: FileSinkConfig,
    pub(super) kafka: Option<KafkaSinkConfig>,
}

/// `[sinks.*]`: the records file sink (unless disabled), the dead-letter sink (always), Kafka
/// (when configured); some sink must take the records.
pub(super) fn sinks_config(raw: &RawSinks, data_dir: &Path, problems: &mut Problems) -> Sinks {
    let file_enabled = raw.file.enabled.unwrap_or(true);
    let file = file_sink_config("sinks.file", &raw.file, &data_dir.join("logs"), problems);
    let dead_letter = file_sink_config(
        "sinks.dead_letter",
        &raw.dead_letter,
        &data_dir.join("dead-letter"),
        problems,
    );
    if raw.dead_letter.enabled == Some(false) {
        problems.push("sinks.dead_letter.enabled: the dead-letter sink cannot be disabled");
    }
    let kafka = raw.kafka.as_ref().map(|raw| kafka_sink_config(raw, data_dir, problems));
    if !file_enabled && kafka.is_none() {
        problems.push(
            "sinks.file.enabled: no sink for records would remain; keep the file sink or configure Kafka",
        );
    }
    // Crash recovery sets aside what is not a valid record as dead letters.
    let file = FileSinkConfig { invalid_dir: Some(dead_letter.dir.clone()), ..file };
    Sinks { file: file_enabled.then_some(file), dead_letter, kafka }
}

fn file_sink_config(
    name: &str,
    raw: &RawFileSink,
    default_dir: &Path,
    problems: &mut Problems,
) -> FileSinkConfig {
    let mut config = FileSinkConfig::new(raw.dir.clone().unwrap_or_else(|| default_dir.into()));
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
    let interval = raw.fsync_interval_ms.map_or(DEFAULT_FSYNC_INTERVAL, Duration::from_millis);
    match raw.fsync.as_deref().map(str::parse::<FsyncMode>) {
        None => {}
        Some(Ok(FsyncMode::Interval)) if interval.is_zero() => {
            problems.push(format!("{name}.fsync_interval_ms: must be at least 1"))
        }
        Some(Ok(mode)) => config.fsync = FsyncPolicy::from_mode(mode, interval),
        Some(Err(e)) => problems.push(format!("{name}.fsync: {e}")),
    }
    config.drop_synced_pages = raw.drop_synced_pages.unwrap_or(config.drop_synced_pages);
    if let Some(lanes) = raw.sync_lanes {
        if !(1..=MAX_SYNC_LANES).contains(&lanes) {
            problems.push(format!("{name}.sync_lanes: {lanes} is not from 1 to {MAX_SYNC_LANES}"));
        }
        config.sync_lanes = lanes;
    }
    let key = format!("{name}.file_mode");
    config.file_mode = mode(&key, raw.file_mode.as_deref(), config.file_mode, 0o600, problems);
    let key = format!("{name}.dir_mode");
    config.dir_mode = mode(&key, raw.dir_mode.as_deref(), config.dir_mode, 0o700, problems);
    config
}

/// A permission mode written in octal (`"0640"`), which must grant the owner `needed` (the
/// sink reads and writes its files, and lists and enters its directories); else `default`
/// and a problem.
fn mode(key: &str, value: Option<&str>, default: u32, needed: u32, problems: &mut Problems) -> u32 {
    let Some(text) = value else { return default };
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if (3..=4).contains(&digits.len()) && mode <= 0o777 && mode & needed == needed => {
            mode
        }
        Ok(mode) if (3..=4).contains(&digits.len()) && mode <= 0o777 => {
            problems.push(format!("{key}: {text:?} must grant the owner at least {needed:04o}"));
            default
        }
        _ => {
            problems.push(format!(
                "{key}: {text:?} is not a permission mode in octal, such as \"{default:04o}\""
            ));
            default
        }
    }
}

fn kafka_sink_config(
    raw: &RawKafkaSink,
    data_dir: &Path,
    problems: &mut Problems,
) -> KafkaSinkConfig {
    let brokers = raw.brokers.clone().unwrap_or_default();
    if brokers.trim().is_empty() {
        problems.push(
            "sinks.kafka.brokers: required (host:port[,host:port]); or set SPILLWAY_KAFKA_BROKERS",
        );
    }
    let mut c = KafkaSinkConfig::new(brokers);
    kafka_limits(raw, &mut c, problems);
    if let Some(topic) = &raw.topic {
        c.topic = topic.clone();
    }
    c.create_topics = raw.create_topics.unwrap_or(c.create_topics);
    if let Some(compression) = &raw.compression {
        match compression.parse() {
            Ok(compression) => c.compression = compression,
            Err(e) => problems.push(format!("sinks.kafka.compression: {e}")),
        }
    }
    let mut topics = vec![("sinks.kafka.topic".to_owned(), c.topic.clone())];
    let t = &raw.topics;
    for (name, value, topic) in [
        ("speed_insights", &t.speed_insights, &mut c.data_topics.speed_insights),
        ("analytics", &t.analytics, &mut c.data_topics.analytics),
        ("audit_log", &t.audit_log, &mut c.data_topics.audit_log),
        ("traces", &t.traces, &mut c.data_topics.traces),
    ] {
        if let Some(value) = value {
            topic.clone_from(value);
        }
        topics.push((format!("sinks.kafka.topics.{name}"), topic.clone()));
    }
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
    c.spool = raw.spool.as_ref().map(|raw| spool_config(raw, data_dir, problems));
    c
}

/// `[sinks.kafka.spool]`: directory (`<data_dir>/kafka-spool`), limit and mode.
fn spool_config(raw: &RawKafkaSpool, data_dir: &Path, problems: &mut Problems) -> SpoolConfig {
    let mut c = SpoolConfig::new(raw.dir.clone().unwrap_or_else(|| data_dir.join("kafka-spool")));
    let default = SpoolConfig::DEFAULT_MAX_BYTES;
    c.max_bytes =
        problems.range("sinks.kafka.spool.max_bytes", raw.max_bytes, default, 1 << 20, 1 << 50);
    match raw.mode.as_deref().map(str::parse) {
        None => {}
        Some(Ok(mode)) => c.mode = mode,
        Some(Err(e)) => problems.push(format!("sinks.kafka.spool.mode: {e}")),
    }
    c
}

/// The producer's numeric settings, each within its range.
fn kafka_limits(raw: &RawKafkaSink, c: &mut KafkaSinkConfig, problems: &mut Problems) {
    let mut bounded = |name: &str, value: Option<u64>, default: u64, min: u64, max: u64| {
        problems.range(&format!("sinks.kafka.{name}"), value, default, min, max)
    };
    c.linger_ms = bounded("linger_ms", raw.linger_ms, c.linger_ms.into(), 0, 60_000) as u32;
    c.batch_bytes =
        bounded("batch_bytes", raw.batch_bytes, c.batch_bytes.into(), 1, i32::MAX as u64) as u32;
    c.queue_max_messages = bounded(
        "queue_max_messages",
        raw.queue_max_messages,
        c.queue_max_messages.into(),
        1,
        10_000_000,
    ) as u32;
    c.queue_max_kbytes = bounded(
        "queue_max_kbytes",
        raw.queue_max_kbytes,
        c.queue_max_kbytes.into(),
        1024,
        16 * 1024 * 1024,
    ) as u32;
    c.message_timeout = Duration::from_millis(bounded(
        "message_timeout_ms",
        raw.message_timeout_ms,
        c.message_timeout.as_millis() as u64,
        1000,
        3_600_000,
    ));
    c.partitions = bounded("partitions", raw.partitions, c.partitions as u64, 1, 10_000) as i32;
    c.replication_factor =
        bounded("replication_factor", raw.replication_factor, c.replication_factor as u64, 1, 100)
            as i32;
}

fn valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 249
        && topic.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}
