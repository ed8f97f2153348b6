//! `KeyRing`: seals the secrets the shared store keeps (drain secrets, delivery header values,
//! OAuth tokens) with AES-256-GCM, so a database dump or a read-only database user never sees
//! them in clear.
//!
//! A sealed value is `nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)`, stored beside the id of
//! the key that sealed it. The associated data names the table, the column and the row, so a
//! sealed value copied into another row or column does not open. A ring has one current key,
//! which seals, and any number of previous keys, which only open: rotating is re-sealing every
//! value whose key id is not the current one (`spillway store rotate-key`) while the old key is
//! still in the ring.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;

use crate::store::StoreError;

/// Bytes in a key.
pub const KEY_BYTES: usize = 32;
/// Bytes in a nonce (random per value: at the volumes of a drain registry, far from the bound).
const NONCE_BYTES: usize = 12;
/// What a key's id is derived from: HMAC-SHA1 under the key of this label (a key id reveals
/// nothing of the key and needs no registry of its own).
const KEY_ID_LABEL: &[u8] = b"spillway store key id";

struct Key {
    id: String,
    cipher: Aes256Gcm,
}

/// The current key and the previous ones. `Debug` shows the key ids only.
#[derive(Clone)]
pub struct KeyRing {
    keys: std::sync::Arc<[Key]>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("KeyRing").field("key_ids", &ids).finish()
    }
}

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not standard base64.
    #[error("{name} is not base64")]
    NotBase64 {
        /// Which setting.
        name: String,
    },
    /// Not 32 bytes once decoded.
    #[error("{name} must be {KEY_BYTES} bytes (base64 of them); it is {len}")]
    WrongLength {
        /// Which setting.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
}

impl KeyRing {
    /// A ring sealing with `current` and opening with it and `previous`, each 32 bytes.
    pub fn new(current: [u8; KEY_BYTES], previous: &[[u8; KEY_BYTES]]) -> KeyRing {
        let keys: Vec<Key> = std::iter::once(&current).chain(previous).map(key).collect();
        KeyRing { keys: keys.into() }
    }

    /// A ring from base64 text: `current` (named `name` in errors) and a comma-separated list
    /// of previous keys (named `previous_name`; empty for none).
    pub fn from_base64(
        name: &str,
        current: &str,
        previous_name: &str,
        previous: &str,
    ) -> Result<KeyRing, KeyError> {
        let current = decode_key(name, current)?;
        let previous = previous
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| decode_key(previous_name, k))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(KeyRing::new(current, &previous))
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Seals `plain` for `place` (table, column and row); returns the key id and the sealed
    /// bytes.
    pub fn seal(&self, place: &str, plain: &[u8]) -> Result<(String, Vec<u8>), StoreError> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|e| StoreError::Random(e.to_string()))?;
        let sealed = key
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad: place.as_bytes() })
            .map_err(|_| StoreError::Sealed {
                place: place.to_owned(),
                reason: "sealing failed",
            })?;
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok((key.id.clone(), out))
    }

    /// Opens what [`KeyRing::seal`] sealed for `place` under key `key_id`.
    pub fn open(&self, key_id: &str, place: &str, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        let failed = |reason| StoreError::Sealed { place: place.to_owned(), reason };
        let key = self
            .keys
            .iter()
            .find(|k| k.id == key_id)
            .ok_or_else(|| failed("sealed under a key that is not in SPILLWAY_STORE_KEY or SPILLWAY_STORE_PREVIOUS_KEYS"))?;
        if sealed.len() < NONCE_BYTES {
            return Err(failed("too short"));
        }
        let (nonce, body) = sealed.split_at(NONCE_BYTES);
        key.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad: place.as_bytes() })
            .map_err(|_| failed("it does not open (tampered, moved or another key)"))
    }
}

fn key(bytes: &[u8; KEY_BYTES]) -> Key {
    let tag = listener::SigningKey::new(bytes.to_vec()).sign(KEY_ID_LABEL);
    Key { id: tag[..12].to_owned(), cipher: Aes256Gcm::new(bytes.into()) }
}

fn decode_key(name: &str, text: &str) -> Result<[u8; KEY_BYTES], KeyError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| KeyError::NotBase64 { name: name.to_owned() })?;
    let len = bytes.len();
    bytes.try_into().map_err(|_| KeyError::WrongLength { name: name.to_owned(), len })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_in_their_place_and_with_a_key_of_the_ring() {
        let ring = KeyRing::new([1; KEY_BYTES], &[]);
        let (id, sealed) = ring.seal("t.c:1", b"hunter2").unwrap();
        assert_eq!(id, ring.current_id());
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(ring.open(&id, "t.c:1", &sealed).unwrap(), b"hunter2");
        assert!(ring.open(&id, "t.c:2", &sealed).is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(ring.open(&id, "t.c:1", &tampered).is_err());

        let rotated = KeyRing::new([2; KEY_BYTES], &[[1; KEY_BYTES]]);
        assert_ne!(rotated.current_id(), id);
        assert_eq!(rotated.open(&id, "t.c:1", &sealed).unwrap(), b"hunter2");
        assert!(KeyRing::new([2; KEY_BYTES], &[]).open(&id, "t.c:1", &sealed).is_err());
    }

    #[test]
    fn keys_are_read_from_base64_and_never_shown() {
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; KEY_BYTES]);
        let ring = KeyRing::from_base64("K", &b64, "P", &format!(" {b64} ,")).unwrap();
        assert!(!format!("{ring:?}").contains(&b64));
        assert_eq!(
            KeyRing::from_base64("K", "!!", "P", "").unwrap_err(),
            KeyError::NotBase64 { name: "K".into() }
        );
        assert_eq!(
            KeyRing::from_base64("K", "AAAA", "P", "").unwrap_err(),
            KeyError::WrongLength { name: "K".into(), len: 3 }
        );
    }
}
