//! The OAuth code exchange (`POST /v2/oauth/access_token`): a one-time code for an
//! installation's long-lived token.

use http::StatusCode;
use serde_json::json;

use super::{Call, Reply};
use crate::state::{Principal, State, CODE_LIFETIME};
use crate::wire::{self, error, get, parse_pairs};

pub(super) fn exchange_code(state: &mut State, call: &Call) -> Reply {
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
