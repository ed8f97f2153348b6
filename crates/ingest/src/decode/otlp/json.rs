//! OTLP/JSON trace requests: read with the OpenTelemetry messages' JSON mapping after
//! loosening what Vercel writes differently from the OTLP/JSON spec, then re-encoded as
//! protobuf, one `ResourceSpans` per record, all in one buffer.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use serde_json::Value;

use super::{InvalidRequest, OtlpDecoded};

/// The JSON names of the enums OTLP/JSON writes as integers; Vercel's example uses names.
const SPAN_KINDS: [&str; 6] =
    ["unspecified", "internal", "server", "client", "producer", "consumer"];
const STATUS_CODES: [&str; 3] = ["unset", "ok", "error"];

pub(super) fn decode(body: &[u8]) -> Result<OtlpDecoded, InvalidRequest> {
    let invalid = |e: serde_json::Error| InvalidRequest(format!("not an OTLP/JSON request: {e}"));
    // A request as the OTLP/JSON spec writes it is read at once; only one that is not (Vercel's
    // named span kinds) goes through a generic value to be loosened first, at twice the cost.
    let request = match serde_json::from_slice::<ExportTraceServiceRequest>(body) {
        Ok(request) => request,
        Err(_) => {
            let mut value: Value = serde_json::from_slice(body).map_err(invalid)?;
            loosen(&mut value).map_err(InvalidRequest)?;
            serde_json::from_value(value).map_err(invalid)?
        }
    };
    let mut buf = Vec::with_capacity(body.len() / 2);
    let mut entries = Vec::with_capacity(request.resource_spans.len());
    for resource in &request.resource_spans {
        let start = buf.len();
        resource.encode(&mut buf).map_err(|e| InvalidRequest(e.to_string()))?;
        let spans: u64 = resource.scope_spans.iter().map(|s| s.spans.len() as u64).sum();
        entries.push((start, buf.len(), spans));
    }
    let body = Bytes::from(buf);
    let mut out = OtlpDecoded::empty(body.clone());
    for (start, end, spans) in entries {
        let bytes = body.slice(start..end);
        // The walker finds the project id in the bytes just encoded, as it does in a protobuf
        // request's: both paths name the same attribute the same way.
        let project_id = super::wire::resource_spans(&bytes).ok().and_then(|info| info.project_id);
        out.resource(bytes, project_id, spans, start);
    }
    Ok(out)
}

/// Rewrites, in place, what Vercel sends differently from OTLP/JSON: `kind` and `status.code`
/// as names, nanosecond times as numbers.
fn loosen(request: &mut Value) -> Result<(), String> {
    for resource in array(request, "resourceSpans") {
        for scope in array(resource, "scopeSpans") {
            for span in array(scope, "spans") {
                loosen_span(span)?;
            }
        }
    }
    Ok(())
}

fn loosen_span(span: &mut Value) -> Result<(), String> {
    if let Some(kind) = span.get_mut("kind") {
        enum_number(kind, &SPAN_KINDS, "SPAN_KIND_")?;
    }
    if let Some(code) = span.get_mut("status").and_then(|s| s.get_mut("code")) {
        enum_number(code, &STATUS_CODES, "STATUS_CODE_")?;
    }
    for key in ["startTimeUnixNano", "endTimeUnixNano"] {
        time_string(span.get_mut(key));
    }
    for event in array(span, "events") {
        time_string(event.get_mut("timeUnixNano"));
    }
    Ok(())
}

/// The elements of `value[key]` when it is an array (nothing otherwise: the typed parse that
/// follows refuses what is not of its shape).
fn array<'a>(value: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    value.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten()
}

/// An enum written by name (`"server"`, `"SPAN_KIND_SERVER"`) becomes its number.
fn enum_number(value: &mut Value, names: &[&str], prefix: &str) -> Result<(), String> {
    let Some(name) = value.as_str() else { return Ok(()) };
    let bare = name.get(..prefix.len()).filter(|p| p.eq_ignore_ascii_case(prefix));
    let bare = if bare.is_some() { &name[prefix.len()..] } else { name };
    match names.iter().position(|n| n.eq_ignore_ascii_case(bare)) {
        Some(number) => {
            *value = Value::from(number);
            Ok(())
        }
        None => Err(format!("{name:?} is not one of {}", names.join(", "))),
    }
}

/// A 64-bit time written as a number becomes the string OTLP/JSON writes it as.
fn time_string(value: Option<&mut Value>) {
    if let Some(value) = value {
        if let Some(n) = value.as_u64() {
            *value = Value::String(n.to_string());
        }
    }
}
