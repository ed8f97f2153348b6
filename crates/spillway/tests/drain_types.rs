//! `spillway drains create --type …` for every data type, against the Vercel API simulator over
//! real sockets on 127.0.0.1: the `schemas` and delivery variant the simulator received (it
//! refuses what Vercel refuses, so an accepted body is a valid one), `--sample` rules, the type
//! and status in `drains list` and `get`, the type's sample in a test delivery (a trace drain's,
//! in protobuf and in OTLP/JSON, stored by Spillway itself), and the usage errors of flags that
//! do not fit the type.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::Run;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message as _;
use serde_json::{json, Value};
use testkit::{poll_until, Receiver};
use vercel_sim::Simulator;

/// A simulator on its own runtime, a data directory, and the binary.
struct Harness {
    sim: Simulator,
    _runtime: tokio::runtime::Runtime,
    api: String,
    dir: tempfile::TempDir,
}

impl Harness {
    fn new() -> Harness {
        let (runtime, addr, sim) = common::start_simulator();
        Harness {
            sim,
            _runtime: runtime,
            api: format!("http://{addr}"),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Runs `spillway drains <args>` with the simulator's user token.
    fn drains(&self, args: &[&str]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_spillway"))
            .arg("drains")
            .args(args)
            .env_remove("RUST_LOG")
            .env("SPILLWAY_VERCEL_TOKEN", self.sim.config().user_token)
            .env("SPILLWAY_VERCEL_API_URL", &self.api)
            .env("SPILLWAY_DATA_DIR", self.dir.path())
            .output()
            .unwrap();
        Run::of(output)
    }

    /// Creates a drain with `args` (plus `--json`); returns its id and the simulator's copy.
    fn create(&self, args: &[&str]) -> (String, Value) {
        let run = self.drains(&[&["create"], args, &["--json"]].concat());
        assert_eq!(run.code, 0, "{run:?}");
        let id = run.json()["id"].as_str().unwrap().to_owned();
        let drain = self.sim.drain(&id).unwrap();
        (id, drain)
    }

    /// The registry entry of drain `id`.
    fn entry(&self, id: &str) -> Value {
        let file: Value =
            serde_json::from_slice(&std::fs::read(self.dir.path().join("drains.json")).unwrap())
                .unwrap();
        file["drains"].as_array().unwrap().iter().find(|e| e["id"] == id).unwrap().clone()
    }
}

#[test]
fn each_type_is_created_with_its_schemas_delivery_and_endpoint() {
    let h = Harness::new();
    let base = "http://127.0.0.1:9";
    let cases = [
        ("logs", "log", "v1", None),
        ("speed-insights", "speed_insights", "v1", Some("speed_insights")),
        ("analytics", "analytics", "v2", Some("analytics")),
        ("audit-log", "audit_log", "v1", Some("audit_log")),
    ];
    for (slug, key, version, registered) in cases {
        let url = format!("{base}/vercel/{slug}");
        let (id, drain) = h.create(&["--type", slug, "--url", &url, "--gzip"]);
        assert_eq!(drain["schemas"], json!({key: {"version": version}}), "{slug}");
        let delivery = &drain["delivery"];
        assert_eq!(delivery["type"], "http", "{slug}");
        assert_eq!(delivery["encoding"], "ndjson", "{slug}");
        assert_eq!(delivery["compression"], "gzip", "{slug}");
        assert_eq!(delivery["headers"], json!({}), "{slug}: headers sent, empty");
        let entry = h.entry(&id);
        let key_path = format!("{url}/{}", entry["pathKey"].as_str().unwrap());
        assert_eq!(delivery["endpoint"], key_path, "{slug}");
        assert_eq!(entry["dataType"].as_str(), registered, "{slug}");
    }

    let url = format!("{base}/vercel/traces");
    let (id, drain) = h.create(&["--type", "traces", "--url", &url]);
    assert_eq!(drain["schemas"], json!({"trace": {"version": "v1"}}));
    let delivery = &drain["delivery"];
    assert_eq!(delivery["type"], "otlphttp");
    assert_eq!(delivery["encoding"], "proto", "proto by default");
    assert!(delivery.get("compression").is_none(), "{delivery}");
    assert_eq!(delivery["headers"], json!({}));
    let entry = h.entry(&id);
    assert_eq!(entry["dataType"], "traces");
    let traces = format!("{url}/{}", entry["pathKey"].as_str().unwrap());
    assert_eq!(delivery["endpoint"], json!({"traces": traces}));

    // Another type's receiver path, or any other URL, is kept as given.
    let (_, drain) = h.create(&["--type", "traces", "--url", "http://127.0.0.1:9/vercel/logs"]);
    assert_eq!(drain["delivery"]["endpoint"]["traces"], "http://127.0.0.1:9/vercel/logs");
    let (_, drain) = h.create(&["--type", "traces", "--encoding", "json", "--url", &url]);
    assert_eq!(drain["delivery"]["encoding"], "json");

    // A new URL keeps the trace drain's OTLP delivery, its encoding and its path key.
    let moved = "http://127.0.0.1:10/vercel/traces";
    assert_eq!(h.drains(&["update", &id, "--url", moved]).code, 0);
    let delivery = h.sim.drain(&id).unwrap()["delivery"].clone();
    assert_eq!(delivery["type"], "otlphttp");
    assert_eq!(delivery["encoding"], "proto");
    let key = entry["pathKey"].as_str().unwrap();
    assert_eq!(delivery["endpoint"], json!({"traces": format!("{moved}/{key}")}));
}

#[test]
fn sample_rules_and_the_log_filter_are_sent() {
    let h = Harness::new();
    let url = "http://127.0.0.1:9/vercel/logs";
    let args = ["--url", url, "--sample", "0.5", "--sample", "1:preview:/api", "--source", "edge"];
    let (_, drain) = h.create(&args);
    assert_eq!(
        drain["sampling"],
        json!([{"type": "head_sampling", "rate": 0.5},
               {"type": "head_sampling", "rate": 1.0, "env": "preview", "requestPath": "/api"}])
    );
    assert_eq!(drain["filter"]["filter"]["log"]["sources"], json!(["edge"]));
    let traces = ["--type", "traces", "--url", url, "--sample", "0.1:production"];
    let (_, drain) = h.create(&traces);
    assert_eq!(
        drain["sampling"],
        json!([{"type": "head_sampling", "rate": 0.1, "env": "production"}])
    );
    assert_eq!(drain["filter"], Value::Null);
}

#[test]
fn list_and_get_show_type_and_status() {
    let h = Harness::new();
    let (logs, _) = h.create(&["--url", "http://127.0.0.1:9/vercel/logs", "--name", "l"]);
    let (traces, _) = h.create(&["--type", "traces", "--url", "http://127.0.0.1:9/t"]);
    let (analytics, _) = h.create(&["--type", "analytics", "--url", "http://127.0.0.1:9/a"]);
    assert_eq!(h.drains(&["update", &traces, "--disable"]).code, 0);
    assert!(h.sim.set_drain_status(&analytics, "errored"));

    let table = h.drains(&["list"]);
    assert_eq!(table.code, 0, "{table:?}");
    let header: Vec<&str> = table.stdout.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header[..4], ["ID", "NAME", "TYPE", "STATUS"], "{}", table.stdout);
    for (id, data_type, status) in [
        (&logs, "logs", "enabled"),
        (&traces, "traces", "disabled"),
        (&analytics, "analytics", "errored"),
    ] {
        let row = table.stdout.lines().find(|l| l.starts_with(id.as_str())).unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[2..4], [data_type, status], "{row}");
    }
    let listed = h.drains(&["list", "--json"]).json();
    let by_id =
        |id: &str| listed.as_array().unwrap().iter().find(|d| d["id"] == id).unwrap().clone();
    assert_eq!(
        (by_id(&traces)["type"].clone(), by_id(&traces)["status"].clone()),
        (json!("traces"), json!("disabled"))
    );
    assert_eq!(by_id(&traces)["delivery"], "otlphttp");
    assert_eq!(by_id(&traces)["endpoint"], "http://127.0.0.1:9/t");
    assert_eq!(by_id(&analytics)["status"], "errored");

    let got = h.drains(&["get", &analytics]);
    assert!(got.stdout.lines().any(|l| l.split_whitespace().eq(["type", "analytics"])), "{got:?}");
    assert!(got.stdout.lines().any(|l| l.split_whitespace().eq(["status", "errored"])), "{got:?}");
    assert_eq!(h.drains(&["get", &logs, "--json"]).json()["type"], "logs");
}

#[test]
fn flags_that_do_not_fit_the_type_are_usage_errors_and_send_nothing() {
    let h = Harness::new();
    let url = "http://127.0.0.1:9/vercel/traces";
    let cases: [(&[&str], &str); 8] = [
        (&["--type", "traces", "--gzip"], "--gzip"),
        (&["--type", "traces", "--encoding", "ndjson"], "--encoding"),
        (&["--type", "speed-insights", "--encoding", "proto"], "--encoding"),
        (&["--type", "analytics", "--source", "lambda"], "--source"),
        (&["--type", "audit-log", "--environment", "preview"], "--environment"),
        (&["--sample", "2"], "--sample"),
        (&["--sample", "0.5:staging"], "--sample"),
        (&["--type", "metrics"], "--type"),
    ];
    for (args, flag) in cases {
        let run = h.drains(&[&["create", "--url", url], args].concat());
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stderr.contains(flag), "{args:?}: {}", run.stderr);
    }
    assert_eq!(h.sim.request_count(), 0, "nothing was sent");
    assert!(!h.dir.path().join("drains.json").exists());
}

#[test]
fn a_test_delivery_carries_a_signed_sample_of_the_drains_type() {
    let h = Harness::new();
    for slug in ["speed-insights", "analytics", "audit-log", "traces"] {
        let receiver = Receiver::start();
        let url = receiver.url(&format!("/vercel/{slug}"));
        // JSON for traces too (OTLP/JSON), so one check of the body's structure serves all.
        let (id, _) = h.create(&["--type", slug, "--url", &url, "--encoding", "json"]);
        let entry = h.entry(&id);
        let secret = entry["secret"].as_str().unwrap().to_owned();
        receiver.require_signature(&secret);
        let tested = h.drains(&["test", &id]);
        assert_eq!(tested.code, 0, "{slug}: {tested:?}");
        let delivery = receiver.next();
        assert!(delivery.signed_with(&secret), "{slug}");
        assert_eq!(delivery.path, format!("/vercel/{slug}/{}", entry["pathKey"].as_str().unwrap()));
        let body: Value = serde_json::from_slice(&delivery.body).unwrap();
        if slug == "traces" {
            let resource = &body["resourceSpans"][0]["resource"]["attributes"];
            assert!(resource.to_string().contains("vercel.projectId"), "{body}");
        } else {
            let schema = format!("vercel.{}.", slug.replace('-', "_"));
            let records = body.as_array().unwrap();
            assert!(!records.is_empty());
            for record in records {
                assert!(record["schema"].as_str().unwrap().starts_with(&schema), "{record}");
            }
        }
    }
}

/// Every resource in the trace files under `dir` (each file is one request: its frames are
/// `resource_spans` entries), read with prost, an independent decoder.
fn stored_resources(dir: &Path) -> Vec<ResourceSpans> {
    let mut names: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => return Vec::new(),
    };
    names.retain(|p| p.to_string_lossy().contains(".binpb"));
    names.sort();
    let decode = |bytes: Vec<u8>| ExportTraceServiceRequest::decode(&bytes[..]).unwrap();
    names.iter().flat_map(|p| decode(std::fs::read(p).unwrap()).resource_spans).collect()
}

fn project_of(resource: &ResourceSpans) -> String {
    let attributes = &resource.resource.as_ref().unwrap().attributes;
    let id = attributes.iter().find(|kv| kv.key == "vercel.projectId").unwrap();
    match id.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        other => panic!("not a string project id: {other:?}"),
    }
}

#[test]
fn a_trace_drain_s_test_delivery_is_stored_by_the_receiver_in_either_encoding() {
    let h = Harness::new();
    // Spillway serving the drain registry this CLI writes.
    let registry = h.dir.path().to_owned();
    let app = common::TestApp::start(|c| c.data_dir = registry);
    let url = format!("http://{}/vercel/traces", app.addr);
    let mut projects = Vec::new();
    for encoding in ["proto", "json"] {
        let (id, drain) = h.create(&["--type", "traces", "--url", &url, "--encoding", encoding]);
        assert_eq!(drain["delivery"]["encoding"], encoding);
        // The receiver picks a new drain up within a quarter of a second (404 until then).
        let tested =
            poll_until(Duration::from_secs(5), || h.drains(&["test", &id]), |t| t.code == 0);
        assert_eq!(tested.code, 0, "{encoding}: {tested:?}");
        // The sample's two resources (two projects, three spans each), stored as protobuf.
        projects.extend(["prj_sample", "prj_sample_api"]);
        // Each data type's files sit in its directory under the data dir (the registry's here).
        let stored = stored_resources(&h.dir.path().join("traces"));
        let mut got: Vec<String> = stored.iter().map(project_of).collect();
        got.sort();
        projects.sort();
        assert_eq!(got, projects, "{encoding}");
        for resource in &stored {
            let spans: usize = resource.scope_spans.iter().map(|s| s.spans.len()).sum();
            assert_eq!(spans, 3, "{encoding}: {resource:?}");
        }
    }
    assert!(common::lines_in(&app.dir("dead-letter")).is_empty(), "nothing refused");
}
