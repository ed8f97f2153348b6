//! A body with no JSON at all is answered `400`, but only after it is kept (its first 64 KiB)
//! in the dead-letter files: nothing an operator may need is thrown away, and a dead-letter
//! sink that cannot keep it makes the answer a `503`, so that Vercel retries.

mod common;

use std::net::SocketAddr;

use common::*;

fn dead_letters(app: &TestApp) -> Vec<serde_json::Value> {
    lines_in(&app.dir("dead-letter")).iter().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn metrics(addr: SocketAddr) -> String {
    String::from_utf8(send(addr, "GET", "/metrics", &[], b"").body).unwrap()
}

/// Would catch a body with no JSON being thrown away (today: `400` and nothing kept): the `400`
/// comes with its body in the dead-letter files, whole, reason `no_json`, and counted.
#[test]
fn a_body_without_json_is_400_and_found_in_the_dead_letter_files() {
    let app = TestApp::start(|_| {});
    let body = b"this is not json\nnor { is this\n";
    let reply = deliver(app.addr, body);
    assert_eq!((reply.status, reply.error_code().as_str()), (400, "no_records"));
    assert!(lines_in(&app.dir("logs")).is_empty());
    let dead = dead_letters(&app);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["reason"], "no_json");
    assert_eq!(dead[0]["raw"].as_str().unwrap().as_bytes(), body);
    assert_eq!(dead[0]["drain"], "default");
    let text = metrics(app.addr);
    assert!(text.contains("spillway_records_dead_lettered_total{reason=\"no_json\"} 1"), "{text}");
}

/// Would catch an unbounded dead letter: a large body without JSON keeps its first 64 KiB,
/// and the dead letter says it was cut (`no_json_truncated`).
#[test]
fn a_large_body_without_json_keeps_its_first_64_kib_and_says_so() {
    let app = TestApp::start(|_| {});
    let body: Vec<u8> = (0..300_000u32).map(|i| b"garbage \n"[(i % 9) as usize]).collect();
    let reply = deliver(app.addr, &body);
    assert_eq!((reply.status, reply.error_code().as_str()), (400, "no_records"));
    let dead = dead_letters(&app);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["reason"], "no_json_truncated");
    assert_eq!(dead[0]["raw"].as_str().unwrap().as_bytes(), &body[..64 * 1024]);
}

/// Would catch a `400` given for a body that could not be kept: with the dead-letter directory
/// gone the answer is `503` with `Retry-After` (Vercel retries), and a `400` again once the
/// directory is back.
#[test]
fn a_body_without_json_that_cannot_be_kept_is_503() {
    let app = TestApp::start(|_| {});
    std::fs::remove_dir_all(app.dir("dead-letter")).unwrap();
    let reply = deliver(app.addr, b"not json at all\n");
    assert_eq!((reply.status, reply.error_code().as_str()), (503, "sink_unavailable"));
    assert_eq!(reply.header("retry-after"), Some("1"));
    std::fs::create_dir_all(app.dir("dead-letter")).unwrap();
    let reply = deliver(app.addr, b"not json at all, again\n");
    assert_eq!((reply.status, reply.error_code().as_str()), (400, "no_records"));
    assert_eq!(dead_letters(&app).len(), 1);
}
