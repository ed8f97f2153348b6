//! How a drain delivers: body format, compression, headers and signing secret, as sent in
//! requests ([`DeliveryRequest`]) and as reported ([`Delivery`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::null_as_default;
use crate::Secret;

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
    /// as a bearer token, so they are secrets). Always sent, `{}` when there are none: Vercel
    /// requires the field.
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
