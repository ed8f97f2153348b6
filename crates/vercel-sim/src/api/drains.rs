//! The drains endpoints (`/v1/drains`: list, create, read, update, delete, and the test
//! delivery) and `GET /v1/verify-endpoint`, as docs/vercel/PROTOCOL.md §4 describes them.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Map, Value};

use super::{bad_request, Outcome, Reply};
use crate::deliver;
use crate::state::{Drain, Principal, State};
use crate::wire::{self, empty, error, get, Refusal};

/// Default and largest page size of list endpoints.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;
/// At most this many sampling rules per drain.
const MAX_SAMPLING_RULES: usize = 10;

pub(super) fn verify_endpoint(state: &State) -> Reply {
    wire::json(StatusCode::OK, &json!({"verificationCode": state.config.verification_code}))
}

pub(super) fn get_drain(state: &State, principal: &Principal, id: &str) -> Reply {
    match owned_drain(state, principal, id) {
        Ok(drain) => wire::json(StatusCode::OK, &drain.json),
        Err(refusal) => refusal.into(),
    }
}

pub(super) fn delete_drain(state: &mut State, principal: &Principal, id: &str) -> Reply {
    match owned_drain(state, principal, id) {
        Ok(_) => {
            state.drains.remove(id);
            empty(StatusCode::NO_CONTENT)
        }
        Err(refusal) => refusal.into(),
    }
}

pub(super) fn list_drains(
    state: &State,
    principal: &Principal,
    query: &[(String, String)],
) -> Reply {
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

pub(super) fn create_drain(state: &mut State, principal: &Principal, body: &Value) -> Reply {
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

pub(super) fn update_drain(
    state: &mut State,
    principal: &Principal,
    id: &str,
    body: &Value,
) -> Reply {
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

pub(super) fn test_drain(state: &mut State, principal: &Principal, body: &Value) -> Outcome {
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
        // Signed as sent, compressed (what receivers in the wild verify;
        // docs/vercel/PROTOCOL.md §2).
        batch = deliver::gzip(&batch);
        headers.push(("content-encoding".to_owned(), "gzip".to_owned()));
    }
    if let Some(secret) = secret {
        headers.push(("x-vercel-signature".to_owned(), deliver::sign(secret.as_bytes(), &batch)));
    }
    Outcome::TestDelivery { endpoint: endpoint.to_owned(), headers, body: batch }
}

pub(super) fn test_result(
    endpoint: &str,
    result: Result<(u16, Bytes), deliver::DeliveryError>,
) -> Reply {
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
