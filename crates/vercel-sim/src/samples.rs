//! Sample batches of each drain type, as Vercel's "Test" button and the simulator's drain
//! deliveries send them (docs/vercel/DRAINS.md): log entries; Speed Insights, Web Analytics and
//! audit-log records carrying their `schema` field; OTLP traces (protobuf or OTLP/JSON,
//! `traces.rs`). A sample is encoded as the drain's delivery asks, compressed when it asks, and
//! signed as sent.

use serde_json::{json, Value};

use crate::deliver;

mod traces;

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
        traces::body(delivery["encoding"].as_str(), now_ms)
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

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
    use prost::Message as _;

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

    fn trace_sample(encoding: &str) -> Prepared {
        let delivery =
            json!({"endpoint": {"traces": "http://127.0.0.1:1/t"}, "encoding": encoding});
        let prepared = prepare("trace", &delivery, Some("k"), 1_700_000_000_000);
        assert_eq!(prepared.endpoint, "http://127.0.0.1:1/t");
        let signature = deliver::sign(b"k", &prepared.body);
        assert!(prepared.headers.contains(&("x-vercel-signature".into(), signature)), "{encoding}");
        prepared
    }

    fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
        attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?.value.as_ref()
    }

    #[test]
    fn proto_trace_drains_get_an_export_trace_service_request_in_protobuf() {
        let prepared = trace_sample("proto");
        let content_type = ("content-type".into(), "application/x-protobuf".into());
        assert!(prepared.headers.contains(&content_type), "{:?}", prepared.headers);
        let request = ExportTraceServiceRequest::decode(prepared.body.as_slice()).unwrap();
        assert_eq!(request, traces::request(1_700_000_000_000), "decodes to what was built");
        assert_eq!(request.resource_spans.len(), 2);
        let mut projects = Vec::new();
        for resource_spans in &request.resource_spans {
            let resource = resource_spans.resource.as_ref().unwrap();
            for key in ["service.name", "vercel.projectId", "vercel.deploymentId"] {
                assert!(attribute(&resource.attributes, key).is_some(), "{key}");
            }
            projects.push(attribute(&resource.attributes, "vercel.projectId").cloned());
            let spans = &resource_spans.scope_spans[0].spans;
            assert!(spans.len() >= 3);
            for span in spans {
                assert_eq!((span.trace_id.len(), span.span_id.len()), (16, 8), "{}", span.name);
                assert!(span.start_time_unix_nano >= 1_700_000_000_000_000_000);
                assert!(span.end_time_unix_nano > span.start_time_unix_nano);
                assert!(span.status.is_some() || span.parent_span_id.len() == 8, "{}", span.name);
            }
            let root = &spans[0];
            assert_eq!(root.kind, SpanKind::Server as i32);
            assert!(root.parent_span_id.is_empty());
            for key in ["http.method", "http.route", "http.status_code"] {
                assert!(attribute(&root.attributes, key).is_some(), "{key}");
            }
            assert!(spans[1..].iter().all(|s| s.parent_span_id == root.span_id));
            assert_eq!(spans.iter().map(|s| s.events.len()).sum::<usize>(), 1);
        }
        projects.dedup();
        assert_eq!(projects.len(), 2, "two projects: {projects:?}");
    }

    #[test]
    fn json_trace_drains_get_otlp_json_with_kinds_as_a_string_and_as_integers() {
        let prepared = trace_sample("json");
        assert!(prepared.headers.contains(&("content-type".into(), "application/json".into())));
        let body: Value = serde_json::from_slice(&prepared.body).unwrap();
        let resources = body["resourceSpans"].as_array().unwrap();
        assert_eq!(resources.len(), 2);
        for resource in resources {
            let attributes = resource["resource"]["attributes"].to_string();
            for key in ["service.name", "vercel.projectId", "vercel.deploymentId"] {
                assert!(attributes.contains(&format!("\"{key}\"")), "{key}: {attributes}");
            }
            assert_eq!(resource["scopeSpans"][0]["scope"]["name"], "vercel");
            for span in resource["scopeSpans"][0]["spans"].as_array().unwrap() {
                assert_eq!(span["traceId"].as_str().unwrap().len(), 32, "hex: {span}");
                assert_eq!(span["spanId"].as_str().unwrap().len(), 16, "hex: {span}");
                let start = span["startTimeUnixNano"].as_str().unwrap();
                assert!(start.parse::<u64>().is_ok(), "nanoseconds as a string: {span}");
                assert!(span["kind"].is_string() || span["kind"].is_u64(), "{span}");
            }
        }
        let spans = &resources[0]["scopeSpans"][0]["spans"];
        assert_eq!(spans[0]["kind"], "server", "as Vercel's example writes it");
        assert_eq!(spans[1]["kind"], SpanKind::Client as i32, "as the OTLP/JSON spec writes it");
        assert_eq!(spans[1]["parentSpanId"], spans[0]["spanId"]);
        assert_eq!(spans[1]["events"][0]["name"], "cache.miss");
        let status = &spans[0]["attributes"].as_array().unwrap()[2];
        assert_eq!(status["value"]["intValue"], "200", "64-bit integers as strings: {status}");
    }
}
