//! Project environment variables (`POST /v10/projects/{idOrName}/env`), one or many per call.

use http::StatusCode;
use serde_json::{json, Value};

use super::{bad_request, Reply};
use crate::state::{Principal, State};
use crate::wire::{self, get};

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

pub(super) fn upsert_env(
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
