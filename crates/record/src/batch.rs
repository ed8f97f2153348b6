//! A decoded delivery on its way to the sinks, and the hand-off trait between ingest and pipeline.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::ack::AckWaiter;
use crate::data_type::DataType;
use crate::record::Record;

/// Why a record was not accepted. The set is closed so that it can label metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The line or element is not valid JSON.
    InvalidJson,
    /// Valid JSON, but not an object.
    NotAnObject,
    /// `id` is missing or not a string.
    MissingId,
    /// `projectId` is missing or not a string.
    MissingProjectId,
    /// `timestamp` is missing or not of its type's form (a number; for Speed Insights an
    /// RFC 3339 string or a zoneless `YYYY-MM-DD HH:MM:SS`).
    MissingTimestamp,
    /// A record of another data type than its drain's: a `schema` naming another type, a log
    /// record (no `schema`) on a drain of another type, or a `schema` on a log drain.
    WrongDataType,
    /// No `schema` string on a drain whose records carry one.
    MissingSchema,
    /// A `schema` naming no known version of the drain's type (`vercel.speed_insights.v9`).
    UnknownSchema,
    /// Speed Insights: `metricType` is missing or not a string.
    MissingMetricType,
    /// Speed Insights: `value` is missing or not a number.
    MissingValue,
    /// Web Analytics: `eventType` is missing or not a string.
    MissingEventType,
    /// Traces: a request, or one resource's spans in it, that is not a valid OTLP message
    /// (protobuf wire format, or OTLP/JSON's shape). A request refused as a whole is kept as
    /// one reject of its first bytes (answered `400`).
    InvalidOtlp,
    /// Nothing in the whole body is JSON: the body is kept whole as one reject (the delivery is
    /// still answered `400`).
    NoJson,
    /// As [`RejectReason::NoJson`], but the body was longer than the edge keeps: the reject
    /// holds its first bytes only.
    NoJsonTruncated,
    /// A valid record larger than a sink can ever take: with its key and headers, over the
    /// Kafka sink's largest message (`message.max.bytes`). Set aside by
    /// [`Dispatch::set_aside_unfit`] so that the rest of its batch is stored.
    TooLarge,
}

impl RejectReason {
    /// Every reason, for pre-registering metric labels.
    pub const ALL: [RejectReason; 15] = [
        RejectReason::InvalidJson,
        RejectReason::NotAnObject,
        RejectReason::MissingId,
        RejectReason::MissingProjectId,
        RejectReason::MissingTimestamp,
        RejectReason::WrongDataType,
        RejectReason::MissingSchema,
        RejectReason::UnknownSchema,
        RejectReason::MissingMetricType,
        RejectReason::MissingValue,
        RejectReason::MissingEventType,
        RejectReason::InvalidOtlp,
        RejectReason::NoJson,
        RejectReason::NoJsonTruncated,
        RejectReason::TooLarge,
    ];

    /// A stable snake_case code for files and metrics.
    pub const fn code(self) -> &'static str {
        match self {
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::NotAnObject => "not_an_object",
            RejectReason::MissingId => "missing_id",
            RejectReason::MissingProjectId => "missing_project_id",
            RejectReason::MissingTimestamp => "missing_timestamp",
            RejectReason::WrongDataType => "wrong_data_type",
            RejectReason::InvalidOtlp => "invalid_otlp",
            RejectReason::MissingSchema => "missing_schema",
            RejectReason::UnknownSchema => "unknown_schema",
            RejectReason::MissingMetricType => "missing_metric_type",
            RejectReason::MissingValue => "missing_value",
            RejectReason::MissingEventType => "missing_event_type",
            RejectReason::NoJson => "no_json",
            RejectReason::NoJsonTruncated => "no_json_truncated",
            RejectReason::TooLarge => "too_large",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A record that failed validation, kept with its raw bytes for the dead-letter sink.
#[derive(Debug, Clone)]
pub struct Reject {
    /// The raw bytes of the line or array element, as received (after inflating).
    pub raw: Bytes,
    /// Why it was rejected.
    pub reason: RejectReason,
    /// Byte offset of the record inside the (inflated) body, for operators.
    pub offset: usize,
}

/// One delivery's worth of records, as handed from ingest to the pipeline.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Which drain delivered it (`default` for the single configured drain).
    pub drain: Arc<str>,
    /// The drain's data type: every record of the batch is of it (sinks route by it).
    pub data_type: DataType,
    /// When it was received, in Unix milliseconds.
    pub received_at_ms: u64,
    /// The accepted records.
    pub records: Vec<Record>,
    /// The decoded body, which most records are slices of (empty when there is none). Sinks may
    /// write a run of records that follow each other in it as one piece.
    pub body: Bytes,
    /// The records that failed validation, bound for the dead-letter sink.
    pub rejects: Vec<Reject>,
    /// Bytes of memory the batch pins (the decoded body), for admission control.
    pub pinned_bytes: usize,
    /// A 128-bit hash identifying a client's retry of the same batch (of the verified signature,
    /// or of the decoded body when unsigned); 0 when unknown.
    pub digest: u128,
}

impl Batch {
    /// Moves the records `unfit` picks to the rejects, as `reason`, each with its offset in
    /// `body` when it is a slice of it (else 0). Returns how many it moved; the moved rejects
    /// are the last ones.
    pub fn set_aside(&mut self, unfit: impl Fn(&Record) -> bool, reason: RejectReason) -> usize {
        let before = self.rejects.len();
        let body = self.body.as_ptr_range();
        let (rejects, body_start) = (&mut self.rejects, body.start as usize);
        self.records.retain(|record| {
            if !unfit(record) {
                return true;
            }
            let bytes = record.bytes();
            let start = bytes.as_ptr() as usize;
            let inside = body.contains(&bytes.as_ptr()) && bytes.len() <= body.end as usize - start;
            let offset = if inside { start - body_start } else { 0 };
            rejects.push(Reject { raw: record.to_bytes(), reason, offset });
            false
        });
        self.rejects.len() - before
    }
}

/// Why the pipeline refuses a batch right now; the client should retry later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The pipeline is at its in-flight limit.
    Overloaded,
    /// A sink cannot take writes (its broker is unreachable, say).
    SinkUnavailable(&'static str),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Overloaded => f.write_str("pipeline is at its in-flight limit"),
            Refusal::SinkUnavailable(sink) => write!(f, "sink {sink} is unavailable"),
        }
    }
}

impl std::error::Error for Refusal {}

/// Where the ingest edge hands decoded batches. Implemented by the pipeline; the binary wires
/// the two together so that neither crate depends on the other.
///
/// Implementations never block: a full pipeline or an unavailable sink is a [`Refusal`] at once.
pub trait Dispatch: Send + Sync + 'static {
    /// Whether a batch of `bytes` would be admitted now. A cheap early check that lets the edge
    /// refuse before reading a body; `try_submit` still decides.
    fn admissible(&self, bytes: usize) -> Result<(), Refusal>;

    /// Queues `batch` for every sink that holds part of it. The returned waiter resolves once
    /// all of those sinks have durably written their part, or one of them failed.
    fn try_submit(&self, batch: Batch) -> Result<AckWaiter, Refusal>;

    /// Whether every sink can currently accept writes (for `/readyz`).
    fn ready(&self) -> bool;

    /// Moves each record of `batch` that a sink could never take to its rejects, as
    /// [`RejectReason::TooLarge`], so that the dead-letter sink keeps it and the rest of the
    /// batch is stored; returns how many. The edge calls it before [`Dispatch::try_submit`]. The
    /// default moves none.
    fn set_aside_unfit(&self, batch: &mut Batch) -> usize {
        let _ = batch;
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordMeta;

    #[test]
    fn set_aside_records_become_rejects_at_their_offsets_in_the_body() {
        let body = Bytes::from_static(b"{\"a\":1}\n{\"b\":22}\n{\"c\":3}\n");
        let mut records: Vec<Record> = [(0, 8), (8, 17), (17, 25)]
            .into_iter()
            .map(|(start, end)| Record::terminated(body.slice(start..end), RecordMeta::default()))
            .collect();
        // A record of a buffer of its own (an array element compacted, say) has no offset.
        records.push(Record::new(Bytes::from_static(b"{\"d\":44}"), RecordMeta::default()));
        let mut batch = Batch {
            drain: Arc::from("d"),
            data_type: DataType::Logs,
            received_at_ms: 0,
            records,
            body: body.clone(),
            rejects: vec![Reject {
                raw: Bytes::new(),
                reason: RejectReason::InvalidJson,
                offset: 0,
            }],
            pinned_bytes: body.len(),
            digest: 0,
        };
        let moved = batch.set_aside(|r| r.bytes().len() > 7, RejectReason::TooLarge);
        assert_eq!(moved, 2);
        let kept: Vec<&[u8]> = batch.records.iter().map(Record::bytes).collect();
        assert_eq!(kept, [&b"{\"a\":1}"[..], b"{\"c\":3}"]);
        let set_aside: Vec<(&[u8], RejectReason, usize)> =
            batch.rejects[1..].iter().map(|r| (&r.raw[..], r.reason, r.offset)).collect();
        assert_eq!(
            set_aside,
            [
                (&b"{\"b\":22}"[..], RejectReason::TooLarge, 8),
                (b"{\"d\":44}", RejectReason::TooLarge, 0)
            ]
        );
        assert_eq!(
            batch.rejects[0].reason,
            RejectReason::InvalidJson,
            "earlier rejects stay first"
        );
    }
}
