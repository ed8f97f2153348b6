//! The OAuth `state` of an install that starts on our side (`GET /vercel/integration/install`):
//! `<expires_ms>.<nonce>.<mac>`, the mac an HMAC-SHA1 of the rest under a key derived from the
//! integration's client secret (never the secret itself, which signs webhooks and integration
//! drains: a state must not be a valid signature of anything those accept). The nonce is also
//! set in a cookie of the browser that started the install ([`STATE_COOKIE`]), and a callback's
//! state must match its cookie: a state fetched by someone else cannot complete an install in
//! this browser. A callback carrying one proves the flow began here, in this browser, less than
//! [`STATE_LIFETIME`] ago; nothing needs to be stored to check it. A callback without one is an
//! install begun on Vercel's marketplace, allowed unless `require_state` is set.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use listener::SigningKey;

use crate::Secret;

/// The cookie holding the nonce of the state this browser was given.
pub const STATE_COOKIE: &str = "spillway_install_state";

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
    /// Issued here, but to another browser (the cookie is missing or holds another nonce).
    #[error("the state was issued to another browser; start the install again")]
    OtherBrowser,
}

/// The key states are signed with: derived from the client secret for this use alone.
fn state_key(secret: &Secret) -> SigningKey {
    SigningKey::new(secret.signing_key().sign(CONTEXT.as_bytes()))
}

/// A new state, valid for [`STATE_LIFETIME`] after `now`, and its nonce (for the cookie).
pub fn issue_state(secret: &Secret, now: SystemTime) -> Result<(String, String), getrandom::Error> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce)?;
    let nonce = hex::encode(nonce);
    let expires = millis(now + STATE_LIFETIME);
    let fields = format!("{expires}.{nonce}");
    let mac = state_key(secret).sign(format!("{CONTEXT}.{fields}").as_bytes());
    Ok((format!("{fields}.{mac}"), nonce))
}

/// Checks a state presented at `now` by a browser whose [`STATE_COOKIE`] is `cookie` (constant-
/// time mac comparison).
pub fn check_state(
    secret: &Secret,
    state: &str,
    cookie: Option<&str>,
    now: SystemTime,
) -> Result<(), StateError> {
    if state.len() > MAX_STATE_BYTES {
        return Err(StateError::Forged);
    }
    let (fields, mac) = state.rsplit_once('.').ok_or(StateError::Forged)?;
    let signed = format!("{CONTEXT}.{fields}");
    if !state_key(secret).verifies(signed.as_bytes(), mac.as_bytes()) {
        return Err(StateError::Forged);
    }
    let (expires, nonce) = fields.split_once('.').ok_or(StateError::Forged)?;
    let expires: u64 = expires.parse().map_err(|_| StateError::Forged)?;
    if millis(now) > expires {
        return Err(StateError::Expired);
    }
    if cookie != Some(nonce) {
        return Err(StateError::OtherBrowser);
    }
    Ok(())
}

/// The value of [`STATE_COOKIE`] among a request's `Cookie` header values, if any.
pub fn state_cookie<'a>(cookie_headers: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    cookie_headers
        .into_iter()
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == STATE_COOKIE)
        .map(|(_, value)| value)
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
        let (state, nonce) = issue_state(&secret, now).unwrap();
        let cookie = Some(nonce.as_str());
        assert_eq!(check_state(&secret, &state, cookie, now), Ok(()));
        let late = now + STATE_LIFETIME + Duration::from_secs(1);
        assert_eq!(check_state(&secret, &state, cookie, late), Err(StateError::Expired));
        let other = Secret::new("another-secret");
        assert_eq!(check_state(&other, &state, cookie, now), Err(StateError::Forged));
        assert_ne!(state, issue_state(&secret, now).unwrap().0, "a nonce makes each state new");
    }

    #[test]
    fn a_state_completes_an_install_only_in_the_browser_it_was_issued_to() {
        let secret = Secret::new("client-secret");
        let now = SystemTime::now();
        let (state, nonce) = issue_state(&secret, now).unwrap();
        let (_, other_nonce) = issue_state(&secret, now).unwrap();
        assert_eq!(check_state(&secret, &state, None, now), Err(StateError::OtherBrowser));
        let other = Some(other_nonce.as_str());
        assert_eq!(check_state(&secret, &state, other, now), Err(StateError::OtherBrowser));
        let header = format!("a=1; {STATE_COOKIE}={nonce}; b=2");
        assert_eq!(state_cookie([header.as_str()]), Some(nonce.as_str()));
        assert_eq!(state_cookie(["a=1"]), None);
    }

    #[test]
    fn a_state_is_no_signature_under_the_client_secret() {
        // The client secret verifies webhooks and integration drains: a state (or its signed
        // text) must not pass for one of their signatures.
        let secret = Secret::new("client-secret");
        let (state, _) = issue_state(&secret, SystemTime::now()).unwrap();
        let (fields, mac) = state.rsplit_once('.').unwrap();
        let signed = format!("{CONTEXT}.{fields}");
        assert!(!secret.signing_key().verifies(signed.as_bytes(), mac.as_bytes()));
    }

    #[test]
    fn tampered_or_malformed_states_are_forged() {
        let secret = Secret::new("client-secret");
        let now = SystemTime::now();
        let (state, nonce) = issue_state(&secret, now).unwrap();
        // Pushing the expiry out breaks the mac.
        let (expires, rest) = state.split_once('.').unwrap();
        let later: u64 = expires.parse::<u64>().unwrap() + 3_600_000;
        let stretched = format!("{later}.{rest}");
        for bad in [stretched.as_str(), "", "x", "1.2", "..", &"a".repeat(1000)] {
            let cookie = Some(nonce.as_str());
            assert_eq!(check_state(&secret, bad, cookie, now), Err(StateError::Forged), "{bad}");
        }
    }
}
