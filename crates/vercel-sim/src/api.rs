//! Request handling: rate limiting, authentication and team scoping, then one function per
//! endpoint of PROTOCOL.md §4.

use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{json, Map, Value};

use crate::deliver;
use crate::state::{Drain, Principal, State, CODE_LIFETIME};
use crate::wire::{self, empty, error, get, parse_pairs, Refusal};
use crate::{lock, RateLimitHint};

/// Largest request body the simulator reads.
const MAX_BODY_BYTES: usize = 1 << 20;
/// Default and largest page size of list endpoints.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;
/// At most this many sampling rules per drain.
const MAX_SAMPLING_RULES: usize = 10;

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
            test_result(&endpoint, result)
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
        return exchange_code(state, call).into();
    }
    let principal = match authenticate(state, call) {
        Ok(principal) => principal,
        Err(reply) => return reply.into(),
    };
    let body = || parse_json(&call.body);
    match (&call.method, segments.as_slice()) {
        (&Method::GET, ["v1", "verify-endpoint"]) => {
            wire::json(StatusCode::OK, &json!({"verificationCode": state.config.verification_code}))
                .into()
        }
        (&Method::GET, ["v1", "drains"]) => list_drains(state, &principal, &call.query).into(),
        (&Method::POST, ["v1", "drains"]) => match body() {
            Ok(body) => create_drain(state, &principal, &body).into(),
            Err(reply) => reply.into(),
        },
        (&Method::POST, ["v1", "drains", "test"]) => match body() {
            Ok(body) => test_drain(state, &principal, &body),
            Err(reply) => reply.into(),
        },
        (&Method::GET, ["v1", "drains", id]) => match owned_drain(state, &principal, id) {
            Ok(drain) => wire::json(StatusCode::OK, &drain.json).into(),
            Err(reply) => reply.into(),
        },
        (&Method::PATCH, ["v1", "drains", id]) => match body() {
            Ok(body) => update_drain(state, &principal, id, &body).into(),
            Err(reply) => reply.into(),
        },
        (&Method::DELETE, ["v1", "drains", id]) => match owned_drain(state, &principal, id) {
            Ok(_) => {
                state.drains.remove(*id);
                empty(StatusCode::NO_CONTENT).into()
            }
            Err(reply) => reply.into(),
        },
        (&Method::POST, ["v2", "integrations", "log-drains"]) => match body() {
            Ok(body) => create_log_drain(state, &principal, &body).into(),
            Err(reply) => reply.into(),
        },
        (&Method::GET, ["v2", "integrations", "log-drains"]) => {
            list_log_drains(state, &principal).into()
        }
        (&Method::DELETE, ["v1", "integrations", "log-drains", id]) => {
            delete_log_drain(state, &principal, id).into()
        }
        (&Method::GET, ["v1", "integrations", "configuration", id]) => {
            get_configuration(state, &principal, id).into()
        }
        (&Method::DELETE, ["v1", "integrations", "configuration", id]) => {
            delete_configuration(state, &principal, id).into()
        }
        (&Method::POST, ["v10", "projects", project, "env"]) => match body() {
            Ok(body) => upsert_env(state, &principal, project, &call.query, body).into(),
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

fn exchange_code(state: &mut State, call: &Call) -> Reply {
    let oauth_error = |code: &str, message: &str| error(StatusCode::BAD_REQUEST, code, message);
    let form = parse_pairs(&String::from_utf8_lossy(&call.body));
    let form_value = |key: &str| get(&form, key).filter(|v| !v.is_empty());
    let (Some(client_id), Some(client_secret), Some(code), Some(_redirect_uri)) = (
        form_value("client_id"),
        form_value("client_secret"),
        form_value("code"),
        form_value("redirect_uri"),
    ) else {
        return oauth_error(
            "invalid_request",
            "client_id, client_secret, code and redirect_uri are required",
        );
    };
    if client_id != state.config.client_id || client_secret != state.config.client_secret {
        return oauth_error("invalid_client", "Invalid client credentials");
    }
    let now_ms = state.now_ms();
    let lifetime_ms = i64::try_from(CODE_LIFETIME.as_millis()).unwrap_or(i64::MAX);
    let Some(grant) = state.codes.get_mut(code) else {
        return oauth_error("invalid_grant", "Unknown authorization code");
    };
    if grant.used {
        return oauth_error("invalid_grant", "Authorization code was already used");
    }
    grant.used = true;
    if now_ms - grant.issued_at_ms > lifetime_ms {
        return oauth_error("invalid_grant", "Authorization code has expired");
    }
    let (configuration_id, team_id) = (grant.configuration_id.clone(), grant.team_id.clone());
    let token = state.id("vca");
    let user_id = state.config.user_id.clone();
    state.tokens.insert(
        token.clone(),
        Principal {
            user_id: user_id.clone(),
            team_id: team_id.clone(),
            configuration_id: Some(configuration_id.clone()),
        },
    );
    wire::json(
        StatusCode::OK,
        &json!({
            "token_type": "Bearer",
            "access_token": token,
            "installation_id": configuration_id,
            "user_id": user_id,
            "team_id": team_id,
        }),
    )
}

fn list_drains(state: &State, principal: &Principal, query: &[(String, String)]) -> Reply {
    let limit = match get(query, "limit").map(str::parse::<usize>) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => return bad_request("limit must be between 1 and 100").into(),
    };
    let until = match get(query, "until").map(str::parse::<i64>) {
        None => i64::MAX,
        Some(Ok(until)) => until,
        Some(Err(_)) => return bad_request("until must be a timestamp in milliseconds").into(),
    };
    let project = get(query, "projectId");
    let mut drains: Vec<&Drain> = state
        .drains
        .values()
        .filter(|d| d.owner == principal.owner())
        .filter(|d| project.is_none_or(|p| drain_covers_project(&d.json, p)))
        .filter(|d| d.created_at_ms < until)
        .collect();
    // Newest first, as Vercel lists.
    drains.sort_by_key(|d| std::cmp::Reverse(d.created_at_ms));
    let more = drains.len() > limit;
    drains.truncate(limit);
    let next = if more { drains.last().map(|d| d.created_at_ms) } else { None };
    let prev = drains.first().map(|d| d.created_at_ms);
    let count = drains.len();
    let drains: Vec<&Value> = drains.iter().map(|d| &d.json).collect();
    wire::json(
        StatusCode::OK,
        &json!({"drains": drains, "pagination": {"count": count, "next": next, "prev": prev}}),
    )
}

fn drain_covers_project(drain: &Value, project: &str) -> bool {
    drain["projects"] == "all"
        || drain["projectIds"].as_array().is_some_and(|ids| ids.iter().any(|id| id == project))
}

fn owned_drain<'a>(
    state: &'a State,
    principal: &Principal,
    id: &str,
) -> Result<&'a Drain, Refusal> {
    state
        .drains
        .get(id)
        .filter(|d| d.owner == principal.owner())
        .ok_or_else(|| Refusal::new(StatusCode::NOT_FOUND, "not_found", "Drain not found"))
}

/// Checks a `delivery` object and returns it as stored: the secret generated when missing, or
/// reported as `{"kind":"INTEGRATION_SECRET"}` for an integration's drain.
fn checked_delivery(
    state: &mut State,
    principal: &Principal,
    delivery: &Value,
) -> Result<Value, Refusal> {
    let Some(object) = delivery.as_object() else {
        return Err(bad_request("delivery is required"));
    };
    if object.get("type").and_then(Value::as_str) != Some("http") {
        return Err(bad_request("delivery.type must be \"http\""));
    }
    let endpoint = object.get("endpoint").and_then(Value::as_str).unwrap_or("");
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(bad_request("delivery.endpoint must be an http(s) URL"));
    }
    let encoding = object.get("encoding").and_then(Value::as_str).unwrap_or("json");
    if !matches!(encoding, "json" | "ndjson") {
        return Err(bad_request("delivery.encoding must be json or ndjson"));
    }
    let compression = object.get("compression").and_then(Value::as_str).unwrap_or("none");
    if !matches!(compression, "gzip" | "none") {
        return Err(bad_request("delivery.compression must be gzip or none"));
    }
    let headers = object.get("headers").cloned().unwrap_or_else(|| json!({}));
    if !headers.is_object() {
        return Err(bad_request("delivery.headers must be an object"));
    }
    let secret = if principal.configuration_id.is_some() {
        json!({"kind": "INTEGRATION_SECRET"})
    } else {
        match object.get("secret") {
            Some(Value::String(secret)) if !secret.is_empty() => json!(secret),
            None | Some(Value::Null) => json!(state.id("sec")),
            Some(_) => return Err(bad_request("delivery.secret must be a string")),
        }
    };
    Ok(json!({
        "type": "http",
        "endpoint": endpoint,
        "encoding": encoding,
        "compression": compression,
        "headers": headers,
        "secret": secret,
    }))
}

fn checked_sampling(body: &Map<String, Value>) -> Result<Value, Refusal> {
    match body.get("sampling") {
        None | Some(Value::Null) => Ok(Value::Null),
        Some(Value::Array(rules)) if rules.len() <= MAX_SAMPLING_RULES => {
            for rule in rules {
                let rate = rule["rate"].as_f64().unwrap_or(-1.0);
                if rule["type"] != "head_sampling" || !(0.0..=1.0).contains(&rate) {
                    return Err(bad_request("sampling rules are head_sampling with rate 0..1"));
                }
            }
            Ok(Value::Array(rules.clone()))
        }
        Some(_) => Err(bad_request("sampling takes at most 10 rules")),
    }
}

fn create_drain(state: &mut State, principal: &Principal, body: &Value) -> Reply {
    let Some(body) = body.as_object() else {
        return bad_request("body must be an object").into();
    };
    let name = match body.get("name").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => return bad_request("name is required").into(),
    };
    let delivery = match checked_delivery(state, principal, &body["delivery"]) {
        Ok(delivery) => delivery,
        Err(refusal) => return refusal.into(),
    };
    let sampling = match checked_sampling(body) {
        Ok(sampling) => sampling,
        Err(refusal) => return refusal.into(),
    };
    let project_ids = body.get("projectIds").cloned().unwrap_or_else(|| json!([]));
    let projects = body.get("projects").and_then(Value::as_str).unwrap_or(
        if project_ids.as_array().is_some_and(|ids| !ids.is_empty()) { "some" } else { "all" },
    );
    let source = match &principal.configuration_id {
        Some(configuration) => json!({
            "kind": "integration",
            "integrationId": state.config.client_id,
            "integrationConfigurationId": configuration,
        }),
        None => json!({"kind": "self-served"}),
    };
    let id = state.id("drn");
    let created_at = state.creation_ms();
    let drain = json!({
        "id": id,
        "ownerId": principal.owner(),
        "teamId": principal.team_id,
        "name": name,
        "createdAt": created_at,
        "updatedAt": created_at,
        "projects": projects,
        "projectIds": project_ids,
        "schemas": body.get("schemas").cloned().unwrap_or_else(|| json!({"log": {"version": "v1"}})),
        "delivery": delivery,
        "sampling": sampling,
        "filter": body.get("filter").cloned().unwrap_or(Value::Null),
        "source": source,
        "status": "enabled",
        "disabledReason": null,
        "firstErrorTimestamp": null,
    });
    state.drains.insert(
        id,
        Drain {
            owner: principal.owner().to_owned(),
            created_at_ms: created_at,
            json: drain.clone(),
        },
    );
    wire::json(StatusCode::OK, &drain)
}

fn update_drain(state: &mut State, principal: &Principal, id: &str, body: &Value) -> Reply {
    if let Err(refusal) = owned_drain(state, principal, id) {
        return refusal.into();
    }
    let Some(body) = body.as_object() else {
        return bad_request("body must be an object").into();
    };
    let mut changes = Map::new();
    for (key, value) in body {
        let checked = match key.as_str() {
            "name" if value.as_str().is_some_and(|n| !n.is_empty()) => Ok(value.clone()),
            "name" => Err(bad_request("name must be a non-empty string")),
            "projectIds" | "schemas" | "filter" => Ok(value.clone()),
            "projects" if value == "all" || value == "some" => Ok(value.clone()),
            "projects" => Err(bad_request("projects must be all or some")),
            "delivery" => checked_delivery(state, principal, value),
            "sampling" => checked_sampling(body),
            "status" if value == "enabled" || value == "disabled" => Ok(value.clone()),
            "status" => Err(bad_request("status must be enabled or disabled")),
            _ => continue,
        };
        match checked {
            Ok(value) => {
                changes.insert(key.clone(), value);
            }
            Err(refusal) => return refusal.into(),
        }
    }
    let now = state.now_ms();
    let Some(drain) = state.drains.get_mut(id) else {
        return error(StatusCode::NOT_FOUND, "not_found", "Drain not found");
    };
    if changes.get("status") == Some(&json!("enabled"))
        && drain.json["status"] == "disabled"
        && !drain.json["disabledReason"].is_null()
    {
        return error(
            StatusCode::BAD_REQUEST,
            "drain_enable_not_allowed",
            "Vercel disabled this drain; it cannot be resumed",
        );
    }
    for (key, value) in changes {
        drain.json[key] = value;
    }
    drain.json["updatedAt"] = json!(now);
    wire::json(StatusCode::OK, &drain.json)
}

/// The legacy log-drain API answers integration tokens only.
fn legacy_principal(principal: &Principal) -> Result<&str, Refusal> {
    principal.configuration_id.as_deref().ok_or_else(|| {
        Refusal::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Log drains can only be managed with an integration token",
        )
    })
}

fn create_log_drain(state: &mut State, principal: &Principal, body: &Value) -> Reply {
    let configuration = match legacy_principal(principal) {
        Ok(configuration) => configuration.to_owned(),
        Err(refusal) => return refusal.into(),
    };
    let Some(body) = body.as_object() else {
        return bad_request("body must be an object").into();
    };
    let text = |key: &str| body.get(key).and_then(Value::as_str).unwrap_or("");
    if text("name").is_empty() {
        return bad_request("name is required").into();
    }
    if !(text("url").starts_with("http://") || text("url").starts_with("https://")) {
        return bad_request("url must be an http(s) URL").into();
    }
    let format = body.get("deliveryFormat").and_then(Value::as_str).unwrap_or("json");
    if !matches!(format, "json" | "ndjson") {
        return bad_request("deliveryFormat must be json or ndjson").into();
    }
    let list = |key: &str| body.get(key).cloned().unwrap_or_else(|| json!([]));
    let id = state.id("ld");
    let created_at = state.creation_ms();
    // Legacy drains are signed with the given secret, else with one Vercel generates; it is
    // never reported back (the object carries no secret field).
    let secret = match body.get("secret").and_then(Value::as_str) {
        Some(secret) if !secret.is_empty() => secret.to_owned(),
        _ => state.id("sec"),
    };
    let drain = json!({
        "id": id,
        "name": text("name"),
        "url": text("url"),
        "projectIds": list("projectIds"),
        "deliveryFormat": format,
        "sources": list("sources"),
        "environments": list("environments"),
        "headers": body.get("headers").cloned().unwrap_or_else(|| json!({})),
        "configurationId": configuration,
        "ownerId": principal.owner(),
        "teamId": principal.team_id,
        "createdAt": created_at,
        "type": "integration",
    });
    let mut stored = drain.clone();
    stored["secret"] = json!(secret);
    state.log_drains.insert(
        id,
        Drain { owner: principal.owner().to_owned(), created_at_ms: created_at, json: stored },
    );
    wire::json(StatusCode::OK, &drain)
}

fn list_log_drains(state: &State, principal: &Principal) -> Reply {
    if let Err(refusal) = legacy_principal(principal) {
        return refusal.into();
    }
    let mut drains: Vec<&Drain> =
        state.log_drains.values().filter(|d| d.owner == principal.owner()).collect();
    drains.sort_by_key(|d| std::cmp::Reverse(d.created_at_ms));
    let shown: Vec<Value> = drains
        .iter()
        .map(|d| {
            let mut json = d.json.clone();
            if let Some(object) = json.as_object_mut() {
                object.remove("secret");
            }
            json
        })
        .collect();
    wire::json(StatusCode::OK, &Value::Array(shown))
}

fn delete_log_drain(state: &mut State, principal: &Principal, id: &str) -> Reply {
    if let Err(refusal) = legacy_principal(principal) {
        return refusal.into();
    }
    match state.log_drains.get(id) {
        Some(drain) if drain.owner == principal.owner() => {
            state.log_drains.remove(id);
            empty(StatusCode::NO_CONTENT)
        }
        _ => Refusal::new(StatusCode::NOT_FOUND, "not_found", "Log drain not found").into(),
    }
}

/// A sample batch in the drain's encoding, as the "Test" button sends.
fn sample_batch(encoding: &str, now_ms: i64) -> Vec<u8> {
    let entries = [
        json!({
            "id": "sample-1", "deploymentId": "dpl_sample", "source": "lambda",
            "host": "sample.vercel.app", "timestamp": now_ms, "projectId": "prj_sample",
            "level": "info", "message": "SAMPLE MESSAGE: Hello from Vercel",
            "requestId": "req_sample_1", "statusCode": 200, "path": "/api/sample",
        }),
        json!({
            "id": "sample-2", "deploymentId": "dpl_sample", "source": "build",
            "host": "sample.vercel.app", "timestamp": now_ms + 1, "projectId": "prj_sample",
            "message": "SAMPLE MESSAGE: build step",
        }),
    ];
    if encoding == "ndjson" {
        entries.iter().map(Value::to_string).collect::<Vec<_>>().join("\n").into_bytes()
    } else {
        Value::Array(entries.to_vec()).to_string().into_bytes()
    }
}

fn test_drain(state: &mut State, principal: &Principal, body: &Value) -> Outcome {
    let delivery = &body["delivery"];
    let Some(endpoint) = delivery["endpoint"].as_str() else {
        return bad_request("delivery.endpoint is required").into();
    };
    let encoding = delivery["encoding"].as_str().unwrap_or("json");
    let mut batch = sample_batch(encoding, state.now_ms());
    let secret = match &delivery["secret"] {
        Value::String(secret) if !secret.is_empty() => Some(secret.clone()),
        _ if principal.configuration_id.is_some() => Some(state.config.client_secret.clone()),
        _ => None,
    };
    let mut headers: Vec<(String, String)> = delivery["headers"]
        .as_object()
        .map(|h| h.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default();
    if delivery["compression"] == "gzip" {
        // Signed as sent, compressed (what receivers in the wild verify; PROTOCOL.md §2).
        batch = deliver::gzip(&batch);
        headers.push(("content-encoding".to_owned(), "gzip".to_owned()));
    }
    if let Some(secret) = secret {
        headers.push(("x-vercel-signature".to_owned(), deliver::sign(secret.as_bytes(), &batch)));
    }
    Outcome::TestDelivery { endpoint: endpoint.to_owned(), headers, body: batch }
}

fn test_result(endpoint: &str, result: Result<(u16, Bytes), deliver::DeliveryError>) -> Reply {
    match result {
        Ok((status, _)) if (200..300).contains(&status) => wire::json(StatusCode::OK, &json!({})),
        Ok((status, body)) => wire::json(
            StatusCode::OK,
            &json!({
                "status": status,
                "error": String::from_utf8_lossy(&body[..body.len().min(512)]),
                "endpoint": endpoint,
            }),
        ),
        Err(deliver::DeliveryError::NotLoopback) => {
            bad_request("the simulator delivers only to http:// loopback URLs").into()
        }
        Err(e) => wire::json(
            StatusCode::OK,
            &json!({"status": null, "error": e.to_string(), "endpoint": endpoint}),
        ),
    }
}

fn configuration_visible(principal: &Principal, c: &crate::state::Configuration) -> bool {
    match (&principal.team_id, &c.team_id) {
        (Some(mine), Some(theirs)) => mine == theirs,
        (None, None) => principal.user_id == c.user_id,
        _ => false,
    }
}

fn get_configuration(state: &State, principal: &Principal, id: &str) -> Reply {
    let Some(c) = state.configurations.get(id).filter(|c| configuration_visible(principal, c))
    else {
        return error(StatusCode::NOT_FOUND, "not_found", "Configuration not found");
    };
    wire::json(
        StatusCode::OK,
        &json!({
            "id": c.id,
            "integrationId": state.config.client_id,
            "ownerId": c.team_id.as_deref().unwrap_or(&c.user_id),
            "userId": c.user_id,
            "teamId": c.team_id,
            "createdAt": c.created_at_ms,
            "scopes": ["read-write:log-drain", "read-write:project-env-vars", "read:project"],
            "projects": c.projects.clone().unwrap_or_default(),
            "projectSelection": if c.projects.is_some() { "selected" } else { "all" },
            "status": "ready",
            "disabledAt": c.disabled_at_ms,
            "disabledReason": c.disabled_at_ms.map(|_| "disabled-by-owner"),
        }),
    )
}

fn delete_configuration(state: &mut State, principal: &Principal, id: &str) -> Reply {
    if !state.configurations.get(id).is_some_and(|c| configuration_visible(principal, c)) {
        return error(StatusCode::NOT_FOUND, "not_found", "Configuration not found");
    }
    state.configurations.remove(id);
    // Uninstalling revokes the installation's tokens and removes what it created.
    state.tokens.retain(|_, p| p.configuration_id.as_deref() != Some(id));
    state.drains.retain(|_, d| d.json["source"]["integrationConfigurationId"] != id);
    empty(StatusCode::NO_CONTENT)
}

fn checked_env(var: &Value) -> Result<(String, Value), (String, String)> {
    let key = var["key"].as_str().unwrap_or("").to_owned();
    if key.is_empty() {
        return Err((key, "key is required".to_owned()));
    }
    if !var["value"].is_string() {
        return Err((key, "value must be a string".to_owned()));
    }
    if !matches!(var["type"].as_str(), Some("encrypted" | "plain" | "sensitive")) {
        return Err((key, "type must be encrypted, plain or sensitive".to_owned()));
    }
    let targets_ok = var["target"].as_array().is_some_and(|t| {
        !t.is_empty()
            && t.iter()
                .all(|t| matches!(t.as_str(), Some("production" | "preview" | "development")))
    });
    if !targets_ok {
        return Err((key, "target must list production, preview or development".to_owned()));
    }
    Ok((key, var.clone()))
}

fn upsert_env(
    state: &mut State,
    principal: &Principal,
    project: &str,
    query: &[(String, String)],
    body: Value,
) -> Reply {
    let upsert = get(query, "upsert") == Some("true");
    let (vars, many) = match body {
        Value::Array(vars) => (vars, true),
        var @ Value::Object(_) => (vec![var], false),
        _ => return bad_request("body must be an object or an array of objects").into(),
    };
    let now = state.now_ms();
    let mut created = Vec::new();
    let mut failed = Vec::new();
    for var in &vars {
        let (key, var) = match checked_env(var) {
            Ok(checked) => checked,
            Err((key, message)) => {
                failed.push(
                    json!({"error": {"code": "bad_request", "message": message, "key": key}}),
                );
                continue;
            }
        };
        let id = state.id("env");
        let project_env = state
            .env
            .entry(principal.owner().to_owned())
            .or_default()
            .entry(project.to_owned())
            .or_default();
        if project_env.contains_key(&key) && !upsert {
            failed.push(json!({"error": {
                "code": "ENV_ALREADY_EXISTS",
                "message": "A variable with this key already exists",
                "key": key,
            }}));
            continue;
        }
        let shown_value = if var["type"] == "plain" { var["value"].clone() } else { json!("") };
        let stored = json!({
            "id": id, "key": key, "type": var["type"], "target": var["target"],
            "value": shown_value, "createdAt": now, "updatedAt": now,
        });
        project_env.insert(key, var);
        created.push(stored);
    }
    let created = match (many, created.len()) {
        (false, 1) => created.remove(0),
        _ => Value::Array(created),
    };
    wire::json(StatusCode::CREATED, &json!({"created": created, "failed": failed}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_batches_carry_sample_messages_in_both_encodings() {
        let ndjson = String::from_utf8(sample_batch("ndjson", 1)).unwrap();
        assert_eq!(ndjson.lines().count(), 2);
        for line in ndjson.lines() {
            let entry: Value = serde_json::from_str(line).unwrap();
            assert!(entry["message"].as_str().unwrap().starts_with("SAMPLE MESSAGE:"));
        }
        let array: Value = serde_json::from_slice(&sample_batch("json", 1)).unwrap();
        assert_eq!(array.as_array().unwrap().len(), 2);
    }
}
