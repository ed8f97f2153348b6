//! Drains of the legacy, deprecated log-drain API (`/v2/integrations/log-drains`), which
//! answers integration tokens only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{null_as_default, Encoding};
use crate::Secret;

/// `POST /v2/integrations/log-drains`: a drain of the legacy, deprecated log-drain API, which
/// answers integration tokens only and still serves drains made through it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateLogDrain {
    /// Display name.
    pub name: String,
    /// The receiver's URL.
    pub url: String,
    /// Only these projects; all of the installation's when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub project_ids: Vec<String>,
    /// The signing secret; Vercel generates one when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    /// Body format.
    pub delivery_format: Encoding,
    /// Only these sources (`lambda`, `edge`, …); all when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// Extra request headers (values may be credentials).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Secret>,
    /// Only these environments (`production`, `preview`); all when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
}

/// A legacy log drain (`ld_…`) as Vercel reports it; it carries no secret.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogDrain {
    /// `ld_…`.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The receiver's URL.
    #[serde(default)]
    pub url: Option<String>,
    /// The installation that owns it.
    #[serde(default)]
    pub configuration_id: Option<String>,
    /// Projects it covers (empty: all).
    #[serde(default, deserialize_with = "null_as_default")]
    pub project_ids: Vec<String>,
    /// Body format.
    #[serde(default)]
    pub delivery_format: Option<Encoding>,
    /// Sources it is limited to (empty: all).
    #[serde(default, deserialize_with = "null_as_default")]
    pub sources: Vec<String>,
    /// Environments it is limited to (empty: all).
    #[serde(default, deserialize_with = "null_as_default")]
    pub environments: Vec<String>,
    /// Extra request headers (values may be credentials).
    #[serde(default, deserialize_with = "null_as_default")]
    pub headers: BTreeMap<String, Secret>,
    /// The owning team, if any.
    #[serde(default)]
    pub team_id: Option<String>,
    /// When it was created, Unix milliseconds.
    #[serde(default)]
    pub created_at: Option<i64>,
}
