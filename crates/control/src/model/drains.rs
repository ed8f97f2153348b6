//! Drains (`/v1/drains`): what is sent to create, update and test one, what Vercel reports,
//! and `GET /v1/verify-endpoint`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use record::DataType;

use super::{null_as_default, Delivery, DeliveryRequest};

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
    schemas_for(DataType::Logs)
}

/// The schemas of a drain of `data_type`: `{"<schema key>":{"version":"v1"}}`, `v2` for Web
/// Analytics (the version Vercel documents since April 2026).
pub fn schemas_for(data_type: DataType) -> Schemas {
    let version = if data_type == DataType::Analytics { "v2" } else { "v1" };
    BTreeMap::from([(
        data_type.schema_key().to_owned(),
        SchemaVersion { version: version.to_owned() },
    )])
}

/// One head-sampling rule. Sent with `type` `head_sampling`; read with whatever `type` Vercel
/// reports (its CLI sends the schema name there).
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

impl SamplingRule {
    /// A `head_sampling` rule keeping `rate` of the requests, optionally only in `env` and under
    /// `request_path`.
    pub fn head(rate: f64, env: Option<String>, request_path: Option<String>) -> SamplingRule {
        SamplingRule { kind: "head_sampling".to_owned(), rate, env, request_path }
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

impl Drain {
    /// The data type its `schemas` name, if it names one this crate knows.
    pub fn data_type(&self) -> Option<DataType> {
        self.schemas
            .keys()
            .find_map(|key| DataType::ALL.into_iter().find(|t| t.schema_key() == key))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Encoding;

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
        assert_eq!(drain.data_type(), None);
        let delivery = drain.delivery.unwrap();
        assert_eq!(delivery.encoding, Some(Encoding::Ndjson));
        assert!(delivery.secret.unwrap().is_integration_secret());
    }

    #[test]
    fn schemas_name_the_type_and_sampling_reads_either_type() {
        let drain: Drain = serde_json::from_value(serde_json::json!({
            "id": "drn_2", "schemas": {"speed_insights": {"version": "v1"}},
            "sampling": [{"type": "speed_insights", "rate": 0.5},
                         {"type": "head_sampling", "rate": 1, "env": "preview",
                          "requestPath": "/a"}],
        }))
        .unwrap();
        assert_eq!(drain.data_type(), Some(DataType::SpeedInsights));
        assert_eq!(drain.sampling[0].kind, "speed_insights");
        let rule = SamplingRule::head(1.0, Some("preview".into()), Some("/a".into()));
        assert_eq!(drain.sampling[1], rule);
        assert_eq!(schemas_for(DataType::Analytics)["analytics"].version, "v2");
        assert_eq!(schemas_for(DataType::Traces)["trace"].version, "v1");
    }
}
