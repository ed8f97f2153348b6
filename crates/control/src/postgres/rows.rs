//! Reading and writing drains and installations as rows, their secrets sealed.
//!
//! A drain's secret and its delivery headers (a JSON array of `{name, value}`) and an
//! installation's token are sealed for their table, column and row id; every other column is
//! plain, so an operator can still query ids, teams and kinds.

use record::DataType;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};

use super::PgStore;
use crate::registry::DeliveryHeader;
use crate::store::StoreError;
use crate::{DrainEntry, DrainKind, Installation, InstallationStatus, Secret};

const DRAIN_COLUMNS: &str = "id, path_key, team_id, kind, created_at_ms, configuration_id, \
                             integration_secret, key_id, secret, headers, data_type";
const INSTALLATION_COLUMNS: &str = "configuration_id, team_id, user_id, installation_id, \
                                    scopes, created_at_ms, status, key_id, access_token";

fn kind_name(kind: DrainKind) -> &'static str {
    match kind {
        DrainKind::SelfServed => "self-served",
        DrainKind::Integration => "integration",
    }
}

fn status_name(status: InstallationStatus) -> &'static str {
    match status {
        InstallationStatus::Enabled => "enabled",
        InstallationStatus::Disabled => "disabled",
    }
}

/// `SELECT columns FROM table filter ORDER BY order`, a locking clause ending `filter`
/// (`… FOR UPDATE`) moved after the `ORDER BY`, the one place SQL accepts it.
fn select(columns: &str, table: &str, filter: &str, order: &str) -> String {
    let (filter, lock) = match filter.strip_suffix(" FOR UPDATE") {
        Some(filter) => (filter, " FOR UPDATE"),
        None => (filter, ""),
    };
    format!("SELECT {columns} FROM {table} {filter} ORDER BY {order}{lock}")
}

fn place(table: &str, column: &str, id: &str) -> String {
    format!("{table}.{column}:{id}")
}

impl PgStore {
    pub(super) fn drain_of(&self, row: &Row) -> Result<DrainEntry, StoreError> {
        let id: String = row.get("id");
        let key_id: String = row.get("key_id");
        let secret = self.keys.open(&key_id, &place("drains", "secret", &id), row.get("secret"))?;
        let headers =
            self.keys.open(&key_id, &place("drains", "headers", &id), row.get("headers"))?;
        let corrupt = |reason| StoreError::Sealed { place: place("drains", "row", &id), reason };
        let secret = String::from_utf8(secret).map_err(|_| corrupt("the secret is not UTF-8"))?;
        let headers: Vec<DeliveryHeader> =
            serde_json::from_slice(&headers).map_err(|_| corrupt("the headers are not JSON"))?;
        let kind = match row.get::<_, &str>("kind") {
            "integration" => DrainKind::Integration,
            "self-served" => DrainKind::SelfServed,
            _ => return Err(corrupt("unknown kind")),
        };
        Ok(DrainEntry {
            path_key: row.get("path_key"),
            secret: Secret::new(secret),
            team_id: row.get("team_id"),
            kind,
            created_at_ms: row.get("created_at_ms"),
            configuration_id: row.get("configuration_id"),
            integration_secret: row.get("integration_secret"),
            headers,
            data_type: row
                .get::<_, &str>("data_type")
                .parse()
                .map_err(|_| corrupt("unknown data type"))?,
            id,
        })
    }

    fn installation_of(&self, row: &Row) -> Result<Installation, StoreError> {
        let id: String = row.get("configuration_id");
        let key_id: String = row.get("key_id");
        let where_ = place("installations", "access_token", &id);
        let token = self.keys.open(&key_id, &where_, row.get("access_token"))?;
        let corrupt = |reason| StoreError::Sealed { place: where_.clone(), reason };
        let token = String::from_utf8(token).map_err(|_| corrupt("the token is not UTF-8"))?;
        let status = match row.get::<_, &str>("status") {
            "enabled" => InstallationStatus::Enabled,
            "disabled" => InstallationStatus::Disabled,
            _ => return Err(corrupt("unknown status")),
        };
        Ok(Installation {
            team_id: row.get("team_id"),
            access_token: Secret::new(token),
            user_id: row.get("user_id"),
            installation_id: row.get("installation_id"),
            scopes: row.get("scopes"),
            created_at_ms: row.get("created_at_ms"),
            status,
            configuration_id: id,
        })
    }

    /// Every drain.
    pub async fn drains(&self) -> Result<Vec<DrainEntry>, StoreError> {
        let client = self.client().await?;
        self.drains_on(&**client, "", &[]).await
    }

    /// The drains matching `filter` (a `WHERE …` clause or empty), read with `client`.
    pub(crate) async fn drains_on(
        &self,
        client: &impl GenericClient,
        filter: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<DrainEntry>, StoreError> {
        let rows = self.drain_rows(client, filter, params).await?;
        rows.iter().map(|row| self.drain_of(row)).collect()
    }

    /// The rows of the drains matching `filter`, unopened.
    pub(super) async fn drain_rows(
        &self,
        client: &impl GenericClient,
        filter: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let sql = select(DRAIN_COLUMNS, "spillway_drains", filter, "id");
        client.query(&sql, params).await.map_err(|e| self.error(e))
    }

    /// Drain `id`, if stored.
    pub async fn drain(&self, id: &str) -> Result<Option<DrainEntry>, StoreError> {
        let client = self.client().await?;
        Ok(self.drains_on(&**client, "WHERE id = $1", &[&id]).await?.pop())
    }

    /// The drain of installation `configuration_id`, if any.
    pub async fn drain_of_configuration(
        &self,
        configuration_id: &str,
        data_type: DataType,
    ) -> Result<Option<DrainEntry>, StoreError> {
        let client = self.client().await?;
        let filter = "WHERE configuration_id = $1 AND data_type = $2";
        let params: [&(dyn ToSql + Sync); 2] = [&configuration_id, &data_type.as_str()];
        Ok(self.drains_on(&**client, filter, &params).await?.into_iter().next())
    }

    /// Stores `entry`, replacing the drain with its id; [`StoreError::Conflict`] (nothing
    /// written) if another drain has its path key.
    pub async fn insert_drain(&self, entry: &DrainEntry) -> Result<(), StoreError> {
        let client = self.client().await?;
        self.insert_drain_on(&**client, entry, false).await.map(|_| ())
    }

    /// Writes `entry` with `client`; with `keep_existing` a drain already stored under its id
    /// is left as it is (and `false` returned).
    pub(crate) async fn insert_drain_on(
        &self,
        client: &impl GenericClient,
        entry: &DrainEntry,
        keep_existing: bool,
    ) -> Result<bool, StoreError> {
        let (key_id, secret) = self
            .keys
            .seal(&place("drains", "secret", &entry.id), entry.secret.expose().as_bytes())?;
        let headers = serde_json::to_vec(&entry.headers).expect("headers serialize");
        let (_, headers) = self.keys.seal(&place("drains", "headers", &entry.id), &headers)?;
        let on_conflict = if keep_existing {
            "DO NOTHING"
        } else {
            "DO UPDATE SET path_key = EXCLUDED.path_key, team_id = EXCLUDED.team_id, \
             kind = EXCLUDED.kind, created_at_ms = EXCLUDED.created_at_ms, \
             configuration_id = EXCLUDED.configuration_id, \
             integration_secret = EXCLUDED.integration_secret, key_id = EXCLUDED.key_id, \
             secret = EXCLUDED.secret, headers = EXCLUDED.headers, \
             data_type = EXCLUDED.data_type"
        };
        let sql = format!(
            "INSERT INTO spillway_drains ({DRAIN_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) {on_conflict}"
        );
        let written = client
            .execute(
                &sql,
                &[
                    &entry.id,
                    &entry.path_key,
                    &entry.team_id,
                    &kind_name(entry.kind),
                    &entry.created_at_ms,
                    &entry.configuration_id,
                    &entry.integration_secret,
                    &key_id,
                    &secret,
                    &headers,
                    &entry.data_type.as_str(),
                ],
            )
            .await
            .map_err(|e| match self.error(e) {
                StoreError::Conflict { .. } => {
                    StoreError::Conflict { path_key: entry.path_key.clone() }
                }
                other => other,
            })?;
        Ok(written > 0)
    }

    /// Forgets drain `id`, returning it if it was stored.
    pub async fn remove_drain(&self, id: &str) -> Result<Option<DrainEntry>, StoreError> {
        let client = self.client().await?;
        let sql = format!("DELETE FROM spillway_drains WHERE id = $1 RETURNING {DRAIN_COLUMNS}");
        let rows = client.query(&sql, &[&id]).await.map_err(|e| self.error(e))?;
        rows.first().map(|row| self.drain_of(row)).transpose()
    }

    /// Every installation.
    pub async fn installations(&self) -> Result<Vec<Installation>, StoreError> {
        let client = self.client().await?;
        self.installations_on(&**client, "", &[]).await
    }

    async fn installations_on(
        &self,
        client: &impl GenericClient,
        filter: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Installation>, StoreError> {
        let sql =
            select(INSTALLATION_COLUMNS, "spillway_installations", filter, "configuration_id");
        let rows = client.query(&sql, params).await.map_err(|e| self.error(e))?;
        rows.iter().map(|row| self.installation_of(row)).collect()
    }

    /// Installation `configuration_id`, if stored.
    pub async fn installation(
        &self,
        configuration_id: &str,
    ) -> Result<Option<Installation>, StoreError> {
        let client = self.client().await?;
        let filter = "WHERE configuration_id = $1";
        Ok(self.installations_on(&**client, filter, &[&configuration_id]).await?.pop())
    }

    /// Stores `installation`, replacing the one with its configuration id (unless
    /// `keep_existing`; then `false` says one was already there).
    pub(crate) async fn upsert_installation_on(
        &self,
        client: &impl GenericClient,
        installation: &Installation,
        keep_existing: bool,
    ) -> Result<bool, StoreError> {
        let id = &installation.configuration_id;
        let (key_id, token) = self.keys.seal(
            &place("installations", "access_token", id),
            installation.access_token.expose().as_bytes(),
        )?;
        let on_conflict = if keep_existing {
            "DO NOTHING"
        } else {
            "DO UPDATE SET team_id = EXCLUDED.team_id, user_id = EXCLUDED.user_id, \
             installation_id = EXCLUDED.installation_id, scopes = EXCLUDED.scopes, \
             created_at_ms = EXCLUDED.created_at_ms, status = EXCLUDED.status, \
             key_id = EXCLUDED.key_id, access_token = EXCLUDED.access_token"
        };
        let sql = format!(
            "INSERT INTO spillway_installations ({INSTALLATION_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (configuration_id) {on_conflict}"
        );
        let written = client
            .execute(
                &sql,
                &[
                    id,
                    &installation.team_id,
                    &installation.user_id,
                    &installation.installation_id,
                    &installation.scopes,
                    &installation.created_at_ms,
                    &status_name(installation.status),
                    &key_id,
                    &token,
                ],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(written > 0)
    }

    /// Stores `installation`, replacing the one with its configuration id.
    pub async fn upsert_installation(&self, installation: &Installation) -> Result<(), StoreError> {
        let client = self.client().await?;
        self.upsert_installation_on(&**client, installation, false).await.map(|_| ())
    }

    /// Changes installation `configuration_id` with `change` in one transaction (the row
    /// locked meanwhile); `false` if not stored.
    pub async fn modify_installation(
        &self,
        configuration_id: &str,
        change: impl FnOnce(&mut Installation) + Send,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.error(e))?;
        let filter = "WHERE configuration_id = $1 FOR UPDATE";
        let Some(mut installation) =
            self.installations_on(&*tx, filter, &[&configuration_id]).await?.pop()
        else {
            return Ok(false);
        };
        change(&mut installation);
        installation.configuration_id = configuration_id.to_owned();
        self.upsert_installation_on(&*tx, &installation, false).await?;
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(true)
    }

    /// Forgets installation `configuration_id` and every drain it owns, in one transaction;
    /// returns whether it was stored and how many drains went with it.
    pub async fn remove_configuration(
        &self,
        configuration_id: &str,
    ) -> Result<(bool, usize), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.error(e))?;
        let known = tx
            .execute(
                "DELETE FROM spillway_installations WHERE configuration_id = $1",
                &[&configuration_id],
            )
            .await
            .map_err(|e| self.error(e))?;
        let drains = tx
            .execute(
                "DELETE FROM spillway_drains WHERE configuration_id = $1",
                &[&configuration_id],
            )
            .await
            .map_err(|e| self.error(e))?;
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok((known > 0, drains as usize))
    }

    /// Copies `drains` and `installations` in one transaction, keeping whatever is already
    /// stored under their ids; returns how many of each were new.
    pub async fn import(
        &self,
        drains: &[DrainEntry],
        installations: &[Installation],
    ) -> Result<(usize, usize), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.error(e))?;
        let mut copied = (0, 0);
        for installation in installations {
            copied.1 += usize::from(self.upsert_installation_on(&*tx, installation, true).await?);
        }
        for drain in drains {
            copied.0 += usize::from(self.insert_drain_on(&*tx, drain, true).await?);
        }
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(copied)
    }

    /// Re-seals every value not sealed under the ring's current key; returns how many rows
    /// changed. Each row is rewritten in the same transaction that read it.
    pub async fn rotate_key(&self) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.error(e))?;
        let current = self.keys.current_id().to_owned();
        let filter = "WHERE key_id <> $1 FOR UPDATE";
        let drains = self.drains_on(&*tx, filter, &[&current]).await?;
        for drain in &drains {
            self.insert_drain_on(&*tx, drain, false).await?;
        }
        let installations = self.installations_on(&*tx, filter, &[&current]).await?;
        for installation in &installations {
            self.upsert_installation_on(&*tx, installation, false).await?;
        }
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(drains.len() + installations.len())
    }
}
