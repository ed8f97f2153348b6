//! What an install must show before anything is stored, over real sockets against the Vercel
//! simulator: a token for the installation the redirect names, a team the receiver serves, and
//! (when the flow started here) a state we issued less than ten minutes ago.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use common::*;
use control::install_state::{issue_state, STATE_COOKIE, STATE_LIFETIME};
use control::{DrainRegistry, InstallationStore, IntegrationConfig, Secret};
use vercel_sim::Simulator;

/// An app with the integration pointed at the simulator at `sim_addr`, then `adjust`ed.
fn start_with(
    sim_addr: SocketAddr,
    sim: &Simulator,
    adjust: impl FnOnce(&mut IntegrationConfig),
) -> TestApp {
    let config = sim.config();
    TestApp::start(move |c| {
        let mut integration = sim_integration(config, format!("http://{sim_addr}"));
        adjust(&mut integration);
        c.integration = Some(integration);
    })
}

/// The install redirect, with `state` when given.
fn callback(app: &TestApp, code: &str, configuration: &str, state: Option<&str>) -> Reply {
    callback_from(app, code, configuration, state, None)
}

/// The callback as a browser holding `cookie` (its `Cookie` header) sends it.
fn callback_from(
    app: &TestApp,
    code: &str,
    configuration: &str,
    state: Option<&str>,
    cookie: Option<&str>,
) -> Reply {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("code", code).append_pair("configurationId", configuration);
    if let Some(state) = state {
        query.append_pair("state", state);
    }
    let path = format!("/vercel/integration/callback?{}", query.finish());
    let headers: Vec<(&str, &str)> = cookie.map(|c| ("cookie", c)).into_iter().collect();
    send(app.control_addr.unwrap(), "GET", &path, &headers, b"")
}

fn installations(app: &TestApp) -> InstallationStore {
    InstallationStore::new(app.dir("installations.json"))
}

fn drains(app: &TestApp) -> usize {
    DrainRegistry::new(app.dir("drains.json")).load().unwrap().len()
}

/// Would catch the callback storing a token under the query's `configurationId` when the
/// token is for another installation (today: a warning, then the victim's token, team and user
/// are overwritten with the attacker's): `400 installation_mismatch`, the victim's entry stays
/// byte for byte, no installation or drain is added.
#[test]
fn a_token_for_another_installation_is_refused_and_nothing_is_stored() {
    let (_runtime, sim_addr, sim) = start_simulator();
    let app = start_with(sim_addr, &sim, |_| {});
    let code = sim.issue_code("icfg_victim", Some("team_sim"));
    assert_eq!(callback(&app, &code, "icfg_victim", None).status, 302);
    let victim = installations(&app).get("icfg_victim").unwrap().unwrap();
    assert_eq!(drains(&app), 1);

    // A code from the attacker's own (personal) installation, sent with the victim's id.
    let code = sim.issue_code("icfg_attacker", None);
    let reply = callback(&app, &code, "icfg_victim", None);
    assert_eq!((reply.status, reply.error_code().as_str()), (400, "installation_mismatch"));
    assert_eq!(installations(&app).get("icfg_victim").unwrap().as_ref(), Some(&victim));
    assert_eq!(installations(&app).load().unwrap().len(), 1);
    assert_eq!(drains(&app), 1);
}

/// Would catch installs from any team being served when `allowed_teams` is set (today there is
/// no such list): another team's is `403 team_not_allowed` with nothing stored and no drain;
/// a listed team, and a personal installation whose user id is listed, are installed.
#[test]
fn a_team_not_allowed_is_refused() {
    let (_runtime, sim_addr, sim) = start_simulator();
    let user = sim.config().user_id;
    let allowed = vec!["team_ours".to_owned(), user.clone()];
    let app = start_with(sim_addr, &sim, |i| i.allowed_teams = allowed);

    for (configuration, team) in [("icfg_theirs", Some("team_theirs")), ("icfg_p", None)] {
        let code = sim.issue_code(configuration, team);
        let reply = callback(&app, &code, configuration, None);
        if team.is_none() {
            // Personal: allowed by the user id in the list.
            assert_eq!(reply.status, 302, "{reply:?}");
            continue;
        }
        assert_eq!((reply.status, reply.error_code().as_str()), (403, "team_not_allowed"));
        assert_eq!(installations(&app).get(configuration).unwrap(), None);
        assert_eq!(drains(&app), 0);
    }
    let code = sim.issue_code("icfg_ours", Some("team_ours"));
    assert_eq!(callback(&app, &code, "icfg_ours", None).status, 302);
    assert!(installations(&app).get("icfg_ours").unwrap().is_some());
    assert_eq!(drains(&app), 2);

    // With the user id out of the list, a personal installation is refused too.
    let app = start_with(sim_addr, &sim, |i| i.allowed_teams = vec!["team_ours".to_owned()]);
    let code = sim.issue_code("icfg_p2", None);
    let reply = callback(&app, &code, "icfg_p2", None);
    assert_eq!((reply.status, reply.error_code().as_str()), (403, "team_not_allowed"));
    assert_eq!(installations(&app).load().unwrap().len(), 0);
}

/// Would catch a callback's `state` going unchecked (today it is ignored): the install page
/// redirects to Vercel with a state and sets its nonce in a cookie, and the callback accepts
/// that state from that browser only; a tampered state, one older than ten minutes, one under
/// another key, or the right state from a browser without the cookie (someone who fetched a
/// state for themselves and hands it to a victim) is `403 invalid_state` before the code is
/// exchanged (the same code still works afterwards); with `require_state`, no state is
/// `403 missing_state`.
#[test]
fn a_forged_or_expired_state_is_refused() {
    let (_runtime, sim_addr, sim) = start_simulator();
    let secret = Secret::new(sim.config().client_secret);
    let app = start_with(sim_addr, &sim, |i| {
        i.slug = Some("spillway-test".to_owned());
        i.require_state = true;
    });
    let page = send(app.control_addr.unwrap(), "GET", "/vercel/integration/install", &[], b"");
    assert_eq!(page.status, 302, "{page:?}");
    let location = page.header("location").unwrap();
    let prefix = "https://vercel.com/integrations/spillway-test/new?state=";
    let state = location.strip_prefix(prefix).unwrap_or_else(|| panic!("{location}"));
    let set_cookie = page.header("set-cookie").expect("the install page sets the state cookie");
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    assert!(cookie.starts_with(&format!("{STATE_COOKIE}=")), "{cookie}");

    let code = sim.issue_code("icfg_s", None);
    let mut forged = state.to_owned();
    let last = if forged.ends_with('0') { "1" } else { "0" };
    forged.replace_range(forged.len() - 1.., last);
    let long_ago = SystemTime::now() - STATE_LIFETIME - Duration::from_secs(60);
    let expired = issue_state(&secret, long_ago).unwrap().0;
    let other = issue_state(&Secret::new("not-the-client-secret"), SystemTime::now()).unwrap().0;
    for bad in [forged.as_str(), &expired, &other, "garbage"] {
        let reply = callback_from(&app, &code, "icfg_s", Some(bad), Some(&cookie));
        assert_eq!((reply.status, reply.error_code().as_str()), (403, "invalid_state"), "{bad}");
    }
    let reply = callback(&app, &code, "icfg_s", Some(state));
    assert_eq!((reply.status, reply.error_code().as_str()), (403, "invalid_state"));
    let reply = callback(&app, &code, "icfg_s", None);
    assert_eq!((reply.status, reply.error_code().as_str()), (403, "missing_state"));
    assert_eq!(installations(&app).load().unwrap().len(), 0);
    assert_eq!(drains(&app), 0);

    // The code was never exchanged: it still installs, with the issued state, from the browser
    // that was given it.
    let reply = callback_from(&app, &code, "icfg_s", Some(state), Some(&cookie));
    assert_eq!(reply.status, 302, "{reply:?}");
    assert!(installations(&app).get("icfg_s").unwrap().is_some());
}

/// Would catch the guards' keys not reaching the control plane, or a `require_state` that
/// could never be met (no `slug`, so no install page to start from).
#[test]
fn the_guards_are_read_from_the_integration_section() {
    use spillway::config::{ConfigError, RawConfig};
    let base = "[integration]\nclient_id = \"oac_1\"\nclient_secret = \"s\"\n\
                redirect_url = \"https://x.example/cb\"\ncreate_drain = false\n";
    let raw = RawConfig::from_toml(&format!(
        "{base}slug = \"spillway-logs\"\nrequire_state = true\n\
         allowed_teams = [\"team_a\", \"user_b\"]\n"
    ))
    .unwrap();
    let integration = raw.validate(Vec::new()).unwrap().integration.unwrap();
    assert_eq!(integration.slug.as_deref(), Some("spillway-logs"));
    assert!(integration.require_state);
    assert_eq!(integration.allowed_teams, ["team_a", "user_b"]);

    let raw = RawConfig::from_toml(&format!(
        "{base}slug = \"a/b\"\nrequire_state = true\nallowed_teams = [\" \"]\n"
    ))
    .unwrap();
    let Err(ConfigError::Invalid(problems)) = raw.validate(Vec::new()) else { panic!("accepted") };
    let text = problems.join("\n");
    for needle in ["integration.slug", "integration.allowed_teams[0]"] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    let raw = RawConfig::from_toml(&format!("{base}require_state = true\n")).unwrap();
    let Err(ConfigError::Invalid(problems)) = raw.validate(Vec::new()) else { panic!("accepted") };
    assert!(problems.join("\n").contains("integration.require_state"), "{problems:?}");
}
