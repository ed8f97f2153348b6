//! Trace drains over OTLP/HTTP on real sockets: protobuf and OTLP/JSON requests, gzip, a
//! resource refused alone (partial success), a request refused whole (`400` with a
//! `google.rpc.Status`), content types, and `/v1/traces`. What the files hold is read back with
//! an independent OTLP decoder (prost's decode of the OpenTelemetry messages).

mod common;

use std::io::Write;
use std::path::Path;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

const PROTOBUF: &str = "application/x-protobuf";

/// `google.rpc.Status`, as an OTLP client reads a failure.
#[derive(Clone, PartialEq, prost::Message)]
struct Status {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn attr(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
    }
}

fn resource(project: Option<&str>, spans: usize) -> ResourceSpans {
    let mut attributes = vec![attr("service.name", "web"), attr("vercel.deploymentId", "dpl_1")];
    attributes.extend(project.map(|p| attr("vercel.projectId", p)));
    let spans = (0..spans)
        .map(|i| Span {
            trace_id: vec![0x5b; 16],
            span_id: vec![i as u8 + 1; 8],
            name: format!("GET /items/{i}"),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
            end_time_unix_nano: 1_700_000_000_050_000_000 + i as u64,
            attributes: vec![attr("http.route", "/items/[id]")],
            ..Default::default()
        })
        .collect();
    ResourceSpans {
        resource: Some(Resource { attributes, ..Default::default() }),
        scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
        ..Default::default()
    }
}

fn post(app: &TestApp, path: &str, content_type: &str, body: &[u8]) -> Reply {
    let sig = sign(body);
    let headers = [("x-vercel-signature", sig.as_str()), ("content-type", content_type)];
    send(app.addr, "POST", path, &headers, body)
}

/// Every resource in the trace files under `dir`, each file read whole as one request.
fn stored(dir: &Path) -> Vec<ResourceSpans> {
    let mut names: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => return Vec::new(),
    };
    names.retain(|p| p.to_string_lossy().contains(".binpb"));
    names.sort();
    names
        .iter()
        .flat_map(|p| {
            let bytes = std::fs::read(p).unwrap();
            ExportTraceServiceRequest::decode(&bytes[..]).unwrap().resource_spans
        })
        .collect()
}

fn dead_letters(app: &TestApp) -> Vec<serde_json::Value> {
    lines_in(&app.dir("dead-letter")).iter().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn a_protobuf_request_is_stored_one_record_per_resource_and_answered_in_protobuf() {
    let app = TestApp::start(|_| {});
    let sent = vec![resource(Some("prj_a"), 3), resource(Some("prj_b"), 2)];
    let body = ExportTraceServiceRequest { resource_spans: sent.clone() }.encode_to_vec();
    let reply = post(&app, "/vercel/traces", PROTOBUF, &body);
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.header("content-type"), Some(PROTOBUF));
    assert_eq!(reply.header("x-vercel-verify"), Some(VERIFY_CODE));
    let answer = ExportTraceServiceResponse::decode(&reply.body[..]).unwrap();
    assert_eq!(answer.partial_success, None, "nothing refused");
    assert_eq!(stored(&app.dir("traces")), sent);
    assert!(lines_in(&app.dir("logs")).is_empty(), "no trace is written with the logs");

    // Gzip, as for logs; the signature over the compressed bytes.
    let again = vec![resource(Some("prj_c"), 1)];
    let body = ExportTraceServiceRequest { resource_spans: again.clone() }.encode_to_vec();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&body).unwrap();
    let gz = gz.finish().unwrap();
    let sig = sign(&gz);
    let headers = [
        ("x-vercel-signature", sig.as_str()),
        ("content-type", PROTOBUF),
        ("content-encoding", "gzip"),
    ];
    assert_eq!(send(app.addr, "POST", "/vercel/traces", &headers, &gz).status, 200);
    assert_eq!(stored(&app.dir("traces")), [sent, again].concat());
}

#[test]
fn an_otlp_json_request_with_string_kinds_is_stored_as_protobuf_and_answered_in_json() {
    let app = TestApp::start(|_| {});
    let body = br#"{"resourceSpans":[{"resource":{"attributes":[
        {"key":"vercel.projectId","value":{"stringValue":"prj_json"}}]},
      "scopeSpans":[{"scope":{"name":"vercel"},"spans":[
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
         "name":"GET /","kind":"server","startTimeUnixNano":"1544712660000000000",
         "endTimeUnixNano":"1544712661000000000"},
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b175",
         "parentSpanId":"eee19b7ec3c1b174","name":"db","kind":3}]}]}]}"#;
    let reply = post(&app, "/vercel/traces", "application/json", body);
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json(), serde_json::json!({}));
    let stored = stored(&app.dir("traces"));
    assert_eq!(stored.len(), 1);
    let spans = &stored[0].scope_spans[0].spans;
    assert_eq!((spans[0].kind, spans[1].kind), (2, 3));
    assert_eq!(spans[1].parent_span_id, spans[0].span_id);
    assert_eq!(hex(&spans[0].trace_id), "5b8efff798038103d269b633813fc60c");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_resource_without_a_project_is_refused_alone_as_a_partial_success() {
    let app = TestApp::start(|_| {});
    let sent = vec![resource(Some("prj_a"), 2), resource(None, 4)];
    let body = ExportTraceServiceRequest { resource_spans: sent.clone() }.encode_to_vec();
    let reply = post(&app, "/vercel/traces", PROTOBUF, &body);
    assert_eq!(reply.status, 200);
    let partial = ExportTraceServiceResponse::decode(&reply.body[..]).unwrap().partial_success;
    let partial = partial.expect("a partial success names what was refused");
    assert_eq!(partial.rejected_spans, 4);
    assert!(partial.error_message.contains("vercel.projectId"), "{}", partial.error_message);
    assert_eq!(stored(&app.dir("traces")), sent[..1]);
    let letters = dead_letters(&app);
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["reason"], "missing_project_id");
    assert_eq!(letters[0]["data_type"], "traces");
    // The refused resource is kept whole: an operator can decode it.
    // Binary bytes are kept as base64 (as text only if they happen to be UTF-8).
    let raw = match letters[0]["raw_base64"].as_str() {
        Some(encoded) => base64_decode(encoded),
        None => letters[0]["raw"].as_str().unwrap().as_bytes().to_vec(),
    };
    assert_eq!(ResourceSpans::decode(&raw[..]).unwrap(), sent[1]);
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|c| *c != b'=') {
        acc = acc << 6 | ALPHABET.iter().position(|a| *a == c).unwrap() as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn a_request_that_is_not_otlp_is_answered_400_with_a_status_and_kept() {
    let app = TestApp::start(|_| {});
    let reply = post(&app, "/vercel/traces", PROTOBUF, b"\x0a\x05abc");
    assert_eq!(reply.status, 400);
    assert_eq!(reply.header("content-type"), Some(PROTOBUF));
    let status = Status::decode(&reply.body[..]).unwrap();
    assert_eq!(status.code, 3, "INVALID_ARGUMENT");
    assert!(status.message.contains("ExportTraceServiceRequest"), "{}", status.message);
    assert_eq!(dead_letters(&app)[0]["reason"], "invalid_otlp");

    let reply = post(&app, "/vercel/traces", "application/json", b"{\"resourceSpans\":7}");
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["code"], 3);
    assert_eq!(reply.json()["error"]["code"], "invalid_otlp");
    assert_eq!(dead_letters(&app).len(), 2);
    assert!(stored(&app.dir("traces")).is_empty());
}

#[test]
fn failures_before_the_body_are_statuses_in_the_request_s_encoding() {
    let app = TestApp::start(|_| {});
    let body = ExportTraceServiceRequest { resource_spans: vec![resource(Some("p"), 1)] };
    let body = body.encode_to_vec();
    let reply = post(&app, "/vercel/traces", "text/plain", &body);
    assert_eq!(reply.status, 415);
    assert_eq!(Status::decode(&reply.body[..]).unwrap().code, 3);

    let unsigned = send(app.addr, "POST", "/vercel/traces", &[("content-type", PROTOBUF)], &body);
    assert_eq!(unsigned.status, 401);
    assert_eq!(Status::decode(&unsigned.body[..]).unwrap().code, 16, "UNAUTHENTICATED");

    let headers = [("content-type", "application/json"), ("x-vercel-signature", "00")];
    let forged = send(app.addr, "POST", "/vercel/traces", &headers, &body);
    assert_eq!(forged.status, 403);
    assert_eq!(forged.json()["error"]["code"], "invalid_signature");

    let unknown = post(&app, "/vercel/traces/nokey", PROTOBUF, &body);
    assert_eq!((unknown.status, Status::decode(&unknown.body[..]).unwrap().code), (404, 5));
    assert!(stored(&app.dir("traces")).is_empty());
}

#[test]
fn v1_traces_serves_the_default_trace_drain_only_when_set() {
    let body = ExportTraceServiceRequest { resource_spans: vec![resource(Some("p"), 1)] };
    let body = body.encode_to_vec();
    let off = TestApp::start(|_| {});
    assert_eq!(post(&off, "/v1/traces", PROTOBUF, &body).status, 404);
    let on = TestApp::start(|c| c.ingest.v1_traces = true);
    assert_eq!(post(&on, "/v1/traces", PROTOBUF, &body).status, 200);
    assert_eq!(stored(&on.dir("traces")).len(), 1);
}

#[test]
fn a_json_partial_success_names_the_refused_spans() {
    let app = TestApp::start(|_| {});
    let body = br#"{"resourceSpans":[{"resource":{"attributes":[]},"scopeSpans":[{"spans":[
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"a"}]}]}]}"#;
    let reply = post(&app, "/vercel/traces", "application/json", body);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["partialSuccess"]["rejectedSpans"], "1");
    assert_eq!(dead_letters(&app)[0]["reason"], "missing_project_id");
}

#[test]
fn the_documented_example_is_stored_alike_from_protobuf_and_from_otlp_json() {
    let app = TestApp::start(|_| {});
    for (name, content_type) in [("traces.binpb", PROTOBUF), ("traces.json", "application/json")] {
        let sig = fixture_signature(name);
        let headers = [("x-vercel-signature", sig.as_str()), ("content-type", content_type)];
        let reply = send(app.addr, "POST", "/vercel/traces", &headers, &fixture(name));
        assert_eq!(reply.status, 200, "{name}");
    }
    let stored = stored(&app.dir("traces"));
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0], stored[1], "the OTLP/JSON form is stored as its protobuf");
    let expected = ExportTraceServiceRequest::decode(&fixture("traces.binpb")[..]).unwrap();
    assert_eq!(stored[0], expected.resource_spans[0]);
    assert_eq!(stored[0].scope_spans[0].spans[0].kind, 2, "\"server\"");
}

#[test]
fn a_probe_on_the_trace_path_is_answered_as_otlp() {
    let app = TestApp::start(|_| {});
    // An empty body is an empty `ExportTraceServiceRequest`; `{}` is one in OTLP/JSON.
    // Without a content type, a delivery of `{}` is read as OTLP/JSON, of nothing as protobuf.
    for (content_type, body, answer, answered_as) in [
        (Some(PROTOBUF), &b""[..], &b""[..], PROTOBUF),
        (Some("application/json"), b"{}", b"{}", "application/json"),
        (None, b"{}", b"{}", "application/json"),
        (None, b"", b"", PROTOBUF),
    ] {
        let headers: Vec<(&str, &str)> =
            content_type.map(|t| ("content-type", t)).into_iter().collect();
        let reply = send(app.addr, "POST", "/vercel/traces", &headers, body);
        assert_eq!(reply.status, 200, "{content_type:?}: {:?}", reply.body);
        assert_eq!(reply.header("content-type"), Some(answered_as), "{content_type:?}");
        assert_eq!(reply.header("x-vercel-verify"), Some(VERIFY_CODE));
        assert_eq!(reply.body, answer, "{content_type:?}");
    }
    assert!(stored(&app.dir("traces")).is_empty(), "a probe stores nothing");
}
