//! Request and response bodies of the Vercel REST API (docs/vercel/PROTOCOL.md §4), as serde
//! types, one module per resource and every type re-exported here.
//!
//! Responses are tolerant: unknown fields are ignored, most fields are optional, and enums have
//! an `Unknown` variant, so a field Vercel adds tomorrow does not break today's client.

use serde::{Deserialize, Deserializer};

mod delivery;
mod drains;
mod env;
mod integrations;
mod legacy;
mod oauth;

pub use delivery::{Compression, Delivery, DeliveryKind, DeliveryRequest, DrainSecret, Encoding};
pub use drains::{
    log_schemas, schemas_for, CreateDrain, Drain, DrainList, DrainSource, DrainStatus,
    DrainTestResult, Pagination, ProjectScope, SamplingRule, SchemaVersion, Schemas, TestDrain,
    UpdateDrain, VerifyEndpoint,
};
pub use env::{CreatedEnvVar, EnvError, EnvFailure, EnvTarget, EnvType, EnvUpsert, EnvVar};
pub use integrations::{IntegrationConfiguration, ProjectSelection};
pub use legacy::{CreateLogDrain, LogDrain};
pub use oauth::{AccessToken, ExchangeCode};

/// Reads `null` as the type's default (an empty list or map); with `#[serde(default)]` a
/// missing field reads the same.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
