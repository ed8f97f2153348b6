//! The OTLP decoder against prost's own decode of the generated messages.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

use super::*;

fn attr(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
    }
}

fn resource(project: Option<&str>, spans: usize) -> ResourceSpans {
    let mut attributes = vec![attr("service.name", "web")];
    attributes.extend(project.map(|p| attr("vercel.projectId", p)));
    ResourceSpans {
        resource: Some(Resource { attributes, ..Default::default() }),
        scope_spans: vec![ScopeSpans {
            spans: (0..spans)
                .map(|i| Span {
                    trace_id: vec![7; 16],
                    span_id: vec![i as u8; 8],
                    name: format!("GET /{i}\n"),
                    kind: 2,
                    start_time_unix_nano: 1_700_000_000_000_000_000,
                    end_time_unix_nano: 1_700_000_000_100_000_000,
                    attributes: vec![attr("http.route", "/a")],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn request(resources: Vec<ResourceSpans>) -> Bytes {
    Bytes::from(ExportTraceServiceRequest { resource_spans: resources }.encode_to_vec())
}

#[test]
fn each_resource_is_a_zero_copy_record_keyed_by_its_project() {
    let body = request(vec![resource(Some("prj_a"), 3), resource(Some("prj_b"), 2)]);
    let decoded = decode_otlp(body.clone(), OtlpEncoding::Protobuf).unwrap();
    assert_eq!((decoded.records.len(), decoded.spans, decoded.rejected_spans), (2, 5, 0));
    let projects: Vec<_> = decoded.records.iter().map(|r| r.project_id().unwrap()).collect();
    assert_eq!(projects, ["prj_a", "prj_b"]);
    for record in &decoded.records {
        let inside = record.bytes().as_ptr() as usize - body.as_ptr() as usize;
        assert!(inside < body.len(), "a record is a slice of the body");
        let back = ResourceSpans::decode(record.bytes()).unwrap();
        assert_eq!(back.resource.unwrap().attributes[0].key, "service.name");
    }
}

#[test]
fn a_resource_without_a_project_or_malformed_is_refused_alone() {
    let mut broken = resource(Some("prj_c"), 1).encode_to_vec();
    // A key with field number 0 inside the resource's own bytes.
    broken.extend_from_slice(&[0x00, 0x01]);
    let mut body = request(vec![resource(Some("prj_a"), 3), resource(None, 2)]).to_vec();
    body.push(0x0a);
    prost::encoding::encode_varint(broken.len() as u64, &mut body);
    body.extend_from_slice(&broken);
    let decoded = decode_otlp(Bytes::from(body), OtlpEncoding::Protobuf).unwrap();
    assert_eq!(decoded.records.len(), 1);
    let reasons: Vec<_> = decoded.rejects.iter().map(|r| r.reason).collect();
    assert_eq!(reasons, [RejectReason::MissingProjectId, RejectReason::InvalidOtlp]);
    assert_eq!((decoded.spans, decoded.rejected_spans), (3, 3));
    assert_eq!(&decoded.rejects[1].raw[..], &broken[..]);
    assert!(decoded.refusal_message().unwrap().starts_with("2 of 3 resources refused"));
}

#[test]
fn a_request_that_is_not_protobuf_is_refused_whole() {
    for body in [&b"{\"resourceSpans\":[]}"[..], b"\x0a\x05abc", b"\x0b", b"\x08\xff"] {
        let refused = decode_otlp(Bytes::copy_from_slice(body), OtlpEncoding::Protobuf);
        assert!(refused.is_err(), "{body:?}");
    }
    let empty = decode_otlp(Bytes::new(), OtlpEncoding::Protobuf).unwrap();
    assert_eq!((empty.records.len(), empty.rejects.len()), (0, 0));
}

/// `msg` as field `tag` of a message, length-delimited.
fn field(tag: u32, msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(msg.len() as u64, &mut out);
    out.extend_from_slice(msg);
    out
}

#[test]
fn a_known_field_with_another_wire_type_or_bad_utf8_is_refused_as_prost_refuses_it() {
    let span = resource(Some("prj_a"), 1).scope_spans[0].spans[0].encode_to_vec();
    // Span.name (field 5) as a varint; a name that is not UTF-8; a key of field number 0.
    let faults: [(&str, &[u8]); 3] =
        [("varint name", &[0x28, 0x01]), ("bad utf-8", &[0x2a, 0x01, 0xff]), ("field 0", &[0x00])];
    for (label, fault) in faults {
        let bad_span = [&span[..], fault].concat();
        let resource_spans = field(2, &field(2, &bad_span));
        assert!(ResourceSpans::decode(&resource_spans[..]).is_err(), "prost refuses {label}");
        assert!(wire::resource_spans(&resource_spans).is_err(), "so does the walker: {label}");
    }
    let fine = field(2, &field(2, &span));
    assert_eq!(wire::resource_spans(&fine).map(|i| i.spans), Ok(1));
}

#[test]
fn otlp_json_with_vercel_s_string_kinds_becomes_protobuf_records() {
    let body = br#"{"resourceSpans":[{"resource":{"attributes":[
        {"key":"vercel.projectId","value":{"stringValue":"prj_j"}}]},
      "scopeSpans":[{"scope":{"name":"vercel"},"spans":[
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
         "name":"GET /","kind":"server","startTimeUnixNano":1544712660000000000,
         "endTimeUnixNano":"1544712661000000000","status":{"code":"STATUS_CODE_OK"}},
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b175",
         "name":"db","kind":3}]}]}]}"#;
    let decoded = decode_otlp(Bytes::from_static(body), OtlpEncoding::Json).unwrap();
    assert_eq!((decoded.records.len(), decoded.spans), (1, 2));
    assert_eq!(decoded.records[0].project_id().unwrap(), "prj_j");
    let back = ResourceSpans::decode(decoded.records[0].bytes()).unwrap();
    let spans = &back.scope_spans[0].spans;
    assert_eq!((spans[0].kind, spans[1].kind), (2, 3));
    assert_eq!(spans[0].start_time_unix_nano, 1544712660000000000);
    assert_eq!(spans[0].status.as_ref().unwrap().code, 1);
    assert_eq!(spans[0].trace_id.len(), 16);
}

#[test]
fn otlp_json_that_is_not_a_request_is_refused_whole() {
    for body in [
        &b"[1]"[..],
        b"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"kind\":\"x\"}]}]}]}",
        b"{",
    ] {
        assert!(decode_otlp(Bytes::copy_from_slice(body), OtlpEncoding::Json).is_err());
    }
}

#[test]
fn content_types_name_the_encoding() {
    let of = |ct: Option<&str>, body: &[u8]| OtlpEncoding::of(ct.map(str::as_bytes), body);
    assert_eq!(of(Some("application/x-protobuf"), b""), Some(OtlpEncoding::Protobuf));
    assert_eq!(of(Some("Application/JSON; charset=utf-8"), b""), Some(OtlpEncoding::Json));
    assert_eq!(of(None, b" {}"), Some(OtlpEncoding::Json));
    assert_eq!(of(None, b"\x0a"), Some(OtlpEncoding::Protobuf));
    assert_eq!(of(Some("text/plain"), b"{}"), None);
}
