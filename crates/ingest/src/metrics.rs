//! The edge's metrics. Labels are bounded: status codes, reject reasons and static names.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use record::RejectReason;

type Label = [(&'static str, &'static str); 1];

/// Counters the edge updates.
#[derive(Debug, Clone)]
pub struct IngestMetrics {
    requests: Family<Label, Counter>,
    received_bytes: Counter,
    inflated_bytes: Counter,
    records_accepted: Counter,
    records_dead_lettered: Family<Label, Counter>,
    signature_matches: Family<Label, Counter>,
    probes: Counter,
    duplicates: Family<Label, Counter>,
    ack_seconds: Histogram,
    request_seconds: Histogram,
    stage_seconds: Family<Label, Histogram>,
}

/// The stages of a delivery at the edge, as `stage` label values (a closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EdgeStage {
    /// Reading the body, as fast as the client sends it.
    Read,
    /// Checking the signature over the raw bytes (on the blocking pool when the body is large).
    Verify,
    /// Waiting for a thread of the blocking pool (large or gzip bodies are opened there).
    BlockingPool,
    /// Opening the body: inflate, finish verifying the signature, decode.
    Decode,
    /// From the hand-off to the pipeline to every sink's acknowledgement.
    Ack,
}

impl EdgeStage {
    fn label(self) -> &'static str {
        match self {
            EdgeStage::Read => "read",
            EdgeStage::Verify => "verify",
            EdgeStage::BlockingPool => "blocking_pool",
            EdgeStage::Decode => "decode",
            EdgeStage::Ack => "ack",
        }
    }
}

impl IngestMetrics {
    /// Creates the metrics and registers them in `registry` under `spillway_`.
    pub fn register(registry: &mut Registry) -> IngestMetrics {
        let m = IngestMetrics {
            requests: Family::default(),
            received_bytes: Counter::default(),
            inflated_bytes: Counter::default(),
            records_accepted: Counter::default(),
            records_dead_lettered: Family::default(),
            signature_matches: Family::default(),
            probes: Counter::default(),
            duplicates: Family::default(),
            ack_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            request_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            // 50 µs to 6.5 s, the same buckets as the sinks' stages.
            stage_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
            }),
        };
        let r = registry.sub_registry_with_prefix("spillway");
        r.register("http_requests", "HTTP requests answered, by status", m.requests.clone());
        r.register("received_bytes", "Request body bytes received", m.received_bytes.clone());
        r.register("inflated_bytes", "Bytes after inflating gzip bodies", m.inflated_bytes.clone());
        r.register(
            "records_accepted",
            "Records acknowledged as stored",
            m.records_accepted.clone(),
        );
        r.register(
            "records_dead_lettered",
            "Records stored in the dead-letter sink, by reason",
            m.records_dead_lettered.clone(),
        );
        r.register(
            "signature_matches",
            "Verified signatures, by what they covered (raw bytes or inflated bytes)",
            m.signature_matches.clone(),
        );
        r.register("verify_probes", "Endpoint verification probes answered", m.probes.clone());
        r.register(
            "duplicates",
            "Records not stored because their id was acknowledged recently, by data type",
            m.duplicates.clone(),
        );
        for data_type in [record::DataType::Logs, record::DataType::AuditLog] {
            let _ = m.duplicates.get_or_create(&[("data_type", data_type.as_str())]);
        }
        r.register(
            "batch_ack_seconds",
            "Time from hand-off to the sinks' acknowledgement of a batch",
            m.ack_seconds.clone(),
        );
        r.register(
            "request_seconds",
            "Time from a request's headers to its answer (body read, verify, decode, sinks)",
            m.request_seconds.clone(),
        );
        r.register(
            "edge_stage_seconds",
            "Time a delivery spent in an edge stage (read: the body, as fast as the client \
             sends it; verify: the signature over the raw bytes; blocking_pool: waiting for a \
             blocking thread; decode: inflate, finish verifying, decode; ack: waiting for the \
             sinks), by stage",
            m.stage_seconds.clone(),
        );
        for reason in RejectReason::ALL {
            let _ = m.records_dead_lettered.get_or_create(&[("reason", reason.code())]);
        }
        m
    }

    pub(crate) fn request(&self, status: http::StatusCode, seconds: f64) {
        self.requests.get_or_create(&[("status", status_label(status))]).inc();
        self.request_seconds.observe(seconds);
    }

    pub(crate) fn stage(&self, stage: EdgeStage, seconds: f64) {
        self.stage_seconds.get_or_create(&[("stage", stage.label())]).observe(seconds);
    }

    pub(crate) fn received(&self, bytes: usize) {
        self.received_bytes.inc_by(bytes as u64);
    }

    pub(crate) fn inflated(&self, bytes: usize) {
        self.inflated_bytes.inc_by(bytes as u64);
    }

    pub(crate) fn signature(&self, over: &'static str) {
        self.signature_matches.get_or_create(&[("over", over)]).inc();
    }

    pub(crate) fn duplicates(&self, data_type: record::DataType, n: usize) {
        self.duplicates.get_or_create(&[("data_type", data_type.as_str())]).inc_by(n as u64);
    }

    pub(crate) fn probe(&self) {
        self.probes.inc();
    }

    pub(crate) fn stored(&self, accepted: usize, rejected: &[RejectReason], seconds: f64) {
        self.records_accepted.inc_by(accepted as u64);
        for reason in rejected {
            self.records_dead_lettered.get_or_create(&[("reason", reason.code())]).inc();
        }
        self.ack_seconds.observe(seconds);
        self.stage(EdgeStage::Ack, seconds);
    }
}

/// Status codes as static label values (the set is closed).
fn status_label(status: http::StatusCode) -> &'static str {
    match status.as_u16() {
        200 => "200",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        408 => "408",
        413 => "413",
        415 => "415",
        503 => "503",
        s if s < 300 => "2xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}
