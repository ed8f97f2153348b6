//! Request handling: rate limiting, authentication and team scoping, then routing to one
//! function per endpoint of docs/vercel/PROTOCOL.md §4, grouped by endpoint family.

mod drains;
mod env;
mod integrations;
mod legacy;
mod oauth;
mod schema;

use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{json, Value};

use crate::deliver;
use crate::state::{Principal, State};
use crate::wire::{self, error, get, parse_pairs, Refusal};
use crate::{lock, RateLimitHint};

/// Largest request body the simulator reads.
const MAX_BODY_BYTES: usize = 1 << 20;

type Reply = Response<Full<Bytes>>;

/// What a handler decided: an answer now, or a test delivery to make once the lock is released.
enum Outcome {
    Reply(Reply),
    TestDelivery { endpoint: String, headers: Vec<(String, String)>, body: Vec<u8> },
}

impl From<Reply> for Outcome {
    fn from(reply: Reply) -> Outcome {
        Outcome::Reply(reply)
    }
}

impl From<Refusal> for Outcome {
    fn from(refusal: Refusal) -> Outcome {
        Outcome::Reply(refusal.into())
    }
}

/// The parts of a request the handlers look at.
struct Call {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
}

pub(crate) async fn handle(
    shared: &Mutex<State>,
    request: Request<hyper::body::Incoming>,
) -> Reply {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "bad_request",
                "body unreadable or too big",
            )
        }
    };
    let call = Call {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parse_pairs(parts.uri.query().unwrap_or("")),
        headers: parts.headers,
        body,
    };
    let (outcome, limits) = {
        let mut state = lock(shared);
        let limits = state.count_request();
        let outcome = if state.forced_429 > 0 {
            state.forced_429 -= 1;
            Outcome::Reply(rate_limited(&state, limits.2))
        } else {
            route(&mut state, &call)
        };
        (outcome, limits)
    };
    let mut reply = match outcome {
        Outcome::Reply(reply) => reply,
        Outcome::TestDelivery { endpoint, headers, body } => {
            let result = deliver::post(&endpoint, &headers, body).await;
            drains::test_result(&endpoint, result)
        }
    };
    let headers = reply.headers_mut();
    let (limit, remaining, reset) = limits;
    headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
    if !headers.contains_key("x-ratelimit-remaining") {
        headers.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    }
    if !headers.contains_key("x-ratelimit-reset") {
        headers.insert("x-ratelimit-reset", HeaderValue::from(reset));
    }
    reply
}

fn rate_limited(state: &State, window_reset: u64) -> Reply {
    let now_secs = state.now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let reset = match state.forced_hint {
        RateLimitHint::ResetAt(at) => at,
        RateLimitHint::RetryAfter(secs) => now_secs + secs,
        RateLimitHint::None => window_reset,
    };
    let mut reply = wire::json(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({"error": {
            "code": "rate_limited",
            "message": "Rate limit exceeded",
            "limit": {"remaining": 0, "reset": reset, "resetMs": reset * 1000, "total": crate::state::RATE_LIMIT},
        }}),
    );
    let headers = reply.headers_mut();
    headers.insert("x-ratelimit-remaining", HeaderValue::from(0u64));
    headers.insert("x-ratelimit-reset", HeaderValue::from(reset));
    if let RateLimitHint::RetryAfter(secs) = state.forced_hint {
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    reply
}

fn route(state: &mut State, call: &Call) -> Outcome {
    let segments: Vec<&str> = call.path.trim_matches('/').split('/').collect();
    if call.method == Method::POST && segments == ["v2", "oauth", "access_token"] {
        return oauth::exchange_code(state, call).into();
    }
    let principal = match authenticate(state, call) {
        Ok(principal) => principal,
        Err(reply) => return reply.into(),
    };
    let body = || parse_json(&call.body);
    match (&call.method, segments.as_slice()) {
        (&Method::GET, ["v1", "verify-endpoint"]) => drains::verify_endpoint(state).into(),
        (&Method::GET, ["v1", "drains"]) => {
            drains::list_drains(state, &principal, &call.query).into()
        }
        (&Method::POST, ["v1", "drains"]) => match body() {
            Ok(body) => drains::create_drain(state, &principal, &body).into(),
            Err(reply) => reply.into(),
        },
        (&Method::POST, ["v1", "drains", "test"]) => match body() {
            Ok(body) => drains::test_drain(state, &principal, &body),
            Err(reply) => reply.into(),
        },
        (&Method::GET, ["v1", "drains", id]) => drains::get_drain(state, &principal, id).into(),
        (&Method::PATCH, ["v1", "drains", id]) => match body() {
            Ok(body) => drains::update_drain(state, &principal, id, &body).into(),
            Err(reply) => reply.into(),
        },
        (&Method::DELETE, ["v1", "drains", id]) => {
            drains::delete_drain(state, &principal, id).into()
        }
        (&Method::POST, ["v2", "integrations", "log-drains"]) => match body() {
            Ok(body) => legacy::create_log_drain(state, &principal, &body).into(),
            Err(reply) => reply.into(),
        },
        (&Method::GET, ["v2", "integrations", "log-drains"]) => {
            legacy::list_log_drains(state, &principal).into()
        }
        (&Method::DELETE, ["v1", "integrations", "log-drains", id]) => {
            legacy::delete_log_drain(state, &principal, id).into()
        }
        (&Method::GET, ["v1", "integrations", "configuration", id]) => {
            integrations::get_configuration(state, &principal, id).into()
        }
        (&Method::DELETE, ["v1", "integrations", "configuration", id]) => {
            integrations::delete_configuration(state, &principal, id).into()
        }
        (&Method::POST, ["v10", "projects", project, "env"]) => match body() {
            Ok(body) => env::upsert_env(state, &principal, project, &call.query, body).into(),
            Err(reply) => reply.into(),
        },
        _ => {
            error(StatusCode::NOT_FOUND, "not_found", "The requested endpoint was not found").into()
        }
    }
}

fn parse_json(body: &[u8]) -> Result<Value, Refusal> {
    serde_json::from_slice(body).map_err(|_| bad_request("body is not valid JSON"))
}

fn bad_request(message: &str) -> Refusal {
    Refusal::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

/// Bearer token, installation state, then team scope: a team token needs `teamId=<its team>`,
/// a personal token must not name a team.
fn authenticate(state: &State, call: &Call) -> Result<Principal, Refusal> {
    let forbidden = |message: &str| Refusal::new(StatusCode::FORBIDDEN, "forbidden", message);
    let token = call
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| forbidden("Missing authentication token"))?;
    let principal = state.tokens.get(token).cloned().ok_or_else(|| forbidden("Not authorized"))?;
    if let Some(configuration_id) = &principal.configuration_id {
        let disabled =
            state.configurations.get(configuration_id).is_none_or(|c| c.disabled_at_ms.is_some());
        if disabled {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "integration_configuration_disabled",
                "The integration configuration is disabled",
            ));
        }
    }
    match (principal.team_id.as_deref(), get(&call.query, "teamId")) {
        (Some(team), Some(asked)) if team == asked => Ok(principal),
        (None, None) => Ok(principal),
        (Some(_), None) => {
            Err(forbidden("This token is scoped to a team: the request must carry teamId"))
        }
        _ => Err(forbidden("Not authorized to access this team")),
    }
}
