//! The JSON data types besides logs over real sockets: Speed Insights, Web Analytics and audit
//! logs, each at its own path (`/vercel/<slug>` for the default drain, `/vercel/<slug>/<key>` for
//! a registered one), stored byte for byte in a directory of its own, and a record of another
//! type dead-lettered as `wrong_data_type`, never mixed in.

mod common;

use std::io::Write;

use common::*;
use control::registry::DrainRegistry;
use control::DataType;

/// Each JSON type: its path, its directory, its fixture and how many records the fixture holds.
const TYPES: [(&str, &str, &str, usize); 3] = [
    ("/vercel/speed-insights", "speed-insights", "speed-insights.ndjson", 3),
    ("/vercel/analytics", "analytics", "analytics.ndjson", 3),
    ("/vercel/audit-log", "audit-log", "audit-log.ndjson", 2),
];

fn signed(addr: std::net::SocketAddr, path: &str, secret: &str, body: &[u8]) -> Reply {
    let sig = listener::SigningKey::new(secret).sign(body);
    send(addr, "POST", path, &[("x-vercel-signature", &sig)], body)
}

fn fixture_lines(name: &str) -> Vec<String> {
    String::from_utf8(fixture(name)).unwrap().lines().map(str::to_owned).collect()
}

fn dead_letters(app: &TestApp) -> Vec<serde_json::Value> {
    lines_in(&app.dir("dead-letter")).iter().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn each_type_is_stored_byte_for_byte_in_its_own_directory() {
    let app = TestApp::start(|_| {});
    for (path, dir, name, n) in TYPES {
        let body = fixture(name);
        let sig = fixture_signature(name);
        let reply = send(app.addr, "POST", path, &[("x-vercel-signature", &sig)], &body);
        assert_eq!(reply.status, 200, "{path}: {}", String::from_utf8_lossy(&reply.body));
        assert_eq!(reply.json()["accepted"], n, "{path}");
        assert_eq!(reply.json()["dead_lettered"], 0, "{path}");
        assert_eq!(reply.header("x-vercel-verify"), Some(VERIFY_CODE));
        assert_eq!(lines_in(&app.dir(dir)), fixture_lines(name), "{dir}");
    }
    assert!(lines_in(&app.dir("logs")).is_empty(), "no other type is written with the logs");
    // Logs are where they always were.
    assert_eq!(deliver(app.addr, &fixture("logs.ndjson")).status, 200);
    assert_eq!(lines_in(&app.dir("logs")), fixture_lines("logs.ndjson"));
    assert_eq!(lines_in(&app.dir("analytics")).len(), 3);
}

#[test]
fn a_json_array_is_stored_as_compact_lines() {
    let app = TestApp::start(|_| {});
    let sig = fixture_signature("analytics-array.json");
    let body = fixture("analytics-array.json");
    let reply = send(app.addr, "POST", "/vercel/analytics", &[("x-vercel-signature", &sig)], &body);
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    // The pretty-printed array holds the NDJSON fixture's records: compacted, they are its lines.
    assert_eq!(lines_in(&app.dir("analytics")), fixture_lines("analytics.ndjson"));
}

#[test]
fn a_record_of_another_type_is_dead_lettered_never_mixed_in() {
    let app = TestApp::start(|_| {});
    let speed = fixture_lines("speed-insights.ndjson");
    let analytics = fixture_lines("analytics.ndjson");
    let log = fixture_lines("logs.ndjson");
    let body = format!("{}\n{}\n{}\n", speed[0], log[0], analytics[0]);
    let reply = signed(app.addr, "/vercel/speed-insights", SECRET, body.as_bytes());
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(
        (reply.json()["accepted"].as_u64(), reply.json()["dead_lettered"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(lines_in(&app.dir("speed-insights")), [speed[0].clone()]);

    // A Speed Insights record sent to the log drain is not a log.
    let reply = signed(app.addr, "/vercel/logs", SECRET, format!("{}\n", speed[1]).as_bytes());
    assert_eq!(reply.json()["dead_lettered"], 1);
    assert!(lines_in(&app.dir("logs")).is_empty());
    assert!(lines_in(&app.dir("analytics")).is_empty());

    let dead = dead_letters(&app);
    let seen: Vec<(&str, &str, &str)> = dead
        .iter()
        .map(|d| {
            (
                d["data_type"].as_str().unwrap(),
                d["reason"].as_str().unwrap(),
                d["raw"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("speed_insights", "wrong_data_type", log[0].as_str()),
            ("speed_insights", "wrong_data_type", analytics[0].as_str()),
            ("logs", "wrong_data_type", speed[1].as_str()),
        ]
    );
}

#[test]
fn a_record_missing_its_fields_is_dead_lettered_beside_the_good_ones() {
    let app = TestApp::start(|_| {});
    let speed = fixture_lines("speed-insights.ndjson");
    let no_value = speed[1].replace(r#""value":0.042,"#, "");
    let body = format!("{}\n{no_value}\nnot json\n{}\n", speed[0], speed[2]);
    let reply = signed(app.addr, "/vercel/speed-insights", SECRET, body.as_bytes());
    assert_eq!(reply.status, 200);
    assert_eq!(lines_in(&app.dir("speed-insights")), [speed[0].clone(), speed[2].clone()]);
    let reasons: Vec<String> =
        dead_letters(&app).iter().map(|d| d["reason"].as_str().unwrap().to_owned()).collect();
    assert_eq!(reasons, ["missing_value", "invalid_json"]);
}

#[test]
fn a_body_without_json_is_400_on_every_type() {
    let app = TestApp::start(|_| {});
    for (path, dir, _, _) in TYPES {
        let reply = signed(app.addr, path, SECRET, b"this is not json\n");
        assert_eq!((reply.status, reply.error_code().as_str()), (400, "no_records"), "{path}");
        assert!(lines_in(&app.dir(dir)).is_empty());
        // Unsigned is refused as on the log drain.
        let reply = send(app.addr, "POST", path, &[], &fixture("audit-log.ndjson"));
        assert_eq!((reply.status, reply.error_code().as_str()), (401, "missing_signature"));
    }
    assert_eq!(dead_letters(&app).len(), TYPES.len());
}

#[test]
fn gzip_bodies_are_inflated_on_every_type() {
    let app = TestApp::start(|_| {});
    for (path, dir, name, _) in TYPES {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&fixture(name)).unwrap();
        let body = gz.finish().unwrap();
        let sig = sign(&body);
        let headers = [("x-vercel-signature", sig.as_str()), ("content-encoding", "gzip")];
        let reply = send(app.addr, "POST", path, &headers, &body);
        assert_eq!(reply.status, 200, "{path}: {}", String::from_utf8_lossy(&reply.body));
        assert_eq!(lines_in(&app.dir(dir)), fixture_lines(name));
    }
}

#[test]
fn a_registered_drain_is_served_at_its_own_type_path_only() {
    let app = TestApp::start(|_| {});
    let registry = DrainRegistry::new(app.dir("drains.json"));
    let entry = control::DrainEntry {
        data_type: DataType::Analytics,
        ..drain_entry("drn_web", "kweb", "secret-of-web")
    };
    registry.insert(entry).unwrap();
    let body = fixture("analytics.ndjson");
    let reply = testkit::poll_until(
        std::time::Duration::from_secs(5),
        || signed(app.addr, "/vercel/analytics/kweb", "secret-of-web", &body),
        |reply| reply.status == 200,
    );
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(lines_in(&app.dir("analytics")), fixture_lines("analytics.ndjson"));
    // Its key opens no other type's path, logs included.
    for path in ["/vercel/logs/kweb", "/vercel/speed-insights/kweb", "/vercel/audit-log/kweb"] {
        let reply = signed(app.addr, path, "secret-of-web", &body);
        assert_eq!((reply.status, reply.error_code().as_str()), (404, "unknown_drain"), "{path}");
    }
    // The default drain's secret does not open it.
    let reply = signed(app.addr, "/vercel/analytics/kweb", SECRET, &body);
    assert_eq!(reply.status, 403);
}

#[test]
fn paths_that_name_no_drain_are_404() {
    let app = TestApp::start(|_| {});
    // `/v1/traces` is served only when enabled; `k1` is registered nowhere; a type's path is
    // spelled with hyphens.
    for path in ["/v1/traces", "/vercel/traces/k1", "/vercel/speed_insights", "/vercel/audit_log"] {
        let reply = signed(app.addr, path, SECRET, b"{}");
        assert_eq!(reply.status, 404, "{path}");
    }
}

#[test]
fn files_of_two_types_with_one_name_keep_their_own_set_aside_lines_after_a_crash() {
    // What a power loss can leave in two types' open files of the same name (each sink counts
    // its files from the same start): a record, zeros where a write was lost, another record.
    let name = "records-1700000000000-000001.ndjson";
    let planted = |dir: &std::path::Path, kind: &str| {
        std::fs::create_dir_all(dir).unwrap();
        let body = format!(
            "{{\"id\":\"{kind}-1\",\"projectId\":\"p\"}}\n\0\0\0{kind}\n{{\"id\":\"{kind}-2\"}}\n"
        );
        std::fs::write(dir.join(format!("{name}.open")), body).unwrap();
    };
    let mut app = TestApp::start(|config| {
        planted(&config.data_dir.join("logs"), "logs");
        planted(&config.data_dir.join("analytics"), "analytics");
    });
    assert!(app.stop());
    for (kind, dead) in [("logs", "dead-letter"), ("analytics", "dead-letter/analytics")] {
        let stored = std::fs::read_to_string(app.dir(kind).join(name)).unwrap();
        assert_eq!(stored.lines().count(), 2, "{kind}: the records are kept: {stored}");
        let set_aside = app.dir(dead).join(format!("recovered-invalid-{name}"));
        let letters = std::fs::read_to_string(&set_aside)
            .unwrap_or_else(|e| panic!("{}: {e}", set_aside.display()));
        let letters: Vec<serde_json::Value> =
            letters.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(letters.len(), 1, "{kind}: {letters:?}");
        assert_eq!(letters[0]["reason"], "recovered_invalid");
        assert_eq!(letters[0]["raw"], format!("\0\0\0{kind}"), "{kind}'s own line");
    }
}
