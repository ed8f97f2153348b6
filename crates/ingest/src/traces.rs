//! Trace drains over OTLP/HTTP: the request's encoding, the decode into a batch, and answers as
//! the OTLP/HTTP spec wants them: an `ExportTraceServiceResponse` (with a partial success when
//! resources were refused) or, for a failure, a `google.rpc.Status`, each in the request's own
//! encoding. The JSON form of a failure also carries the `{"error":{"code","message"}}` every
//! other answer of the edge has, so tooling that reads one reads both.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message as _;
use record::{Batch, Dispatch, Reject, RejectReason};

use crate::decode::{decode_otlp, OtlpEncoding, PaddedBody};
use crate::gate::Probe;
use crate::IngestError;

/// The OTLP convention's path for traces, served for the default trace drain when
/// `v1_traces` is set.
pub(crate) const V1_TRACES: &str = "/v1/traces";

/// The most of a request refused as a whole that is kept as its dead letter.
const INVALID_KEPT_BYTES: usize = 64 * 1024;

/// `google.rpc.Status`, the body of every OTLP/HTTP failure.
#[derive(Clone, PartialEq, prost::Message)]
struct Status {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// What a trace delivery's answer reports: the encoding to answer in, and what was refused.
#[derive(Debug)]
pub(crate) struct TraceAnswer {
    encoding: OtlpEncoding,
    rejected_spans: u64,
    message: Option<String>,
}

/// A trace delivery, decoded: records to store, or a request refused as a whole (kept as one
/// dead letter of its first bytes, then answered `400`).
#[derive(Debug)]
pub(crate) enum OpenedTraces {
    Batch(Batch, TraceAnswer),
    Invalid(Batch, String),
}

/// The encoding a trace request declares (`415` for one OTLP/HTTP does not define). Without a
/// `Content-Type`, the body decides later; failures before then are answered in protobuf.
pub(crate) fn declared(headers: &HeaderMap) -> Result<Option<OtlpEncoding>, IngestError> {
    let Some(value) = headers.get(CONTENT_TYPE) else { return Ok(None) };
    match OtlpEncoding::of(Some(value.as_bytes()), b"") {
        Some(encoding) => Ok(Some(encoding)),
        None => {
            let shown: String = value.to_str().unwrap_or("").chars().take(64).collect();
            Err(IngestError::UnsupportedMediaType(shown))
        }
    }
}

/// Decodes a verified, inflated trace request into a batch whose `records`, `rejects` and
/// `body` are filled in (the rest of `batch` is the delivery's own).
pub(crate) fn open(
    mut batch: Batch,
    body: PaddedBody,
    content_type: Option<&HeaderValue>,
) -> OpenedTraces {
    let encoding = OtlpEncoding::of(content_type.map(|v| v.as_bytes()), body.as_slice())
        .unwrap_or(OtlpEncoding::Protobuf);
    let body = body.into_bytes();
    match decode_otlp(body.clone(), encoding) {
        Ok(decoded) => {
            let message = decoded.refusal_message();
            batch.pinned_bytes = batch.pinned_bytes.max(decoded.body.len());
            batch.records = decoded.records;
            batch.rejects = decoded.rejects;
            batch.body = decoded.body;
            let answer = TraceAnswer { encoding, rejected_spans: decoded.rejected_spans, message };
            OpenedTraces::Batch(batch, answer)
        }
        Err(invalid) => {
            let kept = Bytes::copy_from_slice(&body[..body.len().min(INVALID_KEPT_BYTES)]);
            batch.records.clear();
            batch.rejects =
                vec![Reject { raw: kept.clone(), reason: RejectReason::InvalidOtlp, offset: 0 }];
            batch.pinned_bytes = kept.len();
            batch.body = kept;
            OpenedTraces::Invalid(batch, invalid.0)
        }
    }
}

/// Sets aside the resources a sink could never take (larger than the Kafka sink's largest
/// message) as dead letters, and counts their spans as refused in `answer`.
pub(crate) fn set_aside_unfit(
    dispatch: &dyn Dispatch,
    batch: &mut Batch,
    answer: &mut TraceAnswer,
) {
    let moved = dispatch.set_aside_unfit(batch);
    if moved == 0 {
        return;
    }
    let set_aside = &batch.rejects[batch.rejects.len() - moved..];
    answer.rejected_spans += set_aside.iter().map(|r| crate::decode::spans_in(&r.raw)).sum::<u64>();
    let why = format!(
        "{moved} of {} resources larger than a sink takes ({}), kept as dead letters",
        batch.records.len() + moved,
        RejectReason::TooLarge.code()
    );
    answer.message = Some(match answer.message.take() {
        Some(message) => format!("{message}; {why}"),
        None => why,
    });
}

/// The answer to Vercel's probe on a trace path: an empty `ExportTraceServiceResponse` in the
/// encoding a delivery of the probe's body would be read in (the declared one; without a
/// declaration, OTLP/JSON for `{}`, else protobuf).
pub(crate) fn probed(content_type: Option<&HeaderValue>, found: Probe) -> Response<Full<Bytes>> {
    let body: &[u8] = match found {
        Probe::Empty => b"",
        Probe::Braces => b"{}",
    };
    let encoding = OtlpEncoding::of(content_type.map(HeaderValue::as_bytes), body);
    let encoding = encoding.unwrap_or(OtlpEncoding::Protobuf);
    stored(&TraceAnswer { encoding, rejected_spans: 0, message: None })
}

/// The answer to a stored trace delivery: an `ExportTraceServiceResponse`, empty unless
/// resources were refused.
pub(crate) fn stored(answer: &TraceAnswer) -> Response<Full<Bytes>> {
    let partial_success = answer.message.as_ref().map(|message| ExportTracePartialSuccess {
        rejected_spans: answer.rejected_spans as i64,
        error_message: message.clone(),
    });
    let body = match (answer.encoding, partial_success) {
        (OtlpEncoding::Protobuf, partial_success) => {
            ExportTraceServiceResponse { partial_success }.encode_to_vec()
        }
        (OtlpEncoding::Json, None) => b"{}".to_vec(),
        // The protobuf JSON mapping writes an int64 as a string.
        (OtlpEncoding::Json, Some(partial)) => serde_json::json!({"partialSuccess": {
            "rejectedSpans": partial.rejected_spans.to_string(),
            "errorMessage": partial.error_message,
        }})
        .to_string()
        .into_bytes(),
    };
    reply(StatusCode::OK, answer.encoding, body)
}

/// A failure of a trace request as a `google.rpc.Status` in `encoding`.
pub(crate) fn failure(encoding: OtlpEncoding, error: &IngestError) -> Response<Full<Bytes>> {
    let status = error.status();
    let message = error.to_string();
    let body = match encoding {
        OtlpEncoding::Protobuf => Status { code: grpc_code(status), message }.encode_to_vec(),
        OtlpEncoding::Json => serde_json::json!({
            "code": grpc_code(status),
            "message": message,
            "error": {"code": error.code(), "message": message},
        })
        .to_string()
        .into_bytes(),
    };
    reply(status, encoding, body)
}

fn reply(status: StatusCode, encoding: OtlpEncoding, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(encoding.content_type()));
    response
}

/// The gRPC status code OTLP pairs with an HTTP status.
fn grpc_code(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 | 413 | 415 => 3, // INVALID_ARGUMENT
        401 => 16,            // UNAUTHENTICATED
        403 => 7,             // PERMISSION_DENIED
        404 => 5,             // NOT_FOUND
        405 => 12,            // UNIMPLEMENTED
        408 => 4,             // DEADLINE_EXCEEDED
        503 => 14,            // UNAVAILABLE
        _ => 13,              // INTERNAL
    }
}

/// Whether a trace delivery's batch needs storing at all (an empty request stores nothing).
pub(crate) fn has_content(batch: &Batch) -> bool {
    !batch.records.is_empty() || !batch.rejects.is_empty()
}
