//! Fuzzes the trace decoder (`ingest::decode::decode_otlp`) on any bytes, in both encodings,
//! against prost's decode of the OpenTelemetry messages. Properties: never a panic; in
//! protobuf, the in-place walker never accepts what prost refuses (a request prost refuses is
//! refused whole or has a resource refused as `invalid_otlp`), and a request prost reads comes
//! out as exactly its resources, in order, each record the bytes of its resource; in OTLP/JSON,
//! every record is a `ResourceSpans` prost reads, keyed by its non-empty `vercel.projectId`.
//! Run: `cargo fuzz run otlp` (from `fuzz/`), or `scripts/fuzz otlp`.
#![no_main]

use bytes::Bytes;
use ingest::decode::{decode_otlp, OtlpDecoded, OtlpEncoding};
use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;
use record::RejectReason;

/// Each record and reject with its offset in the decoded body, in body order.
fn in_order(decoded: &OtlpDecoded) -> Vec<(usize, &[u8], Option<RejectReason>)> {
    let base = decoded.body.as_ptr() as usize;
    let mut all: Vec<_> = decoded
        .records
        .iter()
        .map(|r| (r.bytes().as_ptr() as usize - base, r.bytes(), None))
        .chain(decoded.rejects.iter().map(|r| (r.offset, &r.raw[..], Some(r.reason))))
        .collect();
    all.sort_by_key(|(offset, _, _)| *offset);
    all
}

fn protobuf(body: &[u8]) {
    let decoded = decode_otlp(Bytes::copy_from_slice(body), OtlpEncoding::Protobuf);
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        if let Ok(decoded) = decoded {
            assert!(
                decoded.rejects.iter().any(|r| r.reason == RejectReason::InvalidOtlp),
                "the walker accepted a request prost refuses"
            );
        }
        return;
    };
    let decoded = decoded.expect("a request prost reads is not refused whole");
    let all = in_order(&decoded);
    assert_eq!(all.len(), request.resource_spans.len());
    for ((_, bytes, reason), resource) in all.iter().zip(&request.resource_spans) {
        match reason {
            // Refused by the walker alone: only a message nested at prost's very limit.
            Some(RejectReason::InvalidOtlp) => continue,
            _ => assert_eq!(&ResourceSpans::decode(*bytes).unwrap(), resource),
        }
    }
}

fn json(body: &[u8]) {
    let Ok(decoded) = decode_otlp(Bytes::copy_from_slice(body), OtlpEncoding::Json) else {
        return;
    };
    for record in &decoded.records {
        let resource = ResourceSpans::decode(record.bytes()).expect("a record is protobuf");
        let project = record.project_id().expect("a record names its project");
        assert!(!project.is_empty());
        let attributes = resource.resource.map(|r| r.attributes).unwrap_or_default();
        assert!(attributes.iter().any(|kv| kv.key == "vercel.projectId"));
    }
}

fuzz_target!(|body: &[u8]| {
    protobuf(body);
    json(body);
});
