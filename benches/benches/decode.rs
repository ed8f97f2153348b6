//! Decoder throughput in bytes/s on the seeded ~1 KiB Vercel corpus: Spillway's decoder (simd-json
//! stage 1 + structural walk) beside a `serde_json` borrowed-struct baseline and a plain
//! `simd_json::to_tape` per line, in one criterion group so the ratios come from one run.
//!
//! Spillway's decoder is timed from a [`PaddedBody`] made outside the timing: the edge reads a
//! request's body straight into one, as the baselines read theirs in place. Dropping the decoded
//! batch is inside the timing.

use std::borrow::Cow;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use ingest::decode::{decode, decode_as, PaddedBody};
use record::DataType;
use serde::Deserialize;
use spillway_benches::Corpus;

/// What routing needs, borrowed where the input allows; unknown fields are validated and skipped.
#[derive(Deserialize)]
#[allow(dead_code)]
struct Routing<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow, rename = "projectId")]
    project_id: Cow<'a, str>,
    timestamp: f64,
    #[serde(borrow)]
    source: Option<Cow<'a, str>>,
    #[serde(borrow)]
    level: Option<Cow<'a, str>>,
    #[serde(borrow)]
    environment: Option<Cow<'a, str>>,
}

fn serde_lines(body: &[u8]) -> usize {
    let mut ok = 0;
    for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        if serde_json::from_slice::<Routing<'_>>(line).is_ok() {
            ok += 1;
        }
    }
    ok
}

fn simd_json_tape_lines(body: &[u8], scratch: &mut Vec<u8>) -> usize {
    let mut ok = 0;
    for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        scratch.clear();
        scratch.extend_from_slice(line);
        if simd_json::to_tape(scratch).is_ok() {
            ok += 1;
        }
    }
    ok
}

fn bench_decode(c: &mut Criterion) {
    let corpus = Corpus::new(42, 1000);
    let ndjson = corpus.ndjson();
    let array = corpus.json_array();
    let records = corpus.records.len();

    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Bytes(ndjson.len() as u64));
    for (format, body) in [("ndjson", &ndjson), ("array", &array)] {
        group.bench_with_input(BenchmarkId::new("spillway", format), body, |b, body| {
            b.iter_batched(
                || PaddedBody::from_slice(body),
                |padded| assert_eq!(decode(padded).records.len(), records),
                BatchSize::LargeInput,
            )
        });
    }
    group.bench_with_input(
        BenchmarkId::new("serde_json_borrowed", "ndjson"),
        &ndjson,
        |b, body| b.iter(|| assert_eq!(serde_lines(body), records)),
    );
    let mut scratch = Vec::new();
    group.bench_with_input(BenchmarkId::new("simd_json_to_tape", "ndjson"), &ndjson, |b, body| {
        b.iter(|| assert_eq!(simd_json_tape_lines(body, &mut scratch), records))
    });
    group.finish();
}

/// Each JSON data type's records through the same decoder (with its type's checks), beside logs:
/// the per-type checks must not cost the logs, nor the other types much more per byte.
fn bench_data_types(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_data_types");
    for t in [DataType::Logs, DataType::SpeedInsights, DataType::Analytics, DataType::AuditLog] {
        let corpus = Corpus::of(t, 42, 2000);
        let (body, records) = (corpus.ndjson(), corpus.records.len());
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("ndjson", t.slug()), &body, |b, body| {
            b.iter_batched(
                || PaddedBody::from_slice(body),
                |padded| assert_eq!(decode_as(padded, t).records.len(), records),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decode, bench_data_types);
criterion_main!(benches);
