//! Writing a decoded ~1 MiB batch to a file in bytes/s (into the page cache; no fsync, so the
//! disk's sustained rate does not decide): the file sink's way, `writev` of runs of adjacent
//! lines straight from the received body (one piece for an NDJSON body), beside `writev` of one
//! piece per line, copying them into one buffer for one `write`, and a `BufWriter` taking each
//! record and its newline.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, IoSlice, Seek, Write};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ingest::decode::{decode, PaddedBody};
use spillway_benches::Corpus;

fn bench(c: &mut Criterion) {
    let body = Corpus::new(42, 1000).ndjson();
    let decoded = decode(PaddedBody::from_slice(&body));
    let records = decoded.records;
    let dir = tempfile::tempdir().unwrap();
    let open = |name: &str| -> File {
        OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(dir.path().join(name))
            .unwrap()
    };
    let mut group = c.benchmark_group("file_sink");
    group.throughput(Throughput::Bytes(body.len() as u64));
    let mut file = open("writev-runs");
    group.bench_function("writev_runs", |b| {
        b.iter(|| {
            file.rewind().unwrap();
            // Every line of this body was accepted, so the run is the whole body.
            file.write_all(&decoded.body).unwrap();
        })
    });
    let mut file = open("writev");
    group.bench_function("writev_lines", |b| {
        b.iter(|| {
            file.rewind().unwrap();
            let mut pieces: Vec<IoSlice<'_>> =
                records.iter().map(|r| IoSlice::new(r.line().unwrap())).collect();
            let mut pieces = &mut pieces[..];
            while !pieces.is_empty() {
                let n = file.write_vectored(pieces).unwrap();
                IoSlice::advance_slices(&mut pieces, n);
            }
        })
    });
    let mut file = open("one-write");
    let mut buf = Vec::with_capacity(body.len());
    group.bench_function("buffer_then_one_write", |b| {
        b.iter(|| {
            file.rewind().unwrap();
            buf.clear();
            for r in &records {
                buf.extend_from_slice(r.bytes());
                buf.push(b'\n');
            }
            file.write_all(&buf).unwrap();
        })
    });
    let file = open("bufwriter");
    let mut writer = BufWriter::with_capacity(64 * 1024, file);
    group.bench_function("bufwriter_per_record", |b| {
        b.iter(|| {
            writer.rewind().unwrap();
            for r in &records {
                writer.write_all(r.bytes()).unwrap();
                writer.write_all(b"\n").unwrap();
            }
            writer.flush().unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
