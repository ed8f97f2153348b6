//! Signature check in bytes/s on a ~1 MiB NDJSON body: Spillway's HMAC-SHA1 verification
//! (RustCrypto `hmac` + `sha1`, constant-time compare) beside a bare SHA-1 digest of the same
//! bytes, the floor any HMAC-SHA1 implementation pays.
//!
//! Two more groups measure the machine rather than the code, for what the receiver can expect
//! of it:
//! - `signature_all_cores`: every core verifying a copy of the body at once, in bytes/s for the
//!   whole machine: the most the receiver can verify, whatever its threads do;
//! - `signature_placement`: one verification of a body just written on one CPU, on that CPU or
//!   on another one the process may run on (its bytes then come from the writer's cache; on a
//!   machine with SMT the two may share a core), as when a body read on a runtime thread is
//!   checked on a blocking one that the kernel put on the other core.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use listener::SigningKey;
use sha1::{Digest, Sha1};
use spillway_benches::Corpus;

fn bench(c: &mut Criterion) {
    let body = Corpus::new(42, 1000).ndjson();
    let secret = SigningKey::new("bench-secret");
    let signature = secret.sign(&body);
    let mut group = c.benchmark_group("signature");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("hmac_sha1_verify", |b| {
        b.iter(|| assert!(secret.verifies(&body, signature.as_bytes())))
    });
    group.bench_function("sha1_digest_only", |b| b.iter(|| Sha1::digest(&body)));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, b"bench-secret");
    let tag = hex::decode(&signature).unwrap();
    group.bench_function("ring_hmac_sha1_verify", |b| {
        b.iter(|| ring::hmac::verify(&key, &body, &tag).unwrap())
    });
    group.finish();
    all_cores(c, &body, &secret, signature.as_bytes());
    placement(c, &body, &secret, signature.as_bytes());
}

/// Every core verifying its own copy of the body `iters` times, started together; the time is
/// the slowest thread's.
fn all_cores(c: &mut Criterion, body: &[u8], secret: &SigningKey, signature: &[u8]) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut group = c.benchmark_group("signature_all_cores");
    group.throughput(Throughput::Bytes((body.len() * cores) as u64));
    group.bench_function(format!("hmac_sha1_verify_{cores}_threads"), |b| {
        b.iter_custom(|iters| {
            let start = Barrier::new(cores);
            std::thread::scope(|s| {
                let threads: Vec<_> = (0..cores)
                    .map(|_| {
                        let start = &start;
                        s.spawn(move || {
                            // Each thread's own copy, made by that thread (in its core's cache).
                            let body = body.to_vec();
                            start.wait();
                            let began = Instant::now();
                            for _ in 0..iters {
                                assert!(secret.verifies(&body, signature));
                            }
                            began.elapsed()
                        })
                    })
                    .collect();
                threads.into_iter().map(|t| t.join().expect("a verifier")).max().unwrap()
            })
        })
    });
    group.finish();
}

/// One verification of a body that one core has just written, on that core or on another.
fn placement(c: &mut Criterion, body: &[u8], secret: &SigningKey, signature: &[u8]) {
    let allowed = affinity();
    let [writer, other, ..] = allowed[..] else {
        eprintln!("signature_placement: needs two cores this process may run on; not run");
        return;
    };
    let mut group = c.benchmark_group("signature_placement");
    group.throughput(Throughput::Bytes(body.len() as u64));
    let mut buf = vec![0u8; body.len()];
    for (name, verifier) in
        [("written_on_the_same_core", writer), ("written_on_another_core", other)]
    {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    set_affinity(&[writer]);
                    buf.copy_from_slice(body);
                    total += std::thread::scope(|s| {
                        s.spawn(|| {
                            set_affinity(&[verifier]);
                            let began = Instant::now();
                            assert!(secret.verifies(&buf, signature));
                            began.elapsed()
                        })
                        .join()
                        .expect("the verifier")
                    });
                }
                total
            })
        });
    }
    set_affinity(&allowed);
    group.finish();
}

/// The CPUs the calling thread may run on.
fn affinity() -> Vec<usize> {
    // SAFETY: a zeroed `cpu_set_t` is an empty set, which `sched_getaffinity` fills with at
    // most `size_of::<cpu_set_t>()` bytes; `CPU_ISSET` reads inside it for every index below
    // `CPU_SETSIZE`.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&cpu| libc::CPU_ISSET(cpu, &set)).collect()
    }
}

/// Runs the calling thread on `cpus` only.
fn set_affinity(cpus: &[usize]) {
    // SAFETY: as in `affinity`; `CPU_SET` stays inside the set for CPUs it reported.
    let done = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(done, 0, "running on cpus {cpus:?}: {}", std::io::Error::last_os_error());
}

criterion_group!(benches, bench);
criterion_main!(benches);
