//! Seeded records of the JSON data types besides logs (Speed Insights, Web Analytics, audit
//! logs), with the fields DRAINS.md lists: the load generator's `--type` and the decode bench.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use record::DataType;
use serde_json::{json, Value};

use crate::{hex, pick, Corpus, REGIONS};

const METRICS: [&str; 6] = ["CLS", "LCP", "FID", "FCP", "TTFB", "INP"];
const COUNTRIES: [&str; 6] = ["US", "DE", "JP", "BR", "FR", "IN"];
const PATHS: [&str; 5] = ["/", "/blog/[slug]", "/pricing", "/docs/[...path]", "/cart"];
const ACTIONS: [&str; 5] = [
    "project.created",
    "project.env_variable.created",
    "deployment.promoted",
    "team.member.added",
    "domain.verified",
];

impl Corpus {
    /// `count` records of `data_type` from `seed` (logs: [`Corpus::new`]).
    pub fn of(data_type: DataType, seed: u64, count: usize) -> Corpus {
        let mut rng = StdRng::seed_from_u64(seed);
        let make = match data_type {
            DataType::SpeedInsights => speed_insights,
            DataType::Analytics => analytics,
            DataType::AuditLog => audit_log,
            DataType::Logs | DataType::Traces => return Corpus::new(seed, count),
        };
        Corpus { records: (0..count).map(|i| make(&mut rng, i as u64).to_string()).collect() }
    }
}

/// A record of `data_type` unique to `seq` (a load generator's per-request nonce).
pub fn nonce(data_type: DataType, seq: u64) -> String {
    let ts = 1_700_000_000_000u64;
    match data_type {
        DataType::SpeedInsights => format!(
            r#"{{"schema":"vercel.speed_insights.v1","timestamp":"2023-11-14T22:13:20.000Z","projectId":"prj_loadgen","metricType":"LCP","value":{seq},"deviceId":{seq}}}"#
        ),
        DataType::Analytics => format!(
            r#"{{"schema":"vercel.analytics.v2","eventType":"pageview","timestamp":{ts},"projectId":"prj_loadgen","sessionId":{seq}}}"#
        ),
        DataType::AuditLog => format!(
            r#"{{"schema":"vercel.audit_log.v1","id":"loadgen-{seq:020}","timestamp":{ts},"action":"loadgen.nonce"}}"#
        ),
        DataType::Logs | DataType::Traces => format!(
            r#"{{"id":"loadgen-{seq:020}","projectId":"prj_loadgen","timestamp":{ts},"source":"lambda","level":"info","message":"loadgen nonce"}}"#
        ),
    }
}

fn project(rng: &mut StdRng) -> String {
    let len = rng.random_range(2..4);
    format!("prj_{}", hex(rng, len))
}

/// Where a visit came from, shared by Speed Insights and Web Analytics.
fn visit(rng: &mut StdRng, obj: &mut serde_json::Map<String, Value>) {
    let route = pick(rng, &PATHS);
    let mobile = rng.random_bool(0.5);
    let fields = json!({
        "ownerId": format!("team_{}", hex(rng, 24)),
        "deviceId": rng.random_range(1u64..u64::MAX),
        "origin": "https://my-app.vercel.app",
        "path": route.replace("[slug]", &hex(rng, 8)).replace("[...path]", "a/b"),
        "route": route,
        "country": pick(rng, &COUNTRIES),
        "region": pick(rng, &REGIONS),
        "city": if rng.random_bool(0.8) { Value::from("Zürich") } else { Value::Null },
        "osName": if mobile { "Android" } else { "Mac OS" },
        "osVersion": "14",
        "clientName": if mobile { "Chrome Mobile" } else { "Safari" },
        "clientType": "browser",
        "clientVersion": "117.0",
        "deviceType": if mobile { "mobile" } else { "desktop" },
        "browserEngine": "Blink",
        "browserEngineVersion": "117.0",
        "vercelEnvironment": if rng.random_bool(0.7) { "production" } else { "preview" },
        "vercelUrl": format!("my-app-{}.vercel.app", hex(rng, 6)),
    });
    obj.extend(fields.as_object().cloned().unwrap_or_default());
}

fn speed_insights(rng: &mut StdRng, i: u64) -> Value {
    let ms = 1_700_000_000_000 + i * 11;
    let mut r = json!({
        "schema": "vercel.speed_insights.v1",
        "timestamp": format!("2023-11-14T22:{:02}:{:02}.{:03}Z", (ms / 60_000) % 60, (ms / 1000) % 60, ms % 1000),
        "projectId": project(rng),
        "metricType": pick(rng, &METRICS),
        "value": (rng.random_range(0.0..5000.0f64) * 100.0).round() / 100.0,
        "connectionSpeed": "4g",
        "scriptVersion": "1.1.0",
        "sdkVersion": "1.1.0",
        "sdkName": "@vercel/speed-insights",
        "deploymentId": format!("dpl_{}", hex(rng, 28)),
    });
    let obj = r.as_object_mut().expect("an object");
    visit(rng, obj);
    if rng.random_bool(0.3) {
        obj.insert("attribution".into(), json!(format!("{{\"element\":\"div#{}\"}}", hex(rng, 6))));
    }
    r
}

fn analytics(rng: &mut StdRng, i: u64) -> Value {
    let event = rng.random_bool(0.2);
    let mut r = json!({
        "schema": "vercel.analytics.v2",
        "eventType": if event { "event" } else { "pageview" },
        "timestamp": 1_700_000_000_000 + i * 13,
        "projectId": project(rng),
        "sessionId": rng.random_range(1u64..u64::MAX),
        "referrer": if rng.random_bool(0.5) { "https://www.google.com/" } else { "" },
        "queryParams": format!("utm_source={}", hex(rng, 4)),
        "sdkVersion": "1.0.2",
        "sdkName": "@vercel/analytics",
        "deployment": format!("dpl_{}", hex(rng, 28)),
    });
    let obj = r.as_object_mut().expect("an object");
    visit(rng, obj);
    if event {
        obj.insert("eventName".into(), json!("signup"));
        obj.insert("eventData".into(), json!(format!("{{\"plan\":\"pro\",\"seats\":{}}}", i % 9)));
    }
    r
}

fn audit_log(rng: &mut StdRng, i: u64) -> Value {
    json!({
        "schema": "vercel.audit_log.v1",
        "id": format!("ael_{}", hex(rng, 24)),
        "teamId": format!("team_{}", hex(rng, 24)),
        "projectId": project(rng),
        "action": pick(rng, &ACTIONS),
        "timestamp": 1_700_000_000_000 + i * 17,
        "actor": {"type": "user", "id": format!("usr_{}", hex(rng, 16)), "name": "Ada Lovelace", "email": "ada@example.com"},
        "via": if rng.random_bool(0.5) { "web" } else { "api" },
        "requestId": format!("req_{}", hex(rng, 16)),
        "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)",
        "ipAddress": "203.0.113.7",
        "tokenId": Value::Null,
        "payload": {"key": format!("KEY_{}", hex(rng, 6)), "target": ["production", "preview"]},
    })
}

#[cfg(test)]
mod tests {
    use ingest::decode::{decode_as, PaddedBody};

    use super::*;

    #[test]
    fn every_typed_record_and_nonce_is_accepted_by_its_drain_type() {
        for t in [DataType::SpeedInsights, DataType::Analytics, DataType::AuditLog] {
            let corpus = Corpus::of(t, 3, 200);
            assert_eq!(corpus.records, Corpus::of(t, 3, 200).records, "deterministic");
            let mut body = corpus.ndjson();
            body.extend_from_slice(nonce(t, 7).as_bytes());
            let decoded = decode_as(PaddedBody::from_slice(&body), t);
            assert!(decoded.rejects.is_empty(), "{t}: {:?}", decoded.rejects.first());
            assert_eq!(decoded.records.len(), 201);
        }
    }
}
