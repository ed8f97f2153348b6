//! A local, in-memory simulator of the parts of Vercel's REST API that Spillway's control plane
//! speaks (docs/vercel/PROTOCOL.md §4): drains, endpoint verification, the OAuth code exchange, integration
//! configurations, project environment variables, team scoping and rate limits.
//!
//! It is a real HTTP/1.1 server (hyper) so that the client is tested over real sockets, and it
//! has test-support methods to drive what a test cannot reach through the API: minting one-time
//! OAuth codes, advancing the clock, disabling an installation, forcing `429`s, sending signed
//! webhooks, and counting requests.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let (addr, sim) = vercel_sim::Simulator::start().await?;
//! let code = sim.issue_code("icfg_1", None);
//! // point the client at format!("http://{addr}") and exchange `code` ...
//! # let _ = (addr, code); Ok(())
//! # }
//! ```
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod api;
mod deliver;
mod samples;
mod state;
mod wire;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use deliver::{sign, DeliveryError};

use crate::state::{Code, Configuration, State};

/// The fixed identities of a simulator. Every field is public so tests can pick their own.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// A personal token: no team, so requests must not carry `teamId`.
    pub user_token: String,
    /// A token scoped to `team_id`: every request must carry `?teamId=<team_id>`.
    pub team_token: String,
    /// The user both tokens belong to.
    pub user_id: String,
    /// The team of `team_token` (`team_…`).
    pub team_id: String,
    /// The integration's OAuth client id.
    pub client_id: String,
    /// The integration's OAuth client secret; also signs webhooks and integration drains.
    pub client_secret: String,
    /// What `GET /v1/verify-endpoint` answers.
    pub verification_code: String,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            user_token: "sim_user_token".to_owned(),
            team_token: "sim_team_token".to_owned(),
            user_id: "user_sim".to_owned(),
            team_id: "team_sim".to_owned(),
            client_id: "oac_sim".to_owned(),
            client_secret: "sim_client_secret".to_owned(),
            verification_code: "sim_verification_code".to_owned(),
        }
    }
}

/// What a forced `429` tells the client about when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitHint {
    /// `Retry-After: <seconds>` (and the usual rate-limit headers).
    RetryAfter(u64),
    /// No `Retry-After`; `X-RateLimit-Reset: <epoch seconds>`.
    ResetAt(u64),
    /// Neither hint: `X-RateLimit-Reset` is the current window's end as usual.
    None,
}

/// A running simulator. Dropping it stops the server and closes its connections.
#[derive(Debug)]
pub struct Simulator {
    shared: Arc<Mutex<State>>,
    server: JoinHandle<()>,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Simulator {
    /// Starts a simulator with the default identities on `127.0.0.1:0`.
    pub async fn start() -> std::io::Result<(SocketAddr, Simulator)> {
        Simulator::start_with(SimConfig::default(), "127.0.0.1:0".parse().expect("valid")).await
    }

    /// Starts a simulator with `config`, listening on `addr`.
    pub async fn start_with(
        config: SimConfig,
        addr: SocketAddr,
    ) -> std::io::Result<(SocketAddr, Simulator)> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let shared = Arc::new(Mutex::new(State::new(config)));
        let server = tokio::spawn(serve(listener, Arc::clone(&shared)));
        Ok((local, Simulator { shared, server }))
    }

    /// Runs until the server task ends (it does not end by itself; for the binary).
    pub async fn wait(mut self) {
        let _ = (&mut self.server).await;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared)
    }

    /// The identities this simulator was started with.
    pub fn config(&self) -> SimConfig {
        self.state().config.clone()
    }

    /// Mints a one-time OAuth code for installation `configuration_id` (created on first use),
    /// valid for 30 minutes of simulated time. `team_id` makes it a team installation.
    pub fn issue_code(&self, configuration_id: &str, team_id: Option<&str>) -> String {
        let mut state = self.state();
        let now = state.now_ms();
        let user_id = state.config.user_id.clone();
        state.configurations.entry(configuration_id.to_owned()).or_insert_with(|| Configuration {
            id: configuration_id.to_owned(),
            user_id,
            team_id: team_id.map(str::to_owned),
            created_at_ms: now,
            disabled_at_ms: None,
            projects: None,
        });
        let code = state.id("code");
        state.codes.insert(
            code.clone(),
            Code {
                configuration_id: configuration_id.to_owned(),
                team_id: team_id.map(str::to_owned),
                issued_at_ms: now,
                used: false,
            },
        );
        code
    }

    /// Moves the simulated clock forward (expires codes, moves rate-limit windows).
    pub fn advance_clock(&self, by: Duration) {
        self.state().clock_offset += by;
    }

    /// Marks installation `configuration_id` disabled: every call with one of its tokens then
    /// answers `403 integration_configuration_disabled`. Returns whether it exists.
    pub fn disable_configuration(&self, configuration_id: &str) -> bool {
        let mut state = self.state();
        let now = state.now_ms();
        match state.configurations.get_mut(configuration_id) {
            Some(configuration) => {
                configuration.disabled_at_ms = Some(now);
                true
            }
            None => false,
        }
    }

    /// Gives installation `configuration_id` access to `projects` only (`projectSelection:
    /// "selected"`), as a user choosing projects on install does. Returns whether it exists.
    pub fn select_projects(&self, configuration_id: &str, projects: &[&str]) -> bool {
        let mut state = self.state();
        match state.configurations.get_mut(configuration_id) {
            Some(configuration) => {
                configuration.projects = Some(projects.iter().map(|p| (*p).to_owned()).collect());
                true
            }
            None => false,
        }
    }

    /// The environment variable `key` of `owner`'s (a team's or the user's) `project`, as it
    /// was sent (value in clear), if set.
    pub fn env_var(&self, owner: &str, project: &str, key: &str) -> Option<serde_json::Value> {
        self.state().env.get(owner)?.get(project)?.get(key).cloned()
    }

    /// Makes every read of an installation's configuration answer `500` (or not again).
    pub fn fail_configuration_reads(&self, fail: bool) {
        self.state().configuration_reads_fail = fail;
    }

    /// Makes the next `n` requests (whatever they are) answer `429 rate_limited` with `hint`.
    pub fn fail_next_requests(&self, n: u32, hint: RateLimitHint) {
        let mut state = self.state();
        state.forced_429 = n;
        state.forced_hint = hint;
    }

    /// How many requests the simulator has received, `429`s included.
    pub fn request_count(&self) -> u64 {
        self.state().requests
    }

    /// The secret a drain's deliveries are signed with (its own, or the integration's client
    /// secret for a drain an integration created), if the drain exists.
    pub fn drain_signing_secret(&self, drain_id: &str) -> Option<String> {
        let state = self.state();
        let drain = state.drains.get(drain_id)?;
        match &drain.json["delivery"]["secret"] {
            serde_json::Value::String(secret) => Some(secret.clone()),
            _ => Some(state.config.client_secret.clone()),
        }
    }

    /// The headers a drain's deliveries carry besides the signature (`delivery.headers`, values
    /// in clear), if the drain exists.
    pub fn drain_delivery_headers(&self, drain_id: &str) -> Option<serde_json::Value> {
        Some(self.state().drains.get(drain_id)?.json["delivery"]["headers"].clone())
    }

    /// A drain as the API reports it (the body a client's create or update left), if it exists.
    pub fn drain(&self, drain_id: &str) -> Option<serde_json::Value> {
        Some(self.state().drains.get(drain_id)?.json.clone())
    }

    /// Sets a drain's `status` as Vercel would (`errored` after too many failed deliveries);
    /// `errored` also sets `firstErrorTimestamp`. Returns whether the drain exists.
    pub fn set_drain_status(&self, drain_id: &str, status: &str) -> bool {
        let mut state = self.state();
        let now = state.now_ms();
        let Some(drain) = state.drains.get_mut(drain_id) else { return false };
        drain.json["status"] = serde_json::json!(status);
        if status == "errored" {
            drain.json["firstErrorTimestamp"] = serde_json::json!(now);
        }
        true
    }

    /// Makes one delivery of drain `drain_id`, as Vercel does with its traffic: a sample batch
    /// of the drain's type to its endpoint, in its encoding and compression, with its headers,
    /// signed with its signing secret. Returns the endpoint's status.
    pub async fn deliver_sample(&self, drain_id: &str) -> Result<u16, DeliveryError> {
        let secret = self.drain_signing_secret(drain_id).ok_or(DeliveryError::NoSuchDrain)?;
        let prepared = {
            let state = self.state();
            let drain = &state.drains.get(drain_id).ok_or(DeliveryError::NoSuchDrain)?.json;
            let schema = drain["schemas"].as_object().and_then(|s| s.keys().next().cloned());
            let schema = schema.unwrap_or_else(|| "log".to_owned());
            samples::prepare(&schema, &drain["delivery"], Some(&secret), state.now_ms())
        };
        deliver::post(&prepared.endpoint, &prepared.headers, prepared.body)
            .await
            .map(|(status, _)| status)
    }

    /// Sends an integration webhook (`integration-configuration.removed`,
    /// `integration-configuration.scope-change-confirmed`, …) to `url`, signed with the
    /// integration client secret. Returns the receiver's status.
    pub async fn send_webhook(
        &self,
        url: &str,
        event_type: &str,
        payload: serde_json::Value,
    ) -> Result<u16, DeliveryError> {
        let (body, secret) = {
            let mut state = self.state();
            let body = serde_json::json!({
                "id": state.id("evt"),
                "type": event_type,
                "createdAt": state.now_ms(),
                "payload": payload,
                "region": null,
            });
            (body.to_string().into_bytes(), state.config.client_secret.clone())
        };
        let headers = vec![("x-vercel-signature".to_owned(), sign(secret.as_bytes(), &body))];
        deliver::post(url, &headers, body).await.map(|(status, _)| status)
    }
}

fn lock(shared: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock (a bug in a handler) must not take every later test
    // request down with it; the state is still consistent field by field.
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn serve(socket: TcpListener, shared: Arc<Mutex<State>>) {
    // Runs until the task is aborted (the simulator dropped); dropping the loop closes every
    // connection it watches.
    let handler = move |request| {
        let shared = Arc::clone(&shared);
        async move { api::handle(&shared, request).await }
    };
    listener::serve(socket, listener::Limits::default(), handler, std::future::pending()).await;
}
