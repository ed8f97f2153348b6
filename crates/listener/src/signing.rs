//! `x-vercel-signature`: lowercase hex HMAC-SHA1 of the body, keyed by a drain's secret (or
//! the integration's client secret for webhooks), compared in constant time.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// A signing key. Its `Debug` never shows the value, so it cannot leak through logs. Cloning
/// it (once per request, for the drain being served) only counts a reference.
#[derive(Clone)]
pub struct SigningKey(Arc<[u8]>);

impl SigningKey {
    /// Wraps a key.
    pub fn new(value: impl Into<Vec<u8>>) -> SigningKey {
        SigningKey(Arc::from(value.into()))
    }

    /// Whether `signature` (as sent in the header) is the HMAC-SHA1 of `body` under this key.
    pub fn verifies(&self, body: &[u8], signature: &[u8]) -> bool {
        let Some(expected) = signature_bytes(signature) else { return false };
        let mut mac = Hmac::<Sha1>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    }

    /// Whether `value` is this key itself, compared in constant time (for a drain's required
    /// header values, which are sent as they are rather than as a signature).
    pub fn matches(&self, value: &[u8]) -> bool {
        bool::from(self.0.as_ref().ct_eq(value))
    }

    /// The signature of `body` under this key, as Vercel would send it.
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha1>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

/// The 20 bytes a signature header's hex spells (surrounding whitespace ignored), or `None` when
/// it is not 40 hex digits.
pub fn signature_bytes(signature: &[u8]) -> Option<[u8; 20]> {
    let mut out = [0u8; 20];
    hex::decode_to_slice(signature.trim_ascii(), &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_rejects() {
        let secret = SigningKey::new("drain-secret-0123456789");
        let sig = secret.sign(b"{}");
        assert_eq!(sig, "198debbea7000af15f561fcc7a07a585d4b62399");
        assert!(secret.verifies(b"{}", sig.as_bytes()));
        assert!(secret.verifies(b"{}", sig.to_uppercase().as_bytes()));
        assert!(!secret.verifies(b"{} ", sig.as_bytes()));
        assert!(!secret.verifies(b"{}", b"198debbea7000af15f561fcc7a07a585d4b623"));
        assert!(!secret.verifies(b"{}", b"not hex at all"));
        assert_eq!(format!("{secret:?}"), "SigningKey([redacted])");
        assert!(secret.matches(b"drain-secret-0123456789"));
        assert!(!secret.matches(b"drain-secret-012345678"));
        assert!(!secret.matches(b"drain-secret-0123456780"));
    }
}
