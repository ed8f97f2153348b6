//! Inflate in (inflated) bytes/s on a ~1 MiB NDJSON body: flate2 with the zlib-rs backend, as
//! Spillway uses it, beside miniz_oxide (flate2's default pure-Rust backend) on the same raw
//! deflate stream; and the full gzip path Spillway runs (header, CRC-32, multi-member reader).

use std::io::{Read, Write};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use spillway_benches::Corpus;

fn bench(c: &mut Criterion) {
    let body = Corpus::new(42, 1000).ndjson();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&body).unwrap();
    let gz = e.finish().unwrap();
    let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    d.write_all(&body).unwrap();
    let deflate = d.finish().unwrap();

    let mut group = c.benchmark_group("inflate");
    group.throughput(Throughput::Bytes(body.len() as u64));
    let mut out = Vec::with_capacity(body.len());
    group.bench_function("flate2_zlib_rs_raw", |b| {
        b.iter(|| {
            out.clear();
            flate2::read::DeflateDecoder::new(&deflate[..]).read_to_end(&mut out).unwrap();
            assert_eq!(out.len(), body.len());
        })
    });
    group.bench_function("miniz_oxide_raw", |b| {
        b.iter(|| {
            let out =
                miniz_oxide::inflate::decompress_to_vec_with_limit(&deflate, body.len()).unwrap();
            assert_eq!(out.len(), body.len());
        })
    });
    group.bench_function("flate2_zlib_rs_gzip", |b| {
        b.iter(|| {
            out.clear();
            flate2::read::MultiGzDecoder::new(&gz[..]).read_to_end(&mut out).unwrap();
            assert_eq!(out.len(), body.len());
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
