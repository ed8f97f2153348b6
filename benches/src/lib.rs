//! A seeded generator of realistic Vercel log records (and, with [`Corpus::of`], of the other
//! JSON data types' records; with [`otlp_request`] and [`otlp_batches`], of OTLP trace
//! batches), shared by the benchmarks and the load generator so that every figure is measured
//! on the same corpus.
//!
//! Records cover every source type, proxy objects (with `userAgent` arrays and `null`s),
//! unicode and escapes, JSON text inside `message`, and sizes from about 200 bytes to several
//! KiB with a mean near 1 KiB.
//!
//! ```
//! let corpus = spillway_benches::Corpus::new(7, 100);
//! assert_eq!(corpus.records.len(), 100);
//! assert!(corpus.ndjson().ends_with(b"\n"));
//! ```
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

pub mod acked;
mod otlp;
pub mod schedule;
mod types;
pub use otlp::{otlp_batches, otlp_request, otlp_span_count, OtlpEncoding};
pub use types::nonce;

const SOURCES: [&str; 7] =
    ["build", "edge", "lambda", "static", "external", "firewall", "redirect"];
const LEVELS: [&str; 4] = ["info", "warning", "error", "fatal"];
pub(crate) const REGIONS: [&str; 6] = ["iad1", "sfo1", "cdg1", "fra1", "hnd1", "gru1"];
const WORDS: [&str; 16] = [
    "request",
    "handled",
    "cache",
    "miss",
    "upstream",
    "timeout",
    "user",
    "session",
    "déjà",
    "vu",
    "naïve",
    "🚀",
    "日本語",
    "tab\there",
    "quote\"d",
    "line\nbreak",
];

/// A deterministic set of Vercel-shaped records.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// Each record as one compact JSON line (no terminator).
    pub records: Vec<String>,
}

impl Corpus {
    /// `count` records from `seed`: the same seed always gives the same records.
    pub fn new(seed: u64, count: usize) -> Corpus {
        let mut rng = StdRng::seed_from_u64(seed);
        let records = (0..count).map(|i| record(&mut rng, i as u64).to_string()).collect();
        Corpus { records }
    }

    /// Total bytes of the records, without terminators.
    pub fn bytes(&self) -> usize {
        self.records.iter().map(String::len).sum()
    }

    /// The records as one NDJSON body.
    pub fn ndjson(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.bytes() + self.records.len());
        for r in &self.records {
            body.extend_from_slice(r.as_bytes());
            body.push(b'\n');
        }
        body
    }

    /// The records as one compact JSON array body.
    pub fn json_array(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.bytes() + self.records.len() + 2);
        body.push(b'[');
        for (i, r) in self.records.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(r.as_bytes());
        }
        body.push(b']');
        body
    }

    /// Splits the records into NDJSON bodies of about `target_bytes` each.
    pub fn ndjson_batches(&self, target_bytes: usize) -> Vec<Vec<u8>> {
        let mut batches = Vec::new();
        let mut body = Vec::with_capacity(target_bytes + 4096);
        for r in &self.records {
            body.extend_from_slice(r.as_bytes());
            body.push(b'\n');
            if body.len() >= target_bytes {
                batches.push(std::mem::replace(&mut body, Vec::with_capacity(target_bytes + 4096)));
            }
        }
        if !body.is_empty() {
            batches.push(body);
        }
        batches
    }
}

pub(crate) fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from[rng.random_range(0..from.len())]
}

pub(crate) fn hex(rng: &mut StdRng, len: usize) -> String {
    (0..len).map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0')).collect()
}

fn sentence(rng: &mut StdRng, words: usize) -> String {
    let mut s = String::new();
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(pick(rng, &WORDS));
    }
    s
}

/// A message whose length follows a skewed distribution: mostly short, sometimes several KiB.
fn message(rng: &mut StdRng) -> Value {
    let roll: u32 = rng.random_range(0..100);
    let words = match roll {
        0..=9 => return Value::Null,
        10..=59 => rng.random_range(2..30),
        60..=89 => rng.random_range(30..120),
        _ => rng.random_range(120..600),
    };
    if roll.is_multiple_of(4) {
        // The application's own structured log, as JSON text inside the message.
        let inner = json!({
            "msg": sentence(rng, words),
            "attempt": rng.random_range(0..5),
            "ok": rng.random_bool(0.5),
            "ctx": {"user": hex(rng, 12), "tags": ["a", "b"]},
        });
        Value::String(inner.to_string())
    } else {
        Value::String(sentence(rng, words))
    }
}

fn record(rng: &mut StdRng, i: u64) -> Value {
    let source = pick(rng, &SOURCES);
    let ts: u64 = 1_700_000_000_000 + i * 7 + rng.random_range(0..5);
    let project_len = rng.random_range(2..4);
    let project = format!("prj_{}", hex(rng, project_len));
    let mut r = json!({
        "id": format!("{}{:010}", ts, i),
        "deploymentId": format!("dpl_{}", hex(rng, 28)),
        "source": source,
        "host": format!("app-{}.vercel.app", hex(rng, 6)),
        "timestamp": ts,
        "projectId": project,
        "projectName": "my-app",
        "level": pick(rng, &LEVELS),
        "message": message(rng),
        "environment": if rng.random_bool(0.7) { "production" } else { "preview" },
        "requestId": hex(rng, 32),
        "executionRegion": pick(rng, &REGIONS),
    });
    let obj = r.as_object_mut().expect("record is an object");
    if source != "build" {
        obj.insert("path".into(), json!(format!("/api/{}", hex(rng, 8))));
        let status = [200, 200, 304, 404, 500, -1][rng.random_range(0..6)];
        obj.insert("statusCode".into(), json!(status));
        obj.insert("traceId".into(), json!(hex(rng, 32)));
        obj.insert("spanId".into(), json!(hex(rng, 16)));
        let user_agent = if rng.random_bool(0.8) {
            json!(["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"])
        } else {
            Value::Null
        };
        let method = ["GET", "POST", "PUT"][rng.random_range(0..3)];
        let cache = [Some("MISS"), Some("HIT"), Some("STALE"), Some("BYPASS"), None]
            [rng.random_range(0..5)];
        obj.insert(
            "proxy".into(),
            json!({
                "timestamp": ts - 3,
                "method": method,
                "host": "my-app.vercel.app",
                "path": format!("/p/{}?q={}", hex(rng, 6), sentence(rng, 2)),
                "userAgent": user_agent,
                "region": pick(rng, &REGIONS),
                "referer": null,
                "statusCode": 200,
                "clientIp": if rng.random_bool(0.8) { "203.0.113.7" } else { "2001:db8::1" },
                "scheme": "https",
                "vercelCache": cache,
                "responseByteSize": rng.random_range(100..100_000),
            }),
        );
    } else {
        obj.insert("buildId".into(), json!(format!("bld_{}", hex(rng, 9))));
        obj.insert("type".into(), json!("stdout"));
        obj.insert("entrypoint".into(), Value::Null);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_is_deterministic_and_about_one_kib_per_record() {
        let a = Corpus::new(1, 2000);
        assert_eq!(a.records, Corpus::new(1, 2000).records);
        let mean = a.bytes() / a.records.len();
        assert!((600..1600).contains(&mean), "mean record size {mean}");
        let min = a.records.iter().map(String::len).min().unwrap_or(0);
        let max = a.records.iter().map(String::len).max().unwrap_or(0);
        assert!(min < 500 && max > 3000, "sizes {min}..{max}");
        for r in &a.records {
            let v: Value = serde_json::from_str(r).unwrap();
            assert!(v["id"].is_string() && v["projectId"].is_string() && v["timestamp"].is_u64());
        }
    }
}
