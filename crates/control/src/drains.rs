//! Drain operations: what `spillway drains …` and the integration install flow do to a drain,
//! on Vercel and in the local registry together.
//!
//! - [`create_and_register`]: a fresh path key and secret, the drain created on Vercel, then
//!   registered; a drain that cannot be registered is deleted on Vercel again, since a drain whose
//!   secret is nowhere but on Vercel is of no use to the receiver.
//! - [`update`]: a new endpoint keeps the drain's secret, headers and other delivery settings
//!   (Vercel replaces `delivery` as a whole).
//! - [`delete`]: idempotent; a drain already gone on Vercel is forgotten here too.
//! - [`test`]: Vercel sends a signed sample batch to the drain's endpoint.
//!
//! The registry is any of [`Stores`]: the data directory's files or the shared database.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::model::{
    log_schemas, schemas_for, Compression, CreateDrain, DeliveryKind, DeliveryRequest, Drain,
    DrainSecret, DrainStatus, Encoding, EnvTarget, ProjectScope, SamplingRule, TestDrain,
    UpdateDrain,
};
use crate::registry::{generate_path_key, generate_secret, DeliveryHeader};
use record::DataType;

use crate::{ControlError, DrainEntry, DrainKind, Secret, StoreError, Stores, VercelClient};

/// The receiver's log drain path; an endpoint of a log drain ending in it gets the drain's
/// path key. Each type has its own ([`receiver_path`]).
pub const RECEIVER_PATH: &str = "/vercel/logs";
/// The id prefix of the legacy log-drain API's drains.
pub const LEGACY_PREFIX: &str = "ld_";
/// Every environment a project variable can apply to.
pub const ALL_ENV_TARGETS: [EnvTarget; 3] =
    [EnvTarget::Production, EnvTarget::Preview, EnvTarget::Development];

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Where Vercel delivers a new drain's batches, given its path key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A URL given by a user: the path key is appended when it ends in [`RECEIVER_PATH`],
    /// else it is used as it is.
    Given(String),
    /// The receiver's drain URL of an installation: the path key is always appended, since the
    /// receiver finds integration drains by their key.
    Under(String),
}

impl Endpoint {
    /// The endpoint of the drain of `data_type` with `path_key`.
    pub fn with_key(&self, data_type: DataType, path_key: &str) -> String {
        match self {
            Endpoint::Given(url) => typed_drain_endpoint(data_type, url, path_key),
            Endpoint::Under(url) => format!("{}/{path_key}", url.trim_end_matches('/')),
        }
    }
}

/// The receiver's path for drains of `data_type`: `/vercel/<slug>`.
pub fn receiver_path(data_type: DataType) -> String {
    format!("/vercel/{}", data_type.slug())
}

/// The endpoint Vercel delivers to: `url`, plus `/<path key>` when it ends in `/vercel/logs`.
pub fn drain_endpoint(url: &str, path_key: &str) -> String {
    typed_drain_endpoint(DataType::Logs, url, path_key)
}

/// The endpoint a drain of `data_type` delivers to: `url`, plus `/<path key>` when it ends in
/// that type's receiver path (`/vercel/traces`, `/vercel/speed-insights`, …).
pub fn typed_drain_endpoint(data_type: DataType, url: &str, path_key: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    if trimmed.ends_with(&receiver_path(data_type)) {
        format!("{trimmed}/{path_key}")
    } else {
        url.to_owned()
    }
}

/// The delivery a new drain of `data_type` sends: `otlphttp` for traces (which has no
/// compression), `http` for the JSON types.
pub fn delivery_for(
    data_type: DataType,
    endpoint: String,
    encoding: Encoding,
    compression: Compression,
) -> DeliveryRequest {
    if data_type == DataType::Traces {
        DeliveryRequest::otlp(endpoint, encoding)
    } else {
        DeliveryRequest { compression, ..DeliveryRequest::http(endpoint, encoding) }
    }
}

/// A drain to create.
#[derive(Debug, Clone)]
pub struct NewDrain {
    /// Display name.
    pub name: String,
    /// Where it delivers.
    pub endpoint: Endpoint,
    /// Only these projects; all when empty.
    pub project_ids: Vec<String>,
    /// Body format.
    pub encoding: Encoding,
    /// Body compression.
    pub compression: Compression,
    /// Headers Vercel sends with every delivery (and the receiver requires).
    pub headers: Vec<DeliveryHeader>,
    /// The log filter (`{"version":"v2","filter":…}`), if any.
    pub filter: Option<serde_json::Value>,
    /// Head-sampling rules (at most 10); none keeps every request.
    pub sampling: Vec<SamplingRule>,
    /// The installation creating it, for an integration's drain.
    pub configuration_id: Option<String>,
    /// What it carries.
    pub data_type: DataType,
}

/// A drain created and registered.
#[derive(Debug, Clone)]
pub struct Created {
    /// As Vercel reported it.
    pub drain: Drain,
    /// As registered.
    pub entry: DrainEntry,
    /// Where it delivers.
    pub endpoint: String,
}

/// Why a drain operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DrainOpError {
    /// The Vercel API refused or failed.
    #[error(transparent)]
    Api(#[from] ControlError),
    /// The local registry could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The drain was created on Vercel but could not be registered.
    #[error("drain {id} was created but could not be registered ({}): {source}", if *.deleted_again { "it was deleted on Vercel again".to_owned() } else { format!("it still exists on Vercel; remove it with `spillway drains delete {id}`") })]
    Unregistered {
        /// The drain.
        id: String,
        /// Whether deleting it on Vercel again succeeded.
        deleted_again: bool,
        /// Why registering failed.
        #[source]
        source: StoreError,
    },
    /// Vercel's test delivery did not reach the endpoint, or was not accepted.
    #[error("the test delivery to {} failed (status {}): {}", .endpoint.as_deref().unwrap_or("the endpoint"), .status.map_or_else(|| "none".to_owned(), |s| s.to_string()), .error.as_deref().unwrap_or("no details"))]
    TestFailed {
        /// The endpoint's answer, if it answered.
        status: Option<u16>,
        /// Vercel's description.
        error: Option<String>,
        /// Where it was sent.
        endpoint: Option<String>,
    },
}

/// Creates `new` on Vercel with a fresh path key and secret and registers it.
pub async fn create_and_register(
    client: &VercelClient,
    registry: &Stores,
    new: NewDrain,
) -> Result<Created, DrainOpError> {
    let path_key = generate_path_key()?;
    let secret = generate_secret()?;
    let endpoint = new.endpoint.with_key(new.data_type, &path_key);
    let mut delivery = delivery_for(new.data_type, endpoint.clone(), new.encoding, new.compression);
    delivery.secret = Some(secret.clone());
    delivery.headers = header_map(&new.headers);
    let scope = if new.project_ids.is_empty() { ProjectScope::All } else { ProjectScope::Some };
    let request = CreateDrain {
        name: new.name,
        projects: Some(scope),
        project_ids: new.project_ids,
        schemas: schemas_for(new.data_type),
        delivery,
        sampling: (!new.sampling.is_empty()).then_some(new.sampling),
        filter: new.filter,
    };
    let drain = client.create_drain(&request).await?;
    let integration_secret = drain
        .delivery
        .as_ref()
        .and_then(|d| d.secret.as_ref())
        .is_some_and(|s| s.is_integration_secret());
    let entry = DrainEntry {
        id: drain.id.clone(),
        path_key,
        secret,
        team_id: drain.team_id.clone().or_else(|| client.team_id().map(str::to_owned)),
        kind: if new.configuration_id.is_some() {
            DrainKind::Integration
        } else {
            DrainKind::SelfServed
        },
        created_at_ms: drain.created_at.unwrap_or_else(now_ms),
        configuration_id: new.configuration_id,
        integration_secret,
        headers: new.headers,
        data_type: new.data_type,
    };
    if let Err(source) = registry.register_drain(entry.clone()).await {
        let deleted_again = client.delete_drain(&drain.id).await.is_ok();
        return Err(DrainOpError::Unregistered { id: drain.id, deleted_again, source });
    }
    Ok(Created { drain, entry, endpoint })
}

/// Registry headers as the API's `delivery.headers`.
fn header_map(headers: &[DeliveryHeader]) -> BTreeMap<String, Secret> {
    headers.iter().map(|h| (h.name.clone(), h.value.clone())).collect()
}

/// The delivery of `drain` as a request: its reported settings with `endpoint`, and the
/// secret and headers the registry holds for it (else the ones Vercel reports).
pub fn delivery_of(drain: &Drain, endpoint: String, entry: Option<&DrainEntry>) -> DeliveryRequest {
    let reported = drain.delivery.as_ref();
    let otlp = reported.and_then(|d| d.kind) == Some(DeliveryKind::Otlphttp);
    let default_encoding = if otlp { Encoding::Proto } else { Encoding::Ndjson };
    let encoding = reported.and_then(|d| d.encoding).unwrap_or(default_encoding);
    let mut delivery = if otlp {
        DeliveryRequest::otlp(endpoint, encoding)
    } else {
        DeliveryRequest::http(endpoint, encoding)
    };
    delivery.compression = reported.and_then(|d| d.compression).unwrap_or(Compression::None);
    delivery.headers = match entry {
        Some(entry) if !entry.headers.is_empty() => header_map(&entry.headers),
        _ => reported.map(|d| d.headers.clone()).unwrap_or_default(),
    };
    delivery.secret = secret_of(drain, entry);
    delivery
}

/// The secret a drain signs with: the registry's, else the one Vercel reports; none for an
/// integration's drain, which Vercel signs with the integration's secret (the registry's entry
/// for it keeps a secret it never signs with: sent, it would sign the test delivery, or replace
/// the integration's secret on an update, and the receiver would refuse every delivery).
fn secret_of(drain: &Drain, entry: Option<&DrainEntry>) -> Option<Secret> {
    if entry.is_some_and(|e| e.integration_secret) {
        return None;
    }
    entry.map(|e| e.secret.clone()).or_else(|| {
        match drain.delivery.as_ref().and_then(|d| d.secret.as_ref()) {
            Some(DrainSecret::Value(secret)) => Some(secret.clone()),
            _ => None,
        }
    })
}

/// The registry entry of drain `id`, if registered.
pub async fn registered(registry: &Stores, id: &str) -> Result<Option<DrainEntry>, StoreError> {
    registry.drain(id).await
}

/// What to change on a drain.
#[derive(Debug, Clone, Default)]
pub struct DrainChange {
    /// New display name.
    pub name: Option<String>,
    /// Enable or disable it.
    pub status: Option<DrainStatus>,
    /// New receiver URL (a registered drain keeps its path key on it).
    pub url: Option<String>,
}

/// Changes drain `id`; returns it as Vercel reports it afterwards, with its registry entry.
pub async fn update(
    client: &VercelClient,
    registry: &Stores,
    id: &str,
    change: DrainChange,
) -> Result<(Drain, Option<DrainEntry>), DrainOpError> {
    let entry = registered(registry, id).await?;
    let mut update =
        UpdateDrain { name: change.name, status: change.status, ..UpdateDrain::default() };
    if let Some(url) = change.url {
        // `delivery` replaces the whole object: keep the secret and the other settings.
        let current = client.get_drain(id).await?;
        let endpoint = match &entry {
            Some(entry) => typed_drain_endpoint(entry.data_type, &url, &entry.path_key),
            None => url,
        };
        update.delivery = Some(delivery_of(&current, endpoint, entry.as_ref()));
    }
    let drain = client.update_drain(id, &update).await?;
    Ok((drain, entry))
}

/// What [`delete`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// A legacy log drain (`ld_…`, never registered here) was deleted.
    Legacy,
    /// The drain was already gone on Vercel; it was removed from the registry.
    AlreadyGone,
    /// The drain was deleted on Vercel; `unregistered` says whether the registry had it.
    Deleted {
        /// Whether it was removed from the registry.
        unregistered: bool,
    },
}

/// Deletes drain `id` on Vercel and forgets it here.
pub async fn delete(
    client: &VercelClient,
    registry: &Stores,
    id: &str,
) -> Result<Deleted, DrainOpError> {
    if id.starts_with(LEGACY_PREFIX) {
        // Legacy log drains are never registered here: nothing to forget locally.
        client.delete_log_drain(id).await?;
        return Ok(Deleted::Legacy);
    }
    let gone_already = match client.delete_drain(id).await {
        Ok(()) => false,
        // Gone on Vercel but still registered: forget it here too, so delete is idempotent.
        Err(e) if e.status() == Some(404) && registered(registry, id).await?.is_some() => true,
        Err(e) => return Err(e.into()),
    };
    let removed = registry.forget_drain(id).await?.is_some();
    Ok(if gone_already { Deleted::AlreadyGone } else { Deleted::Deleted { unregistered: removed } })
}

/// Has Vercel send a signed sample batch to drain `id`'s endpoint; returns the endpoint.
pub async fn test(
    client: &VercelClient,
    registry: &Stores,
    id: &str,
) -> Result<String, DrainOpError> {
    let drain = client.get_drain(id).await?;
    let entry = registered(registry, id).await?;
    let endpoint = drain.delivery.as_ref().and_then(|d| d.endpoint.clone()).unwrap_or_default();
    let schemas = if drain.schemas.is_empty() { log_schemas() } else { drain.schemas.clone() };
    let test =
        TestDrain { schemas, delivery: delivery_of(&drain, endpoint.clone(), entry.as_ref()) };
    let result = client.test_drain(&test).await?;
    if !result.is_ok() {
        return Err(DrainOpError::TestFailed {
            status: result.status,
            error: result.error,
            endpoint: result.endpoint.or(Some(endpoint)),
        });
    }
    Ok(endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_receiver_urls_get_the_path_key() {
        assert_eq!(drain_endpoint("https://x/vercel/logs", "k1"), "https://x/vercel/logs/k1");
        assert_eq!(drain_endpoint("https://x/vercel/logs/", "k1"), "https://x/vercel/logs/k1");
        assert_eq!(drain_endpoint("https://x/ingest", "k1"), "https://x/ingest");
        assert_eq!(
            Endpoint::Under("https://x/ingest/".into()).with_key(DataType::Logs, "k1"),
            "https://x/ingest/k1"
        );
    }

    #[test]
    fn each_type_gets_the_key_on_its_own_receiver_path_only() {
        let given = |url: &str| Endpoint::Given(url.to_owned());
        let cases = [
            (DataType::Traces, "https://x/vercel/traces", "https://x/vercel/traces/k"),
            (
                DataType::SpeedInsights,
                "https://x/vercel/speed-insights/",
                "https://x/vercel/speed-insights/k",
            ),
            (DataType::Analytics, "https://x/vercel/analytics", "https://x/vercel/analytics/k"),
            (DataType::AuditLog, "https://x/vercel/audit-log", "https://x/vercel/audit-log/k"),
            (DataType::Logs, "https://x/vercel/logs", "https://x/vercel/logs/k"),
            (DataType::Traces, "https://x/vercel/logs", "https://x/vercel/logs"),
            (DataType::Traces, "https://x/v1/traces", "https://x/v1/traces"),
        ];
        for (data_type, url, expected) in cases {
            assert_eq!(given(url).with_key(data_type, "k"), expected, "{data_type} {url}");
        }
    }

    #[test]
    fn traces_deliver_over_otlp_without_compression() {
        let traces = delivery_for(DataType::Traces, "u".into(), Encoding::Json, Compression::Gzip);
        assert_eq!((traces.kind, traces.encoding), (DeliveryKind::Otlphttp, Encoding::Json));
        let json = serde_json::to_value(&traces).unwrap();
        assert!(json.get("compression").is_none(), "{json}");
        let logs = delivery_for(DataType::Logs, "u".into(), Encoding::Ndjson, Compression::Gzip);
        assert_eq!((logs.kind, logs.compression), (DeliveryKind::Http, Compression::Gzip));
    }
}
