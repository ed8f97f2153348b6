//! Fuzzes the decoder against `serde_json`: for any body, the decoder must not panic, every
//! record it accepts must be a JSON object that `serde_json` reads with the same `id` and
//! `projectId` and a numeric `timestamp`, and for NDJSON every non-blank line must come out as
//! exactly one record or one reject. Run: `cargo fuzz run decode` (from `fuzz/`).
#![no_main]

use ingest::decode::{decode, Format, PaddedBody};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let decoded = decode(PaddedBody::from_slice(body));
    for record in &decoded.records {
        let value: serde_json::Value = match serde_json::from_slice(record.bytes()) {
            Ok(value) => value,
            // JSON's grammar allows numbers beyond an f64 (`1e400`); serde_json refuses them.
            Err(e) if e.to_string().starts_with("number out of range") => continue,
            Err(e) => panic!("an accepted record is JSON: {e}"),
        };
        let object = value.as_object().expect("an accepted record is an object");
        assert_eq!(object["id"].as_str(), record.id().as_deref());
        assert_eq!(object["projectId"].as_str(), record.project_id().as_deref());
        assert!(object["timestamp"].is_number());
    }
    if decoded.format == Format::Ndjson {
        let json_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r');
        let lines = body.split(|b| *b == b'\n').filter(|l| !l.iter().all(json_ws)).count();
        assert_eq!(decoded.records.len() + decoded.rejects.len(), lines);
        for record in &decoded.records {
            let line = record.bytes();
            assert!(
                body.windows(line.len()).any(|w| w == &line[..]),
                "NDJSON passes lines through"
            );
        }
    }
});
