//! The integration's life cycle over real sockets, against the Vercel simulator: install
//! redirect -> code exchange -> installation stored -> drain created and served -> test delivery
//! stored -> `integration-configuration.removed` webhook -> installation and drain forgotten.
//! Also refused codes, bad webhook signatures, disabled installations and open redirects.

mod common;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use control::model::{log_schemas, DeliveryRequest, Encoding, ExchangeCode, TestDrain};
use control::IntegrationConfig;
use control::{
    ClientConfig, DrainKind, DrainRegistry, Installation, InstallationStatus, InstallationStore,
    Secret, VercelClient,
};
use serde_json::json;
use vercel_sim::Simulator;

/// A simulator on its own runtime (the app under test has another).
struct Sim {
    runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
    sim: Simulator,
}

impl Sim {
    fn start() -> Sim {
        let (runtime, addr, sim) = common::start_simulator();
        Sim { runtime, addr, sim }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client of the simulator speaking for `installation`.
    fn client_for(&self, installation: &Installation) -> VercelClient {
        VercelClient::new(ClientConfig {
            base_url: self.url(),
            token: Some(installation.access_token.clone()),
            team_id: installation.team_id.clone(),
            ..ClientConfig::default()
        })
        .unwrap()
    }

    fn webhook(&self, app: &TestApp, event: &str, payload: serde_json::Value) -> u16 {
        let url = format!("http://{}/vercel/integration/webhook", app.control_addr.unwrap());
        self.runtime.block_on(self.sim.send_webhook(&url, event, payload)).unwrap()
    }
}

/// An app with the integration pointed at `sim`.
fn start(sim: &Sim) -> TestApp {
    start_with(sim, |_| {})
}

/// An app with the integration pointed at `sim`, then `adjust`ed.
fn start_with(sim: &Sim, adjust: impl FnOnce(&mut IntegrationConfig)) -> TestApp {
    let config = sim.sim.config();
    let api_url = sim.url();
    TestApp::start(move |c| {
        let mut integration = sim_integration(config, api_url);
        adjust(&mut integration);
        c.integration = Some(integration);
    })
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The install redirect Vercel sends the user to.
fn callback(
    app: &TestApp,
    code: &str,
    configuration: &str,
    team: Option<&str>,
    next: &str,
) -> Reply {
    let mut path = format!(
        "/vercel/integration/callback?code={}&configurationId={configuration}&next={}",
        encode(code),
        encode(next)
    );
    if let Some(team) = team {
        path.push_str(&format!("&teamId={team}"));
    }
    send(app.control_addr.unwrap(), "GET", &path, &[], b"")
}

fn installations(app: &TestApp) -> InstallationStore {
    InstallationStore::new(app.dir("installations.json"))
}

fn registry(app: &TestApp) -> DrainRegistry {
    DrainRegistry::new(app.dir("drains.json"))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn reply_text(reply: &Reply) -> String {
    let headers: Vec<String> = reply.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!("{}\n{}", headers.join("\n"), String::from_utf8_lossy(&reply.body))
}

#[test]
fn install_serve_and_remove_an_installation_end_to_end() {
    let sim = Sim::start();
    let app = start(&sim);
    let client_secret = sim.sim.config().client_secret;

    // Install: Vercel redirects the user with a one-time code.
    let code = sim.sim.issue_code("icfg_life", Some("team_sim"));
    let next = "https://vercel.com/team_sim/~/integrations/spillway";
    let reply = callback(&app, &code, "icfg_life", Some("team_sim"), next);
    assert_eq!(reply.status, 302, "{}", reply_text(&reply));
    assert_eq!(reply.header("location"), Some(next));

    // The installation is stored, 0600, and its token shows nowhere but there.
    let store = installations(&app);
    assert_eq!(mode(store.path()), 0o600);
    let installation = store.get("icfg_life").unwrap().expect("installation stored");
    assert_eq!(installation.team_id.as_deref(), Some("team_sim"));
    assert_eq!(installation.status, InstallationStatus::Enabled);
    assert_eq!(installation.user_id, sim.sim.config().user_id);
    assert!(installation.scopes.iter().any(|s| s == "read-write:log-drain"));
    let token = installation.access_token.expose().to_owned();
    assert!(!reply_text(&reply).contains(&token));
    assert!(!reply_text(&reply).contains(&code));
    assert!(
        !String::from_utf8_lossy(&std::fs::read(app.dir("drains.json")).unwrap()).contains(&token)
    );

    // One integration drain, in the registry and on Vercel, at the receiver's per-drain path.
    let entries = registry(&app).load().unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!(entry.kind, DrainKind::Integration);
    assert_eq!(entry.configuration_id.as_deref(), Some("icfg_life"));
    assert_eq!(entry.team_id.as_deref(), Some("team_sim"));
    assert!(
        entry.integration_secret,
        "the simulator signs integration drains with the client secret"
    );
    let client = sim.client_for(&installation);
    let drain = sim.runtime.block_on(client.get_drain(&entry.id)).unwrap();
    let delivery = drain.delivery.unwrap();
    assert_eq!(delivery.endpoint.unwrap(), format!("{DRAIN_URL}/{}", entry.path_key));
    let source = drain.source.unwrap();
    assert_eq!(source.integration_configuration_id.as_deref(), Some("icfg_life"));

    // Vercel's test delivery reaches the drain's path (as the proxy behind DRAIN_URL would
    // forward it) and is stored.
    let path = format!("/vercel/logs/{}", entry.path_key);
    wait_served(app.addr, &path);
    let test = TestDrain {
        schemas: log_schemas(),
        delivery: DeliveryRequest::http(format!("http://{}{path}", app.addr), Encoding::Ndjson),
    };
    let result = sim.runtime.block_on(client.test_drain(&test)).unwrap();
    assert!(result.is_ok(), "{result:?}");
    let stored = lines_in(&app.dir("logs"));
    assert_eq!(stored.iter().filter(|l| l.contains("SAMPLE MESSAGE")).count(), 2, "{stored:?}");
    // And so does an ordinary delivery signed as Vercel signs the drain.
    assert_eq!(sim.sim.drain_signing_secret(&entry.id).as_deref(), Some(client_secret.as_str()));
    assert_eq!(deliver_until(app.addr, &path, &client_secret, 200).status, 200);

    // Uninstall: the webhook forgets the installation and its drain; the path is gone.
    let status = sim.webhook(
        &app,
        "integration-configuration.removed",
        json!({"configuration": {"id": "icfg_life", "projects": []}}),
    );
    assert_eq!(status, 200);
    assert_eq!(store.get("icfg_life").unwrap(), None);
    assert!(registry(&app).load().unwrap().is_empty());
    let gone = deliver_until(app.addr, &path, &client_secret, 404);
    assert_eq!(gone.status, 404);
    assert_eq!(gone.error_code(), "unknown_drain");

    // The control plane's requests show on the receiver's /metrics.
    let metrics = String::from_utf8(send(app.addr, "GET", "/metrics", &[], b"").body).unwrap();
    for line in [
        "spillway_control_requests_total{route=\"callback\",status=\"3xx\"} 1",
        "spillway_control_requests_total{route=\"webhook\",status=\"2xx\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
}

#[test]
fn a_confirmed_scope_change_is_recorded_and_other_events_are_ignored() {
    let sim = Sim::start();
    let app = start(&sim);
    let code = sim.sim.issue_code("icfg_scopes", None);
    assert_eq!(callback(&app, &code, "icfg_scopes", None, "/done").status, 302);

    let scopes = json!(["read-write:log-drain", "read:team"]);
    let status = sim.webhook(
        &app,
        "integration-configuration.scope-change-confirmed",
        json!({"configuration": {"id": "icfg_scopes", "scopes": scopes}}),
    );
    assert_eq!(status, 200);
    let installation = installations(&app).get("icfg_scopes").unwrap().unwrap();
    assert_eq!(installation.scopes, ["read-write:log-drain", "read:team"]);

    let before = std::fs::read(installations(&app).path()).unwrap();
    assert_eq!(sim.webhook(&app, "project.created", json!({"project": {"id": "prj_1"}})), 200);
    assert_eq!(std::fs::read(installations(&app).path()).unwrap(), before);
}

#[test]
fn a_refused_code_is_400_and_stores_nothing() {
    let sim = Sim::start();
    let app = start(&sim);
    let code = sim.sim.issue_code("icfg_reused", None);
    // Someone (a replayed redirect) used the code first.
    let config = sim.sim.config();
    let exchange = ExchangeCode {
        client_id: config.client_id,
        client_secret: Secret::new(config.client_secret),
        code: Secret::new(code.clone()),
        redirect_uri: REDIRECT_URL.to_owned(),
    };
    let first =
        VercelClient::new(ClientConfig { base_url: sim.url(), ..ClientConfig::default() }).unwrap();
    sim.runtime.block_on(first.exchange_code(&exchange)).unwrap();

    let reply = callback(&app, &code, "icfg_reused", None, "/done");
    assert_eq!(reply.status, 400, "{}", reply_text(&reply));
    assert_eq!(reply.error_code(), "invalid_code");
    assert!(!reply_text(&reply).contains(&code));
    assert!(installations(&app).load().unwrap().is_empty());
    assert!(registry(&app).load().unwrap().is_empty());

    // A redirect without a code is refused before any API call.
    let before = sim.sim.request_count();
    let path = "/vercel/integration/callback?configurationId=icfg_reused";
    assert_eq!(send(app.control_addr.unwrap(), "GET", path, &[], b"").status, 400);
    assert_eq!(sim.sim.request_count(), before);
}

#[test]
fn a_webhook_with_a_bad_or_missing_signature_is_403_and_changes_nothing() {
    let sim = Sim::start();
    let app = start(&sim);
    let code = sim.sim.issue_code("icfg_kept", None);
    assert_eq!(callback(&app, &code, "icfg_kept", None, "/").status, 302);
    let installations_before = std::fs::read(installations(&app).path()).unwrap();
    let drains_before = std::fs::read(registry(&app).path()).unwrap();

    let body = json!({
        "id": "evt_forged", "type": "integration-configuration.removed", "createdAt": 1,
        "payload": {"configuration": {"id": "icfg_kept"}},
    })
    .to_string();
    let webhook = app.control_addr.unwrap();
    let path = "/vercel/integration/webhook";
    let forged = listener::SigningKey::new("not-the-client-secret").sign(body.as_bytes());
    let reply = send(webhook, "POST", path, &[("x-vercel-signature", &forged)], body.as_bytes());
    assert_eq!((reply.status, reply.error_code().as_str()), (403, "invalid_signature"));
    let reply = send(webhook, "POST", path, &[], body.as_bytes());
    assert_eq!((reply.status, reply.error_code().as_str()), (403, "missing_signature"));
    let reply = send(webhook, "POST", path, &[("x-vercel-signature", "zz")], body.as_bytes());
    assert_eq!(reply.status, 403);

    assert_eq!(std::fs::read(installations(&app).path()).unwrap(), installations_before);
    assert_eq!(std::fs::read(registry(&app).path()).unwrap(), drains_before);
}

#[test]
fn an_oversized_webhook_is_413() {
    let sim = Sim::start();
    let app = start_with(&sim, |i| i.max_body_bytes = 1024);
    let body = vec![b'x'; 1025];
    let sig = listener::SigningKey::new(sim.sim.config().client_secret).sign(&body);
    let reply = send(
        app.control_addr.unwrap(),
        "POST",
        "/vercel/integration/webhook",
        &[("x-vercel-signature", &sig)],
        &body,
    );
    assert_eq!(reply.status, 413);
}

#[test]
fn a_disabled_installation_is_marked_and_never_retried() {
    let sim = Sim::start();
    let app = start(&sim);
    let code = sim.sim.issue_code("icfg_off", Some("team_sim"));
    assert!(sim.sim.disable_configuration("icfg_off"));

    let before = sim.sim.request_count();
    let reply = callback(&app, &code, "icfg_off", Some("team_sim"), "/");
    assert_eq!(reply.status, 403, "{}", reply_text(&reply));
    assert_eq!(reply.error_code(), "integration_configuration_disabled");
    // The code exchange, then exactly one request with the installation's token, refused.
    assert_eq!(sim.sim.request_count() - before, 2);
    let installation = installations(&app).get("icfg_off").unwrap().unwrap();
    assert_eq!(installation.status, InstallationStatus::Disabled);
    assert!(registry(&app).load().unwrap().is_empty());

    // Known disabled: a later redirect for it makes no API request at all.
    let again = sim.sim.issue_code("icfg_off", Some("team_sim"));
    let before = sim.sim.request_count();
    let reply = callback(&app, &again, "icfg_off", Some("team_sim"), "/");
    assert_eq!(reply.status, 403);
    assert_eq!(sim.sim.request_count(), before);
}

#[test]
fn next_outside_vercel_is_not_followed() {
    let sim = Sim::start();
    let app = start(&sim);
    for (i, next) in
        ["https://evil.example/phish", "//evil.example/", "https://vercel.com.evil.example/"]
            .into_iter()
            .enumerate()
    {
        let configuration = format!("icfg_redirect{i}");
        let code = sim.sim.issue_code(&configuration, None);
        let reply = callback(&app, &code, &configuration, None, next);
        assert_eq!(reply.status, 302, "{}", reply_text(&reply));
        assert_eq!(reply.header("location"), Some("/"), "{next}");
    }
    let code = sim.sim.issue_code("icfg_relative", None);
    let reply = callback(&app, &code, "icfg_relative", None, "/welcome?from=vercel");
    assert_eq!(reply.header("location"), Some("/welcome?from=vercel"));
}

#[test]
fn the_control_listener_answers_503_over_its_connection_limit() {
    let sim = Sim::start();
    let app = start_with(&sim, |c| c.max_connections = 1);
    let first = request("GET", "/nowhere", &[], b"");
    assert_second_connection_refused(app.control_addr.unwrap(), &first, 404);
}

#[test]
fn project_env_is_set_on_the_projects_the_installation_may_see() {
    let sim = Sim::start();
    let app = start_with(&sim, |c| c.project_env = Some("SPILLWAY_DRAIN_URL".to_owned()));
    let code = sim.sim.issue_code("icfg_env", Some("team_env"));
    assert!(sim.sim.select_projects("icfg_env", &["prj_a", "prj_b"]));
    let reply = callback(&app, &code, "icfg_env", Some("team_env"), "/done");
    assert_eq!(reply.status, 302, "{}", reply_text(&reply));

    // The value is the installation's drain endpoint, on every target of both projects.
    let drain = registry(&app).load().unwrap().into_iter().next().expect("drain registered");
    let endpoint = format!("{DRAIN_URL}/{}", drain.path_key);
    for project in ["prj_a", "prj_b"] {
        let var = sim.sim.env_var("team_env", project, "SPILLWAY_DRAIN_URL").expect("set");
        assert_eq!(var["value"], endpoint.as_str(), "{project}: {var}");
        assert_eq!(var["target"], json!(["production", "preview", "development"]), "{var}");
        assert_eq!(var["type"], "encrypted");
    }
    assert_eq!(sim.sim.env_var("team_env", "prj_other", "SPILLWAY_DRAIN_URL"), None);
}

#[test]
fn a_new_project_of_an_all_projects_installation_gets_project_env() {
    let sim = Sim::start();
    let app = start_with(&sim, |c| c.project_env = Some("SPILLWAY_DRAIN_URL".to_owned()));
    let code = sim.sim.issue_code("icfg_all", Some("team_all"));
    let reply = callback(&app, &code, "icfg_all", Some("team_all"), "/done");
    assert_eq!(reply.status, 302, "{}", reply_text(&reply));
    // All projects: nothing is set at install (there is no list of them to set it on).
    assert_eq!(sim.sim.env_var("team_all", "prj_new", "SPILLWAY_DRAIN_URL"), None);

    let event = json!({"project": {"id": "prj_new", "name": "new"}, "team": {"id": "team_all"},
        "user": {"id": "user_sim"}});
    assert_eq!(sim.webhook(&app, "project.created", event), 200);
    let drain = registry(&app).load().unwrap().into_iter().next().expect("drain registered");
    let var = sim.sim.env_var("team_all", "prj_new", "SPILLWAY_DRAIN_URL").expect("set");
    assert_eq!(var["value"], format!("{DRAIN_URL}/{}", drain.path_key).as_str(), "{var}");
    assert_eq!(var["target"], json!(["production", "preview", "development"]), "{var}");

    // Another team's project is none of this installation's business.
    let other = json!({"project": {"id": "prj_elsewhere"}, "team": {"id": "team_other"}});
    assert_eq!(sim.webhook(&app, "project.created", other), 200);
    assert_eq!(sim.sim.env_var("team_all", "prj_elsewhere", "SPILLWAY_DRAIN_URL"), None);
    assert_eq!(sim.sim.env_var("team_other", "prj_elsewhere", "SPILLWAY_DRAIN_URL"), None);
    // An event without a project is refused as malformed.
    let status = sim.webhook(&app, "project.created", json!({"team": {"id": "team_all"}}));
    assert_eq!(status, 400);
}

#[test]
fn an_installation_whose_projects_are_none_or_unknown_gets_no_drain() {
    let sim = Sim::start();
    let app = start(&sim);
    let drains_of = |installation: &Installation| {
        let client = sim.client_for(installation);
        sim.runtime.block_on(client.list_all_drains(None, 100, 10)).unwrap()
    };

    // Projects selected, but none: an empty list must not become a drain of every project.
    let code = sim.sim.issue_code("icfg_none", Some("team_none"));
    assert!(sim.sim.select_projects("icfg_none", &[]));
    let reply = callback(&app, &code, "icfg_none", Some("team_none"), "/done");
    assert_eq!(reply.status, 302, "{}", reply_text(&reply));
    let installation = installations(&app).get("icfg_none").unwrap().expect("stored");
    assert_eq!(drains_of(&installation), vec![], "a drain for no project");
    assert!(registry(&app).load().unwrap().is_empty());

    // The configuration cannot be read: which projects are shared is unknown, so nothing is
    // created and the install says why.
    sim.sim.fail_configuration_reads(true);
    let code = sim.sim.issue_code("icfg_unread", Some("team_unread"));
    assert!(sim.sim.select_projects("icfg_unread", &["prj_a"]));
    let reply = callback(&app, &code, "icfg_unread", Some("team_unread"), "/done");
    assert_eq!(reply.status, 502, "{}", reply_text(&reply));
    assert!(reply_text(&reply).contains("projects_unknown"), "{}", reply_text(&reply));
    let installation = installations(&app).get("icfg_unread").unwrap().expect("stored");
    assert_eq!(drains_of(&installation), vec![], "a drain while the projects were unknown");
    assert!(registry(&app).load().unwrap().is_empty());
}
