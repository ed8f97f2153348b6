//! The simulator refuses drain bodies Vercel's published API schema refuses, over raw HTTP on
//! 127.0.0.1: `POST /v1/drains`, `PATCH /v1/drains/{id}` and `POST /v1/drains/test` each answer
//! `400 {"error":{"code":"bad_request","message":…}}` naming the field, and accept the valid
//! `http` and `otlphttp` bodies.

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vercel_sim::Simulator;

/// Sends one request with the simulator's user token; returns the status and the JSON body.
async fn call(addr: std::net::SocketAddr, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer sim_user_token\r\n\
         Content-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn log_drain() -> Value {
    json!({
        "name": "logs",
        "projects": "all",
        "schemas": {"log": {"version": "v1"}},
        "delivery": {"type": "http", "endpoint": "https://x.example/vercel/logs",
                     "encoding": "ndjson", "compression": "gzip", "headers": {}, "secret": "s3cret"},
        "sampling": [{"type": "head_sampling", "rate": 0.5, "env": "production",
                      "requestPath": "/api"}],
        "filter": {"version": "v2", "filter": {"type": "basic", "log": {"sources": ["lambda"]},
                   "deployment": {"environments": ["preview"]}}},
    })
}

fn trace_drain() -> Value {
    json!({
        "name": "traces",
        "schemas": {"trace": {"version": "v1"}},
        "delivery": {"type": "otlphttp", "endpoint": {"traces": "https://x.example/v1/traces"},
                     "encoding": "proto", "headers": {"authorization": "Bearer t"}},
    })
}

/// `body` with the value at `path` (`a.b.c`) replaced, or removed when `value` is `None`.
fn with(mut body: Value, path: &str, value: Option<Value>) -> Value {
    let (parent, last) = path.rsplit_once('.').map_or(("", path), |(p, l)| (p, l));
    let mut target = &mut body;
    for part in parent.split('.').filter(|p| !p.is_empty()) {
        target = &mut target[part];
    }
    let object = target.as_object_mut().unwrap();
    match value {
        Some(value) => object.insert(last.to_owned(), value),
        None => object.remove(last),
    };
    body
}

fn assert_refused(answer: &(u16, Value), field: &str, case: &str) {
    assert_eq!(answer.0, 400, "{case}: {answer:?}");
    assert_eq!(answer.1["error"]["code"], "bad_request", "{case}");
    let message = answer.1["error"]["message"].as_str().unwrap();
    assert!(message.contains(field), "{case}: {message:?} names {field}");
}

/// The create refusals: (path changed, new value or removed, the field the message names).
fn create_cases() -> Vec<(Value, &'static str, &'static str)> {
    let log = log_drain;
    let trace = trace_drain;
    vec![
        (with(log(), "delivery.headers", None), "delivery.headers", "headers missing"),
        (with(log(), "delivery.headers", Some(json!({"a": 1}))), "delivery.headers", "non-string"),
        (with(log(), "delivery.headers", Some(json!([]))), "delivery.headers", "headers array"),
        (with(log(), "name", None), "name", "name missing"),
        (with(log(), "name", Some(json!(7))), "name", "name a number"),
        (with(log(), "schemas", None), "schemas", "schemas missing"),
        (with(log(), "schemas", Some(json!({}))), "schemas", "no schema"),
        (with(log(), "schemas.trace", Some(json!({"version": "v1"}))), "schemas", "two schemas"),
        (with(log(), "schemas", Some(json!({"metrics": {"version": "v1"}}))), "schemas", "unknown"),
        (with(log(), "schemas.log.version", Some(json!(1))), "version", "version a number"),
        (with(log(), "delivery", None), "delivery", "delivery missing"),
        (with(log(), "delivery.type", Some(json!("s3"))), "delivery.type", "unknown type"),
        (with(log(), "delivery.type", Some(json!("otlphttp"))), "delivery.type", "log as otlp"),
        (with(log(), "delivery.endpoint", Some(json!("ftp://x"))), "delivery.endpoint", "ftp"),
        (with(log(), "delivery.encoding", None), "delivery.encoding", "encoding missing"),
        (with(log(), "delivery.encoding", Some(json!("proto"))), "delivery.encoding", "proto"),
        (with(log(), "delivery.compression", Some(json!("br"))), "delivery.compression", "br"),
        (with(log(), "delivery.secret", Some(json!(5))), "delivery.secret", "secret a number"),
        (with(log(), "delivery.extra", Some(json!(1))), "delivery.extra", "unknown field"),
        (with(log(), "projects", Some(json!("some"))), "projects", "some without ids"),
        (with(log(), "projectIds", Some(json!([1]))), "projectIds", "ids not strings"),
        (with(log(), "projects", Some(json!("none"))), "projects", "unknown scope"),
        (with(log(), "sampling", Some(json!({}))), "sampling", "not an array"),
        (
            with(log(), "sampling", Some(json!([{"type": "head_sampling", "rate": 1.5}]))),
            "rate",
            ">1",
        ),
        (with(log(), "sampling", Some(json!([{"type": "tail", "rate": 1}]))), "type", "bad type"),
        (
            with(
                log(),
                "sampling",
                Some(json!([{"type": "head_sampling", "rate": 1, "env": "dev"}])),
            ),
            "env",
            "bad env",
        ),
        (
            with(
                log(),
                "sampling",
                Some(json!(vec![json!({"type": "head_sampling", "rate": 1}); 11])),
            ),
            "10",
            "11 rules",
        ),
        (with(log(), "filter.version", Some(json!("v1"))), "filter.version", "filter v1"),
        (with(log(), "filter.filter.type", Some(json!("regex"))), "filter.filter.type", "regex"),
        (
            with(log(), "filter.filter.log", Some(json!({"sources": ["disk"]}))),
            "filter.filter.log",
            "unknown source",
        ),
        (with(log(), "colour", Some(json!("blue"))), "colour", "unknown top-level field"),
        (
            with(trace(), "delivery.endpoint", Some(json!("https://x/v1/traces"))),
            "delivery.endpoint",
            "otlp string endpoint",
        ),
        (with(trace(), "delivery.encoding", Some(json!("ndjson"))), "delivery.encoding", "ndjson"),
        (with(trace(), "delivery.compression", Some(json!("gzip"))), "compression", "otlp gzip"),
        (with(trace(), "delivery.headers", None), "delivery.headers", "otlp headers missing"),
        (with(trace(), "delivery.type", Some(json!("http"))), "delivery.type", "trace as http"),
    ]
}

#[tokio::test]
async fn create_refuses_what_vercel_refuses_and_names_the_field() {
    let (addr, _sim) = Simulator::start().await.unwrap();
    for (body, field, case) in create_cases() {
        assert_refused(&call(addr, "POST", "/v1/drains", &body).await, field, case);
    }
    let (status, drains) = call(addr, "GET", "/v1/drains", &Value::Null).await;
    assert_eq!((status, drains["drains"].as_array().unwrap().len()), (200, 0), "none created");
}

#[tokio::test]
async fn create_accepts_both_delivery_variants() {
    let (addr, sim) = Simulator::start().await.unwrap();
    let (status, log) = call(addr, "POST", "/v1/drains", &log_drain()).await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(log["delivery"]["headers"], json!({}));
    assert_eq!(log["sampling"][0]["rate"], 0.5);
    assert_eq!(log["filter"]["filter"]["log"]["sources"], json!(["lambda"]));
    let (status, trace) = call(addr, "POST", "/v1/drains", &trace_drain()).await;
    assert_eq!(status, 200, "{trace}");
    assert_eq!(trace["delivery"]["endpoint"]["traces"], "https://x.example/v1/traces");
    assert!(trace["delivery"].get("compression").is_none(), "{trace}");
    assert_eq!(
        sim.drain_delivery_headers(trace["id"].as_str().unwrap()).unwrap()["authorization"],
        "Bearer t"
    );
    // Vercel's CLI names the schema as the sampling rule's type.
    let cli_rule = with(log_drain(), "sampling", Some(json!([{"type": "log", "rate": 1}])));
    assert_eq!(call(addr, "POST", "/v1/drains", &cli_rule).await.0, 200);
}

#[tokio::test]
async fn update_checks_each_field_it_changes() {
    let (addr, _sim) = Simulator::start().await.unwrap();
    let (_, trace) = call(addr, "POST", "/v1/drains", &trace_drain()).await;
    let path = format!("/v1/drains/{}", trace["id"].as_str().unwrap());
    let log_delivery = log_drain()["delivery"].clone();
    let cases = [
        (json!({"delivery": log_delivery}), "delivery.type", "an http delivery on a trace drain"),
        (
            json!({"delivery": with(trace_drain()["delivery"].clone(), "headers", None)}),
            "delivery.headers",
            "headers missing",
        ),
        (json!({"status": "errored"}), "status", "status errored"),
        (json!({"name": ""}), "name", "empty name"),
        (json!({"sampling": [{"rate": 0.1}]}), "type", "rule without type"),
        (json!({"filter": {"version": "v2"}}), "filter.filter", "filter without filter"),
        (json!({"paused": true}), "paused", "unknown field"),
        (json!({"schemas": {"log": {"version": "v1"}}}), "delivery.type", "log schema, otlp kept"),
    ];
    for (body, field, case) in cases {
        assert_refused(&call(addr, "PATCH", &path, &body).await, field, case);
    }
    let (status, updated) = call(addr, "PATCH", &path, &json!({"status": "disabled"})).await;
    assert_eq!((status, updated["status"].as_str()), (200, Some("disabled")));
}

#[tokio::test]
async fn test_delivery_checks_schemas_and_delivery() {
    let (addr, _sim) = Simulator::start().await.unwrap();
    let test = |body: &Value| json!({"schemas": body["schemas"], "delivery": body["delivery"]});
    let cases = [
        (with(test(&log_drain()), "delivery.headers", None), "delivery.headers", "headers missing"),
        (with(test(&log_drain()), "schemas", None), "schemas", "schemas missing"),
        (
            with(test(&trace_drain()), "delivery.encoding", Some(json!("json-lines"))),
            "delivery.encoding",
            "bad",
        ),
        (with(test(&log_drain()), "name", Some(json!("x"))), "name", "no name on a test"),
    ];
    for (body, field, case) in cases {
        assert_refused(&call(addr, "POST", "/v1/drains/test", &body).await, field, case);
    }
}
