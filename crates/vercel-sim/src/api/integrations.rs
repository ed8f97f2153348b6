//! Integration configurations (`/v1/integrations/configuration/{id}`): reading an installation
//! and uninstalling it.

use http::StatusCode;
use serde_json::json;

use super::Reply;
use crate::state::{Configuration, Principal, State};
use crate::wire::{self, empty, error};

fn configuration_visible(principal: &Principal, c: &Configuration) -> bool {
    match (&principal.team_id, &c.team_id) {
        (Some(mine), Some(theirs)) => mine == theirs,
        (None, None) => principal.user_id == c.user_id,
        _ => false,
    }
}

pub(super) fn get_configuration(state: &State, principal: &Principal, id: &str) -> Reply {
    if state.configuration_reads_fail {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "internal_server_error", "Try again");
    }
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

pub(super) fn delete_configuration(state: &mut State, principal: &Principal, id: &str) -> Reply {
    if !state.configurations.get(id).is_some_and(|c| configuration_visible(principal, c)) {
        return error(StatusCode::NOT_FOUND, "not_found", "Configuration not found");
    }
    state.configurations.remove(id);
    // Uninstalling revokes the installation's tokens and removes what it created.
    state.tokens.retain(|_, p| p.configuration_id.as_deref() != Some(id));
    state.drains.retain(|_, d| d.json["source"]["integrationConfigurationId"] != id);
    empty(StatusCode::NO_CONTENT)
}
