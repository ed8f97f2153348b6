//! Sample batches of each drain type, as Vercel's "Test" button and the simulator's drain
//! deliveries send them (docs/vercel/DRAINS.md): log entries; Speed Insights, Web Analytics and
//! audit-log records carrying their `schema` field; OTLP traces. A sample is encoded as the
//! drain's delivery asks, compressed when it asks, and signed as sent.

use serde_json::{json, Value};

use crate::deliver;

/// A delivery ready to send: where, with which headers, what body.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) endpoint: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

/// The sample of `schema` for a checked `delivery` object, signed with `secret` when there is
/// one.
pub(crate) fn prepare(
    schema: &str,
    delivery: &Value,
    secret: Option<&str>,
    now_ms: i64,
) -> Prepared {
    let endpoint = match &delivery["endpoint"] {
        Value::String(url) => url.clone(),
        otlp => otlp["traces"].as_str().unwrap_or_default().to_owned(),
    };
    let (content_type, mut body) = if schema == "trace" {
        // OTLP/JSON even for a `proto` drain: the simulator does not encode protobuf (yet), and
        // says so with the content type, which a receiver dispatches on.
        ("application/json", traces(now_ms).to_string().into_bytes())
    } else {
        let records = records(schema, now_ms);
        match delivery["encoding"].as_str() {
            Some("ndjson") => ("application/x-ndjson", ndjson(&records)),
            _ => ("application/json", Value::Array(records).to_string().into_bytes()),
        }
    };
    let mut headers: Vec<(String, String)> = delivery["headers"]
        .as_object()
        .map(|h| h.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default();
    headers.push(("content-type".to_owned(), content_type.to_owned()));
    if delivery["compression"] == "gzip" {
        // Signed as sent, compressed (what receivers in the wild verify;
        // docs/vercel/PROTOCOL.md §2).
        body = deliver::gzip(&body);
        headers.push(("content-encoding".to_owned(), "gzip".to_owned()));
    }
    if let Some(secret) = secret {
        headers.push(("x-vercel-signature".to_owned(), deliver::sign(secret.as_bytes(), &body)));
    }
    Prepared { endpoint, headers, body }
}

fn ndjson(records: &[Value]) -> Vec<u8> {
    records.iter().map(Value::to_string).collect::<Vec<_>>().join("\n").into_bytes()
}

/// Two records of a JSON type. `ai_gateway` and `connect` have no public payload: none.
pub(crate) fn records(schema: &str, now_ms: i64) -> Vec<Value> {
    match schema {
        "log" => logs(now_ms),
        "speed_insights" => speed_insights(),
        "analytics" => analytics(now_ms),
        "audit_log" => audit_log(now_ms),
        _ => Vec::new(),
    }
}

fn logs(now_ms: i64) -> Vec<Value> {
    vec![
        json!({
            "id": "sample-1", "deploymentId": "dpl_sample", "source": "lambda",
            "host": "sample.vercel.app", "timestamp": now_ms, "projectId": "prj_sample",
            "level": "info", "message": "SAMPLE MESSAGE: Hello from Vercel",
            "requestId": "req_sample_1", "statusCode": 200, "path": "/api/sample",
        }),
        json!({
            "id": "sample-2", "deploymentId": "dpl_sample", "source": "build",
            "host": "sample.vercel.app", "timestamp": now_ms + 1, "projectId": "prj_sample",
            "message": "SAMPLE MESSAGE: build step",
        }),
    ]
}

fn speed_insights() -> Vec<Value> {
    let record = |metric: &str, value: f64| {
        json!({
            "schema": "vercel.speed_insights.v1", "timestamp": "2026-07-29T13:45:30.000Z",
            "projectId": "prj_sample", "ownerId": "team_sample", "deviceId": 12345678,
            "metricType": metric, "value": value, "origin": "https://sample.vercel.app",
            "path": "/blog/[slug]", "route": "/blog/[slug]", "country": "DE", "region": "BE",
            "city": "Berlin", "osName": "Android", "osVersion": "14", "clientName": "Chrome",
            "clientType": "browser", "clientVersion": "126.0", "deviceType": "mobile",
            "deviceBrand": "Google", "connectionSpeed": "4g", "browserEngine": "Blink",
            "browserEngineVersion": "126.0", "scriptVersion": "1.3.1", "sdkVersion": "1.3.1",
            "sdkName": "@vercel/speed-insights", "vercelEnvironment": "production",
            "vercelUrl": "sample-abc123.vercel.app", "deploymentId": "dpl_sample",
            "attribution": "html>body>main>img",
        })
    };
    vec![record("LCP", 1840.5), record("CLS", 0.02)]
}

fn analytics(now_ms: i64) -> Vec<Value> {
    let record = |event_type: &str, name: Value, data: Value, timestamp: i64| {
        json!({
            "schema": "vercel.analytics.v2", "eventType": event_type, "eventName": name,
            "eventData": data, "timestamp": timestamp, "projectId": "prj_sample",
            "ownerId": "team_sample", "sessionId": 998877, "deviceId": 12345678,
            "origin": "https://sample.vercel.app", "path": "/pricing", "referrer": "",
            "queryParams": "plan=pro", "route": "/pricing", "country": "US", "region": "CA",
            "city": "San Francisco", "osName": "Mac", "osVersion": "14.5",
            "clientName": "Safari", "clientType": "browser", "clientVersion": "17.5",
            "deviceType": "desktop", "deviceBrand": "Apple", "deviceModel": "Macintosh",
            "browserEngine": "WebKit", "browserEngineVersion": "605.1.15",
            "sdkVersion": "1.3.1", "sdkName": "@vercel/analytics", "sdkVersionFull": "1.3.1",
            "vercelEnvironment": "production", "vercelUrl": "sample-abc123.vercel.app",
            "flags": "{}", "deployment": "dpl_sample",
        })
    };
    vec![
        record("pageview", Value::Null, Value::Null, now_ms),
        // `eventData` is a JSON *string*, as Vercel sends it.
        record("event", json!("Signup"), json!("{\"plan\":\"pro\"}"), now_ms + 1),
    ]
}

fn audit_log(now_ms: i64) -> Vec<Value> {
    let record = |id: &str, action: &str, payload: Value| {
        json!({
            "schema": "vercel.audit_log.v1", "id": id, "teamId": "team_sample",
            "projectId": "prj_sample", "action": action, "timestamp": now_ms,
            "actor": {"type": "user", "id": "user_sample", "name": "Sam Ple",
                      "email": "sam@example.com"},
            "via": "dashboard", "requestId": "req_sample_audit", "userAgent": "Mozilla/5.0",
            "ipAddress": "192.0.2.10", "tokenId": null, "payload": payload,
        })
    };
    vec![
        record("audit-sample-1", "project.env_variable.created", json!({"key": "API_URL"})),
        record("audit-sample-2", "deployment.promoted", json!({"deploymentId": "dpl_sample"})),
    ]
}

/// An OTLP/JSON `ExportTraceServiceRequest` with the resource attributes Vercel adds. One span
/// writes `kind` as the string Vercel's own example uses, the other as the integer the OTLP/JSON
/// spec asks for: receivers meet both.
fn traces(now_ms: i64) -> Value {
    let nanos = |ms: i64| (i128::from(ms) * 1_000_000).to_string();
    let attribute = |key: &str, value: &str| json!({"key": key, "value": {"stringValue": value}});
    json!({"resourceSpans": [{
        "resource": {"attributes": [
            attribute("service.name", "sample"),
            attribute("vercel.projectId", "prj_sample"),
            attribute("vercel.deploymentId", "dpl_sample"),
        ]},
        "scopeSpans": [{
            "scope": {"name": "vercel"},
            "spans": [
                {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                 "name": "GET /api/sample", "kind": 2, "startTimeUnixNano": nanos(now_ms),
                 "endTimeUnixNano": nanos(now_ms + 12),
                 "attributes": [attribute("http.method", "GET")], "status": {}},
                {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b175",
                 "parentSpanId": "eee19b7ec3c1b174", "name": "fetch upstream", "kind": "server",
                 "startTimeUnixNano": nanos(now_ms + 1), "endTimeUnixNano": nanos(now_ms + 9),
                 "status": {"code": 1}},
            ],
        }],
    }]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_types_carry_their_schema_and_logs_their_sample_messages() {
        for (schema, marker) in [
            ("speed_insights", "vercel.speed_insights.v1"),
            ("analytics", "vercel.analytics.v2"),
            ("audit_log", "vercel.audit_log.v1"),
        ] {
            let records = records(schema, 1);
            assert_eq!(records.len(), 2);
            assert!(records.iter().all(|r| r["schema"] == marker), "{schema}");
        }
        let delivery = json!({"endpoint": "http://127.0.0.1:1/", "encoding": "ndjson"});
        let prepared = prepare("log", &delivery, None, 1);
        let text = String::from_utf8(prepared.body).unwrap();
        assert_eq!(text.lines().count(), 2);
        for line in text.lines() {
            let entry: Value = serde_json::from_str(line).unwrap();
            assert!(entry["message"].as_str().unwrap().starts_with("SAMPLE MESSAGE:"));
            assert!(entry.get("schema").is_none(), "log entries have no schema field");
        }
        assert!(prepared.headers.contains(&("content-type".into(), "application/x-ndjson".into())));
    }

    #[test]
    fn traces_go_to_the_traces_url_as_otlp_json() {
        let delivery = json!({"endpoint": {"traces": "http://127.0.0.1:1/t"}, "encoding": "proto"});
        let prepared = prepare("trace", &delivery, Some("k"), 1);
        assert_eq!(prepared.endpoint, "http://127.0.0.1:1/t");
        let body: Value = serde_json::from_slice(&prepared.body).unwrap();
        let spans = &body["resourceSpans"][0]["scopeSpans"][0]["spans"];
        assert_eq!(spans.as_array().unwrap().len(), 2);
        let signature = deliver::sign(b"k", &prepared.body);
        assert!(prepared.headers.contains(&("x-vercel-signature".into(), signature)));
    }
}
