//! What only the PostgreSQL store has: secrets sealed in every table, key rotation, the import
//! of a data directory's files, and migrations applied once by replicas starting together.

use control::postgres::PgStore;
use control::registry::DeliveryHeader;
use control::seal::KeyRing;
use control::{DrainEntry, Installation, InstallationStatus, Secret, StoreError, Stores};

use crate::{by_id, drain, installation, owned_drain, ring, Db};

const DRAIN_SECRET: &str = "drain-secret-Zq7Kx2";
const HEADER_VALUE: &str = "header-value-Mv4Tp9";
const ACCESS_TOKEN: &str = "oauth-token-Hc8Wn3";

/// Every row of every table in the database, as text, and each sealed column as escaped
/// bytes (printable bytes as they are), so a value stored in clear would show.
fn dump(db: &Db) -> String {
    let tables = db.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1");
    let mut dump: Vec<String> =
        tables.lines().map(|table| db.psql(&format!("SELECT t::text FROM {table} t"))).collect();
    dump.push(db.psql(
        "SELECT encode(secret, 'escape') || ' ' || encode(headers, 'escape') \
         FROM spillway_drains",
    ));
    dump.push(db.psql("SELECT encode(access_token, 'escape') FROM spillway_installations"));
    dump.join("\n")
}

/// `Err(Sealed)` expected: anything else fails the test.
fn assert_sealed<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::Sealed { .. }) => {}
        other => panic!("{what}: expected a sealed value that does not open, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_stored_in_clear_and_a_moved_sealed_value_does_not_open() {
    let Some(db) = Db::create("sealed_in_every_table") else { return };
    let store = db.store(ring()).await;
    let secret = DrainEntry {
        secret: Secret::new(DRAIN_SECRET),
        headers: vec![DeliveryHeader {
            name: "x-key".to_owned(),
            value: Secret::new(HEADER_VALUE),
        }],
        ..drain("drn_sealed", "pk_sealed")
    };
    let installed = Installation {
        access_token: Secret::new(ACCESS_TOKEN),
        ..installation("icfg_sealed", InstallationStatus::Enabled)
    };
    store.insert_drain(&secret).await.unwrap();
    store.insert_drain(&drain("drn_other", "pk_other")).await.unwrap();
    store.upsert_installation(&installed).await.unwrap();
    store
        .upsert_installation(&installation("icfg_other", InstallationStatus::Enabled))
        .await
        .unwrap();

    let dump = dump(&db);
    assert!(dump.contains("drn_sealed") && dump.contains("icfg_sealed"), "the dump saw the rows");
    for plain in [DRAIN_SECRET, HEADER_VALUE, ACCESS_TOKEN] {
        assert!(!dump.contains(plain), "{plain} stored in clear:\n{dump}");
    }

    for (table, column, id_column, from, to) in [
        ("spillway_drains", "secret", "id", "drn_sealed", "drn_other"),
        ("spillway_drains", "headers", "id", "drn_sealed", "drn_other"),
        ("spillway_installations", "access_token", "configuration_id", "icfg_sealed", "icfg_other"),
    ] {
        let before = db.psql(&format!("SELECT {column} FROM {table} WHERE {id_column} = '{to}'"));
        db.psql(&format!(
            "UPDATE {table} SET {column} = (SELECT {column} FROM {table} \
             WHERE {id_column} = '{from}') WHERE {id_column} = '{to}'"
        ));
        if table == "spillway_drains" {
            assert_sealed(store.drain(to).await, &format!("{column} copied onto {to}"));
            assert_eq!(store.drain(from).await.unwrap(), Some(secret.clone()), "the original");
        } else {
            assert_sealed(store.installation(to).await, "token copied onto icfg_other");
            assert_eq!(store.installation(from).await.unwrap(), Some(installed.clone()));
        }
        db.psql(&format!("UPDATE {table} SET {column} = '{before}' WHERE {id_column} = '{to}'"));
    }
    assert_eq!(store.drains().await.unwrap().len(), 2, "restored rows open again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_key_reseals_every_row_once() {
    let Some(db) = Db::create("key_rotation") else { return };
    let (a, b) = ([0xa; 32], [0xb; 32]);
    let old = db.store(KeyRing::new(a, &[])).await;
    let drains = [drain("drn_1", "pk_1"), owned_drain("drn_2", "pk_2", "icfg_1")];
    for entry in &drains {
        old.insert_drain(entry).await.unwrap();
    }
    let installed = installation("icfg_1", InstallationStatus::Enabled);
    old.upsert_installation(&installed).await.unwrap();

    let rotating = db.store(KeyRing::new(b, &[a])).await;
    let fresh = drain("drn_3", "pk_3");
    rotating.insert_drain(&fresh).await.unwrap();
    let all = [drains[0].clone(), drains[1].clone(), fresh];
    let reads_everything = |store: PgStore| {
        let all = all.clone();
        let installed = installed.clone();
        async move {
            assert_eq!(by_id(store.drains().await.unwrap()), all);
            assert_eq!(store.installations().await.unwrap(), [installed]);
        }
    };
    reads_everything(rotating.clone()).await;

    assert_eq!(rotating.rotate_key().await.unwrap(), 3, "the rows sealed under the old key");
    reads_everything(db.store(KeyRing::new(b, &[])).await).await;
    let old_only = Stores::Postgres(old);
    assert_sealed(old_only.drains().await, "drains under the old key alone");
    assert_sealed(old_only.installations().await, "installations under the old key alone");
    assert_eq!(rotating.rotate_key().await.unwrap(), 0, "nothing left to rotate");
    let key_ids = db.psql(
        "SELECT count(DISTINCT key_id) FROM (SELECT key_id FROM spillway_drains \
         UNION ALL SELECT key_id FROM spillway_installations) k",
    );
    assert_eq!(key_ids, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_copies_the_files_once_and_keeps_what_is_already_there() {
    let Some(db) = Db::create("import_files") else { return };
    let dir = tempfile::tempdir().unwrap();
    let files = Stores::in_dir(dir.path());
    for entry in
        [drain("drn_1", "pk_1"), owned_drain("drn_2", "pk_2", "icfg_1"), drain("drn_3", "pk_3")]
    {
        files.register_drain(entry).await.unwrap();
    }
    for id in ["icfg_1", "icfg_2"] {
        files.upsert_installation(installation(id, InstallationStatus::Enabled)).await.unwrap();
    }
    let store = db.store(ring()).await;
    let there = DrainEntry { secret: Secret::new("the database's own"), ..drain("drn_3", "pk_3") };
    store.insert_drain(&there).await.unwrap();

    let (drains, installations) =
        (files.drains().await.unwrap(), files.installations().await.unwrap());
    assert_eq!(store.import(&drains, &installations).await.unwrap(), (2, 2));
    let expected = by_id(vec![drains[0].clone(), drains[1].clone(), there]);
    assert_eq!(by_id(store.drains().await.unwrap()), expected, "drn_3 kept as it was");
    assert_eq!(store.installations().await.unwrap(), installations);

    let changed: Vec<DrainEntry> = drains
        .iter()
        .map(|e| DrainEntry { secret: Secret::new("changed"), team_id: None, ..e.clone() })
        .collect();
    let disabled: Vec<Installation> = installations
        .iter()
        .map(|i| Installation { status: InstallationStatus::Disabled, ..i.clone() })
        .collect();
    assert_eq!(store.import(&changed, &disabled).await.unwrap(), (0, 0), "all there already");
    assert_eq!(by_id(store.drains().await.unwrap()), expected, "nothing changed");
    assert_eq!(store.installations().await.unwrap(), installations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_connecting_at_once_apply_each_migration_once() {
    let Some(db) = Db::create("migrations_race") else { return };
    let connects: Vec<_> =
        (0..5).map(|_| tokio::spawn(PgStore::connect(db.config(ring())))).collect();
    for connect in connects {
        connect.await.unwrap().expect("every replica connects");
    }
    let versions = db.psql("SELECT version FROM spillway_schema_migrations ORDER BY version");
    let versions: Vec<i32> = versions.lines().map(|v| v.parse().unwrap()).collect();
    let once_each: Vec<i32> = (1..=versions.len() as i32).collect();
    assert!(!versions.is_empty());
    assert_eq!(versions, once_each, "one row per migration");

    let store = db.store(ring()).await;
    store.insert_drain(&drain("drn_1", "pk_1")).await.expect("the schema works");
    let again = db.psql("SELECT count(*) FROM spillway_schema_migrations");
    assert_eq!(again, versions.len().to_string(), "a later connect applies nothing");
}

/// A wrong password is a refusal (it does not heal by waiting, so a receiver must not start
/// as if the database were merely down), and no message shows either password.
#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_is_refused_without_showing_it() {
    let Some(db) = Db::create("wrong_password") else { return };
    let right = db.cluster.password().to_owned();
    let url = db.url.replacen(&right, "not-the-password-Qw3", 1);
    let mut config = db.config(ring());
    config.url = Secret::new(url);
    let err = PgStore::connect(config).await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, StoreError::Database { .. }), "{message}");
    assert!(message.contains(&format!("127.0.0.1:{}", db.cluster.port())), "{message}");
    assert!(!message.contains("not-the-password-Qw3") && !message.contains(&right), "{message}");
}
