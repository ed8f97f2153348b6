//! `InstallationStore`: the integration installations Spillway knows
//! (`<data dir>/installations.json`), one per configuration (`icfg_…`), with its access token.
//!
//! The token is needed to act for the installation later, so it is stored **in clear** in a
//! [`JsonStore`] (mode `0600`, atomic writes under a lock file); in memory it is a [`Secret`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::{JsonStore, StoreError};
use crate::Secret;

/// The installation store's file name in the data directory.
pub const INSTALLATIONS_FILE: &str = "installations.json";

/// Whether an installation may still be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstallationStatus {
    /// Usable.
    Enabled,
    /// Vercel answered `integration_configuration_disabled`: never called again.
    Disabled,
}

/// One installation of the integration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Installation {
    /// The configuration, `icfg_…` (never reused by Vercel).
    pub configuration_id: String,
    /// The team, for team installations: every call with the token carries it.
    #[serde(default)]
    pub team_id: Option<String>,
    /// The installation's long-lived token.
    pub access_token: Secret,
    /// The installing user.
    pub user_id: String,
    /// The installation id the token exchange reported.
    pub installation_id: String,
    /// Granted scopes, when known (empty until read from the configuration or a webhook).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// When it was stored, Unix milliseconds.
    pub created_at_ms: i64,
    /// Enabled or disabled.
    pub status: InstallationStatus,
}

/// The installation file at a given path. Cheap; holds no file open between calls.
#[derive(Debug, Clone)]
pub struct InstallationStore {
    file: JsonStore<Installation>,
}

impl InstallationStore {
    /// The store at `path` (created on the first change, with its directory).
    pub fn new(path: impl Into<PathBuf>) -> InstallationStore {
        InstallationStore { file: JsonStore::new(path, "installations") }
    }

    /// The store of data directory `data_dir` ([`INSTALLATIONS_FILE`] in it).
    pub fn in_dir(data_dir: &Path) -> InstallationStore {
        InstallationStore::new(data_dir.join(INSTALLATIONS_FILE))
    }

    /// Where the store is kept.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Every installation; none when the file does not exist yet.
    pub fn load(&self) -> Result<Vec<Installation>, StoreError> {
        self.file.load()
    }

    /// The installation of `configuration_id`, if stored.
    pub fn get(&self, configuration_id: &str) -> Result<Option<Installation>, StoreError> {
        Ok(self.load()?.into_iter().find(|i| i.configuration_id == configuration_id))
    }

    /// Stores `installation`, replacing any with the same configuration id.
    pub fn upsert(&self, installation: Installation) -> Result<(), StoreError> {
        self.file.update(|all| {
            all.retain(|i| i.configuration_id != installation.configuration_id);
            all.push(installation);
        })
    }

    /// Forgets `configuration_id`, returning it if it was stored.
    pub fn remove(&self, configuration_id: &str) -> Result<Option<Installation>, StoreError> {
        self.file.update(|all| {
            let index = all.iter().position(|i| i.configuration_id == configuration_id)?;
            Some(all.remove(index))
        })
    }

    /// Marks `configuration_id` disabled, so it is never used again (Vercel answered
    /// `integration_configuration_disabled`); `false` if not stored.
    pub fn mark_disabled(&self, configuration_id: &str) -> Result<bool, StoreError> {
        self.modify(configuration_id, |i| i.status = InstallationStatus::Disabled)
    }

    /// The installation to act with when no token is given: `configuration_id` if named, else
    /// the only enabled one; `None` if there is no such single enabled installation.
    pub fn the_enabled(
        &self,
        configuration_id: Option<&str>,
    ) -> Result<Option<Installation>, StoreError> {
        let enabled: Vec<Installation> = self
            .load()?
            .into_iter()
            .filter(|i| i.status == InstallationStatus::Enabled)
            .filter(|i| configuration_id.is_none_or(|id| id == i.configuration_id))
            .collect();
        Ok(<[Installation; 1]>::try_from(enabled).ok().map(|[installation]| installation))
    }

    /// Changes the installation of `configuration_id` with `change`; `false` if not stored.
    pub fn modify(
        &self,
        configuration_id: &str,
        change: impl FnOnce(&mut Installation),
    ) -> Result<bool, StoreError> {
        self.file.update(|all| {
            match all.iter_mut().find(|i| i.configuration_id == configuration_id) {
                Some(installation) => {
                    change(installation);
                    true
                }
                None => false,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn installation(id: &str) -> Installation {
        Installation {
            configuration_id: id.to_owned(),
            team_id: Some("team_1".to_owned()),
            access_token: Secret::new("tok_secret"),
            user_id: "user_1".to_owned(),
            installation_id: id.to_owned(),
            scopes: Vec::new(),
            created_at_ms: 1,
            status: InstallationStatus::Enabled,
        }
    }

    #[test]
    fn installations_round_trip_change_and_are_forgotten_in_a_0600_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = InstallationStore::new(dir.path().join("installations.json"));
        assert!(store.load().unwrap().is_empty());
        store.upsert(installation("icfg_a")).unwrap();
        store.upsert(installation("icfg_b")).unwrap();
        let mode = std::fs::metadata(store.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        assert!(store
            .modify("icfg_a", |i| {
                i.status = InstallationStatus::Disabled;
                i.scopes = vec!["read:project".to_owned()];
            })
            .unwrap());
        assert!(!store.modify("icfg_x", |_| {}).unwrap());
        let a = store.get("icfg_a").unwrap().unwrap();
        assert_eq!(a.status, InstallationStatus::Disabled);
        assert_eq!(a.scopes, ["read:project"]);

        let on_disk: serde_json::Value =
            serde_json::from_slice(&std::fs::read(store.path()).unwrap()).unwrap();
        assert_eq!(on_disk["version"], 1);
        assert_eq!(on_disk["installations"][0]["status"], "disabled");
        assert!(!format!("{a:?}").contains("tok_secret"));

        assert_eq!(
            store.remove("icfg_a").unwrap().map(|i| i.configuration_id).as_deref(),
            Some("icfg_a")
        );
        assert_eq!(store.remove("icfg_a").unwrap(), None);
        assert_eq!(store.load().unwrap().len(), 1);
    }
}
