//! `spillway drains …` and `spillway env set`: the real binary against a Vercel API simulator,
//! checking exit codes, output, hints, the drain registry on disk, and that no secret is
//! ever printed.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::Run;

use control::model::ExchangeCode;
use control::{ClientConfig, Secret, VercelClient};
use serde_json::Value;
use testkit::{poll_until, Receiver};
use vercel_sim::{RateLimitHint, Simulator};

/// A simulator on its own runtime, a data directory, and the binary.
struct Harness {
    sim: Simulator,
    runtime: tokio::runtime::Runtime,
    api: String,
    dir: tempfile::TempDir,
    /// Every secret the test knows of: none may appear in any output.
    secrets: Vec<String>,
}

impl Harness {
    fn new() -> Harness {
        let (runtime, addr, sim) = common::start_simulator();
        let config = sim.config();
        Harness {
            sim,
            runtime,
            api: format!("http://{addr}"),
            dir: tempfile::tempdir().unwrap(),
            secrets: vec![config.user_token, config.team_token, config.client_secret],
        }
    }

    fn user_token(&self) -> String {
        self.sim.config().user_token
    }

    fn registry_path(&self) -> PathBuf {
        self.dir.path().join("drains.json")
    }

    /// Runs `spillway <args>` with `token` (if any) and checks that no secret leaked.
    fn run(&self, token: Option<&str>, args: &[&str]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_spillway"));
        command
            .args(args)
            .env_remove("SPILLWAY_VERCEL_TOKEN")
            .env_remove("RUST_LOG")
            .env("SPILLWAY_VERCEL_API_URL", &self.api)
            .env("SPILLWAY_DATA_DIR", self.dir.path());
        if let Some(token) = token {
            command.env("SPILLWAY_VERCEL_TOKEN", token);
        }
        let output = command.output().unwrap();
        let run = Run::of(output);
        let mut secrets = self.secrets.clone();
        secrets.extend(self.registry_entries().iter().map(|e| e["secret"].to_string()));
        for secret in secrets.iter().map(|s| s.trim_matches('"')) {
            assert!(!run.stdout.contains(secret), "secret in stdout of {args:?}: {run:?}");
            assert!(!run.stderr.contains(secret), "secret in stderr of {args:?}: {run:?}");
        }
        run
    }

    /// `spillway drains test id`, repeated until it passes (for at most 5 s): a receiver picks a
    /// new drain up within a quarter of a second, and answers 404 until then.
    fn test_once_served(&self, token: Option<&str>, id: &str) -> Run {
        poll_until(
            Duration::from_secs(5),
            || self.run(token, &["drains", "test", id]),
            |tested| tested.code == 0,
        )
    }

    /// The registry's entries (none when the file does not exist), after checking its mode.
    fn registry_entries(&self) -> Vec<Value> {
        let path = self.registry_path();
        let Ok(bytes) = std::fs::read(&path) else { return Vec::new() };
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "registry mode");
        let file: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(file["version"], 1);
        file["drains"].as_array().unwrap().clone()
    }

    fn only_entry(&self) -> Value {
        let entries = self.registry_entries();
        assert_eq!(entries.len(), 1, "{entries:?}");
        entries[0].clone()
    }

    /// An installation's token (from the OAuth code exchange).
    fn installation_token(&self, configuration_id: &str) -> String {
        let config = self.sim.config();
        let code = self.sim.issue_code(configuration_id, None);
        let client = VercelClient::new(ClientConfig {
            base_url: self.api.clone(),
            ..ClientConfig::default()
        })
        .unwrap();
        let exchange = ExchangeCode {
            client_id: config.client_id,
            client_secret: Secret::new(config.client_secret),
            code: Secret::new(code),
            redirect_uri: "http://127.0.0.1/callback".to_owned(),
        };
        let token = self.runtime.block_on(client.exchange_code(&exchange)).unwrap().access_token;
        token.expose().to_owned()
    }
}

#[test]
fn drain_lifecycle_keeps_the_registry_in_step_and_never_prints_the_secret() {
    let h = Harness::new();
    let token = h.user_token();
    let token = Some(token.as_str());
    let receiver = Receiver::start();
    let url = receiver.url("/vercel/logs");

    // create
    let created = h.run(
        token,
        &[
            "drains",
            "create",
            "--url",
            &url,
            "--project",
            "prj_1",
            "--source",
            "lambda",
            "--environment",
            "production",
            "--name",
            "first",
            "--json",
        ],
    );
    assert_eq!(created.code, 0, "{created:?}");
    let view = created.json();
    let id = view["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("drn_"), "{id}");
    let entry = h.only_entry();
    let (key, secret) =
        (entry["pathKey"].as_str().unwrap().to_owned(), entry["secret"].as_str().unwrap());
    let secret = secret.to_owned();
    assert_eq!(entry["id"], id);
    assert_eq!(entry["kind"], "self-served");
    assert_eq!(entry["teamId"], Value::Null);
    assert!(entry["createdAtMs"].as_i64().unwrap() > 0);
    assert!(key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
    assert!(secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(view["endpoint"], format!("{url}/{key}"));
    assert_eq!(view["secret"], format!("{}****", &secret[..4]));
    assert_eq!(view["registered"], true);
    assert_eq!(view["projectIds"], serde_json::json!(["prj_1"]));
    assert_eq!(view["encoding"], "ndjson");
    // Vercel signs with the secret the registry holds.
    assert_eq!(h.sim.drain_signing_secret(&id).as_deref(), Some(secret.as_str()));

    // list, as a table and as JSON
    let table = h.run(token, &["drains", "list"]);
    assert_eq!(table.code, 0, "{table:?}");
    assert!(table.stdout.starts_with("ID"), "{}", table.stdout);
    let row = table.stdout.lines().find(|l| l.starts_with(&id)).unwrap();
    assert!(row.contains("first") && row.contains("enabled") && row.ends_with("yes"), "{row}");
    let listed = h.run(token, &["drains", "list", "--json"]).json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], id);
    assert_eq!(listed[0]["registered"], true);
    assert_eq!(h.only_entry(), entry);

    // get
    let got = h.run(token, &["drains", "get", &id]);
    assert_eq!(got.code, 0, "{got:?}");
    assert!(got.stdout.contains(&format!("{url}/{key}")), "{}", got.stdout);
    assert!(got.stdout.contains(&format!("{}****", &secret[..4])), "{}", got.stdout);
    assert_eq!(
        h.run(token, &["--log-format", "text", "drains", "get", &id, "--json"]).json(),
        view
    );

    // update: name and state, then the URL (the key and the secret are kept)
    let paused =
        h.run(token, &["drains", "update", &id, "--name", "renamed", "--disable", "--json"]);
    assert_eq!(paused.code, 0, "{paused:?}");
    assert_eq!(paused.json()["status"], "disabled");
    assert_eq!(paused.json()["name"], "renamed");
    let moved = h.run(token, &["drains", "update", &id, "--url", &format!("{url}/"), "--enable"]);
    assert_eq!(moved.code, 0, "{moved:?}");
    let now = h.run(token, &["drains", "get", &id, "--json"]).json();
    assert_eq!(now["status"], "enabled");
    assert_eq!(now["endpoint"], format!("{url}/{key}"));
    assert_eq!(h.sim.drain_signing_secret(&id).as_deref(), Some(secret.as_str()));
    assert_eq!(h.only_entry(), entry);

    // test: the simulator delivers a sample batch signed with the registry's secret
    receiver.require_signature(&secret);
    let tested = h.run(token, &["drains", "test", &id]);
    assert_eq!(tested.code, 0, "{tested:?}");
    let delivery = receiver.next();
    assert_eq!(delivery.path, format!("/vercel/logs/{key}"));
    assert!(delivery.signed_with(&secret), "{delivery:?}");
    assert!(delivery.text().contains("SAMPLE MESSAGE"), "{delivery:?}");
    assert_eq!(h.only_entry(), entry);

    // delete: gone on Vercel and in the registry
    let deleted = h.run(token, &["drains", "delete", &id]);
    assert_eq!(deleted.code, 0, "{deleted:?}");
    assert!(h.registry_entries().is_empty());
    assert_eq!(h.sim.drain_signing_secret(&id), None);
    assert_eq!(h.run(token, &["drains", "get", &id]).code, 3);
}

#[test]
fn a_test_delivery_the_receiver_refuses_is_exit_3() {
    let h = Harness::new();
    let token = h.user_token();
    let receiver = Receiver::start();
    let url = receiver.url("/vercel/logs");
    let created = h.run(Some(&token), &["drains", "create", "--url", &url, "--json"]);
    assert_eq!(created.code, 0, "{created:?}");
    let id = created.json()["id"].as_str().unwrap().to_owned();
    // The receiver checks with another secret, as a misconfigured receiver would.
    receiver.require_signature("not-the-secret");
    let tested = h.run(Some(&token), &["drains", "test", &id]);
    assert!(!receiver.next().signed_with("not-the-secret"));
    assert_eq!(tested.code, 3, "{tested:?}");
    assert!(tested.stderr.contains("status 403"), "{}", tested.stderr);
}

#[test]
fn team_token_without_team_is_exit_4_with_a_hint_and_works_with_team() {
    let h = Harness::new();
    let config = h.sim.config();
    let token = Some(config.team_token.as_str());
    let refused = h.run(token, &["drains", "list"]);
    assert_eq!(refused.code, 4, "{refused:?}");
    assert!(refused.stderr.contains("forbidden"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("is this a team installation? pass --team"),
        "{}",
        refused.stderr
    );

    let created = h.run(
        token,
        &["drains", "--team", &config.team_id, "create", "--url", "http://127.0.0.1:9/x"],
    );
    assert_eq!(created.code, 0, "{created:?}");
    let entry = h.only_entry();
    assert_eq!(entry["teamId"], config.team_id);
    // Not on the receiver's path: the URL is kept as given.
    let id = entry["id"].as_str().unwrap();
    let got = h.run(token, &["drains", "get", id, "--team", &config.team_id, "--json"]).json();
    assert_eq!(got["endpoint"], "http://127.0.0.1:9/x");
}

#[test]
fn disabled_installation_is_exit_4_with_a_hint() {
    let h = Harness::new();
    let token = h.installation_token("icfg_sim");
    assert_eq!(h.run(Some(&token), &["drains", "list"]).code, 0);
    assert!(h.sim.disable_configuration("icfg_sim"));
    let refused = h.run(Some(&token), &["drains", "list"]);
    assert_eq!(refused.code, 4, "{refused:?}");
    assert!(refused.stderr.contains("integration_configuration_disabled"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("the integration was disabled in Vercel; reinstall it"),
        "{}",
        refused.stderr
    );
}

#[test]
fn unknown_drain_is_exit_3_with_vercels_code_in_text_and_json() {
    let h = Harness::new();
    let token = h.user_token();
    for command in ["get", "delete", "test"] {
        let run = h.run(Some(&token), &["drains", command, "drn_unknown"]);
        assert_eq!(run.code, 3, "{command}: {run:?}");
        assert!(run.stderr.contains("404 not_found"), "{command}: {}", run.stderr);
        assert!(run.stdout.is_empty());
    }
    let run = h.run(Some(&token), &["drains", "get", "drn_unknown", "--json"]);
    assert_eq!(run.code, 3);
    let error: Value = serde_json::from_str(&run.stderr).unwrap();
    assert_eq!(error["error"]["status"], 404);
    assert_eq!(error["error"]["code"], "not_found");
    assert_eq!(error["error"]["exit"], 3);
    assert!(h.registry_entries().is_empty());
}

#[test]
fn missing_token_is_exit_4_and_touches_nothing() {
    let h = Harness::new();
    let run = h.run(None, &["drains", "create", "--url", "http://127.0.0.1:9/vercel/logs"]);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(run.stderr.contains("SPILLWAY_VERCEL_TOKEN is not set"), "{}", run.stderr);
    assert_eq!(h.sim.request_count(), 0);
    assert!(!h.registry_path().exists());
    assert_eq!(h.run(None, &["env", "set", "K", "V", "--project", "p"]).code, 4);
}

#[test]
fn usage_errors_are_exit_2() {
    let h = Harness::new();
    let token = h.user_token();
    for args in [
        &["drains", "update", "drn_1"][..],
        &["drains", "update", "drn_1", "--enable", "--disable"],
        &["drains", "create", "--url", "http://x", "--encoding", "xml"],
        &["env", "set", "K", "V"],
    ] {
        assert_eq!(h.run(Some(&token), args).code, 2, "{args:?}");
    }
    assert_eq!(h.sim.request_count(), 0);
}

#[test]
fn rate_limited_after_retries_is_exit_3_with_a_hint() {
    let h = Harness::new();
    let token = h.user_token();
    h.sim.fail_next_requests(100, RateLimitHint::RetryAfter(0));
    let run = h.run(Some(&token), &["drains", "list"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("rate_limited"), "{}", run.stderr);
    assert!(run.stderr.contains("rate limited; try again later"), "{}", run.stderr);
}

#[test]
fn env_set_upserts_the_variable_without_printing_its_value() {
    let mut h = Harness::new();
    let token = h.user_token();
    let value = "env-value-that-must-not-be-printed";
    h.secrets.push(value.to_owned());
    let run = h.run(
        Some(&token),
        &[
            "env",
            "set",
            "DRAIN_KEY",
            value,
            "--project",
            "prj_1",
            "--target",
            "production",
            "--json",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let answer = run.json();
    assert_eq!(answer["key"], "DRAIN_KEY");
    assert_eq!(answer["project"], "prj_1");
    assert_eq!(answer["target"], serde_json::json!(["production"]));
    assert!(answer["id"].as_str().unwrap().starts_with("env"), "{answer}");
    // Upsert: setting it again overwrites rather than failing; all targets by default.
    let again = h.run(Some(&token), &["env", "set", "DRAIN_KEY", value, "--project", "prj_1"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(again.stdout.trim(), "set DRAIN_KEY on prj_1 (production, preview, development)");
}

#[test]
fn without_a_token_the_stored_installation_is_used_and_marked_when_disabled() {
    use control::installations::{Installation, InstallationStatus, InstallationStore};
    let h = Harness::new();
    let token = h.installation_token("icfg_sim");
    let store = InstallationStore::new(h.dir.path().join("installations.json"));
    store
        .upsert(Installation {
            configuration_id: "icfg_sim".into(),
            team_id: None,
            access_token: Secret::new(token),
            user_id: "user".into(),
            installation_id: "inst".into(),
            scopes: Vec::new(),
            created_at_ms: 1,
            status: InstallationStatus::Enabled,
        })
        .unwrap();
    let listed = h.run(None, &["drains", "list", "--json"]);
    assert_eq!(listed.code, 0, "the stored installation's token was not used: {listed:?}");
    // Naming another installation finds none.
    assert_eq!(h.run(None, &["drains", "list", "--installation", "icfg_other"]).code, 4);

    assert!(h.sim.disable_configuration("icfg_sim"));
    let refused = h.run(None, &["drains", "list"]);
    assert_eq!(refused.code, 4, "{refused:?}");
    let stored = store.get("icfg_sim").unwrap().unwrap();
    assert_eq!(stored.status, InstallationStatus::Disabled, "the installation was not marked");
    // A disabled installation is never used again: no request is made.
    let before = h.sim.request_count();
    let again = h.run(None, &["drains", "list"]);
    assert_eq!(again.code, 4);
    assert_eq!(h.sim.request_count(), before, "a disabled installation was called again");
}

#[test]
fn a_gzip_drain_s_test_delivery_is_verified_inflated_and_stored_by_spillway() {
    let h = Harness::new();
    let token = h.user_token();
    let token = Some(token.as_str());
    // Spillway serving the drain registry this CLI writes.
    let registry_dir = h.dir.path().to_owned();
    let app = common::TestApp::start(|c| c.data_dir = registry_dir);
    let url = format!("http://{}/vercel/logs", app.addr);
    let created = h.run(token, &["drains", "create", "--url", &url, "--gzip", "--json"]);
    assert_eq!(created.code, 0, "{created:?}");
    let id = created.json()["id"].as_str().unwrap().to_owned();

    let tested = h.test_once_served(token, &id);
    assert_eq!(tested.code, 0, "{tested:?}");
    let stored = common::lines_in(&app.dir("logs"));
    assert!(stored.iter().any(|l| l.contains("SAMPLE MESSAGE")), "{stored:?}");
    // It came compressed, signed over the bytes as sent.
    let reply = common::send(app.addr, "GET", "/metrics", &[], b"");
    let metrics = String::from_utf8(reply.body).unwrap();
    assert!(metrics.contains("spillway_signature_matches_total{over=\"raw\"} 1"), "{metrics}");
    let inflated: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("spillway_inflated_bytes_total "))
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(inflated > 0, "{metrics}");
}

#[test]
fn a_drain_s_required_header_is_sent_by_vercel_checked_by_spillway_and_never_printed() {
    let mut h = Harness::new();
    const VALUE: &str = "Bearer tok-a1b2c3d4e5";
    h.secrets.push(VALUE.to_owned());
    let token = h.user_token();
    let token = Some(token.as_str());
    let registry_dir = h.dir.path().to_owned();
    let app = common::TestApp::start(|c| c.data_dir = registry_dir);
    let url = format!("http://{}/vercel/logs", app.addr);
    let header = format!("Authorization: {VALUE}");
    let created = h.run(token, &["drains", "create", "--url", &url, "--header", &header, "--json"]);
    assert_eq!(created.code, 0, "{created:?}");
    let view = created.json();
    assert_eq!(view["headers"], serde_json::json!(["Authorization"]));
    let id = view["id"].as_str().unwrap().to_owned();
    // Vercel was told to send it; the registry keeps it for the receiver.
    assert_eq!(
        h.sim.drain_delivery_headers(&id),
        Some(serde_json::json!({"Authorization": VALUE}))
    );
    let entry = h.only_entry();
    assert_eq!(entry["headers"], serde_json::json!([{"name": "Authorization", "value": VALUE}]));
    let shown = h.run(token, &["drains", "get", &id]);
    assert!(shown.stdout.contains("headers      Authorization"), "{}", shown.stdout);

    // The simulator's test delivery carries the header and the receiver accepts it.
    let tested = h.test_once_served(token, &id);
    assert_eq!(tested.code, 0, "{tested:?}");
    let stored = common::lines_in(&app.dir("logs"));
    assert_eq!(stored.iter().filter(|l| l.contains("SAMPLE MESSAGE")).count(), 2, "{stored:?}");

    // Signed correctly but without the header, or with another value: refused, nothing stored.
    let path = format!("/vercel/logs/{}", entry["pathKey"].as_str().unwrap());
    let body = common::fixture("logs.ndjson");
    let sig = listener::SigningKey::new(entry["secret"].as_str().unwrap()).sign(&body);
    let reply = common::send(app.addr, "POST", &path, &[("x-vercel-signature", &sig)], &body);
    assert_eq!((reply.status, reply.error_code().as_str()), (401, "missing_header"));
    let reply = common::send(
        app.addr,
        "POST",
        &path,
        &[("x-vercel-signature", &sig), ("authorization", "Bearer tok-guess")],
        &body,
    );
    assert_eq!((reply.status, reply.error_code().as_str()), (403, "invalid_header"));
    assert!(!String::from_utf8_lossy(&reply.body).contains("tok-"), "{reply:?}");
    assert_eq!(common::lines_in(&app.dir("logs")).len(), stored.len());
    let reply = common::send(
        app.addr,
        "POST",
        &path,
        &[("x-vercel-signature", &sig), ("authorization", VALUE)],
        &body,
    );
    assert_eq!(reply.status, 200, "{reply:?}");

    // A moved drain keeps its header.
    let moved = h.run(token, &["drains", "update", &id, "--url", &url]);
    assert_eq!(moved.code, 0, "{moved:?}");
    assert_eq!(
        h.sim.drain_delivery_headers(&id),
        Some(serde_json::json!({"Authorization": VALUE}))
    );
}

#[test]
fn a_bad_header_argument_is_exit_2_without_its_value_and_creates_nothing() {
    let h = Harness::new();
    let token = h.user_token();
    for header in [
        vec!["Authorization Bearer tok-zz9"],
        vec!["X-Vercel-Signature: tok-zz9"],
        vec!["X-Token: tok-zz9", "x-token: tok-zz9"],
    ] {
        let mut args = vec!["drains", "create", "--url", "http://127.0.0.1:1/vercel/logs"];
        for h in &header {
            args.extend(["--header", h]);
        }
        let run = h.run(Some(&token), &args);
        assert_eq!(run.code, 2, "{header:?}: {run:?}");
        assert!(run.stderr.contains("--header"), "{run:?}");
        assert!(!run.stderr.contains("tok-zz9") && !run.stdout.contains("tok-zz9"), "{run:?}");
    }
    assert!(h.registry_entries().is_empty());
}

#[test]
fn legacy_log_drains_are_listed_and_deleted_with_an_installation_token() {
    let h = Harness::new();
    let token = h.installation_token("icfg_legacy_cli");
    let client = VercelClient::new(ClientConfig {
        base_url: h.api.clone(),
        token: Some(Secret::new(token.as_str())),
        ..ClientConfig::default()
    })
    .unwrap();
    let request = control::model::CreateLogDrain {
        name: "before-drains".to_owned(),
        url: "https://logs.example/old".to_owned(),
        project_ids: Vec::new(),
        secret: None,
        delivery_format: control::model::Encoding::Json,
        sources: Vec::new(),
        headers: Default::default(),
        environments: Vec::new(),
    };
    let created = h.runtime.block_on(client.create_log_drain(&request)).unwrap();

    let listed = h.run(Some(&token), &["drains", "list", "--legacy", "--json"]);
    assert_eq!(listed.code, 0, "{listed:?}");
    let listed = listed.json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], created.id);
    assert_eq!(listed[0]["url"], "https://logs.example/old");
    assert_eq!(listed[0]["deliveryFormat"], "json");
    let table = h.run(Some(&token), &["drains", "list", "--legacy"]);
    let row = table.stdout.lines().find(|l| l.starts_with(&created.id)).unwrap();
    assert!(row.contains("before-drains") && row.ends_with("all"), "{row}");

    // The legacy API answers installation tokens only.
    let user = h.run(Some(&h.user_token()), &["drains", "list", "--legacy"]);
    assert_eq!(user.code, 4, "{user:?}");
    assert!(user.stderr.contains("403 forbidden"), "{}", user.stderr);

    let deleted = h.run(Some(&token), &["drains", "delete", &created.id]);
    assert_eq!(deleted.code, 0, "{deleted:?}");
    let empty = h.run(Some(&token), &["drains", "list", "--legacy"]);
    assert!(empty.stdout.contains("(no drains)"), "{empty:?}");
    let again = h.run(Some(&token), &["drains", "delete", &created.id]);
    assert_eq!(again.code, 3, "{again:?}");
}

#[test]
fn an_integration_drain_is_tested_with_the_integration_secret() {
    // Vercel signs an integration's drains with the client secret; the registry's entry keeps a
    // secret of its own that nothing signs with, and which must not be sent.
    let h = Harness::new();
    let token = h.installation_token("icfg_cli_test");
    let receiver = Receiver::start();
    let url = receiver.url("/vercel/logs");
    let created = h.run(Some(&token), &["drains", "create", "--url", &url, "--json"]);
    assert_eq!(created.code, 0, "{created:?}");
    let id = created.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(h.only_entry()["integrationSecret"], true, "{:?}", h.only_entry());
    let client_secret = h.sim.config().client_secret;
    receiver.require_signature(&client_secret);
    let tested = h.run(Some(&token), &["drains", "test", &id]);
    assert_eq!(tested.code, 0, "{tested:?}");
    assert!(receiver.next().signed_with(&client_secret));
}
