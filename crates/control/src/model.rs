//! Request and response bodies of the Vercel REST API (PROTOCOL.md §4), as serde types.
//!
//! Responses are tolerant: unknown fields are ignored, most fields are optional, and enums have
//! an `Unknown` variant, so a field Vercel adds tomorrow does not break today's client.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::Secret;

/// Which projects a drain covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProjectScope {
    /// Every project of the owner.
    All,
    /// Only `projectIds`.
    Some,
    /// A value this client does not know (received only).
    #[serde(other)]
    Unknown,
}

/// Body format of deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// One JSON array per delivery.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// A value this client does not know (received only).
    #[serde(other)]
    Unknown,
}

/// Compression of deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// `Content-Encoding: gzip`.
    Gzip,
    /// Uncompressed.
    None,
    /// A value this client does not know (received only).
    #[serde(other)]
    Unknown,
}

/// A drain's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DrainStatus {
    /// Delivering.
    Enabled,
    /// Paused (by its owner, or by Vercel with a `disabledReason`).
    Disabled,
    /// Flagged by Vercel after too many failed deliveries.
    Errored,
    /// A value this client does not know (received only).
    #[serde(other)]
    Unknown,
}

/// One schema version, as in `{"log":{"version":"v1"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaVersion {
    /// `v1`, …
    pub version: String,
}

/// The schemas a drain carries, keyed by name (`log`, `trace`, `speed_insights`, `analytics`).
pub type Schemas = BTreeMap<String, SchemaVersion>;

/// `{"log":{"version":"v1"}}`: the schemas of a log drain.
pub fn log_schemas() -> Schemas {
    BTreeMap::from([("log".to_owned(), SchemaVersion { version: "v1".to_owned() })])
}

/// One head-sampling rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SamplingRule {
    /// `head_sampling`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Fraction kept, `0..=1`.
    pub rate: f64,
    /// Only this environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// Only paths with this prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_path: Option<String>,
}

/// Where and how a drain delivers, as sent in create, update and test requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryRequest {
    /// Always `http`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The receiver's URL.
    pub endpoint: String,
    /// Body format.
    pub encoding: Encoding,
    /// Compression.
    pub compression: Compression,
    /// Extra request headers Vercel sends with each delivery (values may be credentials, such
    /// as a bearer token, so they are secrets).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Secret>,
    /// The signature verification secret; Vercel generates one when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
}

impl DeliveryRequest {
    /// An HTTP delivery to `endpoint` in `encoding`, uncompressed, without headers or secret.
    pub fn http(endpoint: impl Into<String>, encoding: Encoding) -> DeliveryRequest {
        DeliveryRequest {
            kind: "http".to_owned(),
            endpoint: endpoint.into(),
            encoding,
            compression: Compression::None,
            headers: BTreeMap::new(),
            secret: None,
        }
    }
}

/// `POST /v1/drains`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateDrain {
    /// Display name.
    pub name: String,
    /// Which projects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projects: Option<ProjectScope>,
    /// The projects when `projects` is `some`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub project_ids: Vec<String>,
    /// Schemas, e.g. [`log_schemas`].
    pub schemas: Schemas,
    /// Where to deliver.
    pub delivery: DeliveryRequest,
    /// At most 10 sampling rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampling: Option<Vec<SamplingRule>>,
    /// `{version:"v2", filter:{…}}`, passed through as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<serde_json::Value>,
}

/// `PATCH /v1/drains/{id}`: only the fields set are changed; `delivery` replaces the whole
/// delivery object.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateDrain {
    /// New name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New project scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projects: Option<ProjectScope>,
    /// New project list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_ids: Option<Vec<String>>,
    /// New schemas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schemas: Option<Schemas>,
    /// New delivery (replaces the old one whole).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryRequest>,
    /// New sampling rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampling: Option<Vec<SamplingRule>>,
    /// New filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<serde_json::Value>,
    /// `enabled` or `disabled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<DrainStatus>,
}

/// A drain's signing secret as reported: the value, or a marker such as
/// `{"kind":"INTEGRATION_SECRET"}` meaning deliveries are signed with the integration's client
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum DrainSecret {
    /// The drain's own secret.
    Value(Secret),
    /// A marker; `kind` is `INTEGRATION_SECRET` for integration drains.
    Kind {
        /// The marker's kind.
        kind: String,
    },
}

impl DrainSecret {
    /// Whether deliveries are signed with the integration's client secret.
    pub fn is_integration_secret(&self) -> bool {
        matches!(self, DrainSecret::Kind { kind } if kind == "INTEGRATION_SECRET")
    }
}

/// A drain's delivery as reported.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Delivery {
    /// `http`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The receiver's URL.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Body format.
    #[serde(default)]
    pub encoding: Option<Encoding>,
    /// Compression.
    #[serde(default)]
    pub compression: Option<Compression>,
    /// Extra request headers (values may be credentials).
    #[serde(default, deserialize_with = "null_as_default")]
    pub headers: BTreeMap<String, Secret>,
    /// The signing secret.
    #[serde(default)]
    pub secret: Option<DrainSecret>,
}

/// Who created a drain.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainSource {
    /// `self-served` or `integration`.
    pub kind: String,
    /// The integration, for integration drains.
    #[serde(default)]
    pub integration_id: Option<String>,
    /// The installation, for integration drains.
    #[serde(default)]
    pub integration_configuration_id: Option<String>,
}

/// A drain (`drn_…`) as Vercel reports it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Drain {
    /// `drn_…`.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The owning user or team.
    #[serde(default)]
    pub owner_id: Option<String>,
    /// The team, for team drains.
    #[serde(default)]
    pub team_id: Option<String>,
    /// Creation time, Unix milliseconds; list pagination runs on it.
    #[serde(default)]
    pub created_at: Option<i64>,
    /// Last change, Unix milliseconds.
    #[serde(default)]
    pub updated_at: Option<i64>,
    /// Which projects.
    #[serde(default)]
    pub projects: Option<ProjectScope>,
    /// The projects when `projects` is `some`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub project_ids: Vec<String>,
    /// Schemas.
    #[serde(default, deserialize_with = "null_as_default")]
    pub schemas: Schemas,
    /// Where it delivers.
    #[serde(default)]
    pub delivery: Option<Delivery>,
    /// Sampling rules.
    #[serde(default, deserialize_with = "null_as_default")]
    pub sampling: Vec<SamplingRule>,
    /// Who created it.
    #[serde(default)]
    pub source: Option<DrainSource>,
    /// Its state.
    #[serde(default)]
    pub status: Option<DrainStatus>,
    /// Why Vercel disabled it.
    #[serde(default)]
    pub disabled_reason: Option<String>,
    /// When deliveries started failing, Unix milliseconds.
    #[serde(default)]
    pub first_error_timestamp: Option<i64>,
}

/// Cursor of a list answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Pagination {
    /// Items in this page.
    #[serde(default)]
    pub count: Option<u64>,
    /// Pass as `until` for the next (older) page; `None` on the last page.
    #[serde(default)]
    pub next: Option<i64>,
    /// The newest item's cursor.
    #[serde(default)]
    pub prev: Option<i64>,
}

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

/// `GET /v1/drains`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DrainList {
    /// This page's drains, newest first.
    pub drains: Vec<Drain>,
    /// The cursor; absent when the API does not paginate.
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

/// `POST /v1/drains/test`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestDrain {
    /// Schemas, e.g. [`log_schemas`].
    pub schemas: Schemas,
    /// Where to send the sample batch.
    pub delivery: DeliveryRequest,
}

/// The outcome of a test delivery: all fields absent (`{}`) when the endpoint answered 2xx.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct DrainTestResult {
    /// The endpoint's status, when it answered non-2xx.
    #[serde(default)]
    pub status: Option<u16>,
    /// What went wrong.
    #[serde(default)]
    pub error: Option<String>,
    /// The endpoint that was tried.
    #[serde(default)]
    pub endpoint: Option<String>,
}

impl DrainTestResult {
    /// Whether the endpoint accepted the sample batch.
    pub fn is_ok(&self) -> bool {
        self.status.is_none() && self.error.is_none()
    }
}

/// `GET /v1/verify-endpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyEndpoint {
    /// The value to answer in `x-vercel-verify`.
    pub verification_code: String,
}

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

/// How an environment variable is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvType {
    /// Encrypted at rest, readable.
    Encrypted,
    /// Plain text.
    Plain,
    /// Write-only.
    Sensitive,
    /// A value this client does not know (received only).
    #[serde(other)]
    Unknown,
}

/// A deployment environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvTarget {
    /// Production deployments.
    Production,
    /// Preview deployments.
    Preview,
    /// `vercel dev`.
    Development,
    /// A value this client does not know (received only).
    #[serde(other)]
    Unknown,
}

/// One variable for `POST /v10/projects/{idOrName}/env`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvVar {
    /// Name.
    pub key: String,
    /// Value (a secret as far as this client's `Debug` goes).
    pub value: Secret,
    /// Storage type.
    #[serde(rename = "type")]
    pub kind: EnvType,
    /// Environments it applies to.
    pub target: Vec<EnvTarget>,
}

/// A variable Vercel created or updated.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CreatedEnvVar {
    /// Vercel's id of the variable.
    #[serde(default)]
    pub id: Option<String>,
    /// Name.
    pub key: String,
    /// Storage type.
    #[serde(rename = "type", default)]
    pub kind: Option<EnvType>,
    /// Environments.
    #[serde(default, deserialize_with = "null_as_default")]
    pub target: Vec<EnvTarget>,
}

/// Why one variable was not written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EnvFailure {
    /// The error.
    pub error: EnvError,
}

/// The error of one variable.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EnvError {
    /// Stable code.
    pub code: String,
    /// Message.
    #[serde(default)]
    pub message: String,
    /// The variable's key.
    #[serde(default)]
    pub key: Option<String>,
}

/// The answer to an env upsert: `created` may be one object or an array.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EnvUpsert {
    /// Variables written.
    #[serde(deserialize_with = "one_or_many")]
    pub created: Vec<CreatedEnvVar>,
    /// Variables refused.
    #[serde(default, deserialize_with = "null_as_default")]
    pub failed: Vec<EnvFailure>,
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn one_or_many<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        Many(Vec<T>),
        One(T),
        Nothing(()),
    }
    Ok(match OneOrMany::<T>::deserialize(deserializer)? {
        OneOrMany::Many(items) => items,
        OneOrMany::One(item) => vec![item],
        OneOrMany::Nothing(()) => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_parses_integration_secret_and_ignores_unknown_fields() {
        let drain: Drain = serde_json::from_value(serde_json::json!({
            "id": "drn_1", "ownerId": "team_1", "createdAt": 5, "newField": {"x": 1},
            "projectIds": null, "status": "paused-by-the-future",
            "delivery": {"type": "http", "endpoint": "https://x", "encoding": "ndjson",
                         "compression": "gzip", "secret": {"kind": "INTEGRATION_SECRET"}},
        }))
        .unwrap();
        assert!(drain.project_ids.is_empty());
        assert_eq!(drain.status, Some(DrainStatus::Unknown));
        let delivery = drain.delivery.unwrap();
        assert_eq!(delivery.encoding, Some(Encoding::Ndjson));
        assert!(delivery.secret.unwrap().is_integration_secret());
    }

    #[test]
    fn env_upsert_takes_one_or_many_created() {
        let one: EnvUpsert =
            serde_json::from_str(r#"{"created":{"key":"A","type":"plain"},"failed":[]}"#).unwrap();
        assert_eq!(one.created.len(), 1);
        let many: EnvUpsert =
            serde_json::from_str(r#"{"created":[{"key":"A"},{"key":"B"}]}"#).unwrap();
        assert_eq!(many.created.len(), 2);
    }
}
