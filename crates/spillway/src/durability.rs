//! Settings that weaken what a `200` means, said out loud: `fsync = "interval"|"never"` on a
//! file sink (a `200` then means written to the OS, not to the disk), and Kafka properties that
//! override `acks` or turn idempotence off (a `200` then means less than every replica). Each
//! is logged at start-up and shown on `/metrics` as `spillway_durability_weakened{setting}` =
//! 1 (every known setting is there, 0 when not weakened, so an alert can watch it).

use pipeline::file::{FileSinkConfig, FsyncPolicy};
use pipeline::kafka_properties::weakening;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::config::Config;

/// Every label value of the gauge (a closed set).
const SETTINGS: [&str; 4] = ["fsync", "dead_letter_fsync", "kafka_acks", "kafka_idempotence"];

/// The weakened settings of `config`, as (setting, what is configured).
pub(crate) fn weakened(config: &Config) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    let sinks = [("fsync", "sinks.file", config.file_sink.as_ref())];
    let dead_letter = [("dead_letter_fsync", "sinks.dead_letter", Some(&config.dead_letter))];
    for (setting, key, sink) in sinks.into_iter().chain(dead_letter) {
        if let Some(what) = sink.and_then(|sink| fsync_weakened(sink, key)) {
            found.push((setting, what));
        }
    }
    if let Some(kafka) = &config.kafka {
        for (setting, what) in weakening(&kafka.properties) {
            found.push((setting, format!("sinks.kafka.properties: {what}")));
        }
    }
    found
}

fn fsync_weakened(sink: &FileSinkConfig, key: &str) -> Option<String> {
    match sink.fsync {
        FsyncPolicy::Batch => None,
        FsyncPolicy::Interval(every) => {
            Some(format!("{key}.fsync = \"interval\" ({} ms)", every.as_millis()))
        }
        FsyncPolicy::Never => Some(format!("{key}.fsync = \"never\"")),
    }
}

/// Logs each weakened setting and registers the gauge in `registry`.
pub(crate) fn report(config: &Config, registry: &mut Registry) {
    let gauge = Family::<[(&'static str, &'static str); 1], Gauge>::default();
    registry.sub_registry_with_prefix("spillway").register(
        "durability_weakened",
        "1 for each setting that weakens what a 200 means (fsync, Kafka acks or idempotence)",
        gauge.clone(),
    );
    for setting in SETTINGS {
        gauge.get_or_create(&[("setting", setting)]).set(0);
    }
    for (setting, what) in weakened(config) {
        tracing::warn!(
            setting,
            configured = %what,
            "durability weakened: a 200 no longer means every record is on disk and on every \
             Kafka replica"
        );
        gauge.get_or_create(&[("setting", setting)]).set(1);
    }
}
