//! Authentication before work: what a delivery must show before the edge inflates or decodes
//! anything. On a drain with a secret, an unsigned body is refused at once, except Vercel's
//! unsigned endpoint-verification probe (`{}` or empty), recognised without work (identity) or
//! under a tiny inflation cap (gzip). A signed body's raw bytes are checked first (cheap); a gzip
//! body whose raw bytes do not match may still be signed over its inflated bytes, and inflating
//! it to find out is work anyone who can reach the port can ask for: it runs on the blocking
//! pool only, at most `max_unverified_inflations` at once (past that, a fast `503`).

use std::sync::Arc;
use std::time::Instant;

use listener::SigningKey;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::inflate::gunzip;
use crate::live::verifies_any;
use crate::metrics::EdgeStage;
use crate::{IngestError, IngestMetrics};

/// How far a delivery's signature is established before its body is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signed {
    /// The drain has no secret: nothing to check.
    NotRequired,
    /// The signature matches the raw bytes as received.
    Raw,
    /// The signature does not match the raw bytes; for gzip it may match the inflated bytes.
    Unverified,
    /// Signed, not yet checked: the thread that opens the body (a runtime thread for a small
    /// identity body, else a blocking one) checks the raw bytes first, before anything else.
    Pending,
}

/// Above this many bytes an unsigned gzip body cannot be a probe (`{}` gzipped is about 22
/// bytes) and is refused without being looked into.
const PROBE_GZIP_RAW_BYTES: usize = 256;
/// The inflated bytes an unsigned gzip body may grow to while it is checked for a probe.
const PROBE_INFLATED_BYTES: usize = 64;

/// Vercel's endpoint verification probe, by its body (whitespace aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    Empty,
    /// `{}`.
    Braces,
}

/// Whether an unsigned body is Vercel's endpoint verification probe (and which), found with
/// bounded work.
pub(crate) fn unsigned_probe(raw: &[u8], gzip: bool) -> Option<Probe> {
    if !gzip {
        return probe_of(raw);
    }
    if raw.len() > PROBE_GZIP_RAW_BYTES {
        return None;
    }
    gunzip(raw, PROBE_INFLATED_BYTES).ok().and_then(|body| probe_of(body.as_slice()))
}

/// Vercel's endpoint verification: an empty body or `{}`.
pub(crate) fn probe_of(body: &[u8]) -> Option<Probe> {
    match body.trim_ascii() {
        b"" => Some(Probe::Empty),
        b"{}" => Some(Probe::Braces),
        _ => None,
    }
}

/// Checks the raw bytes where the signature is [`Signed::Pending`] (on the thread that opens
/// the body, before anything else; `previous` keys are tried only when the current one fails),
/// and takes a place among the unverified inflations for a gzip body whose raw bytes did not
/// match, held while the body is opened.
pub(crate) fn authenticate_raw(
    (metrics, unverified): (&IngestMetrics, &Arc<Semaphore>),
    keys: Option<(&SigningKey, &Arc<[SigningKey]>)>,
    (raw, signature): (&[u8], Option<&[u8]>),
    (signed, gzip): (Signed, bool),
) -> Result<(Signed, Option<OwnedSemaphorePermit>), IngestError> {
    let signed = match (signed, keys, signature) {
        (Signed::Pending, Some(keys), Some(sig)) => check_raw(metrics, keys, raw, sig),
        (Signed::Pending, ..) => Signed::Unverified,
        (signed, ..) => signed,
    };
    let permit = match signed {
        Signed::Unverified if gzip => Some(unverified_permit(unverified)?),
        _ => None,
    };
    Ok((signed, permit))
}

/// Checks `signature` over the raw bytes, timed as the `verify` stage.
fn check_raw(
    metrics: &IngestMetrics,
    (secret, previous): (&SigningKey, &Arc<[SigningKey]>),
    raw: &[u8],
    signature: &[u8],
) -> Signed {
    let started = Instant::now();
    let ok = verifies_any(secret, previous, raw, signature);
    metrics.stage(EdgeStage::Verify, started.elapsed().as_secs_f64());
    if ok {
        Signed::Raw
    } else {
        Signed::Unverified
    }
}

/// A place among the unverified inflations, or `503 overloaded` at once when none is free.
fn unverified_permit(places: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit, IngestError> {
    Arc::clone(places).try_acquire_owned().map_err(|_| IngestError::Overloaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn probes_are_recognised_plain_and_gzip() {
        for body in [&b""[..], b"{}", b" {} \n"] {
            assert!(unsigned_probe(body, false).is_some());
            assert!(unsigned_probe(&gz(body), true).is_some());
        }
        assert!(unsigned_probe(br#"{"id":"1"}"#, false).is_none());
        assert!(unsigned_probe(&gz(br#"{"id":"1"}"#), true).is_none());
    }

    #[test]
    fn a_large_unsigned_gzip_body_is_not_looked_into() {
        // `{}` after a long run of spaces is a probe in principle, but its raw size alone
        // rules it out: it is never inflated.
        let mut padded = vec![b' '; 1 << 20];
        padded.extend_from_slice(b"{}");
        let packed = gz(&padded);
        assert!(packed.len() > PROBE_GZIP_RAW_BYTES);
        assert!(unsigned_probe(&packed, true).is_none());
        // Small, but inflating past the tiny cap: not a probe either.
        let spaces = gz(&[b' '; 4096]);
        assert!(spaces.len() <= PROBE_GZIP_RAW_BYTES);
        assert!(unsigned_probe(&spaces, true).is_none());
    }

    #[test]
    fn the_permits_are_bounded() {
        let places = Arc::new(Semaphore::new(1));
        let held = unverified_permit(&places).unwrap();
        assert!(matches!(unverified_permit(&places), Err(IngestError::Overloaded)));
        drop(held);
        assert!(unverified_permit(&places).is_ok());
    }
}
