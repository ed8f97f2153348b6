//! A fleet behind one load balancer: two receivers (in-process, each with its own data
//! directory) and the `spillway` CLI sharing drains and installations through one PostgreSQL
//! (testkit's throwaway cluster; a run without PostgreSQL binaries fails unless
//! `SPILLWAY_SKIP_POSTGRES=1`). A drain created, deleted, installed or uninstalled through any
//! of them is served, or refused, by every replica within a second; the same install, removal
//! or creation arriving at both replicas at once leaves exactly one of each.

mod common;

use std::process::Stdio;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use common::fleet::{integration_drain, Fleet, Served};
use common::{lines_in, Reply, TestApp};

/// The longest a change may take to reach every replica.
const PROPAGATION: Duration = Duration::from_secs(1);
const HEADER: (&str, &str) = ("x-fleet-token", "fleet-header-value-7a1c9e");

/// How long after `since` each of `apps` answered `status` for `drain` (polled side by side,
/// so one replica's wait does not count against the other's); each must be within a second.
fn on_every_replica(
    drain: &Served,
    apps: &[&TestApp],
    status: u16,
    since: Instant,
) -> Vec<Duration> {
    let took: Vec<Duration> = std::thread::scope(|scope| {
        let polls: Vec<_> = apps
            .iter()
            .map(|app| scope.spawn(move || drain.changes_to(app.addr, status, since)))
            .collect();
        polls.into_iter().map(|p| p.join().unwrap()).collect()
    });
    eprintln!("{} answered {status} on every replica after {took:?}", drain.path);
    assert!(took.iter().all(|t| *t < PROPAGATION), "{took:?} for {status} on {}", drain.path);
    took
}

/// The drain a `drains create --json` view describes, with the secret Vercel signs it with.
fn served(fleet: &Fleet, view: &serde_json::Value, url: &str) -> Served {
    let id = view["id"].as_str().unwrap();
    let endpoint = view["endpoint"].as_str().unwrap();
    let key = endpoint.strip_prefix(&format!("{url}/")).unwrap_or_else(|| panic!("{view}"));
    let secret = fleet.sim.drain_signing_secret(id).expect("the drain exists on Vercel");
    Served::new(key, &secret)
}

/// `outcome` of a webhook's `200` answer: what the removal found.
fn removal(reply: &Reply) -> (bool, u64) {
    assert_eq!(reply.status, 200, "{reply:?}");
    let outcome = reply.json();
    assert_eq!(outcome["outcome"], "removed", "{outcome}");
    (outcome["known"].as_bool().unwrap(), outcome["drains"].as_u64().unwrap())
}

#[test]
fn a_drain_created_deleted_installed_or_removed_anywhere_reaches_every_replica_in_a_second() {
    let Some(fleet) = Fleet::start() else { return };
    let (a, b) = (fleet.replica(), fleet.replica());
    let nowhere = Served::new(&"0".repeat(32), "no-such-secret");
    for app in [&a, &b] {
        let reply = nowhere.deliver(app.addr);
        assert_eq!((reply.status, reply.error_code().as_str()), (404, "unknown_drain"));
    }

    // `drains create`: served by both, and what they stored is in each one's own files.
    let url = format!("http://{}/vercel/logs", a.addr);
    let header = format!("{}: {}", HEADER.0, HEADER.1);
    let (view, created) = fleet.create_drain(&url, &["--header", &header]);
    let drain = served(&fleet, &view, &url).with_header(HEADER.0, HEADER.1);
    on_every_replica(&drain, &[&a, &b], 200, created.ended);
    for app in [&a, &b] {
        let stored = lines_in(&app.dir("logs"));
        assert!(stored.iter().any(|l| l.contains("API request processed")), "{stored:?}");
    }
    fleet.assert_sealed(&[&drain.secret, HEADER.1]);

    // `drains delete`: refused by both.
    let deleted = fleet.cli(&["drains", "delete", view["id"].as_str().unwrap()]);
    assert_eq!(deleted.code, 0, "{deleted:?}");
    on_every_replica(&drain, &[&a, &b], 404, deleted.ended);

    // Installed through A: the installation's drain is served by both.
    let code = fleet.sim.issue_code("icfg_fleet", Some("team_fleet"));
    let installed = fleet.callback(&a, &code, "icfg_fleet");
    assert_eq!(installed.status, 302, "{installed:?}");
    let store = fleet.store();
    let drain = integration_drain(&fleet, &store, "icfg_fleet");
    on_every_replica(&drain, &[&a, &b], 200, Instant::now());
    let installation = fleet.runtime.block_on(store.installation("icfg_fleet")).unwrap();
    let token = installation.expect("installation stored").access_token;
    fleet.assert_sealed(&[token.expose(), &fleet.sim.config().client_secret]);

    // Uninstalled through B: refused by both, nothing left in the database.
    let removed = Fleet::webhook(&b, &fleet.removed_event("icfg_fleet"));
    let since = Instant::now();
    assert_eq!(removal(&removed), (true, 1));
    on_every_replica(&drain, &[&a, &b], 404, since);
    assert_eq!(fleet.count("spillway_installations"), 0);
    assert_eq!(fleet.count("spillway_drains"), 0);
}

#[test]
fn the_same_install_removal_or_creation_at_once_on_two_replicas_happens_once() {
    let Some(fleet) = Fleet::start() else { return };
    let (a, b) = (fleet.replica(), fleet.replica());
    one_install_from_one_code(&fleet, &a, &b);
    one_removal_from_concurrent_and_repeated_webhooks(&fleet, &a, &b);
    two_drains_from_two_concurrent_creates(&fleet, &a, &b);
}

/// The callback with one code, sent to A and B at once: Vercel exchanges a code once, so one
/// replica installs and the other refuses the code.
fn one_install_from_one_code(fleet: &Fleet, a: &TestApp, b: &TestApp) {
    let code = fleet.sim.issue_code("icfg_race", None);
    let start = Barrier::new(2);
    let mut replies: Vec<Reply> = std::thread::scope(|scope| {
        let calls: Vec<_> = [a, b]
            .into_iter()
            .map(|app| {
                let (start, code) = (&start, &code);
                scope.spawn(move || {
                    start.wait();
                    fleet.callback(app, code, "icfg_race")
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    replies.sort_by_key(|r| r.status);
    assert_eq!((replies[0].status, replies[1].status), (302, 400), "{replies:?}");
    assert_eq!(replies[1].error_code(), "invalid_code");
    assert_eq!(fleet.count("spillway_installations"), 1);
    assert_eq!(fleet.count("spillway_drains"), 1);
    let drain = integration_drain(fleet, &fleet.store(), "icfg_race");
    on_every_replica(&drain, &[a, b], 200, Instant::now());
}

/// The removal delivered to A and B at once, then to each again: one of them removes, every
/// other answer is `200` with nothing found.
fn one_removal_from_concurrent_and_repeated_webhooks(fleet: &Fleet, a: &TestApp, b: &TestApp) {
    let drain = integration_drain(fleet, &fleet.store(), "icfg_race");
    let event = fleet.removed_event("icfg_race");
    let start = Barrier::new(2);
    let mut outcomes: Vec<(bool, u64)> = std::thread::scope(|scope| {
        let calls: Vec<_> = [a, b]
            .into_iter()
            .map(|app| {
                let (start, event) = (&start, &event);
                scope.spawn(move || {
                    start.wait();
                    removal(&Fleet::webhook(app, event))
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let since = Instant::now();
    outcomes.sort();
    assert_eq!(outcomes, [(false, 0), (true, 1)]);
    for app in [a, b] {
        assert_eq!(removal(&Fleet::webhook(app, &event)), (false, 0));
    }
    assert_eq!(fleet.count("spillway_installations"), 0);
    assert_eq!(fleet.count("spillway_drains"), 0);
    on_every_replica(&drain, &[a, b], 404, since);
}

/// Two `drains create` at once: two drains, two path keys, both served by both replicas.
fn two_drains_from_two_concurrent_creates(fleet: &Fleet, a: &TestApp, b: &TestApp) {
    let url = format!("http://{}/vercel/logs", b.addr);
    let args = ["drains", "create", "--url", &url, "--json"];
    let children: Vec<_> = (0..2)
        .map(|_| {
            let mut command = fleet.cli_command(&args);
            command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    let runs: Vec<_> = children
        .into_iter()
        .map(|c| fleet.finished(&args, c.wait_with_output().unwrap()))
        .collect();
    let ended = runs.iter().map(|r| r.ended).max().unwrap();
    for run in &runs {
        assert_eq!(run.code, 0, "{run:?}");
    }
    let drains: Vec<Served> = runs.iter().map(|r| served(fleet, &r.json(), &url)).collect();
    assert_ne!(drains[0].path, drains[1].path);
    assert_ne!(runs[0].json()["id"], runs[1].json()["id"]);
    assert_eq!(fleet.count("spillway_drains"), 2);
    for drain in &drains {
        on_every_replica(drain, &[a, b], 200, ended);
    }
}
