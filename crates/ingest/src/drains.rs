//! Drains besides the default one: each has its own URL path, `<drain path>/<key>` for a log
//! drain and `/vercel/<type slug>/<key>` for the other types, and its own signature secret, looked up per request so that drains created or deleted while the server
//! runs take effect without a restart.
//!
//! Any drain (the default one too) may also require request headers with exact values: the
//! custom headers a drain's `delivery.headers` makes Vercel send with every delivery
//! (`Authorization: Bearer …`), checked beside the signature as a second credential.
//!
//! The edge knows drains only through [`DrainDirectory`]; where they are stored is the binary's
//! business (the control plane's registry), so this crate does not depend on it.

use std::fmt;
use std::sync::Arc;

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue};

use listener::SigningKey;
use record::DataType;

use crate::IngestError;

/// What the edge needs to accept deliveries for one drain.
#[derive(Clone)]
pub struct DrainCredentials {
    /// The drain's name in batches, dead letters and logs (its id).
    pub name: Arc<str>,
    /// The secret its deliveries are signed with.
    pub secret: SigningKey,
    /// Headers every delivery must carry, each with its exact value.
    pub headers: Arc<[RequiredHeader]>,
    /// What the drain carries: it is served at `/vercel/<slug>/<key>` for this type only, and
    /// its records must be of it.
    pub data_type: DataType,
}

impl fmt::Debug for DrainCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrainCredentials")
            .field("name", &self.name)
            .field("headers", &self.headers)
            .field("data_type", &self.data_type)
            .finish_non_exhaustive()
    }
}

/// Finds a drain by the key in its URL path.
pub trait DrainDirectory: Send + Sync + 'static {
    /// The drain whose path key is `key`, if there is one now.
    fn lookup(&self, key: &str) -> Option<DrainCredentials>;

    /// Whether the directory serves from a copy it cannot currently refresh (its shared store
    /// is unreachable). `/readyz` reports it in its body and stays ready: the copy still
    /// serves every drain it holds.
    fn degraded(&self) -> bool {
        false
    }
}

/// A request header a drain's deliveries must carry with an exact value. The value is a
/// credential: its `Debug` shows the header's name only, and it is compared in constant time.
#[derive(Clone)]
pub struct RequiredHeader {
    name: HeaderName,
    value: SigningKey,
}

/// Why a required header cannot be used. Never shows the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidHeader {
    /// Not of the form `Name: value`.
    #[error("expected \"Name: value\"")]
    Form,
    /// The name is not an HTTP header name (not echoed: a misplaced value could be in it).
    #[error("the name is not an HTTP header name")]
    Name,
    /// The value is empty or has characters a header value cannot carry.
    #[error("the value of {0} is empty or not a valid header value")]
    Value(String),
    /// A header the delivery protocol itself uses (`x-vercel-signature`, `content-encoding`, …).
    #[error("{0} is set by the delivery protocol and cannot be required")]
    Reserved(String),
}

/// Headers whose values Vercel or HTTP set themselves: requiring a fixed value of one would
/// refuse every delivery or fight the protocol.
const RESERVED: [&str; 6] = [
    "x-vercel-signature",
    "content-encoding",
    "content-length",
    "content-type",
    "host",
    "transfer-encoding",
];

impl RequiredHeader {
    /// A header `name` (case-insensitive) whose value must be exactly `value` (without the
    /// surrounding spaces that HTTP drops anyway).
    pub fn new(name: &str, value: &str) -> Result<RequiredHeader, InvalidHeader> {
        let name = name.trim();
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| InvalidHeader::Name)?;
        if RESERVED.contains(&name.as_str()) {
            return Err(InvalidHeader::Reserved(name.as_str().to_owned()));
        }
        let value = value.trim();
        if value.is_empty() || HeaderValue::from_str(value).is_err() {
            return Err(InvalidHeader::Value(name.as_str().to_owned()));
        }
        Ok(RequiredHeader { name, value: SigningKey::new(value) })
    }

    /// Parses `Name: value`, as given on a command line or in a configuration file.
    pub fn parse(text: &str) -> Result<RequiredHeader, InvalidHeader> {
        let (name, value) = text.split_once(':').ok_or(InvalidHeader::Form)?;
        RequiredHeader::new(name, value)
    }

    /// The header's name, lowercase.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// Whether `headers` carry this header with its value: missing is `401`, another value
    /// `403`, as for the signature.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<(), IngestError> {
        let mut sent = headers.get_all(&self.name).iter().peekable();
        if sent.peek().is_none() {
            return Err(IngestError::MissingHeader(self.name.clone()));
        }
        if sent.any(|v| self.value.matches(v.as_bytes())) {
            Ok(())
        } else {
            Err(IngestError::BadHeader(self.name.clone()))
        }
    }
}

impl fmt::Debug for RequiredHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequiredHeader({}: [redacted])", self.name)
    }
}

/// Checks every required header of a drain, the first failure winning.
pub(crate) fn check_headers(
    required: &[RequiredHeader],
    headers: &HeaderMap,
) -> Result<(), IngestError> {
    required.iter().try_for_each(|h| h.check(headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        map
    }

    #[test]
    fn a_required_header_must_be_present_with_its_exact_value() {
        let h = RequiredHeader::parse("Authorization: Bearer tok-1").unwrap();
        assert_eq!(h.name(), "authorization");
        assert!(h.check(&headers(&[("authorization", "Bearer tok-1")])).is_ok());
        assert!(h.check(&headers(&[("AUTHORIZATION", "Bearer tok-1")])).is_ok());
        let missing = h.check(&headers(&[("x-other", "Bearer tok-1")])).unwrap_err();
        assert_eq!((missing.status().as_u16(), missing.code()), (401, "missing_header"));
        for wrong in ["Bearer tok-2", "bearer tok-1", "Bearer tok-1x", "Bearer tok-"] {
            let bad = h.check(&headers(&[("authorization", wrong)])).unwrap_err();
            assert_eq!((bad.status().as_u16(), bad.code()), (403, "invalid_header"), "{wrong}");
        }
        // One of several values of the header is enough.
        let two = headers(&[("authorization", "Basic x"), ("authorization", "Bearer tok-1")]);
        assert!(h.check(&two).is_ok());
        assert_eq!(format!("{h:?}"), "RequiredHeader(authorization: [redacted])");
        assert!(!format!("{missing} {}", missing.code()).contains("tok-1"));
    }

    #[test]
    fn malformed_or_reserved_headers_are_refused_without_showing_the_value() {
        assert_eq!(RequiredHeader::parse("no colon").unwrap_err(), InvalidHeader::Form);
        let bad_name = RequiredHeader::parse("Authorization=Bearer tok-1: v").unwrap_err();
        assert_eq!(bad_name, InvalidHeader::Name);
        assert!(!bad_name.to_string().contains("tok-1"), "{bad_name}");
        assert!(matches!(RequiredHeader::parse("x-token:  "), Err(InvalidHeader::Value(_))));
        let reserved = RequiredHeader::parse("X-Vercel-Signature: abc").unwrap_err();
        assert_eq!(reserved, InvalidHeader::Reserved("x-vercel-signature".into()));
        let bad_value = RequiredHeader::new("x-token", "secret\nvalue").unwrap_err();
        assert!(!bad_value.to_string().contains("secret"), "{bad_value}");
        // Spaces around the value are not part of it (HTTP drops them).
        let h = RequiredHeader::parse("x-token:  s3cr3t ").unwrap();
        assert!(h.check(&headers(&[("x-token", "s3cr3t")])).is_ok());
    }
}
