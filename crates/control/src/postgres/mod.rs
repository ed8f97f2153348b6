//! `PgStore`: the drain registry and the installations in PostgreSQL, for a fleet of replicas
//! that share them.
//!
//! - A pool of connections (deadpool-postgres) with bounded size, connect and wait timeouts:
//!   a control operation never waits longer than the wait timeout for a connection, and answers
//!   [`StoreError::Unavailable`] (`503 store_unavailable`) while the database is down. Every
//!   session gives up a statement or lock wait after `query_timeout` (server side), and its TCP
//!   connection on a server silent that long (`TCP_USER_TIMEOUT`, keepalives): no operation,
//!   and not the feed, waits for ever.
//! - Versioned migrations embedded in the binary ([`migrations`]), applied at connect under a
//!   session advisory lock, so N replicas starting at once apply each one exactly once; on a
//!   session of their own, without statement timeouts, ended after (and the lock with it).
//! - Drain secrets, header values and OAuth tokens are sealed with the [`KeyRing`] before they
//!   are written, with the key id beside them ([`rows`]).
//! - A trigger notifies `spillway_drains` with the drain id on every change; [`feed`] keeps the
//!   receiver's in-memory snapshot in step with it, and resyncs in full periodically and after
//!   every reconnect.
//!
//! - TLS as the URL's libpq parameters say (`sslmode`, `sslrootcert`; [`tls`]), for the pool
//!   and the feed alike.
//!
//! Messages name the database by host, port and name ([`PgStore::at`]), never its password.

pub mod feed;
mod migrations;
mod rows;
mod tls;

use std::fmt;
use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::config::Host;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::seal::KeyRing;
use crate::store::StoreError;
use crate::Secret;

/// The PostgreSQL store's settings; `Default` is the one home of their defaults.
#[derive(Clone)]
pub struct PgConfig {
    /// `postgres://user:password@host:port/database` (a secret: it may hold a password).
    pub url: Secret,
    /// Connections in the pool, at most.
    pub pool_size: usize,
    /// Connecting, and waiting for a pooled connection, give up after this.
    pub connect_timeout: Duration,
    /// A statement gives up after this (PostgreSQL's `statement_timeout` and `lock_timeout`),
    /// answered `Unavailable`; so does a connection whose sent data the server has not
    /// acknowledged for this long (`TCP_USER_TIMEOUT`, on Linux), and an idle one is probed by
    /// TCP keepalives from then on, so a silently lost server is noticed, by the receiver's feed
    /// too. Zero sends no statement timeouts (for a PgBouncer that refuses startup options).
    pub query_timeout: Duration,
    /// The receiver re-reads every drain this often, whatever it was notified of.
    pub resync_interval: Duration,
    /// Reconnect attempts back off from 100 ms up to this.
    pub max_backoff: Duration,
    /// Seals and opens the secrets.
    pub keys: KeyRing,
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("at", &describe_url(self.url.expose()))
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("query_timeout", &self.query_timeout)
            .field("resync_interval", &self.resync_interval)
            .field("max_backoff", &self.max_backoff)
            .field("keys", &self.keys)
            .finish()
    }
}

impl PgConfig {
    /// The settings for `url` sealing with `keys`, every other one at its default.
    pub fn new(url: Secret, keys: KeyRing) -> PgConfig {
        PgConfig {
            url,
            pool_size: 8,
            connect_timeout: Duration::from_secs(3),
            query_timeout: Duration::from_secs(10),
            resync_interval: Duration::from_secs(30),
            max_backoff: Duration::from_secs(5),
            keys,
        }
    }
}

/// The store: a connection pool, the parsed connection settings and the key ring. Cheap to
/// clone.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    pg: std::sync::Arc<tokio_postgres::Config>,
    tls: MakeRustlsConnect,
    at: String,
    keys: KeyRing,
    resync_interval: Duration,
    max_backoff: Duration,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore").field("at", &self.at).finish()
    }
}

/// `host:port/database` of a connection URL, for messages; never the user's password.
pub fn describe_url(url: &str) -> String {
    match tls::parse(url) {
        Ok((config, _)) => describe(&config),
        Err(_) => "an unparsable database URL".to_owned(),
    }
}

/// Whether `url` is a connection URL the driver takes; the reason never quotes the URL.
pub fn check_url(url: &str) -> Result<(), String> {
    tls::parse(url).map(|_| ())
}

fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or("postgres"))
}

impl PgStore {
    /// Connects (checking the URL and that the database answers) and applies the migrations.
    pub async fn connect(config: PgConfig) -> Result<PgStore, StoreError> {
        let store = PgStore::lazy(config)?;
        store.migrate().await?;
        Ok(store)
    }

    /// The store without touching the database (the first operation connects).
    pub fn lazy(config: PgConfig) -> Result<PgStore, StoreError> {
        // `tls::parse`'s reasons never quote the URL, whose password they would show.
        let (mut pg, tls) = tls::parse(config.url.expose()).map_err(|reason| {
            StoreError::Database { at: "the configured database".to_owned(), reason }
        })?;
        pg.connect_timeout(config.connect_timeout);
        pg.application_name("spillway");
        bound_queries(&mut pg, config.query_timeout);
        let at = describe(&pg);
        let tls =
            tls.connector().map_err(|reason| StoreError::Database { at: at.clone(), reason })?;
        let manager = Manager::from_config(
            pg.clone(),
            tls.clone(),
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let timeout = Some(config.connect_timeout);
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Database { at: at.clone(), reason: e.to_string() })?;
        Ok(PgStore {
            pool,
            pg: pg.into(),
            tls,
            at,
            keys: config.keys,
            resync_interval: config.resync_interval,
            max_backoff: config.max_backoff,
        })
    }

    /// `host:port/database`, for messages.
    pub fn at(&self) -> &str {
        &self.at
    }

    /// The key ring.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// A pooled connection. A server that refuses us (wrong password, no such database), or TLS
    /// refusing the server (its certificate, no TLS where it is required), is a refusal, not an
    /// outage: it does not heal by waiting.
    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|e| {
            let reason = match e {
                PoolError::Timeout(_) => "no connection within the connect timeout".to_owned(),
                PoolError::Backend(e) => return self.connect_error(e),
                other => other.to_string(),
            };
            StoreError::Unavailable { at: self.at.clone(), reason }
        })
    }

    /// What a failed connect means: TLS refusing the server (or the server TLS) is a refusal,
    /// anything else as for a statement. Only connecting can meet TLS refusing (a session's TLS
    /// error is a lost one).
    fn connect_error(&self, e: tokio_postgres::Error) -> StoreError {
        match tls::refused(&e) {
            true => StoreError::Database { at: self.at.clone(), reason: pg_reason(&e) },
            false => self.error(e),
        }
    }

    /// What a failed statement means: a lost connection is `Unavailable`, a unique violation of
    /// the path key a `Conflict`, anything else a refusal.
    fn error(&self, e: tokio_postgres::Error) -> StoreError {
        match e.as_db_error() {
            Some(db) if db.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION => {
                StoreError::Conflict {
                    path_key: db.detail().map_or_else(String::new, str::to_owned),
                }
            }
            // A server that does not speak our protocol (a PgBouncer refusing the startup
            // `options`, say): waiting does not change it.
            Some(db) if db.code() == &tokio_postgres::error::SqlState::PROTOCOL_VIOLATION => {
                StoreError::Database { at: self.at.clone(), reason: pg_reason(&e) }
            }
            // The server going down or not yet up, the connection failing, or a statement
            // given up after `query_timeout` (57014, 55P03): try later.
            Some(db)
                if db.code().code().starts_with("57P")
                    || db.code().code().starts_with("08")
                    || db.code() == &tokio_postgres::error::SqlState::QUERY_CANCELED
                    || db.code() == &tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE =>
            {
                StoreError::Unavailable { at: self.at.clone(), reason: pg_reason(&e) }
            }
            Some(_) => StoreError::Database { at: self.at.clone(), reason: pg_reason(&e) },
            None => StoreError::Unavailable { at: self.at.clone(), reason: pg_reason(&e) },
        }
    }

    /// Applies the migrations on a session of its own, ended after, so the advisory lock ends
    /// with it whatever happened. Its statements have no time limit: a migration, or the wait
    /// for another replica's, may take longer than `query_timeout`; a server gone silent still
    /// ends it (TCP).
    async fn migrate(&self) -> Result<(), StoreError> {
        let connected = self.pg.connect(self.tls.clone()).await;
        let (mut client, connection) = connected.map_err(|e| self.connect_error(e))?;
        let driver = tokio::spawn(connection);
        let applied = migrations::apply(&mut client).await;
        drop(client);
        driver.abort();
        applied.map_err(|e| self.error(e))
    }
}

/// Makes every session give up on a statement after `timeout`, ahead of the URL's own
/// `options` (which win where they set the same), and (on Linux) its TCP connection on a server
/// that stops acknowledging; idle connections are probed by keepalives. TCP settings the URL
/// gives are kept. A zero `timeout` sends no statement timeouts (a PgBouncer that refuses
/// startup `options`) and leaves TCP as the driver has it.
fn bound_queries(pg: &mut tokio_postgres::Config, timeout: Duration) {
    if timeout.is_zero() {
        return;
    }
    let ms = timeout.as_millis();
    let ours = format!("-c statement_timeout={ms} -c lock_timeout={ms}");
    let options = match pg.get_options() {
        Some(theirs) => format!("{ours} {theirs}"),
        None => ours,
    };
    pg.options(&options);
    let second = Duration::from_secs(1);
    if pg.get_tcp_user_timeout().is_none() {
        pg.tcp_user_timeout(timeout);
    }
    if pg.get_keepalives_idle() == DRIVER_KEEPALIVES_IDLE {
        pg.keepalives_idle(timeout.max(second));
    }
    if pg.get_keepalives_interval().is_none() {
        pg.keepalives_interval((timeout / 4).max(second));
    }
    if pg.get_keepalives_retries().is_none() {
        pg.keepalives_retries(3);
    }
}

/// tokio-postgres's own `keepalives_idle`, which a URL that sets none keeps.
const DRIVER_KEEPALIVES_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

/// A driver error as one line: the server's message for a database error, else the error and
/// its cause (connection refused, reset, …). The driver never puts the password in either.
fn pg_reason(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn the_url_s_own_options_and_tcp_settings_win_over_the_query_timeout() {
        let url = "postgres://u@h/d?options=-c%20statement_timeout%3D0&keepalives_idle=30";
        let mut pg = tokio_postgres::Config::from_str(url).unwrap();
        bound_queries(&mut pg, Duration::from_secs(2));
        let options = pg.get_options().unwrap();
        assert_eq!(
            options,
            "-c statement_timeout=2000 -c lock_timeout=2000 -c statement_timeout=0"
        );
        assert_eq!(pg.get_keepalives_idle(), Duration::from_secs(30));
        assert_eq!(pg.get_tcp_user_timeout(), Some(&Duration::from_secs(2)));
        assert_eq!(pg.get_keepalives_interval(), Some(Duration::from_secs(1)));

        let mut plain = tokio_postgres::Config::from_str("postgres://u@h/d").unwrap();
        assert_eq!(plain.get_keepalives_idle(), DRIVER_KEEPALIVES_IDLE, "the driver's own");
        bound_queries(&mut plain, Duration::from_secs(8));
        assert_eq!(plain.get_keepalives_idle(), Duration::from_secs(8));
        assert_eq!(plain.get_keepalives_interval(), Some(Duration::from_secs(2)));

        let mut none = tokio_postgres::Config::from_str("postgres://u@h/d").unwrap();
        bound_queries(&mut none, Duration::ZERO);
        assert_eq!(
            (none.get_options(), none.get_tcp_user_timeout()),
            (None, None),
            "zero sends none"
        );
    }
}
