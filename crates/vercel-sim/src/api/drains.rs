//! The drains endpoints (`/v1/drains`: list, create, read, update, delete, and the test
//! delivery) and `GET /v1/verify-endpoint`, as docs/vercel/PROTOCOL.md §4 describes them.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Map, Value};

use super::{bad_request, schema, Outcome, Reply};
use crate::state::{Drain, Principal, State};
use crate::wire::{self, empty, error, get, Refusal};
use crate::{deliver, samples};

/// Default and largest page size of list endpoints.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

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

/// A checked `delivery` as stored: the secret generated when missing, or reported as
/// `{"kind":"INTEGRATION_SECRET"}` for an integration's drain.
fn stored_delivery(
    state: &mut State,
    principal: &Principal,
    mut delivery: Map<String, Value>,
) -> Value {
    let secret = if principal.configuration_id.is_some() {
        json!({"kind": "INTEGRATION_SECRET"})
    } else {
        match delivery.get("secret") {
            Some(Value::String(secret)) => json!(secret),
            _ => json!(state.id("sec")),
        }
    };
    delivery.insert("secret".to_owned(), secret);
    Value::Object(delivery)
}

/// A create body's fields, checked: name, delivery (for the schema), projects, sampling,
/// filter.
struct NewDrain {
    name: String,
    delivery: Map<String, Value>,
    projects: (Option<String>, Option<Value>),
    sampling: Value,
    filter: Value,
}

fn checked_create(body: &Value) -> Result<NewDrain, Refusal> {
    let body = schema::object(body)?;
    schema::only_fields(body, schema::create_fields(), "")?;
    let name = schema::name(body.get("name"))?;
    let schema_key = schema::schemas(body.get("schemas"))?;
    let delivery = schema::delivery(body.get("delivery"), &schema_key)?;
    let projects = schema::projects(body)?;
    let sampling = match body.get("sampling") {
        None | Some(Value::Null) => Value::Null,
        Some(rules) => schema::sampling(rules)?,
    };
    let filter = match body.get("filter") {
        None | Some(Value::Null) => Value::Null,
        Some(filter) => schema::filter(filter)?,
    };
    Ok(NewDrain { name, delivery, projects, sampling, filter })
}

pub(super) fn create_drain(state: &mut State, principal: &Principal, body: &Value) -> Reply {
    let new = match checked_create(body) {
        Ok(new) => new,
        Err(refusal) => return refusal.into(),
    };
    let delivery = stored_delivery(state, principal, new.delivery);
    let (scope, project_ids) = new.projects;
    let project_ids = project_ids.unwrap_or_else(|| json!([]));
    let projects = scope.unwrap_or_else(|| {
        let some = project_ids.as_array().is_some_and(|ids| !ids.is_empty());
        if some { "some" } else { "all" }.to_owned()
    });
    if let Some(refusal) = outside_installation(state, principal, &projects, &project_ids) {
        return refusal;
    }
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
        "name": new.name,
        "createdAt": created_at,
        "updatedAt": created_at,
        "projects": projects,
        "projectIds": project_ids,
        "schemas": body["schemas"].clone(),
        "delivery": delivery,
        "sampling": new.sampling,
        "filter": new.filter,
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

/// An installation given some projects only may not make a drain of others, nor of all of
/// them: `403` when an integration's token asks for that.
fn outside_installation(
    state: &State,
    principal: &Principal,
    projects: &str,
    project_ids: &Value,
) -> Option<Reply> {
    let configuration = state.configurations.get(principal.configuration_id.as_deref()?)?;
    let allowed = configuration.projects.as_ref()?;
    let ids = project_ids.as_array().map(Vec::as_slice).unwrap_or_default();
    let outside = ids.iter().any(|id| !allowed.iter().any(|a| Some(a.as_str()) == id.as_str()));
    (projects == "all" || outside).then(|| {
        let message = "The installation was not given access to every project the drain names";
        error(StatusCode::FORBIDDEN, "forbidden", message)
    })
}

/// A PATCH body's changes, checked against the drain's current JSON: a new `delivery` must
/// suit the schema the drain will have.
fn checked_update(current: &Value, body: &Value) -> Result<Map<String, Value>, Refusal> {
    let body = schema::object(body)?;
    let mut allowed = schema::create_fields().to_vec();
    allowed.push("status");
    schema::only_fields(body, &allowed, "")?;
    let schema_key = match body.get("schemas") {
        Some(_) => schema::schemas(body.get("schemas"))?,
        None => current["schemas"]
            .as_object()
            .and_then(|s| s.keys().next().cloned())
            .unwrap_or_else(|| "log".to_owned()),
    };
    schema::projects(body)?;
    if body.contains_key("schemas") && !body.contains_key("delivery") {
        // The drain keeps its delivery: it must suit the new schema.
        schema::delivery(current.get("delivery"), &schema_key)?;
    }
    let mut changes = Map::new();
    for (key, value) in body {
        let checked = match key.as_str() {
            "name" => Value::String(schema::name(Some(value))?),
            "delivery" => Value::Object(schema::delivery(Some(value), &schema_key)?),
            "sampling" => schema::sampling(value)?,
            "filter" => schema::filter(value)?,
            "status" if value == "enabled" || value == "disabled" => value.clone(),
            "status" => return Err(bad_request("status must be \"enabled\" or \"disabled\"")),
            _ => value.clone(),
        };
        changes.insert(key.clone(), checked);
    }
    Ok(changes)
}

pub(super) fn update_drain(
    state: &mut State,
    principal: &Principal,
    id: &str,
    body: &Value,
) -> Reply {
    let current = match owned_drain(state, principal, id) {
        Ok(drain) => drain.json.clone(),
        Err(refusal) => return refusal.into(),
    };
    let mut changes = match checked_update(&current, body) {
        Ok(changes) => changes,
        Err(refusal) => return refusal.into(),
    };
    if let Some(Value::Object(delivery)) = changes.remove("delivery") {
        changes.insert("delivery".to_owned(), stored_delivery(state, principal, delivery));
    }
    let scope = changes.get("projects").unwrap_or(&current["projects"]);
    let ids = changes.get("projectIds").unwrap_or(&current["projectIds"]);
    if let Some(refusal) = outside_installation(state, principal, scope.as_str().unwrap_or(""), ids)
    {
        return refusal;
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

pub(super) fn test_drain(state: &mut State, principal: &Principal, body: &Value) -> Outcome {
    let checked = schema::object(body).and_then(|body| {
        schema::only_fields(body, &["schemas", "delivery"], "")?;
        let schema_key = schema::schemas(body.get("schemas"))?;
        let delivery = schema::delivery(body.get("delivery"), &schema_key)?;
        Ok((schema_key, Value::Object(delivery)))
    });
    let (schema_key, delivery) = match checked {
        Ok(checked) => checked,
        Err(refusal) => return refusal.into(),
    };
    let secret = match delivery.get("secret") {
        Some(Value::String(secret)) => Some(secret.clone()),
        _ if principal.configuration_id.is_some() => Some(state.config.client_secret.clone()),
        _ => None,
    };
    let prepared = samples::prepare(&schema_key, &delivery, secret.as_deref(), state.now_ms());
    Outcome::TestDelivery {
        endpoint: prepared.endpoint,
        headers: prepared.headers,
        body: prepared.body,
    }
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
