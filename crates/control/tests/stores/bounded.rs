//! A store operation that cannot have its answer within `query_timeout` (here: a lock another
//! session holds) gives up as an outage, `Unavailable`, instead of waiting for ever.

use std::time::{Duration, Instant};

use control::postgres::{PgConfig, PgStore};
use control::StoreError;

use crate::{drain, ring, Db};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_behind_a_held_lock_gives_up_after_the_query_timeout() {
    let Some(db) = Db::create("query_timeout") else { return };
    let timeout = Duration::from_secs(1);
    let config = PgConfig { query_timeout: timeout, ..db.config(ring()) };
    let store = PgStore::connect(config).await.unwrap();
    store.insert_drain(&drain("drn_1", "pk_1")).await.unwrap();

    // Another session holds the drains' table until it rolls back.
    let (holder, connection) =
        tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    holder
        .batch_execute("BEGIN; LOCK TABLE spillway_drains IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let started = Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(30), store.drains()).await;
    let waited = started.elapsed();
    let read = read.expect("the read still waits on the lock after 30 s");
    match read {
        Err(StoreError::Unavailable { reason, .. }) => {
            // Given up by the server: a lock timeout or a statement timeout.
            assert!(reason.contains("(55P03)") || reason.contains("(57014)"), "{reason}");
        }
        other => panic!("a read behind a held lock gave {other:?}"),
    }
    assert!(waited >= timeout, "gave up after {waited:?}, before the timeout");

    holder.batch_execute("ROLLBACK").await.unwrap();
    let drains = store.drains().await.expect("the store answers once the lock is gone");
    assert_eq!(drains.len(), 1);
}
