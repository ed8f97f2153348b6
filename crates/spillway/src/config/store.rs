//! `[store]` into control's [`PgConfig`]: with `database_url` set, the drain registry and the
//! installations live in PostgreSQL, their secrets sealed under `key`; without it, in the data
//! directory's files.

use std::time::Duration;

use control::postgres::PgConfig;
use control::seal::KeyRing;
use control::Secret;

use super::raw::RawStore;
use super::Problems;

/// The variable holding the database URL.
pub const DATABASE_URL_VAR: &str = "SPILLWAY_DATABASE_URL";
/// The variable holding the store key (32 bytes, base64).
pub const STORE_KEY_VAR: &str = "SPILLWAY_STORE_KEY";
/// The variable holding previous store keys (comma-separated), during a rotation.
pub const PREVIOUS_KEYS_VAR: &str = "SPILLWAY_STORE_PREVIOUS_KEYS";

/// `[store]`: `None` when no database URL is set (the files serve).
pub(super) fn store_config(raw: &RawStore, problems: &mut Problems) -> Option<PgConfig> {
    let url = raw.database_url.as_deref().map(str::trim).filter(|u| !u.is_empty())?;
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        problems.push("store.database_url: not a postgres:// URL".to_owned());
        return None;
    }
    if let Err(reason) = control::postgres::check_url(url) {
        problems.push(format!("store.database_url: {reason}"));
        return None;
    }
    let Some(key) = raw.key.as_deref().filter(|k| !k.trim().is_empty()) else {
        problems.push(format!(
            "store.key: required with store.database_url, to seal the secrets kept in the \
             database; set {STORE_KEY_VAR} to 32 random bytes in base64 (`openssl rand -base64 32`)"
        ));
        return None;
    };
    let previous = raw.previous_keys.as_deref().unwrap_or_default();
    let keys = match KeyRing::from_base64(STORE_KEY_VAR, key, PREVIOUS_KEYS_VAR, previous) {
        Ok(keys) => keys,
        Err(e) => {
            problems.push(format!("store.key: {e}"));
            return None;
        }
    };
    let mut config = PgConfig::new(Secret::new(url), keys);
    let d = PgConfig::new(Secret::new(""), config.keys.clone());
    config.pool_size =
        problems.range("store.pool_size", raw.pool_size, d.pool_size as u64, 1, 1024) as usize;
    let secs = |d: Duration| d.as_secs();
    config.connect_timeout = Duration::from_secs(problems.range(
        "store.connect_timeout_secs",
        raw.connect_timeout_secs,
        secs(d.connect_timeout),
        1,
        300,
    ));
    config.query_timeout = Duration::from_secs(problems.range(
        "store.query_timeout_secs",
        raw.query_timeout_secs,
        secs(d.query_timeout),
        0,
        3600,
    ));
    config.resync_interval = Duration::from_secs(problems.range(
        "store.resync_secs",
        raw.resync_secs,
        secs(d.resync_interval),
        1,
        86_400,
    ));
    config.max_backoff = Duration::from_secs(problems.range(
        "store.max_backoff_secs",
        raw.max_backoff_secs,
        secs(d.max_backoff),
        1,
        300,
    ));
    Some(config)
}
