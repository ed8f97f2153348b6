//! The simulator's in-memory world: tokens, OAuth codes, integration configurations, drains,
//! legacy log drains, project environment variables, the clock and the rate limiter.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{RateLimitHint, SimConfig};

/// How long an OAuth code may be exchanged after it was issued.
pub(crate) const CODE_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// `X-RateLimit-Limit`: requests per window.
pub(crate) const RATE_LIMIT: u64 = 1000;
/// The rate-limit window.
pub(crate) const RATE_WINDOW_SECS: u64 = 60;

/// Who a token speaks for.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    pub(crate) user_id: String,
    pub(crate) team_id: Option<String>,
    /// Set for tokens minted by the OAuth exchange of an integration installation.
    pub(crate) configuration_id: Option<String>,
}

impl Principal {
    /// The owner of what this token creates: the team if any, else the user.
    pub(crate) fn owner(&self) -> &str {
        self.team_id.as_deref().unwrap_or(&self.user_id)
    }
}

#[derive(Debug)]
pub(crate) struct Code {
    pub(crate) configuration_id: String,
    pub(crate) team_id: Option<String>,
    pub(crate) issued_at_ms: i64,
    pub(crate) used: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Configuration {
    pub(crate) id: String,
    pub(crate) user_id: String,
    pub(crate) team_id: Option<String>,
    pub(crate) created_at_ms: i64,
    pub(crate) disabled_at_ms: Option<i64>,
    /// The projects the user gave the installation access to; `None`: all of them.
    pub(crate) projects: Option<Vec<String>>,
}

/// A stored drain, kept as the JSON Vercel would answer, plus the secret it signs with.
#[derive(Debug, Clone)]
pub(crate) struct Drain {
    pub(crate) owner: String,
    pub(crate) created_at_ms: i64,
    pub(crate) json: serde_json::Value,
}

/// The simulator's state; one mutex guards it all (the simulator is for tests, not speed).
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: SimConfig,
    pub(crate) tokens: HashMap<String, Principal>,
    pub(crate) codes: HashMap<String, Code>,
    pub(crate) configurations: HashMap<String, Configuration>,
    pub(crate) drains: HashMap<String, Drain>,
    /// Drains of the legacy log-drain API (`ld_…`), kept apart as Vercel keeps them.
    pub(crate) log_drains: HashMap<String, Drain>,
    /// `owner -> project -> key -> variable`.
    pub(crate) env: HashMap<String, HashMap<String, BTreeMap<String, serde_json::Value>>>,
    pub(crate) clock_offset: Duration,
    pub(crate) requests: u64,
    pub(crate) forced_429: u32,
    /// Reads of an installation's configuration answer `500`.
    pub(crate) configuration_reads_fail: bool,
    pub(crate) forced_hint: RateLimitHint,
    pub(crate) window_start_secs: u64,
    pub(crate) window_requests: u64,
    last_created_ms: i64,
    next_id: u64,
}

impl State {
    pub(crate) fn new(config: SimConfig) -> State {
        let mut tokens = HashMap::new();
        tokens.insert(
            config.user_token.clone(),
            Principal { user_id: config.user_id.clone(), team_id: None, configuration_id: None },
        );
        tokens.insert(
            config.team_token.clone(),
            Principal {
                user_id: config.user_id.clone(),
                team_id: Some(config.team_id.clone()),
                configuration_id: None,
            },
        );
        State {
            config,
            tokens,
            codes: HashMap::new(),
            configurations: HashMap::new(),
            drains: HashMap::new(),
            log_drains: HashMap::new(),
            env: HashMap::new(),
            clock_offset: Duration::ZERO,
            requests: 0,
            forced_429: 0,
            configuration_reads_fail: false,
            forced_hint: RateLimitHint::None,
            window_start_secs: 0,
            window_requests: 0,
            last_created_ms: 0,
            next_id: 0,
        }
    }

    /// The simulated wall clock: real time plus what tests advanced it by.
    pub(crate) fn now(&self) -> SystemTime {
        SystemTime::now() + self.clock_offset
    }

    pub(crate) fn now_ms(&self) -> i64 {
        millis(self.now())
    }

    /// A creation timestamp strictly after the previous one, so that `until=<createdAt>`
    /// pagination never skips or repeats a drain created in the same millisecond.
    pub(crate) fn creation_ms(&mut self) -> i64 {
        self.last_created_ms = self.now_ms().max(self.last_created_ms + 1);
        self.last_created_ms
    }

    /// A fresh id such as `drn_00000000000000000001a2b3`: unique within this simulator.
    pub(crate) fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        let salt = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        format!("{prefix}_{:08x}{:012x}", salt, self.next_id)
    }

    /// Counts a request in the rate-limit window and returns `(limit, remaining, reset)`.
    pub(crate) fn count_request(&mut self) -> (u64, u64, u64) {
        self.requests += 1;
        let now_secs = self.now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if now_secs >= self.window_start_secs + RATE_WINDOW_SECS {
            self.window_start_secs = now_secs;
            self.window_requests = 0;
        }
        self.window_requests += 1;
        let remaining = RATE_LIMIT.saturating_sub(self.window_requests);
        (RATE_LIMIT, remaining, self.window_start_secs + RATE_WINDOW_SECS)
    }
}

pub(crate) fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
