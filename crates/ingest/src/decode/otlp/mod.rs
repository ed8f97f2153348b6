//! Trace drains: OTLP/HTTP `ExportTraceServiceRequest`s, in protobuf or in OTLP/JSON, into
//! records, one per `ResourceSpans` (a resource's spans, keyed by its `vercel.projectId`).
//!
//! - Protobuf (`application/x-protobuf`): the request is walked in place ([`wire`]) and every
//!   record is a zero-copy slice of the body, the exact bytes of one `ResourceSpans` message. No
//!   span is built or copied.
//! - OTLP/JSON (`application/json`): parsed with the OpenTelemetry messages' JSON mapping and
//!   each resource re-encoded as protobuf, so a trace drain's records have one form whatever its
//!   drain's encoding: a consumer of the files or the topic needs one decoder. Vercel's own
//!   example writes a span's `kind` as a string (`"server"`) where OTLP/JSON says an integer,
//!   and nanosecond times may come as numbers rather than strings: both are accepted.
//!
//! A request that is not a valid message as a whole is refused (`Err`), like a body with no
//! JSON; a resource whose own message is malformed, or that names no `vercel.projectId`, is a
//! reject (dead-lettered) and its spans are counted as refused in the OTLP partial success.

mod json;
mod wire;

use bytes::Bytes;
use record::{FieldSpan, Record, RecordMeta, Reject, RejectReason};

/// How a trace request is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpEncoding {
    /// Binary protobuf, `application/x-protobuf`.
    Protobuf,
    /// OTLP/JSON, `application/json`.
    Json,
}

impl OtlpEncoding {
    /// The encoding a `Content-Type` names: protobuf, JSON, or (none given) the body's look.
    /// `None`: a content type OTLP/HTTP does not define (answered `415`).
    pub fn of(content_type: Option<&[u8]>, body: &[u8]) -> Option<OtlpEncoding> {
        let Some(content_type) = content_type else {
            let first = body.iter().find(|b| !b.is_ascii_whitespace());
            return Some(match first {
                Some(b'{') => OtlpEncoding::Json,
                _ => OtlpEncoding::Protobuf,
            });
        };
        let essence = content_type.split(|b| *b == b';').next().unwrap_or_default();
        let essence = essence.trim_ascii();
        if essence.eq_ignore_ascii_case(b"application/x-protobuf")
            || essence.eq_ignore_ascii_case(b"application/protobuf")
        {
            Some(OtlpEncoding::Protobuf)
        } else if essence.eq_ignore_ascii_case(b"application/json") {
            Some(OtlpEncoding::Json)
        } else {
            None
        }
    }

    /// The `Content-Type` of this encoding (answers are in the request's).
    pub const fn content_type(self) -> &'static str {
        match self {
            OtlpEncoding::Protobuf => "application/x-protobuf",
            OtlpEncoding::Json => "application/json",
        }
    }
}

/// A trace request, decoded.
#[derive(Debug)]
pub struct OtlpDecoded {
    /// One record per accepted `ResourceSpans`: its protobuf bytes.
    pub records: Vec<Record>,
    /// The resources refused, each with its bytes (protobuf, or OTLP/JSON re-encoded).
    pub rejects: Vec<Reject>,
    /// The buffer the records are slices of.
    pub body: Bytes,
    /// Spans in the records.
    pub spans: u64,
    /// Spans in the refused resources (those counted before a malformed one's fault).
    pub rejected_spans: u64,
}

/// The spans of one resource's protobuf bytes (a record of [`OtlpDecoded`]).
pub(crate) fn spans_in(resource: &[u8]) -> u64 {
    wire::resource_spans(resource).map_or_else(|spans| spans, |info| info.spans)
}

/// Why a trace request was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRequest(pub String);

/// Decodes a trace request's (inflated) body.
pub fn decode_otlp(body: Bytes, encoding: OtlpEncoding) -> Result<OtlpDecoded, InvalidRequest> {
    match encoding {
        OtlpEncoding::Protobuf => decode_protobuf(body),
        OtlpEncoding::Json => json::decode(&body),
    }
}

/// The protobuf request walked in place: records and rejects are slices of `body`.
fn decode_protobuf(body: Bytes) -> Result<OtlpDecoded, InvalidRequest> {
    let entries = wire::request(&body).map_err(|_| {
        InvalidRequest("the body is not a protobuf ExportTraceServiceRequest".into())
    })?;
    let mut out = OtlpDecoded::empty(body.clone());
    for (start, end) in entries {
        let bytes = body.slice(start..end);
        match wire::resource_spans(&bytes) {
            Ok(info) => out.resource(bytes, info.project_id, info.spans, start),
            Err(spans) => out.refuse(bytes, RejectReason::InvalidOtlp, spans, start),
        }
    }
    Ok(out)
}

impl OtlpDecoded {
    fn empty(body: Bytes) -> OtlpDecoded {
        OtlpDecoded { records: Vec::new(), rejects: Vec::new(), body, spans: 0, rejected_spans: 0 }
    }

    /// A walked resource: a record when it names its project, else a reject.
    fn resource(
        &mut self,
        bytes: Bytes,
        project_id: Option<(usize, usize)>,
        spans: u64,
        offset: usize,
    ) {
        let Some((start, end)) = project_id.filter(|(s, e)| s < e) else {
            return self.refuse(bytes, RejectReason::MissingProjectId, spans, offset);
        };
        let meta = RecordMeta {
            project_id: FieldSpan::new(start as u32, (end - start) as u32, false),
            ..RecordMeta::default()
        };
        self.records.push(Record::new(bytes, meta));
        self.spans += spans;
    }

    fn refuse(&mut self, raw: Bytes, reason: RejectReason, spans: u64, offset: usize) {
        self.rejects.push(Reject { raw, reason, offset });
        self.rejected_spans += spans;
    }

    /// The OTLP partial-success message for the refused resources, if any.
    pub fn refusal_message(&self) -> Option<String> {
        let first = self.rejects.first()?;
        let what = match first.reason {
            RejectReason::MissingProjectId => "names no vercel.projectId resource attribute",
            _ => "is not a valid ResourceSpans message",
        };
        Some(format!(
            "{} of {} resources refused and kept as dead letters; the first ({}) {what}",
            self.rejects.len(),
            self.rejects.len() + self.records.len(),
            first.reason.code(),
        ))
    }
}

#[cfg(test)]
mod tests;
