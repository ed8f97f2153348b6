//! The trace drain's sample: one OTLP `ExportTraceServiceRequest` with two resources (two
//! projects) carrying the resource attributes Vercel adds, sent as protobuf or as OTLP/JSON as the
//! drain's `delivery.encoding` asks (docs/vercel/DRAINS.md).

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message as _;
use serde_json::Value;

/// The sample body for `encoding` (`"proto"` or `"json"`) and its content type.
pub(crate) fn body(encoding: Option<&str>, now_ms: i64) -> (&'static str, Vec<u8>) {
    let request = request(now_ms);
    if encoding == Some("proto") {
        return ("application/x-protobuf", request.encode_to_vec());
    }
    ("application/json", json(&request).to_string().into_bytes())
}

/// `request` as OTLP/JSON (hex ids, nanoseconds and 64-bit integers as strings). The first
/// span writes `kind` as the string `"server"`, as Vercel's own example does, the others as the
/// integers the OTLP/JSON spec asks for: receivers meet both.
pub(crate) fn json(request: &ExportTraceServiceRequest) -> Value {
    let mut value = serde_json::to_value(request).expect("OTLP messages serialize to JSON");
    value["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["kind"] = Value::from("server");
    value
}

/// Two resources (two projects) of three spans each.
pub(crate) fn request(now_ms: i64) -> ExportTraceServiceRequest {
    let start = u64::try_from(now_ms).unwrap_or(0).saturating_mul(1_000_000);
    let resources = [
        ("prj_sample", "dpl_sample", "sample-web", ("GET", "/api/sample", 200)),
        ("prj_sample_api", "dpl_sample_api", "sample-api", ("POST", "/api/orders", 500)),
    ];
    let resource_spans = (0u8..)
        .zip(resources)
        .map(|(i, (project, deployment, service, request))| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    string("service.name", service),
                    string("vercel.projectId", project),
                    string("vercel.deploymentId", deployment),
                ],
                dropped_attributes_count: 0,
                entity_refs: Vec::new(),
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "vercel".to_owned(),
                    version: "1.0.0".to_owned(),
                    ..Default::default()
                }),
                spans: spans(i, request, start + u64::from(i) * 20_000_000),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

/// One request's trace in resource `i`, starting at `start` (ns): a server span, a client span
/// under it with a span event, and an internal span; an error status for a 5xx.
fn spans(i: u8, (method, route, status): (&str, &str, i64), start: u64) -> Vec<Span> {
    let trace_id = trace_id(i);
    let root = span_id(i, 1);
    let mut server = span(&trace_id, root, None, &format!("{method} {route}"));
    server.kind = SpanKind::Server as i32;
    (server.start_time_unix_nano, server.end_time_unix_nano) = (start, start + 12_000_000);
    server.attributes = vec![
        string("http.method", method),
        string("http.route", route),
        int("http.status_code", status),
    ];
    server.status = Some(if status >= 500 {
        Status { code: StatusCode::Error as i32, message: "upstream failed".to_owned() }
    } else {
        Status { code: StatusCode::Ok as i32, message: String::new() }
    });
    let mut fetch = span(&trace_id, span_id(i, 2), Some(root), "fetch upstream");
    fetch.kind = SpanKind::Client as i32;
    (fetch.start_time_unix_nano, fetch.end_time_unix_nano) = (start + 1_000_000, start + 9_000_000);
    fetch.attributes = vec![
        string("http.method", "GET"),
        string("http.url", "https://upstream.example/v1/items"),
        int("http.status_code", status),
    ];
    fetch.events = vec![Event {
        time_unix_nano: start + 2_000_000,
        name: "cache.miss".to_owned(),
        attributes: vec![string("cache.key", route)],
        dropped_attributes_count: 0,
    }];
    let mut render = span(&trace_id, span_id(i, 3), Some(root), "render");
    render.kind = SpanKind::Internal as i32;
    (render.start_time_unix_nano, render.end_time_unix_nano) =
        (start + 9_500_000, start + 11_000_000);
    render.attributes = vec![string("http.route", route)];
    vec![server, fetch, render]
}

/// A span of `trace_id` with its ids and name; the caller sets the rest.
fn span(trace_id: &[u8], id: [u8; 8], parent: Option<[u8; 8]>, name: &str) -> Span {
    Span {
        trace_id: trace_id.to_vec(),
        span_id: id.to_vec(),
        parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
        name: name.to_owned(),
        flags: 1, // sampled
        ..Default::default()
    }
}

/// A 16-byte trace id, distinct per resource.
fn trace_id(resource: u8) -> Vec<u8> {
    let mut id = *b"\x5b\x8e\xff\xf7\x98\x03\x81\x03\xd2\x69\xb6\x33\x81\x3f\xc6\x0c";
    id[15] ^= resource;
    id.to_vec()
}

/// An 8-byte span id, distinct per resource and span.
fn span_id(resource: u8, span: u8) -> [u8; 8] {
    [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, resource, span]
}

fn string(key: &str, value: &str) -> KeyValue {
    attribute(key, any_value::Value::StringValue(value.to_owned()))
}

fn int(key: &str, value: i64) -> KeyValue {
    attribute(key, any_value::Value::IntValue(value))
}

fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue { key: key.to_owned(), value: Some(AnyValue { value: Some(value) }) }
}
