//! One test suite for both homes of the drains and installations (`control::Stores`): every
//! behaviour in [`suite`] runs against the files of a data directory and against a real
//! PostgreSQL; [`sealed`] and [`feed`] prove what only PostgreSQL has (sealed secrets, key
//! rotation, import, concurrent migrations, the receiver's live copy and a database outage).
//!
//! The PostgreSQL tests share one throwaway cluster, each in a database of its own; the outage
//! test starts a cluster of its own, since it stops it. Without PostgreSQL binaries they fail,
//! unless `SPILLWAY_SKIP_POSTGRES=1` (then only the files half runs).

mod bounded;
mod feed;
mod sealed;
mod suite;
mod tls;

use std::sync::{Arc, Mutex, PoisonError};

use control::postgres::{PgConfig, PgStore};
use control::registry::DeliveryHeader;
use control::seal::KeyRing;
use control::{DrainEntry, DrainKind, Installation, InstallationStatus, Secret};
use testkit::Postgres;

/// The shared cluster: started by the first test that needs it, stopped when the binary exits.
enum Shared {
    NotStarted,
    Skipped,
    Running(Arc<Postgres>),
    Stopped,
}

static SHARED: Mutex<Shared> = Mutex::new(Shared::NotStarted);

extern "C" {
    /// C's `atexit`: a static is never dropped, so without it the shared server would outlive
    /// the test binary.
    fn atexit(callback: extern "C" fn()) -> std::os::raw::c_int;
}

extern "C" fn stop_shared() {
    let shared = std::mem::replace(
        &mut *SHARED.lock().unwrap_or_else(PoisonError::into_inner),
        Shared::Stopped,
    );
    // Dropping the last handle stops the server and removes its directory.
    drop(shared);
}

/// The cluster the tests share; `None` when the run opts out with `SPILLWAY_SKIP_POSTGRES=1`.
fn shared_cluster() -> Option<Arc<Postgres>> {
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if matches!(*shared, Shared::NotStarted) {
        *shared = match Postgres::start() {
            Some(cluster) => {
                // SAFETY: `stop_shared` is a plain function that never unwinds (the drop it
                // runs ignores every failure).
                let registered = unsafe { atexit(stop_shared) };
                assert_eq!(registered, 0, "atexit refused the cluster's cleanup");
                Shared::Running(Arc::new(cluster))
            }
            None => Shared::Skipped,
        };
    }
    match &*shared {
        Shared::Running(cluster) => Some(Arc::clone(cluster)),
        Shared::NotStarted | Shared::Skipped | Shared::Stopped => None,
    }
}

/// A database of its own on a cluster.
pub(crate) struct Db {
    pub(crate) cluster: Arc<Postgres>,
    pub(crate) url: String,
}

impl Db {
    /// A fresh database `name` on the shared cluster; `None` when PostgreSQL is opted out of.
    pub(crate) fn create(name: &str) -> Option<Db> {
        let cluster = shared_cluster()?;
        let url = cluster.create_database(name);
        Some(Db { cluster, url })
    }

    /// Runs `sql` in the database; its unaligned output.
    pub(crate) fn psql(&self, sql: &str) -> String {
        self.cluster.psql(&self.url, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The store's settings for this database, sealing with `keys`.
    pub(crate) fn config(&self, keys: KeyRing) -> PgConfig {
        PgConfig::new(Secret::new(self.url.clone()), keys)
    }

    /// A connected store sealing with `keys`.
    pub(crate) async fn store(&self, keys: KeyRing) -> PgStore {
        PgStore::connect(self.config(keys)).await.expect("the test database answers")
    }
}

/// The key ring most tests seal with.
pub(crate) fn ring() -> KeyRing {
    KeyRing::new([7; 32], &[])
}

/// A self-served drain with a team and a delivery header.
pub(crate) fn drain(id: &str, path_key: &str) -> DrainEntry {
    DrainEntry {
        id: id.to_owned(),
        path_key: path_key.to_owned(),
        secret: Secret::new(format!("secret-of-{id}")),
        team_id: Some("team_1".to_owned()),
        kind: DrainKind::SelfServed,
        created_at_ms: 1_700_000_000_123,
        configuration_id: None,
        integration_secret: false,
        data_type: Default::default(),
        headers: vec![DeliveryHeader {
            name: "Authorization".to_owned(),
            value: Secret::new(format!("Bearer token-of-{id}")),
        }],
    }
}

/// A drain installation `configuration_id` owns.
pub(crate) fn owned_drain(id: &str, path_key: &str, configuration_id: &str) -> DrainEntry {
    DrainEntry {
        kind: DrainKind::Integration,
        configuration_id: Some(configuration_id.to_owned()),
        ..drain(id, path_key)
    }
}

/// An installation without scopes.
pub(crate) fn installation(configuration_id: &str, status: InstallationStatus) -> Installation {
    Installation {
        configuration_id: configuration_id.to_owned(),
        team_id: Some("team_1".to_owned()),
        access_token: Secret::new(format!("token-of-{configuration_id}")),
        user_id: "user_1".to_owned(),
        installation_id: format!("inst-of-{configuration_id}"),
        scopes: Vec::new(),
        created_at_ms: 1_700_000_000_456,
        status,
    }
}

/// `entries`, ordered by id (the backends list in different orders).
pub(crate) fn by_id(mut entries: Vec<DrainEntry>) -> Vec<DrainEntry> {
    entries.sort_by(|a, b| a.id.cmp(&b.id));
    entries
}

/// For each behaviour of [`suite`], a test against the files (`files::<behaviour>`) and one
/// against PostgreSQL (`postgres::<behaviour>`, in a database named after it).
macro_rules! both_backends {
    ($($behaviour:ident),* $(,)?) => {
        mod files {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let dir = tempfile::tempdir().unwrap();
                    crate::suite::$behaviour(control::Stores::in_dir(dir.path())).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let Some(db) = crate::Db::create(stringify!($behaviour)) else { return };
                    let store = db.store(crate::ring()).await;
                    crate::suite::$behaviour(control::Stores::Postgres(store)).await;
                }
            )*
        }
    };
}

both_backends!(
    entries_round_trip,
    register_replaces_by_id_and_refuses_a_taken_path_key,
    concurrent_registers_all_land_and_one_path_key_wins_once,
    forget_returns_the_drain_once,
    installations_change_atomically_and_the_enabled_one_is_found,
    remove_configuration_takes_only_its_drains_and_is_idempotent,
);
