//! The receiver's live copy of the shared drains (`control::postgres::feed`): it follows
//! registrations and removals made through another store, keeps its last copy through a
//! database outage while control operations answer `Unavailable`, and catches up once the
//! database is back.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use control::postgres::feed::{self, FeedHealth, Snapshot};
use control::postgres::{PgConfig, PgStore};
use control::{Secret, StoreError, Stores};
use testkit::{poll_until, wait_until, Postgres};

use crate::{drain, installation, ring, Db};

/// How soon a change made through one store shows in another's feed.
const PROPAGATION: Duration = Duration::from_secs(1);

/// The copies a feed handed over, in order.
#[derive(Clone, Default)]
struct Copies(Arc<Mutex<Vec<Snapshot>>>);

impl Copies {
    fn spawn(&self, store: PgStore) -> (FeedHealth, tokio::task::JoinHandle<()>) {
        let copies = self.clone();
        feed::spawn(
            store,
            Arc::new(move |snapshot: &Snapshot| copies.0.lock().unwrap().push(snapshot.clone())),
        )
    }

    fn last(&self) -> Snapshot {
        self.0.lock().unwrap().last().cloned().unwrap_or_default()
    }

    /// Waits up to `within` for the last copy to satisfy `done`; returns it either way.
    fn wait(&self, within: Duration, done: impl Fn(&Snapshot) -> bool) -> Snapshot {
        poll_until(within, || self.last(), done)
    }

    /// How many copies were handed over so far.
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_follows_drains_registered_and_forgotten_elsewhere() {
    let Some(db) = Db::create("feed_follows") else { return };
    let writer = db.store(ring()).await;
    let early = drain("drn_early", "pk_early");
    writer.insert_drain(&early).await.unwrap();
    let copies = Copies::default();
    let (health, task) = copies.spawn(db.store(ring()).await);
    let first = copies.wait(PROPAGATION * 5, |s| s.contains_key("drn_early"));
    assert_eq!(first.get("drn_early"), Some(&early), "the first full read");
    assert!(wait_until(PROPAGATION, || health.is_up()));

    let late = drain("drn_late", "pk_late");
    let registered = Instant::now();
    writer.insert_drain(&late).await.unwrap();
    let seen = copies.wait(PROPAGATION, |s| s.contains_key("drn_late"));
    assert_eq!(seen.get("drn_late"), Some(&late), "registered elsewhere, seen within 1 s");
    eprintln!("registration seen after {:?}", registered.elapsed());

    let changed = drain("drn_late", "pk_changed");
    writer.insert_drain(&changed).await.unwrap();
    let seen = copies.wait(PROPAGATION, |s| s.get("drn_late") == Some(&changed));
    assert_eq!(seen.get("drn_late"), Some(&changed), "a replacement is seen too");

    writer.remove_drain("drn_early").await.unwrap();
    let gone = copies.wait(PROPAGATION, |s| !s.contains_key("drn_early"));
    assert!(!gone.contains_key("drn_early"), "forgotten elsewhere, gone within 1 s");
    assert_eq!(gone.len(), 1);
    assert!(health.is_up());
    assert!(health.notifications() >= 3, "followed by notification");
    task.abort();
}

/// The outage test's store settings: fail fast, reconnect and resync quickly.
fn quick(url: String) -> PgConfig {
    PgConfig {
        connect_timeout: Duration::from_secs(1),
        resync_interval: Duration::from_secs(1),
        max_backoff: Duration::from_millis(500),
        ..PgConfig::new(Secret::new(url), ring())
    }
}

/// Every kind of control operation fails with `Unavailable` naming the server, not its
/// password.
async fn assert_unavailable(stores: &Stores, cluster: &Postgres) {
    let results = [
        stores.drains().await.map(|_| ()),
        stores.drain("drn_before").await.map(|_| ()),
        stores.register_drain(drain("drn_down", "pk_down")).await,
        stores.forget_drain("drn_before").await.map(|_| ()),
        stores.installations().await.map(|_| ()),
        stores
            .upsert_installation(installation("icfg_1", control::InstallationStatus::Enabled))
            .await,
        stores.mark_disabled("icfg_1").await.map(|_| ()),
        stores.remove_configuration("icfg_1").await.map(|_| ()),
    ];
    let at = format!("127.0.0.1:{}", cluster.port());
    for (n, result) in results.into_iter().enumerate() {
        let error = result.expect_err("the database is down");
        let shown = format!("{error} / {error:?}");
        assert!(matches!(error, StoreError::Unavailable { .. }), "operation {n}: {shown}");
        assert!(shown.contains(&at), "operation {n} names the server: {shown}");
        assert!(!shown.contains(cluster.password()), "operation {n} shows the password");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_keeps_the_last_copy_and_the_feed_catches_up_after_it() {
    let Some(mut cluster) = Postgres::start() else { return };
    let url = cluster.url();
    let writer = Stores::Postgres(PgStore::connect(quick(url.clone())).await.unwrap());
    let before = drain("drn_before", "pk_before");
    writer.register_drain(before.clone()).await.unwrap();
    let copies = Copies::default();
    let (health, task) = copies.spawn(PgStore::connect(quick(url.clone())).await.unwrap());
    copies.wait(PROPAGATION * 5, |s| s.contains_key("drn_before"));
    assert!(wait_until(PROPAGATION, || health.is_up()), "the feed connects");

    cluster.stop();
    let stopped = Instant::now();
    assert!(wait_until(Duration::from_secs(5), || !health.is_up()), "the feed notices");
    eprintln!("outage noticed after {:?}", stopped.elapsed());
    assert_unavailable(&writer, &cluster).await;
    let copies_during = copies.count();
    assert_eq!(copies.last().get("drn_before"), Some(&before), "the last copy stays");
    assert!(
        copies.0.lock().unwrap().iter().all(|s| s.contains_key("drn_before")),
        "never handed an empty copy"
    );

    cluster.start_again();
    let restarted = Instant::now();
    let after = drain("drn_after", "pk_after");
    writer.register_drain(after.clone()).await.expect("the first operation after the restart");
    let resync = quick(url).resync_interval;
    let seen = copies.wait(resync, |s| s.contains_key("drn_after"));
    assert_eq!(seen.get("drn_after"), Some(&after), "seen within the resync interval");
    assert_eq!(seen.get("drn_before"), Some(&before));
    eprintln!("registration after the restart seen after {:?}", restarted.elapsed());
    assert!(wait_until(PROPAGATION, || health.is_up()), "up again");
    assert!(copies.count() > copies_during);
    assert!(health.reconnects() >= 1);
    task.abort();
}
