//! Hand-off of batches between threads in batches/s: the bounded `crossbeam-channel` the
//! pipeline uses, beside `std::sync::mpsc::sync_channel` with the same bound, one producer and
//! one consumer thread, 10 000 batches per iteration.

use std::sync::Arc;
use std::thread;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const BATCHES: u64 = 10_000;

fn bench(c: &mut Criterion) {
    let payload = Arc::new(vec![0u8; 1024]);
    let mut group = c.benchmark_group("fanout");
    group.throughput(Throughput::Elements(BATCHES));
    group.bench_function("crossbeam_bounded", |b| {
        b.iter(|| {
            let (tx, rx) = crossbeam_channel::bounded::<Arc<Vec<u8>>>(256);
            let consumer = thread::spawn(move || rx.iter().map(|p| p.len()).sum::<usize>());
            for _ in 0..BATCHES {
                tx.send(Arc::clone(&payload)).unwrap();
            }
            drop(tx);
            assert_eq!(consumer.join().unwrap(), 1024 * BATCHES as usize);
        })
    });
    group.bench_function("std_sync_channel", |b| {
        b.iter(|| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Arc<Vec<u8>>>(256);
            let consumer = thread::spawn(move || rx.iter().map(|p| p.len()).sum::<usize>());
            for _ in 0..BATCHES {
                tx.send(Arc::clone(&payload)).unwrap();
            }
            drop(tx);
            assert_eq!(consumer.join().unwrap(), 1024 * BATCHES as usize);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
