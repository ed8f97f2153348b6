//! How a drain delivers: body format, compression, headers and signing secret, as sent in
//! requests ([`DeliveryRequest`]) and as reported ([`Delivery`]). Two variants exist: `http`
//! (JSON types: a URL, `json`|`ndjson`, optional gzip) and `otlphttp` (traces: the URL under
//! `endpoint.traces`, `proto`|`json`, no compression field).

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
    /// OTLP protobuf (trace drains only).
    Proto,
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

/// The delivery variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryKind {
    /// JSON or NDJSON batches to a URL (logs, Speed Insights, Web Analytics, audit logs).
    Http,
    /// OTLP/HTTP to `endpoint.traces` (traces).
    Otlphttp,
    /// A value this client does not know (received only).
    #[serde(other)]
    Unknown,
}

/// Where and how a drain delivers, as sent in create, update and test requests. Serialized as
/// its variant: `http` carries `compression`; `otlphttp` writes the endpoint as
/// `{"traces": <url>}` and has no compression.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRequest {
    /// `http` or `otlphttp`.
    pub kind: DeliveryKind,
    /// The receiver's URL.
    pub endpoint: String,
    /// Body format.
    pub encoding: Encoding,
    /// Compression (`http` only).
    pub compression: Compression,
    /// Extra request headers Vercel sends with each delivery (values may be credentials, such
    /// as a bearer token, so they are secrets). Always sent, `{}` when there are none: Vercel
    /// requires the field.
    pub headers: BTreeMap<String, Secret>,
    /// The signature verification secret; Vercel generates one when absent.
    pub secret: Option<Secret>,
}

impl DeliveryRequest {
    /// What an API error must not quote back: the secret and every header's value.
    pub(crate) fn secrets(&self) -> impl Iterator<Item = &str> {
        self.secret.iter().chain(self.headers.values()).map(Secret::expose)
    }

    /// An HTTP delivery to `endpoint` in `encoding`, uncompressed, without headers or secret.
    pub fn http(endpoint: impl Into<String>, encoding: Encoding) -> DeliveryRequest {
        DeliveryRequest {
            kind: DeliveryKind::Http,
            endpoint: endpoint.into(),
            encoding,
            compression: Compression::None,
            headers: BTreeMap::new(),
            secret: None,
        }
    }

    /// An OTLP/HTTP delivery of traces to `endpoint` in `encoding` (`proto` or `json`).
    pub fn otlp(endpoint: impl Into<String>, encoding: Encoding) -> DeliveryRequest {
        DeliveryRequest {
            kind: DeliveryKind::Otlphttp,
            ..DeliveryRequest::http(endpoint, encoding)
        }
    }
}

/// `endpoint` as each variant writes it.
#[derive(Serialize)]
#[serde(untagged)]
enum WireEndpoint<'a> {
    Url(&'a str),
    Otlp { traces: &'a str },
}

#[derive(Serialize)]
struct WireDelivery<'a> {
    #[serde(rename = "type")]
    kind: DeliveryKind,
    endpoint: WireEndpoint<'a>,
    encoding: Encoding,
    #[serde(skip_serializing_if = "Option::is_none")]
    compression: Option<Compression>,
    headers: &'a BTreeMap<String, Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<&'a Secret>,
}

impl Serialize for DeliveryRequest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let otlp = self.kind == DeliveryKind::Otlphttp;
        WireDelivery {
            kind: self.kind,
            endpoint: if otlp {
                WireEndpoint::Otlp { traces: &self.endpoint }
            } else {
                WireEndpoint::Url(&self.endpoint)
            },
            encoding: self.encoding,
            compression: (!otlp).then_some(self.compression),
            headers: &self.headers,
            secret: self.secret.as_ref(),
        }
        .serialize(serializer)
    }
}

/// Reads `endpoint` as a URL, or as an OTLP endpoint object (`{"traces": <url>}`) as its
/// `traces` URL.
fn endpoint_url<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Url(String),
        Otlp {
            #[serde(default)]
            traces: Option<String>,
        },
    }
    Ok(match Option::<Either>::deserialize(d)? {
        Some(Either::Url(url)) => Some(url),
        Some(Either::Otlp { traces }) => traces,
        None => None,
    })
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
    /// `http` or `otlphttp`.
    #[serde(rename = "type", default)]
    pub kind: Option<DeliveryKind>,
    /// The receiver's URL (for `otlphttp`, the one under `endpoint.traces`).
    #[serde(default, deserialize_with = "endpoint_url")]
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_variant_is_written_as_vercel_takes_it() {
        let http = serde_json::to_value(DeliveryRequest::http("https://x/l", Encoding::Json));
        let expected = json!({"type": "http", "endpoint": "https://x/l", "encoding": "json",
                              "compression": "none", "headers": {}});
        assert_eq!(http.unwrap(), expected);
        let otlp = serde_json::to_value(DeliveryRequest::otlp("https://x/t", Encoding::Proto));
        let expected = json!({"type": "otlphttp", "endpoint": {"traces": "https://x/t"},
                              "encoding": "proto", "headers": {}});
        assert_eq!(otlp.unwrap(), expected);
    }

    #[test]
    fn an_object_endpoint_reads_as_its_traces_url() {
        let read: Delivery = serde_json::from_value(json!({"type": "otlphttp",
            "endpoint": {"traces": "https://x/v1/traces"}, "encoding": "proto"}))
        .unwrap();
        assert_eq!(read.kind, Some(DeliveryKind::Otlphttp));
        assert_eq!(read.endpoint.as_deref(), Some("https://x/v1/traces"));
        assert_eq!(read.encoding, Some(Encoding::Proto));
        let odd: Delivery = serde_json::from_value(json!({"type": "s3", "endpoint": {}})).unwrap();
        assert_eq!((odd.kind, odd.endpoint), (Some(DeliveryKind::Unknown), None));
    }
}
