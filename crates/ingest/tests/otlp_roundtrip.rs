//! Properties of the trace decoder (`decode_otlp`) against prost's own decode of the
//! OpenTelemetry messages, for arbitrary `ExportTraceServiceRequest`s:
//! - protobuf: each resource naming a non-empty string `vercel.projectId` is one record whose
//!   bytes decode to exactly that resource, every other one a `missing_project_id` reject, in
//!   order, with the spans counted on the right side; the records framed back into a request
//!   give back every accepted span;
//! - OTLP/JSON (the messages' serde mapping): the same resources come out, as protobuf;
//! - any bytes: no panic, and the in-place walker never accepts what prost refuses.

use bytes::Bytes;
use ingest::decode::{decode_otlp, OtlpDecoded, OtlpEncoding};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use proptest::collection::vec;
use proptest::prelude::*;
use prost::Message;
use record::RejectReason;

const PROJECT_ID: &str = "vercel.projectId";

fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z._/ ]{0,12}", "\\PC{0,12}", "[a\u{e9}\u{1F680}\u{0}\n\"\\\\]{0,8}"]
}

/// Finite doubles only: proto3 JSON writes NaN and the infinities as strings, which the
/// messages' serde mapping does not read back.
fn double() -> impl Strategy<Value = f64> {
    prop_oneof![
        -1e12f64..1e12,
        prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        text().prop_map(Value::StringValue),
        any::<bool>().prop_map(Value::BoolValue),
        any::<i64>().prop_map(Value::IntValue),
        double().prop_map(Value::DoubleValue),
        vec(any::<u8>(), 0..12).prop_map(Value::BytesValue),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..3).prop_map(|values| Value::ArrayValue(ArrayValue {
                values: values.into_iter().map(|v| AnyValue { value: Some(v) }).collect(),
            })),
            vec((text(), inner), 0..3).prop_map(|kvs| Value::KvlistValue(KeyValueList {
                values: kvs.into_iter().map(|(k, v)| kv(k, v)).collect(),
            })),
        ]
    })
}

fn kv(key: String, value: Value) -> KeyValue {
    KeyValue { key, value: Some(AnyValue { value: Some(value) }) }
}

fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    vec((text(), value()).prop_map(|(k, v)| kv(k, v)), 0..4)
}

fn id(len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just(Vec::new()), vec(any::<u8>(), len)]
}

fn event() -> impl Strategy<Value = Event> {
    (any::<u64>(), text(), attributes(), any::<u32>()).prop_map(|(time, name, attributes, d)| {
        Event { time_unix_nano: time, name, attributes, dropped_attributes_count: d }
    })
}

fn link() -> impl Strategy<Value = Link> {
    (id(16), id(8), text(), attributes(), any::<u32>(), any::<u32>()).prop_map(
        |(trace_id, span_id, trace_state, attributes, dropped, flags)| Link {
            trace_id,
            span_id,
            trace_state,
            attributes,
            dropped_attributes_count: dropped,
            flags,
        },
    )
}

fn span() -> impl Strategy<Value = Span> {
    let ids = (id(16), id(8), id(8), text(), any::<u32>());
    let body = (text(), 0..6i32, any::<u64>(), any::<u64>(), attributes());
    let more = (vec(event(), 0..3), vec(link(), 0..2), any::<[u32; 3]>());
    let status =
        prop::option::of((text(), 0..3i32).prop_map(|(message, code)| Status { message, code }));
    (ids, body, more, status).prop_map(|(ids, body, more, status)| Span {
        trace_id: ids.0,
        span_id: ids.1,
        parent_span_id: ids.2,
        trace_state: ids.3,
        flags: ids.4,
        name: body.0,
        kind: body.1,
        start_time_unix_nano: body.2,
        end_time_unix_nano: body.3,
        attributes: body.4,
        dropped_attributes_count: more.2[0],
        events: more.0,
        dropped_events_count: more.2[1],
        links: more.1,
        dropped_links_count: more.2[2],
        status,
    })
}

fn scope_spans() -> impl Strategy<Value = ScopeSpans> {
    let scope = (text(), text(), attributes(), any::<u32>()).prop_map(|(name, version, a, d)| {
        InstrumentationScope { name, version, attributes: a, dropped_attributes_count: d }
    });
    (prop::option::of(scope), vec(span(), 0..4), text())
        .prop_map(|(scope, spans, schema_url)| ScopeSpans { scope, spans, schema_url })
}

/// The project id attribute a resource may carry: a project, an empty string, another type.
fn project_attribute() -> impl Strategy<Value = Option<KeyValue>> {
    prop::option::of(prop_oneof![
        3 => "prj_[a-zA-Z0-9]{1,12}".prop_map(Value::StringValue),
        1 => Just(Value::StringValue(String::new())),
        1 => any::<i64>().prop_map(Value::IntValue),
    ])
    .prop_map(|v| v.map(|v| kv(PROJECT_ID.to_owned(), v)))
}

fn resource_spans() -> impl Strategy<Value = ResourceSpans> {
    let resource = (attributes(), project_attribute(), any::<prop::sample::Index>(), any::<u32>());
    let resource = resource.prop_map(|(mut attributes, project, at, dropped)| {
        if let Some(project) = project {
            attributes.insert(at.index(attributes.len() + 1), project);
        }
        Resource { attributes, dropped_attributes_count: dropped, entity_refs: Vec::new() }
    });
    (prop::option::of(resource), vec(scope_spans(), 0..3), text()).prop_map(
        |(resource, scope_spans, schema_url)| ResourceSpans { resource, scope_spans, schema_url },
    )
}

fn request() -> impl Strategy<Value = ExportTraceServiceRequest> {
    vec(resource_spans(), 0..4)
        .prop_map(|resource_spans| ExportTraceServiceRequest { resource_spans })
}

/// The project a resource is keyed by: its first `vercel.projectId` attribute holding a string.
fn project_of(resource: &ResourceSpans) -> Option<&str> {
    resource.resource.as_ref()?.attributes.iter().find_map(|kv| {
        match (kv.key.as_str(), kv.value.as_ref().and_then(|v| v.value.as_ref())) {
            (PROJECT_ID, Some(Value::StringValue(s))) => Some(s.as_str()),
            _ => None,
        }
    })
}

fn spans_of(resource: &ResourceSpans) -> u64 {
    resource.scope_spans.iter().map(|s| s.spans.len() as u64).sum()
}

/// The records framed as `resource_spans` entries of one request, as the file sink writes them.
fn framed(decoded: &OtlpDecoded) -> Vec<u8> {
    let mut buf = Vec::new();
    for record in &decoded.records {
        prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut buf);
        prost::encoding::encode_varint(record.bytes().len() as u64, &mut buf);
        buf.extend_from_slice(record.bytes());
    }
    buf
}

/// `decoded` holds exactly `sent`'s resources: records and rejects as the project ids say.
fn check_split(
    sent: &ExportTraceServiceRequest,
    decoded: &OtlpDecoded,
) -> Result<(), TestCaseError> {
    let (accepted, refused): (Vec<_>, Vec<_>) =
        sent.resource_spans.iter().partition(|r| project_of(r).is_some_and(|p| !p.is_empty()));
    prop_assert_eq!(decoded.records.len(), accepted.len());
    prop_assert_eq!(decoded.rejects.len(), refused.len());
    for (record, resource) in decoded.records.iter().zip(&accepted) {
        prop_assert_eq!(&ResourceSpans::decode(record.bytes()).unwrap(), *resource);
        let project = record.project_id();
        prop_assert_eq!(project.as_deref(), project_of(resource));
    }
    for (reject, resource) in decoded.rejects.iter().zip(&refused) {
        prop_assert_eq!(reject.reason, RejectReason::MissingProjectId);
        prop_assert_eq!(&ResourceSpans::decode(&reject.raw[..]).unwrap(), *resource);
    }
    prop_assert_eq!(decoded.spans, accepted.iter().map(|r| spans_of(r)).sum::<u64>());
    prop_assert_eq!(decoded.rejected_spans, refused.iter().map(|r| spans_of(r)).sum::<u64>());
    let back = ExportTraceServiceRequest::decode(&framed(decoded)[..]).unwrap();
    let spans =
        |r: &ResourceSpans| r.scope_spans.iter().flat_map(|s| s.spans.clone()).collect::<Vec<_>>();
    let sent_spans: Vec<Span> = accepted.iter().flat_map(|r| spans(r)).collect();
    let back_spans: Vec<Span> = back.resource_spans.iter().flat_map(spans).collect();
    prop_assert_eq!(back_spans, sent_spans);
    Ok(())
}

/// A valid request's bytes, damaged: bytes replaced, wire types flipped, cut short, inserted.
fn damaged() -> impl Strategy<Value = Vec<u8>> {
    let edit = (0..4u8, any::<prop::sample::Index>(), any::<u8>());
    (request(), vec(edit, 1..4)).prop_map(|(request, edits)| {
        let mut bytes = request.encode_to_vec();
        for (kind, at, byte) in edits {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] = byte,
                1 => bytes[i] ^= byte & 0x07,
                2 => bytes.truncate(i),
                _ => bytes.insert(i, byte),
            }
        }
        bytes
    })
}

/// A request whose one span attribute is an array nested `depth` deep: around prost's
/// recursion limit (100 messages) the walker must refuse what prost refuses.
fn deep() -> impl Strategy<Value = Vec<u8>> {
    (40..70usize, any::<bool>()).prop_map(|(depth, kvlist)| {
        let mut value = Value::IntValue(1);
        for _ in 0..depth {
            value = if kvlist {
                Value::KvlistValue(KeyValueList { values: vec![kv("k".into(), value)] })
            } else {
                Value::ArrayValue(ArrayValue { values: vec![AnyValue { value: Some(value) }] })
            };
        }
        let span = Span { attributes: vec![kv("deep".into(), value)], ..Default::default() };
        let resource = ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv(PROJECT_ID.into(), Value::StringValue("prj_deep".into()))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans { spans: vec![span], ..Default::default() }],
            ..Default::default()
        };
        ExportTraceServiceRequest { resource_spans: vec![resource] }.encode_to_vec()
    })
}

/// One field of any number and wire type, well formed on the wire, alone in a message found
/// at `path` (field numbers from the request down: a span is `[1, 2, 2]`): the walker's check
/// of each known field's wire type and payload against prost's.
fn alien_field() -> impl Strategy<Value = Vec<u8>> {
    use prost::encoding::{encode_key, encode_varint, WireType};
    let paths: [&[u32]; 13] = [
        &[],
        &[1],
        &[1, 1],
        &[1, 1, 3],
        &[1, 2],
        &[1, 2, 1],
        &[1, 2, 2],
        &[1, 2, 2, 15],
        &[1, 2, 2, 11],
        &[1, 2, 2, 13],
        &[1, 2, 2, 9],
        &[1, 2, 2, 9, 2],
        &[1, 2, 2, 9, 2, 5],
    ];
    let payload = prop_oneof![
        any::<u64>().prop_map(|v| (WireType::Varint, v.to_le_bytes().to_vec())),
        any::<[u8; 8]>().prop_map(|b| (WireType::SixtyFourBit, b.to_vec())),
        any::<[u8; 4]>().prop_map(|b| (WireType::ThirtyTwoBit, b.to_vec())),
        vec(any::<u8>(), 0..6).prop_map(|b| (WireType::LengthDelimited, b)),
        // An empty group: skipped when its field is unknown, refused when the field is known.
        Just((WireType::StartGroup, Vec::new())),
    ];
    (prop::sample::select(paths.to_vec()), 1..18u32, payload).prop_map(|(path, tag, payload)| {
        let mut msg = Vec::new();
        encode_key(tag, payload.0, &mut msg);
        match payload.0 {
            WireType::Varint => {
                encode_varint(u64::from_le_bytes(payload.1[..].try_into().unwrap()), &mut msg)
            }
            WireType::LengthDelimited => {
                encode_varint(payload.1.len() as u64, &mut msg);
                msg.extend_from_slice(&payload.1);
            }
            WireType::StartGroup => encode_key(tag, WireType::EndGroup, &mut msg),
            _ => msg.extend_from_slice(&payload.1),
        }
        for number in path.iter().rev() {
            let mut outer = Vec::new();
            encode_key(*number, WireType::LengthDelimited, &mut outer);
            encode_varint(msg.len() as u64, &mut outer);
            outer.extend_from_slice(&msg);
            msg = outer;
        }
        msg
    })
}

/// The walker against prost on `bytes`.
fn check_against_prost(bytes: &[u8]) -> Result<(), TestCaseError> {
    let decoded = decode_otlp(Bytes::copy_from_slice(bytes), OtlpEncoding::Protobuf);
    match ExportTraceServiceRequest::decode(bytes) {
        Err(_) => {
            if let Ok(decoded) = &decoded {
                let invalid = decoded.rejects.iter().any(|r| r.reason == RejectReason::InvalidOtlp);
                prop_assert!(invalid, "prost refuses what the walker accepts whole");
            }
        }
        Ok(request) => {
            let decoded = decoded.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            for record in &decoded.records {
                let resource = ResourceSpans::decode(record.bytes());
                prop_assert!(resource.is_ok(), "an accepted resource prost cannot read");
                prop_assert!(request.resource_spans.contains(&resource.unwrap()));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn protobuf_resources_are_records_or_rejects_byte_for_byte(sent in request()) {
        let body = Bytes::from(sent.encode_to_vec());
        let decoded = decode_otlp(body, OtlpEncoding::Protobuf).unwrap();
        check_split(&sent, &decoded)?;
    }

    #[test]
    fn otlp_json_gives_the_same_resources_as_protobuf(sent in request()) {
        // Exact, doubles too: serde_json reads a double back as written (`float_roundtrip`).
        let body = Bytes::from(serde_json::to_vec(&sent).unwrap());
        let decoded = decode_otlp(body, OtlpEncoding::Json).unwrap();
        check_split(&sent, &decoded)?;
    }

}

proptest! {
    // Cheap cases; a given known field with a given wrong wire type is one alien field in ~900.
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn the_walker_never_accepts_what_prost_refuses(
        bytes in prop_oneof![vec(any::<u8>(), 0..256), damaged(), deep(), alien_field()],
    ) {
        let _ = decode_otlp(Bytes::copy_from_slice(&bytes), OtlpEncoding::Json);
        check_against_prost(&bytes)?;
    }
}
