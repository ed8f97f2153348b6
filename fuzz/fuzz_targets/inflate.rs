//! Fuzzes the edge's capped inflater (`ingest::harness::gunzip`, the code behind
//! `Content-Encoding: gzip`). Properties, for a cap taken from the input: any bytes give a body
//! of at most the cap or an error (never a panic, never more); bytes compressed by flate2 (one
//! member, or the input split in two members) inflate back to exactly the input when it fits
//! under the cap, and to `inflated_body_too_large` when it does not.
//!
//! Input: two bytes of cap (0..=65535), then the data. `scripts/fuzz` seeds it with the
//! fixtures (`logs.ndjson.gz` as is, the others to be compressed by the target).
#![no_main]

use std::io::Write;

use ingest::harness::gunzip;
use ingest::IngestError;
use libfuzzer_sys::fuzz_target;

fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fuzz_target!(|input: &[u8]| {
    let [hi, lo, data @ ..] = input else { return };
    let cap = usize::from(u16::from_be_bytes([*hi, *lo]));

    // Arbitrary bytes: a capped body or an error.
    match gunzip(data, cap) {
        Ok(body) => assert!(body.len() <= cap, "{} bytes inflated over a cap of {cap}", body.len()),
        Err(IngestError::CorruptGzip | IngestError::InflatedTooLarge { .. }) => {}
        Err(other) => panic!("unexpected error {other:?}"),
    }

    // A round trip through flate2, in one member and in two.
    let level = u32::from(*lo % 10);
    let split = usize::from(*hi) % (data.len() + 1);
    let mut two = gzip(&data[..split], level);
    two.extend(gzip(&data[split..], level));
    for compressed in [gzip(data, level), two] {
        match gunzip(&compressed, cap) {
            Ok(body) => assert_eq!(body, data, "the round trip gives back the input"),
            Err(IngestError::InflatedTooLarge { limit }) => {
                assert_eq!(limit, cap);
                assert!(data.len() > cap, "{} bytes refused under a cap of {cap}", data.len());
            }
            Err(other) => panic!("valid gzip refused: {other:?}"),
        }
    }
});
