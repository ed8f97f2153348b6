//! Test support for a fleet on one PostgreSQL: a throwaway cluster (testkit), a Vercel
//! simulator, receivers whose drains and installations live in that database with the
//! integration pointed at the simulator, the `spillway` binary run against the same database,
//! and timed waits for a drain to be served (or not) on every replica.

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use control::postgres::{PgConfig, PgStore};
use control::seal::KeyRing;
use control::Secret;
use serde_json::{json, Value};
use testkit::Postgres;
use vercel_sim::Simulator;

use super::{fixture, send, start_simulator, Reply, Run, TestApp};

/// The store key (32 bytes, base64) every replica and the CLI seal with.
pub const STORE_KEY: &str = "c3BpbGx3YXktZmxlZXQtdGVzdC1rZXktMzItYnl0ZXM=";
/// The public URL of the drain path, as the load balancer in front of the fleet exposes it.
const WEBHOOK_PATH: &str = "/vercel/integration/webhook";

/// One database, one simulator, and what the tests need to reach them.
pub struct Fleet {
    pub pg: Postgres,
    pub db_url: String,
    pub runtime: tokio::runtime::Runtime,
    pub sim_addr: SocketAddr,
    pub sim: Simulator,
    /// The CLI's data directory (unused with a database, but never the developer's).
    cli_dir: tempfile::TempDir,
}

impl Fleet {
    /// A fresh cluster and simulator; `None` (printed) when the run opts out of PostgreSQL.
    pub fn start() -> Option<Fleet> {
        let pg = Postgres::start()?;
        let db_url = pg.create_database("fleet");
        let (runtime, sim_addr, sim) = start_simulator();
        Some(Fleet { pg, db_url, runtime, sim_addr, sim, cli_dir: tempfile::tempdir().unwrap() })
    }

    pub fn api_url(&self) -> String {
        format!("http://{}", self.sim_addr)
    }

    /// The store settings of every replica: re-read in full every second, reconnects backing
    /// off to one second at most.
    pub fn store_config(&self) -> PgConfig {
        let keys = KeyRing::from_base64("key", STORE_KEY, "previous", "").unwrap();
        let mut config = PgConfig::new(Secret::new(self.db_url.clone()), keys);
        config.resync_interval = Duration::from_secs(1);
        config.max_backoff = Duration::from_secs(1);
        config
    }

    /// A store of the test's own, on the fleet's database.
    pub fn store(&self) -> PgStore {
        self.runtime.block_on(PgStore::connect(self.store_config())).unwrap()
    }

    /// A replica: its own data directory and listeners, the fleet's database, the integration.
    pub fn replica(&self) -> TestApp {
        let store = self.store_config();
        let sim = self.sim.config();
        let api_url = self.api_url();
        TestApp::start(move |c| {
            c.store = Some(store);
            c.integration = Some(super::sim_integration(sim, api_url));
        })
    }

    /// `spillway <args>` with the fleet's database, key, token and API; checks that neither
    /// the database password nor a Vercel credential shows in its output.
    pub fn cli(&self, args: &[&str]) -> Run {
        let output = self.cli_command(args).output().unwrap();
        self.finished(args, output)
    }

    /// `spillway <args>`, started; [`Fleet::finished`] reads what it said.
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let sim = self.sim.config();
        let mut command = Command::new(env!("CARGO_BIN_EXE_spillway"));
        command
            .args(args)
            .env_remove("RUST_LOG")
            .env("SPILLWAY_DATABASE_URL", &self.db_url)
            .env("SPILLWAY_STORE_KEY", STORE_KEY)
            .env("SPILLWAY_VERCEL_TOKEN", sim.user_token)
            .env("SPILLWAY_VERCEL_API_URL", self.api_url())
            .env("SPILLWAY_DATA_DIR", self.cli_dir.path());
        command
    }

    pub fn finished(&self, args: &[&str], output: Output) -> Run {
        let run = Run::of(output);
        let sim = self.sim.config();
        for secret in [self.pg.password(), &sim.user_token, &sim.client_secret, STORE_KEY] {
            let said = format!("{}{}", run.stdout, run.stderr);
            assert!(!said.contains(secret), "a secret in the output of {args:?}: {run:?}");
        }
        run
    }

    /// `drains create` pointing at `url`, with extra `args`; returns the drain's JSON view.
    pub fn create_drain(&self, url: &str, args: &[&str]) -> (Value, Run) {
        let mut all = vec!["drains", "create", "--url", url, "--json"];
        all.extend_from_slice(args);
        let run = self.cli(&all);
        assert_eq!(run.code, 0, "{run:?}");
        (run.json(), run)
    }

    /// The install redirect for `code` of installation `configuration`, sent to `app`.
    pub fn callback(&self, app: &TestApp, code: &str, configuration: &str) -> Reply {
        let code: String = url::form_urlencoded::byte_serialize(code.as_bytes()).collect();
        let path =
            format!("/vercel/integration/callback?code={code}&configurationId={configuration}");
        send(app.control_addr.unwrap(), "GET", &path, &[], b"")
    }

    /// `integration-configuration.removed` for `configuration`, signed as Vercel signs it;
    /// the same bytes may be sent to several replicas, as a redelivery would be.
    pub fn removed_event(&self, configuration: &str) -> (Vec<u8>, String) {
        let body = json!({
            "id": format!("evt_removed_{configuration}"),
            "type": "integration-configuration.removed",
            "createdAt": 1,
            "payload": {"configuration": {"id": configuration, "projects": []}},
        })
        .to_string()
        .into_bytes();
        let signature = listener::SigningKey::new(self.sim.config().client_secret).sign(&body);
        (body, signature)
    }

    /// Posts a signed webhook event to `app`'s control plane.
    pub fn webhook(app: &TestApp, event: &(Vec<u8>, String)) -> Reply {
        let (body, signature) = event;
        let headers = [("x-vercel-signature", signature.as_str())];
        send(app.control_addr.unwrap(), "POST", WEBHOOK_PATH, &headers, body)
    }

    /// `SELECT t::text` of every row of `table`, one per line.
    pub fn dump(&self, table: &str) -> String {
        let sql = format!("SELECT t::text FROM {table} t");
        self.pg.psql(&self.db_url, &sql).unwrap()
    }

    /// How many rows `table` holds.
    pub fn count(&self, table: &str) -> usize {
        let sql = format!("SELECT count(*) FROM {table}");
        self.pg.psql(&self.db_url, &sql).unwrap().parse().unwrap()
    }

    /// Asserts that no row of the store's tables holds any of `secrets`, as text or as the
    /// hex a `bytea` column is dumped in.
    pub fn assert_sealed(&self, secrets: &[&str]) {
        let dump = [self.dump("spillway_drains"), self.dump("spillway_installations")].join("\n");
        assert!(!dump.is_empty());
        for secret in secrets {
            let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
            assert!(!dump.contains(secret), "{secret:?} in plaintext in\n{dump}");
            assert!(!dump.contains(&hex), "{secret:?} in plaintext (hex) in\n{dump}");
        }
    }
}

/// A drain as Vercel delivers to it: its path on a replica, its secret and required headers.
#[derive(Debug, Clone)]
pub struct Served {
    pub path: String,
    pub secret: String,
    pub headers: Vec<(String, String)>,
}

impl Served {
    pub fn new(path_key: &str, secret: &str) -> Served {
        Served {
            path: format!("/vercel/logs/{path_key}"),
            secret: secret.to_owned(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Served {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// One signed delivery of `body` to `addr`, on a fresh connection.
    pub fn deliver_body(&self, addr: SocketAddr, body: &[u8]) -> Reply {
        let signature = listener::SigningKey::new(self.secret.as_bytes()).sign(body);
        let mut headers = vec![("x-vercel-signature", signature.as_str())];
        headers.extend(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        send(addr, "POST", &self.path, &headers, body)
    }

    /// `logs.ndjson`, delivered once to `addr`.
    pub fn deliver(&self, addr: SocketAddr) -> Reply {
        self.deliver_body(addr, &fixture("logs.ndjson"))
    }

    /// Delivers to `addr` until it is answered `status` (or 5 s pass); every earlier answer
    /// must be the other state: `404 unknown_drain` while waiting for `200`, `200` while
    /// waiting for `404`. Returns how long after `since` the change was seen.
    pub fn changes_to(&self, addr: SocketAddr, status: u16, since: Instant) -> Duration {
        let before = if status == 200 { 404 } else { 200 };
        let last = testkit::poll_until(
            Duration::from_secs(5),
            || {
                let reply = self.deliver(addr);
                let seen = Instant::now();
                if reply.status == before && before == 404 {
                    assert_eq!(reply.error_code(), "unknown_drain", "{reply:?}");
                }
                assert!([before, status].contains(&reply.status), "{reply:?}");
                (reply, seen)
            },
            |(reply, _)| reply.status == status,
        );
        assert_eq!(last.0.status, status, "{} on {addr}: {:?}", self.path, last.0);
        if status == 404 {
            assert_eq!(last.0.error_code(), "unknown_drain");
        }
        last.1 - since
    }
}

/// The drain registered in the store for installation `configuration`, as the fleet serves it.
pub fn integration_drain(fleet: &Fleet, store: &PgStore, configuration: &str) -> Served {
    let entry = fleet
        .runtime
        .block_on(store.drain_of_configuration(configuration, record::DataType::Logs))
        .unwrap();
    let entry = entry.unwrap_or_else(|| panic!("no drain stored for {configuration}"));
    assert!(entry.integration_secret, "the simulator signs integration drains itself");
    Served::new(&entry.path_key, &fleet.sim.config().client_secret)
}
