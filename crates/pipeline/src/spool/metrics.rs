//! The Kafka spool's metrics. No labels: there is one spool.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// What an operator watches during an outage: how full the spool is, how far behind, how fast it
/// drains.
#[derive(Debug, Clone, Default)]
pub(crate) struct SpoolMetrics {
    bytes: Gauge,
    oldest_age_seconds: Gauge<f64, AtomicU64>,
    replayed_records: Counter,
}

impl SpoolMetrics {
    /// Creates the metrics in `registry` (already prefixed `spillway_`).
    pub(crate) fn register(registry: &mut Registry) -> SpoolMetrics {
        let m = SpoolMetrics::default();
        registry.register(
            "kafka_spool_bytes",
            "Bytes spooled for Kafka that the broker has not acknowledged yet",
            m.bytes.clone(),
        );
        registry.register(
            "kafka_spool_oldest_age_seconds",
            "Age of the oldest spooled batch the broker has not acknowledged (0 when none)",
            m.oldest_age_seconds.clone(),
        );
        registry.register(
            "kafka_spool_replayed_records",
            "Spooled records the broker acknowledged",
            m.replayed_records.clone(),
        );
        m
    }

    pub(crate) fn set(&self, bytes: u64, oldest_age_seconds: f64) {
        self.bytes.set(bytes as i64);
        self.oldest_age_seconds.set(oldest_age_seconds);
    }

    pub(crate) fn replayed(&self, records: u64) {
        self.replayed_records.inc_by(records);
    }
}
