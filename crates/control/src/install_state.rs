//! The OAuth `state` of an install that starts on our side (`GET /vercel/integration/install`):
//! `<expires_ms>.<nonce>.<mac>`, the mac an HMAC-SHA1 of the rest keyed by the integration's
//! client secret. A callback carrying one proves the flow began here less than
//! [`STATE_LIFETIME`] ago; nothing needs to be stored to check it. A callback without one is an
//! install begun on Vercel's marketplace, allowed unless `require_state` is set.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Secret;

/// How long a state may be presented after it was issued.
pub const STATE_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// What the mac covers besides the state's fields, so that no other signed value of ours (a
/// webhook body, a drain delivery) can pass for a state.
const CONTEXT: &str = "spillway-install-state";
/// Longest state looked at; anything longer is refused without work.
const MAX_STATE_BYTES: usize = 256;

/// Why a state was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Not of our form, or its mac does not match.
    #[error("the state was not issued here")]
    Forged,
    /// Issued here, but more than [`STATE_LIFETIME`] ago.
    #[error("the state has expired; start the install again")]
    Expired,
}

/// A new state, valid for [`STATE_LIFETIME`] after `now`.
pub fn issue_state(secret: &Secret, now: SystemTime) -> Result<String, getrandom::Error> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce)?;
    let expires = millis(now + STATE_LIFETIME);
    let fields = format!("{expires}.{}", hex::encode(nonce));
    let mac = secret.signing_key().sign(format!("{CONTEXT}.{fields}").as_bytes());
    Ok(format!("{fields}.{mac}"))
}

/// Checks a state presented at `now` (constant-time mac comparison).
pub fn check_state(secret: &Secret, state: &str, now: SystemTime) -> Result<(), StateError> {
    if state.len() > MAX_STATE_BYTES {
        return Err(StateError::Forged);
    }
    let (fields, mac) = state.rsplit_once('.').ok_or(StateError::Forged)?;
    let signed = format!("{CONTEXT}.{fields}");
    if !secret.signing_key().verifies(signed.as_bytes(), mac.as_bytes()) {
        return Err(StateError::Forged);
    }
    let (expires, _nonce) = fields.split_once('.').ok_or(StateError::Forged)?;
    let expires: u64 = expires.parse().map_err(|_| StateError::Forged)?;
    if millis(now) > expires {
        return Err(StateError::Expired);
    }
    Ok(())
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_is_good_until_it_expires_and_only_under_its_secret() {
        let secret = Secret::new("client-secret");
        let now = SystemTime::now();
        let state = issue_state(&secret, now).unwrap();
        assert_eq!(check_state(&secret, &state, now), Ok(()));
        let late = now + STATE_LIFETIME + Duration::from_secs(1);
        assert_eq!(check_state(&secret, &state, late), Err(StateError::Expired));
        let other = Secret::new("another-secret");
        assert_eq!(check_state(&other, &state, now), Err(StateError::Forged));
        assert_ne!(state, issue_state(&secret, now).unwrap(), "a nonce makes each state new");
    }

    #[test]
    fn tampered_or_malformed_states_are_forged() {
        let secret = Secret::new("client-secret");
        let now = SystemTime::now();
        let state = issue_state(&secret, now).unwrap();
        // Pushing the expiry out breaks the mac.
        let (expires, rest) = state.split_once('.').unwrap();
        let later: u64 = expires.parse::<u64>().unwrap() + 3_600_000;
        let stretched = format!("{later}.{rest}");
        for bad in [stretched.as_str(), "", "x", "1.2", "..", &"a".repeat(1000)] {
            assert_eq!(check_state(&secret, bad, now), Err(StateError::Forged), "{bad}");
        }
    }
}
