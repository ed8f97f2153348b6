//! Integration configurations (installations, `icfg_…`) as Vercel reports them.

use serde::Deserialize;

use super::null_as_default;

/// Whether an installation covers every project or a selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProjectSelection {
    /// Every project.
    All,
    /// `projects` only.
    Selected,
    /// A value this client does not know.
    #[serde(other)]
    Unknown,
}

/// `GET /v1/integrations/configuration/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationConfiguration {
    /// `icfg_…`.
    pub id: String,
    /// The team, for team installs.
    #[serde(default)]
    pub team_id: Option<String>,
    /// The installing user.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Granted scopes.
    #[serde(default, deserialize_with = "null_as_default")]
    pub scopes: Vec<String>,
    /// Selected projects.
    #[serde(default, deserialize_with = "null_as_default")]
    pub projects: Vec<String>,
    /// `all` or `selected`.
    #[serde(default)]
    pub project_selection: Option<ProjectSelection>,
    /// Vercel's status string.
    #[serde(default)]
    pub status: Option<String>,
    /// When it was disabled, Unix milliseconds.
    #[serde(default)]
    pub disabled_at: Option<i64>,
    /// Why it was disabled.
    #[serde(default)]
    pub disabled_reason: Option<String>,
}
