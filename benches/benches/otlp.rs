//! OTLP trace decode throughput in bytes/s on seeded Vercel-shaped trace requests: Spillway's
//! zero-copy walk (every message checked, one record per resource, no span built or copied)
//! beside prost's owned decode of the whole `ExportTraceServiceRequest` (what a receiver built
//! on the generated types does first), in one criterion group so the ratio comes from one run.
//! The OTLP/JSON path (parse, then re-encode each resource) is measured beside them.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ingest::decode::{decode_otlp, OtlpEncoding as Decoding};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use spillway_benches::{otlp_request, otlp_span_count, OtlpEncoding};

fn bench(c: &mut Criterion) {
    // 20 resources of 30 spans: a request of about 250 KB, as a busy trace drain sends.
    let request = otlp_request(42, 20, 30);
    let spans = otlp_span_count(&request) as u64;
    let proto = Bytes::from(OtlpEncoding::Protobuf.encode(&request));
    let json = Bytes::from(OtlpEncoding::Json.encode(&request));
    // Both sides must see the same request as valid and count the same spans.
    let walked = decode_otlp(proto.clone(), Decoding::Protobuf).unwrap();
    assert_eq!((walked.records.len(), walked.spans), (request.resource_spans.len(), spans));
    assert_eq!(ExportTraceServiceRequest::decode(&proto[..]).unwrap(), request);
    assert_eq!(decode_otlp(json.clone(), Decoding::Json).unwrap().spans, spans);

    let mut group = c.benchmark_group("decode_otlp");
    group.throughput(Throughput::Bytes(proto.len() as u64));
    group.bench_with_input(BenchmarkId::new("spillway_walk", proto.len()), &proto, |b, body| {
        b.iter(|| decode_otlp(body.clone(), Decoding::Protobuf).unwrap().spans)
    });
    group.bench_with_input(BenchmarkId::new("prost_owned", proto.len()), &proto, |b, body| {
        b.iter(|| {
            let request = ExportTraceServiceRequest::decode(&body[..]).unwrap();
            otlp_span_count(&request)
        })
    });
    group.throughput(Throughput::Bytes(json.len() as u64));
    group.bench_with_input(BenchmarkId::new("spillway_json", json.len()), &json, |b, body| {
        b.iter(|| decode_otlp(body.clone(), Decoding::Json).unwrap().spans)
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
