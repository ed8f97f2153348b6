//! Per-drain paths over real sockets: a drain in the registry (`<data dir>/drains.json`, as
//! `spillway drains create` writes it) is served at `/vercel/logs/<key>` with its own secret,
//! and drains added or removed while the server runs take effect without a restart.

mod common;

use common::*;
use control::registry::{DrainEntry, DrainRegistry};

fn entry(id: &str, key: &str, secret: &str) -> DrainEntry {
    drain_entry(id, key, secret)
}

fn signed(addr: std::net::SocketAddr, path: &str, secret: &str, body: &[u8]) -> Reply {
    let sig = listener::SigningKey::new(secret).sign(body);
    send(addr, "POST", path, &[("x-vercel-signature", &sig)], body)
}

#[test]
fn a_registered_drain_is_served_on_its_own_path_with_its_own_secret() {
    let app = TestApp::start(|_| {});
    let registry = DrainRegistry::new(app.dir("drains.json"));
    registry.insert(entry("drn_one", "k1a2b3", "secret-of-drain-one")).unwrap();
    wait_served(app.addr, "/vercel/logs/k1a2b3");

    let body = fixture("logs-partly-bad.ndjson");
    let reply = signed(app.addr, "/vercel/logs/k1a2b3", "secret-of-drain-one", &body);
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.header("x-vercel-verify"), Some(VERIFY_CODE));
    assert_eq!(lines_in(&app.dir("logs")).len(), 3);
    // The batch carries the drain's id.
    let dead: serde_json::Value =
        serde_json::from_str(&lines_in(&app.dir("dead-letter"))[0]).unwrap();
    assert_eq!(dead["drain"], "drn_one");

    // The default drain's secret does not open another drain's path, nor the reverse.
    let reply = signed(app.addr, "/vercel/logs/k1a2b3", SECRET, &fixture("logs.ndjson"));
    assert_eq!((reply.status, reply.error_code().as_str()), (403, "invalid_signature"));
    let reply = signed(app.addr, "/vercel/logs", "secret-of-drain-one", &fixture("logs.ndjson"));
    assert_eq!(reply.status, 403);
    let reply = send(app.addr, "POST", "/vercel/logs/k1a2b3", &[], &fixture("logs.ndjson"));
    assert_eq!((reply.status, reply.error_code().as_str()), (401, "missing_signature"));
    // GET answers the verification on a known drain's path.
    let reply = send(app.addr, "GET", "/vercel/logs/k1a2b3", &[], b"");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-vercel-verify"), Some(VERIFY_CODE));
}

#[test]
fn unknown_drain_paths_are_404() {
    let app = TestApp::start(|_| {});
    for path in ["/vercel/logs/nope", "/vercel/logs/a/b", "/vercel/logs/"] {
        let reply = signed(app.addr, path, SECRET, &fixture("logs.ndjson"));
        assert_eq!(reply.status, 404, "{path}");
    }
    let reply = signed(app.addr, "/vercel/logs/nope", SECRET, &fixture("logs.ndjson"));
    assert_eq!(reply.error_code(), "unknown_drain");
    assert!(lines_in(&app.dir("logs")).is_empty());
}

#[test]
fn drains_added_and_removed_while_running_take_effect_without_a_restart() {
    let app = TestApp::start(|_| {});
    let registry = DrainRegistry::new(app.dir("drains.json"));
    assert_eq!(signed(app.addr, "/vercel/logs/later", "s2", &fixture("logs.ndjson")).status, 404);

    registry.insert(entry("drn_later", "later", "s2")).unwrap();
    let reply = deliver_until(app.addr, "/vercel/logs/later", "s2", 200);
    assert_eq!(reply.status, 200, "a new drain was not picked up");

    registry.remove("drn_later").unwrap();
    let reply = deliver_until(app.addr, "/vercel/logs/later", "s2", 404);
    assert_eq!(reply.status, 404, "a deleted drain is still served");
    assert_eq!(reply.error_code(), "unknown_drain");
    // The default drain is not affected by the registry.
    assert_eq!(deliver(app.addr, &fixture("logs-array.json")).status, 200);
}

#[test]
fn identical_bytes_to_two_drains_are_two_batches() {
    let app = TestApp::start(|_| {});
    let registry = DrainRegistry::new(app.dir("drains.json"));
    registry.insert(entry("drn_a", "ka", "sa")).unwrap();
    registry.insert(entry("drn_b", "kb", "sb")).unwrap();
    wait_served(app.addr, "/vercel/logs/ka");
    wait_served(app.addr, "/vercel/logs/kb");
    let body = fixture("logs-partly-bad.ndjson");
    assert_eq!(signed(app.addr, "/vercel/logs/ka", "sa", &body).status, 200);
    assert_eq!(signed(app.addr, "/vercel/logs/kb", "sb", &body).status, 200);
    // A retry to the same drain is recognised; the other drain's copy is not mistaken for one.
    assert_eq!(signed(app.addr, "/vercel/logs/kb", "sb", &body).status, 200);
    let drains: Vec<String> = lines_in(&app.dir("dead-letter"))
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["drain"].to_string())
        .collect();
    assert_eq!(drains.iter().filter(|d| d.contains("drn_a")).count(), 3);
    assert_eq!(drains.iter().filter(|d| d.contains("drn_b")).count(), 3);
}
