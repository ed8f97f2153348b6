//! The legacy, deprecated log-drain endpoints (`/v2/integrations/log-drains`,
//! `/v1/integrations/log-drains/{id}`), which answer integration tokens only.

use http::StatusCode;
use serde_json::{json, Value};

use super::{bad_request, Reply};
use crate::state::{Drain, Principal, State};
use crate::wire::{self, empty, Refusal};

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

pub(super) fn create_log_drain(state: &mut State, principal: &Principal, body: &Value) -> Reply {
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

pub(super) fn list_log_drains(state: &State, principal: &Principal) -> Reply {
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

pub(super) fn delete_log_drain(state: &mut State, principal: &Principal, id: &str) -> Reply {
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
