//! The OAuth code exchange (`POST /v2/oauth/access_token`) of the integration install flow.

use serde::Deserialize;

use crate::Secret;

/// `POST /v2/oauth/access_token` (sent form-encoded).
#[derive(Debug, Clone)]
pub struct ExchangeCode {
    /// The integration's client id.
    pub client_id: String,
    /// The integration's client secret.
    pub client_secret: Secret,
    /// The one-time code from the install redirect.
    pub code: Secret,
    /// The integration's Redirect URL.
    pub redirect_uri: String,
}

/// The answer to a code exchange: a long-lived token for one installation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AccessToken {
    /// `Bearer`.
    pub token_type: String,
    /// The installation's token.
    pub access_token: Secret,
    /// The installation (`icfg_…`).
    pub installation_id: String,
    /// The installing user.
    pub user_id: String,
    /// The team, for team installs: every call with the token must carry it as `teamId`.
    #[serde(default)]
    pub team_id: Option<String>,
}
