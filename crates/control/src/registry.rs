//! `DrainRegistry`: the local record of the drains Spillway created (`<data dir>/drains.json`),
//! with each drain's path key and signing secret.
//!
//! The receiver needs every drain's secret to check signatures, so the secrets are stored **in
//! clear**: the file and its temporary siblings are created with mode `0600` and are never
//! world-readable. In memory a secret is a [`Secret`], whose `Debug` is redacted.
//!
//! The file is a [`JsonStore`]: every change is a read-modify-write under an exclusive lock on
//! `<file>.lock` (so two CLI processes never lose an update), written to a temporary file,
//! fsynced and renamed over the old file. Reads take no lock: a rename is atomic.

use std::path::{Path, PathBuf};

use record::DataType;
use serde::{Deserialize, Serialize};

use crate::store::{random_hex, JsonStore, StoreError};
use crate::Secret;

/// Random bytes in a path key (hex: twice as many characters).
const PATH_KEY_BYTES: usize = 16;
/// Random bytes in a drain secret (hex: twice as many characters).
const SECRET_BYTES: usize = 32;

/// The registry's file name in the data directory.
pub const REGISTRY_FILE: &str = "drains.json";

/// Who created a drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DrainKind {
    /// Created with a user or team token (`spillway drains create`).
    SelfServed,
    /// Created by the integration install flow with an installation's token.
    Integration,
}

/// One drain Spillway created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainEntry {
    /// Vercel's id, `drn_…`.
    pub id: String,
    /// The drain's own path segment on the receiver (URL-safe, random).
    pub path_key: String,
    /// The signature verification secret Vercel signs deliveries with (unless
    /// `integration_secret`).
    pub secret: Secret,
    /// The team owning the drain, if any.
    #[serde(default)]
    pub team_id: Option<String>,
    /// Who created it.
    pub kind: DrainKind,
    /// When it was created, Unix milliseconds.
    pub created_at_ms: i64,
    /// The integration installation (`icfg_…`) that owns it, for integration drains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_id: Option<String>,
    /// Vercel reported the drain's secret as `INTEGRATION_SECRET`: deliveries are signed with
    /// the integration's client secret (from the configuration, never copied here), not
    /// `secret`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub integration_secret: bool,
    /// Headers Vercel sends with every delivery (the drain's `delivery.headers`), which the
    /// receiver requires with exactly these values. The values are credentials, stored in clear
    /// like the secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<DeliveryHeader>,
    /// What the drain carries (`logs` for entries written before drains had types).
    #[serde(default, skip_serializing_if = "is_logs", with = "data_type_name")]
    pub data_type: DataType,
}

fn is_logs(data_type: &DataType) -> bool {
    *data_type == DataType::Logs
}

/// A [`DataType`] as its name (`speed_insights`) in the registry file.
mod data_type_name {
    use record::DataType;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(t: &DataType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(t.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DataType, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// One header of a drain's deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryHeader {
    /// Its name, as given.
    pub name: String,
    /// Its value.
    pub value: Secret,
}

/// The registry file at a given path. Cheap; holds no file open between calls.
#[derive(Debug, Clone)]
pub struct DrainRegistry {
    file: JsonStore<DrainEntry>,
}

impl DrainRegistry {
    /// The registry stored at `path` (created on the first change, with its directory).
    pub fn new(path: impl Into<PathBuf>) -> DrainRegistry {
        DrainRegistry { file: JsonStore::new(path, "drains") }
    }

    /// The registry of data directory `data_dir` ([`REGISTRY_FILE`] in it).
    pub fn in_dir(data_dir: &Path) -> DrainRegistry {
        DrainRegistry::new(data_dir.join(REGISTRY_FILE))
    }

    /// Where the registry is stored.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Every entry; none when the file does not exist yet.
    pub fn load(&self) -> Result<Vec<DrainEntry>, StoreError> {
        self.file.load()
    }

    /// The entry of drain `id`, if registered.
    pub fn get(&self, id: &str) -> Result<Option<DrainEntry>, StoreError> {
        Ok(self.load()?.into_iter().find(|e| e.id == id))
    }

    /// Applies `change` to the entries under the exclusive lock and writes the result
    /// atomically. Nothing is written if reading fails (a corrupt file stays as it is).
    pub fn update<R>(
        &self,
        change: impl FnOnce(&mut Vec<DrainEntry>) -> R,
    ) -> Result<R, StoreError> {
        self.file.update(change)
    }

    /// Adds `entry`, replacing any entry with the same id; refuses (changing nothing) when
    /// another drain has its path key.
    pub fn insert(&self, entry: DrainEntry) -> Result<(), StoreError> {
        self.update(|entries| {
            if entries.iter().any(|e| e.path_key == entry.path_key && e.id != entry.id) {
                return Err(StoreError::Conflict { path_key: entry.path_key });
            }
            entries.retain(|e| e.id != entry.id);
            entries.push(entry);
            Ok(())
        })?
    }

    /// Removes the entry of drain `id`, returning it if there was one.
    pub fn remove(&self, id: &str) -> Result<Option<DrainEntry>, StoreError> {
        self.update(|entries| {
            let index = entries.iter().position(|e| e.id == id)?;
            Some(entries.remove(index))
        })
    }

    /// Removes every drain of integration installation `configuration_id`, returning them.
    pub fn remove_configuration(
        &self,
        configuration_id: &str,
    ) -> Result<Vec<DrainEntry>, StoreError> {
        self.update(|entries| {
            let (removed, kept) = std::mem::take(entries)
                .into_iter()
                .partition(|e| e.configuration_id.as_deref() == Some(configuration_id));
            *entries = kept;
            removed
        })
    }
}

/// A new random path key: 16 bytes as 32 lowercase hex characters (URL-safe).
pub fn generate_path_key() -> Result<String, StoreError> {
    random_hex(PATH_KEY_BYTES)
}

/// A new random drain secret: 32 bytes as 64 lowercase hex characters.
pub fn generate_secret() -> Result<Secret, StoreError> {
    random_hex(SECRET_BYTES).map(Secret::new)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::{Arc, Barrier};

    use super::*;

    fn entry(id: &str) -> DrainEntry {
        DrainEntry {
            id: id.to_owned(),
            path_key: generate_path_key().unwrap(),
            secret: generate_secret().unwrap(),
            team_id: Some("team_1".to_owned()),
            kind: DrainKind::SelfServed,
            created_at_ms: 1_700_000_000_000,
            configuration_id: None,
            integration_secret: false,
            data_type: Default::default(),
            headers: vec![DeliveryHeader {
                name: "Authorization".to_owned(),
                value: Secret::new("Bearer tok-in-the-registry"),
            }],
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn entries_round_trip_and_the_file_is_0600() {
        let dir = tempfile::tempdir().unwrap();
        let registry = DrainRegistry::new(dir.path().join("sub/drains.json"));
        assert!(registry.load().unwrap().is_empty());
        let (a, b) = (entry("drn_a"), entry("drn_b"));
        registry.insert(a.clone()).unwrap();
        registry.insert(b.clone()).unwrap();
        assert_eq!(registry.load().unwrap(), vec![a.clone(), b.clone()]);
        assert_eq!(registry.get("drn_b").unwrap(), Some(b.clone()));
        assert_eq!(mode(registry.path()), 0o600);
        assert_eq!(mode(&dir.path().join("sub/drains.json.lock")), 0o600);

        let on_disk: serde_json::Value =
            serde_json::from_slice(&std::fs::read(registry.path()).unwrap()).unwrap();
        assert_eq!(on_disk["version"], 1);
        assert_eq!(on_disk["drains"][0]["kind"], "self-served");
        assert_eq!(on_disk["drains"][0]["secret"], a.secret.expose());
        assert_eq!(on_disk["drains"][0]["pathKey"].as_str().unwrap().len(), 32);
        assert_eq!(
            on_disk["drains"][0]["headers"],
            serde_json::json!([{"name": "Authorization", "value": "Bearer tok-in-the-registry"}])
        );

        assert_eq!(registry.remove("drn_a").unwrap(), Some(a));
        assert_eq!(registry.remove("drn_a").unwrap(), None);
        assert_eq!(registry.load().unwrap(), vec![b]);
    }

    #[test]
    fn debug_of_an_entry_does_not_show_the_secret() {
        let e = entry("drn_a");
        assert!(!format!("{e:?}").contains(e.secret.expose()));
        assert!(!format!("{e:?}").contains("tok-in-the-registry"));
    }

    #[test]
    fn a_write_replaces_a_world_readable_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drains.json");
        std::fs::write(&path, r#"{"version":1,"drains":[]}"#).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let registry = DrainRegistry::new(&path);
        registry.insert(entry("drn_a")).unwrap();
        assert_eq!(mode(&path), 0o600);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["drains.json", "drains.json.lock"]);
    }

    #[test]
    fn a_corrupt_file_is_reported_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drains.json");
        std::fs::write(&path, b"{\"version\":1,\"drains\":[").unwrap();
        let registry = DrainRegistry::new(&path);
        assert!(matches!(registry.load(), Err(StoreError::Corrupt { .. })));
        assert!(matches!(registry.insert(entry("drn_a")), Err(StoreError::Corrupt { .. })));
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"version\":1,\"drains\":[");
        std::fs::write(&path, br#"{"version":2,"drains":[]}"#).unwrap();
        assert!(matches!(registry.load(), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn a_failed_update_writes_nothing_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let registry = DrainRegistry::new(dir.path().join("drains.json"));
        let a = entry("drn_a");
        registry.insert(a.clone()).unwrap();
        // A registry path that is a directory can be neither read nor replaced.
        let blocked = dir.path().join("blocked.json");
        std::fs::create_dir(&blocked).unwrap();
        let err = DrainRegistry::new(&blocked).insert(entry("drn_b")).unwrap_err();
        assert!(matches!(err, StoreError::Io { .. }), "{err}");
        assert!(blocked.is_dir());
        assert_eq!(registry.load().unwrap(), vec![a]);
        let leftovers = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".tmp"))
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn concurrent_updates_from_separate_handles_are_never_lost() {
        const THREADS: usize = 8;
        const PER_THREAD: usize = 10;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drains.json");
        let barrier = Arc::new(Barrier::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (path, barrier) = (path.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    // One registry (and so one lock file description) per thread, as two
                    // processes would have.
                    let registry = DrainRegistry::new(path);
                    barrier.wait();
                    for i in 0..PER_THREAD {
                        registry.insert(entry(&format!("drn_{t}_{i}"))).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let entries = DrainRegistry::new(&path).load().unwrap();
        assert_eq!(entries.len(), THREADS * PER_THREAD);
    }

    #[test]
    fn generated_keys_and_secrets_are_hex_and_distinct() {
        let (k1, k2) = (generate_path_key().unwrap(), generate_path_key().unwrap());
        assert_eq!(k1.len(), 32);
        assert!(k1.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(k1, k2);
        let secret = generate_secret().unwrap();
        assert_eq!(secret.expose().len(), 64);
        assert_ne!(secret, generate_secret().unwrap());
    }
}
