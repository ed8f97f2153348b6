//! `Stores`: where the drain registry and the installations live, behind one set of async
//! operations: the files of one machine's data directory ([`DrainRegistry`] and
//! [`InstallationStore`], the default) or a PostgreSQL database shared by a fleet
//! ([`PgStore`]). The control plane and the CLI use nothing else, so both backends pass one
//! test suite (crates/control/tests/stores/).
//!
//! File operations run on tokio's blocking pool (they lock, write and fsync small files).

use std::path::Path;

use record::DataType;

use crate::postgres::PgStore;
use crate::store::{blocking, StoreError};
use crate::{DrainEntry, DrainRegistry, Installation, InstallationStatus, InstallationStore};

/// The drain registry and the installations.
#[derive(Debug, Clone)]
pub enum Stores {
    /// `drains.json` and `installations.json` in a data directory.
    Files {
        /// The drain registry.
        drains: DrainRegistry,
        /// The installations.
        installations: InstallationStore,
    },
    /// Tables in PostgreSQL.
    Postgres(PgStore),
}

impl Stores {
    /// The files of data directory `data_dir`.
    pub fn in_dir(data_dir: &Path) -> Stores {
        Stores::Files {
            drains: DrainRegistry::in_dir(data_dir),
            installations: InstallationStore::in_dir(data_dir),
        }
    }

    /// Where they are, for messages (never a password).
    pub fn describe(&self) -> String {
        match self {
            Stores::Files { drains, .. } => format!("files beside {}", drains.path().display()),
            Stores::Postgres(pg) => format!("PostgreSQL at {}", pg.at()),
        }
    }

    /// Every registered drain.
    pub async fn drains(&self) -> Result<Vec<DrainEntry>, StoreError> {
        match self {
            Stores::Files { drains, .. } => {
                let drains = drains.clone();
                blocking(move || drains.load()).await
            }
            Stores::Postgres(pg) => pg.drains().await,
        }
    }

    /// Drain `id`, if registered.
    pub async fn drain(&self, id: &str) -> Result<Option<DrainEntry>, StoreError> {
        match self {
            Stores::Files { drains, .. } => {
                let (drains, id) = (drains.clone(), id.to_owned());
                blocking(move || drains.get(&id)).await
            }
            Stores::Postgres(pg) => pg.drain(id).await,
        }
    }

    /// The drain of `data_type` installation `configuration_id` owns, if any.
    pub async fn drain_of_configuration(
        &self,
        configuration_id: &str,
        data_type: DataType,
    ) -> Result<Option<DrainEntry>, StoreError> {
        match self {
            Stores::Files { drains, .. } => {
                let (drains, id) = (drains.clone(), configuration_id.to_owned());
                blocking(move || {
                    let all = drains.load()?;
                    Ok(all.into_iter().find(|e| {
                        e.configuration_id.as_deref() == Some(&id) && e.data_type == data_type
                    }))
                })
                .await
            }
            Stores::Postgres(pg) => pg.drain_of_configuration(configuration_id, data_type).await,
        }
    }

    /// Registers `entry` (replacing the drain with its id); [`StoreError::Conflict`], with
    /// nothing changed, when another drain has its path key.
    pub async fn register_drain(&self, entry: DrainEntry) -> Result<(), StoreError> {
        match self {
            Stores::Files { drains, .. } => {
                let drains = drains.clone();
                blocking(move || drains.insert(entry)).await
            }
            Stores::Postgres(pg) => pg.insert_drain(&entry).await,
        }
    }

    /// Forgets drain `id`, returning it if it was registered.
    pub async fn forget_drain(&self, id: &str) -> Result<Option<DrainEntry>, StoreError> {
        match self {
            Stores::Files { drains, .. } => {
                let (drains, id) = (drains.clone(), id.to_owned());
                blocking(move || drains.remove(&id)).await
            }
            Stores::Postgres(pg) => pg.remove_drain(id).await,
        }
    }

    /// Every installation.
    pub async fn installations(&self) -> Result<Vec<Installation>, StoreError> {
        match self {
            Stores::Files { installations, .. } => {
                let store = installations.clone();
                blocking(move || store.load()).await
            }
            Stores::Postgres(pg) => pg.installations().await,
        }
    }

    /// Installation `configuration_id`, if stored.
    pub async fn installation(
        &self,
        configuration_id: &str,
    ) -> Result<Option<Installation>, StoreError> {
        match self {
            Stores::Files { installations, .. } => {
                let (store, id) = (installations.clone(), configuration_id.to_owned());
                blocking(move || store.get(&id)).await
            }
            Stores::Postgres(pg) => pg.installation(configuration_id).await,
        }
    }

    /// Stores `installation`, replacing the one with its configuration id.
    pub async fn upsert_installation(&self, installation: Installation) -> Result<(), StoreError> {
        match self {
            Stores::Files { installations, .. } => {
                let store = installations.clone();
                blocking(move || store.upsert(installation)).await
            }
            Stores::Postgres(pg) => pg.upsert_installation(&installation).await,
        }
    }

    /// Changes installation `configuration_id` atomically; `false` if not stored.
    pub async fn modify_installation(
        &self,
        configuration_id: &str,
        change: impl FnOnce(&mut Installation) + Send + 'static,
    ) -> Result<bool, StoreError> {
        match self {
            Stores::Files { installations, .. } => {
                let (store, id) = (installations.clone(), configuration_id.to_owned());
                blocking(move || store.modify(&id, change)).await
            }
            Stores::Postgres(pg) => pg.modify_installation(configuration_id, change).await,
        }
    }

    /// Marks installation `configuration_id` disabled (never used again); `false` if not
    /// stored.
    pub async fn mark_disabled(&self, configuration_id: &str) -> Result<bool, StoreError> {
        self.modify_installation(configuration_id, |i| i.status = InstallationStatus::Disabled)
            .await
    }

    /// The installation to act with when no token is given: `configuration_id` if named, else
    /// the only enabled one; `None` if there is no such single enabled installation.
    pub async fn the_enabled(
        &self,
        configuration_id: Option<&str>,
    ) -> Result<Option<Installation>, StoreError> {
        let enabled: Vec<Installation> = self
            .installations()
            .await?
            .into_iter()
            .filter(|i| i.status == InstallationStatus::Enabled)
            .filter(|i| configuration_id.is_none_or(|id| id == i.configuration_id))
            .collect();
        Ok(<[Installation; 1]>::try_from(enabled).ok().map(|[installation]| installation))
    }

    /// Forgets installation `configuration_id` and every drain it owns; returns whether it was
    /// stored and how many drains went with it. Doing it twice changes nothing the second time.
    pub async fn remove_configuration(
        &self,
        configuration_id: &str,
    ) -> Result<(bool, usize), StoreError> {
        match self {
            Stores::Files { drains, installations } => {
                let (store, registry) = (installations.clone(), drains.clone());
                let id = configuration_id.to_owned();
                blocking(move || {
                    let installation = store.remove(&id)?;
                    let drains = registry.remove_configuration(&id)?;
                    Ok((installation.is_some(), drains.len()))
                })
                .await
            }
            Stores::Postgres(pg) => pg.remove_configuration(configuration_id).await,
        }
    }
}
