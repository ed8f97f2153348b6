//! De-duplication by record id (`server.dedup_ids`) over real sockets: a log record delivered
//! again in a later batch is counted (`"duplicates"` in the answer, `spillway_duplicates_total`)
//! and stored once; a delivery of nothing but duplicates stores nothing; with the default (off)
//! every delivery is stored.

mod common;

use common::*;
use serde_json::json;

fn body(ids: &[&str]) -> Vec<u8> {
    ids.iter()
        .map(|id| {
            format!(
                "{{\"id\":\"{id}\",\"projectId\":\"prj_dedup\",\"timestamp\":1700000000000,\
                 \"source\":\"lambda\",\"message\":\"m\"}}\n"
            )
        })
        .collect::<String>()
        .into_bytes()
}

fn stored_ids(app: &TestApp) -> Vec<String> {
    let mut ids: Vec<String> = lines_in(&app.dir("logs"))
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().into()
        })
        .collect();
    ids.sort();
    ids
}

#[test]
fn a_record_delivered_again_is_counted_and_stored_once() {
    let app = TestApp::start(|c| c.ingest.dedup_ids = 1000);
    let first = deliver(app.addr, &body(&["a", "b", "c", "a"]));
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.json(), json!({"accepted": 3, "dead_lettered": 0, "duplicates": 1}));
    let second = deliver(app.addr, &body(&["b", "c", "d"]));
    assert_eq!(second.json(), json!({"accepted": 1, "dead_lettered": 0, "duplicates": 2}));
    let only_duplicates = deliver(app.addr, &body(&["d", "a"]));
    assert_eq!(only_duplicates.status, 200);
    assert_eq!(only_duplicates.json(), json!({"accepted": 0, "dead_lettered": 0, "duplicates": 2}));
    assert_eq!(stored_ids(&app), ["a", "b", "c", "d"]);
    let metrics = String::from_utf8(send(app.addr, "GET", "/metrics", &[], b"").body).unwrap();
    assert!(metrics.contains("spillway_duplicates_total{data_type=\"logs\"} 5"), "{metrics}");
}

#[test]
fn off_by_default_every_record_is_stored() {
    let app = TestApp::start(|_| {});
    assert_eq!(
        deliver(app.addr, &body(&["a", "b"])).json(),
        json!({"accepted": 2, "dead_lettered": 0})
    );
    assert_eq!(deliver(app.addr, &body(&["a"])).json(), json!({"accepted": 1, "dead_lettered": 0}));
    assert_eq!(stored_ids(&app), ["a", "a", "b"]);
}
