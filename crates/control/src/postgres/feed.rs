//! The receiver's live copy of the shared drain registry: one connection that `LISTEN`s on
//! `spillway_drains`, re-reads each drain it is notified of, and re-reads every drain at start,
//! after every reconnect and every resync interval, so a missed notification heals itself.
//!
//! The copy is handed to a callback after every change; the receiver serves from it and never
//! reads the database per request. While the database is down the last copy stays in force
//! (deliveries keep being answered) and [`FeedHealth`] says the store is degraded; reconnects
//! back off from 100 ms to the configured maximum.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;

use super::migrations::DRAINS_CHANNEL;
use super::PgStore;
use crate::store::StoreError;
use crate::DrainEntry;

/// The first reconnect waits this long; each further one twice as long, up to the maximum.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Notifications queued between two reads; beyond it the next read is a full resync.
const NOTIFY_QUEUE: usize = 1024;
/// Drains re-read in one query at most.
const MAX_BATCH: usize = 256;

/// Every drain, by id.
pub type Snapshot = HashMap<String, DrainEntry>;

#[derive(Debug, Default)]
struct Counters {
    up: Gauge,
    reconnects: Counter,
    resyncs: Counter,
    notifications: Counter,
}

/// How the feed is doing, for `/readyz` and the metrics. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct FeedHealth(Arc<Counters>);

impl FeedHealth {
    /// Whether the feed is connected and its copy current.
    pub fn is_up(&self) -> bool {
        self.0.up.get() == 1
    }

    /// Connections lost (or never made) so far.
    pub fn reconnects(&self) -> u64 {
        self.0.reconnects.get()
    }

    /// Full re-reads so far.
    pub fn resyncs(&self) -> u64 {
        self.0.resyncs.get()
    }

    /// Change notifications received so far.
    pub fn notifications(&self) -> u64 {
        self.0.notifications.get()
    }

    /// Registers the feed's metrics (`spillway_store_*`) in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("spillway_store");
        r.register("up", "1 while the drain store feed is connected, else 0", self.0.up.clone());
        let counters = [
            ("reconnects", "Drain store connections lost or refused", &self.0.reconnects),
            ("resyncs", "Full re-reads of the drain store", &self.0.resyncs),
            ("notifications", "Drain change notifications received", &self.0.notifications),
        ];
        for (name, help, counter) in counters {
            r.register(name, help, counter.clone());
        }
    }

    fn set_up(&self, up: bool) -> bool {
        self.0.up.set(i64::from(up)) == 1
    }
}

/// The callback that receives each new copy.
pub type Apply = Arc<dyn Fn(&Snapshot) + Send + Sync>;

/// Starts the feed of `store` on the current tokio runtime; `apply` gets each new copy.
pub fn spawn(store: PgStore, apply: Apply) -> (FeedHealth, JoinHandle<()>) {
    let health = FeedHealth::default();
    let feed = Feed { store, apply, health: health.clone(), migrated: false };
    (health, tokio::spawn(feed.run()))
}

struct Feed {
    store: PgStore,
    apply: Apply,
    health: FeedHealth,
    migrated: bool,
}

/// Aborts the connection's task when the session that owns it ends.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Feed {
    async fn run(mut self) {
        let mut backoff = MIN_BACKOFF;
        loop {
            let Err(error) = self.session(&mut backoff).await;
            let was_up = self.health.set_up(false);
            self.health.0.reconnects.inc();
            if was_up {
                tracing::warn!(%error, "drain store feed lost; serving the last copy");
            } else {
                tracing::debug!(%error, ?backoff, "drain store feed still unavailable");
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.store.max_backoff.max(MIN_BACKOFF));
        }
    }

    /// One connection's life: listen, read everything, then follow notifications until the
    /// connection fails.
    async fn session(&mut self, backoff: &mut Duration) -> Result<Infallible, StoreError> {
        let lost = |e: tokio_postgres::Error| StoreError::Unavailable {
            at: self.store.at.clone(),
            reason: super::pg_reason(&e),
        };
        let (client, mut connection) =
            self.store.pg.connect(self.store.tls.clone()).await.map_err(lost)?;
        let (notify, mut notified) = mpsc::channel::<String>(NOTIFY_QUEUE);
        let overflow = Arc::new(AtomicBool::new(false));
        let overflowed = Arc::clone(&overflow);
        let counters = Arc::clone(&self.health.0);
        let _driver = AbortOnDrop(tokio::spawn(async move {
            // Ends (dropping `notify`, which ends the session) when the connection does.
            while let Some(Ok(message)) = poll_fn(|cx| connection.poll_message(cx)).await {
                if let AsyncMessage::Notification(n) = message {
                    counters.notifications.inc();
                    if notify.try_send(n.payload().to_owned()).is_err() {
                        overflowed.store(true, Ordering::Relaxed);
                    }
                }
            }
        }));
        if !self.migrated {
            self.store.migrate().await?;
            self.migrated = true;
        }
        client.batch_execute(&format!("LISTEN {DRAINS_CHANNEL}")).await.map_err(lost)?;
        let mut snapshot = self.full(&client).await?;
        self.health.set_up(true);
        *backoff = MIN_BACKOFF;
        tracing::info!(drains = snapshot.len(), at = self.store.at, "drain store feed connected");
        let mut resync = tokio::time::interval(self.store.resync_interval.max(MIN_BACKOFF));
        resync.tick().await;
        loop {
            tokio::select! {
                id = notified.recv() => {
                    let Some(id) = id else {
                        return Err(StoreError::Unavailable {
                            at: self.store.at.clone(),
                            reason: "the connection ended".to_owned(),
                        });
                    };
                    let mut ids = vec![id];
                    while ids.len() < MAX_BATCH {
                        match notified.try_recv() {
                            Ok(id) => ids.push(id),
                            Err(_) => break,
                        }
                    }
                    if overflow.swap(false, Ordering::Relaxed) {
                        snapshot = self.full(&client).await?;
                    } else {
                        self.reread(&client, &mut snapshot, ids).await?;
                    }
                }
                _ = resync.tick() => snapshot = self.full(&client).await?,
            }
        }
    }

    /// Reads every drain and hands the copy over.
    async fn full(&self, client: &tokio_postgres::Client) -> Result<Snapshot, StoreError> {
        let snapshot: Snapshot =
            self.read(client, "", &[]).await?.into_iter().map(|e| (e.id.clone(), e)).collect();
        self.health.0.resyncs.inc();
        (self.apply)(&snapshot);
        Ok(snapshot)
    }

    /// Re-reads drains `ids` (gone ones leave the copy) and hands the copy over.
    async fn reread(
        &self,
        client: &tokio_postgres::Client,
        snapshot: &mut Snapshot,
        mut ids: Vec<String>,
    ) -> Result<(), StoreError> {
        ids.sort_unstable();
        ids.dedup();
        let fresh = self.read(client, "WHERE id = ANY($1)", &[&ids]).await?;
        for id in &ids {
            snapshot.remove(id);
        }
        snapshot.extend(fresh.into_iter().map(|e| (e.id.clone(), e)));
        (self.apply)(snapshot);
        Ok(())
    }

    /// The drains matching `filter`; a row that does not open (a key missing from the ring) is
    /// logged and left out, so one bad row never hides the others.
    async fn read(
        &self,
        client: &tokio_postgres::Client,
        filter: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<DrainEntry>, StoreError> {
        let rows = self.store.drain_rows(client, filter, params).await?;
        Ok(rows
            .iter()
            .filter_map(|row| match self.store.drain_of(row) {
                Ok(entry) => Some(entry),
                Err(error) => {
                    tracing::error!(%error, "stored drain cannot be read: not served");
                    None
                }
            })
            .collect())
    }
}
