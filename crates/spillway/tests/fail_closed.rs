//! Failing closed: without a drain secret the receiver stays on loopback unless told otherwise
//! on purpose, and `/metrics` can leave the delivery port for a private listener.

mod common;

use std::process::Command;

use common::*;
use spillway::config::{load, ConfigError, RawConfig};

fn problems_of(toml: &str, env: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut raw = RawConfig::from_toml(toml).unwrap();
    let mut problems = Vec::new();
    raw.apply_env(env, &mut problems);
    match raw.validate(problems) {
        Ok(config) => Ok(config.ingest.listen.to_string()),
        Err(ConfigError::Invalid(problems)) => Err(problems.join("\n")),
        Err(e) => panic!("{e}"),
    }
}

/// Would catch a receiver without a secret accepting unsigned deliveries on every interface
/// (today's code starts on `0.0.0.0` with a warning): such an address is a configuration
/// problem naming the way out, unless `vercel.allow_unsigned = true`; loopback and a secret
/// are fine.
#[test]
fn without_a_secret_a_non_loopback_address_is_refused_unless_allowed() {
    let none = |_: &str| None;
    let err = problems_of("[server]\nlisten = \"0.0.0.0:8080\"\n", none).unwrap_err();
    assert!(err.contains("vercel.drain_secret") && err.contains("vercel.allow_unsigned"), "{err}");
    let env = |k: &str| (k == "SPILLWAY_LISTEN").then(|| "[::]:8080".to_owned());
    assert!(problems_of("", env).is_err());

    let allowed = "[server]\nlisten = \"0.0.0.0:8080\"\n[vercel]\nallow_unsigned = true\n";
    assert_eq!(problems_of(allowed, none).unwrap(), "0.0.0.0:8080");
    let loopback = "[server]\nlisten = \"127.0.0.1:9000\"\n";
    assert_eq!(problems_of(loopback, none).unwrap(), "127.0.0.1:9000");
    let secret = |k: &str| (k == "SPILLWAY_DRAIN_SECRET").then(|| "s3cret".to_owned());
    assert_eq!(
        problems_of("[server]\nlisten = \"0.0.0.0:8080\"\n", secret).unwrap(),
        "0.0.0.0:8080"
    );
    // No secret, no address: the embedded default listens on loopback.
    assert_eq!(load(None, none).unwrap().ingest.listen.to_string(), "127.0.0.1:8080");
}

/// Would catch the binary starting anyway: `serve` exits 2 with the problem, before binding.
#[test]
fn serve_exits_2_without_a_secret_on_a_non_loopback_address() {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_spillway"))
        .arg("serve")
        .env_clear()
        .env("SPILLWAY_LISTEN", "0.0.0.0:0")
        .env("SPILLWAY_DATA_DIR", data.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("vercel.allow_unsigned"), "{stderr}");
}

/// Would catch `/metrics` staying public on the delivery port when a metrics listener is
/// configured (today there is no such listener): it is `404` there and served on its own port.
#[test]
fn metrics_listen_moves_metrics_off_the_delivery_port() {
    let port = testkit::free_port();
    let app = TestApp::start(|c| c.ingest.metrics_listen = Some(([127, 0, 0, 1], port).into()));
    let metrics_addr = app.metrics_addr.expect("a metrics listener");
    assert_eq!(metrics_addr.port(), port);
    assert_eq!(deliver(app.addr, &fixture("logs.ndjson")).status, 200);
    let on_delivery_port = send(app.addr, "GET", "/metrics", &[], b"");
    assert_eq!(
        (on_delivery_port.status, on_delivery_port.error_code().as_str()),
        (404, "not_found")
    );
    let reply = send(metrics_addr, "GET", "/metrics", &[], b"");
    assert_eq!(reply.status, 200);
    let text = String::from_utf8(reply.body).unwrap();
    assert!(text.contains("spillway_records_accepted_total 5"), "{text}");
    assert_eq!(send(metrics_addr, "GET", "/vercel/logs", &[], b"").status, 404);
    // Health stays on the delivery port, where load balancers look.
    assert_eq!(send(app.addr, "GET", "/healthz", &[], b"").status, 200);
}
