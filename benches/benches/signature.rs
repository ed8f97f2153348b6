//! Signature check in bytes/s on a ~1 MiB NDJSON body: Spillway's HMAC-SHA1 verification
//! (RustCrypto `hmac` + `sha1`, constant-time compare) beside a bare SHA-1 digest of the same
//! bytes, the floor any HMAC-SHA1 implementation pays.

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
}

criterion_group!(benches, bench);
criterion_main!(benches);
