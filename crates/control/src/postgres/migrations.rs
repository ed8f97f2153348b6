//! The schema, as numbered migrations embedded in the binary, applied in order at connect.
//!
//! A replica takes a session advisory lock before it looks at `spillway_schema_migrations`, so
//! replicas that start together apply each migration once, one after the other; each migration
//! and its row in that table commit in one transaction. A migration, once released, is never
//! edited: changes are new migrations.

use tokio_postgres::Client;

/// The advisory lock key held while migrating (any constant that nothing else uses).
const LOCK_KEY: i64 = 0x5370_696c_6c77_6179; // "Spillway"

/// `(version, SQL)`, in order.
const MIGRATIONS: &[(i32, &str)] = &[(1, INITIAL), (2, DATA_TYPES)];

const INITIAL: &str = r#"
CREATE TABLE spillway_drains (
    id text PRIMARY KEY,
    path_key text NOT NULL UNIQUE,
    team_id text,
    kind text NOT NULL,
    created_at_ms bigint NOT NULL,
    configuration_id text,
    integration_secret boolean NOT NULL,
    key_id text NOT NULL,
    secret bytea NOT NULL,
    headers bytea NOT NULL
);
CREATE INDEX spillway_drains_configuration ON spillway_drains (configuration_id);

CREATE TABLE spillway_installations (
    configuration_id text PRIMARY KEY,
    team_id text,
    user_id text NOT NULL,
    installation_id text NOT NULL,
    scopes text[] NOT NULL,
    created_at_ms bigint NOT NULL,
    status text NOT NULL,
    key_id text NOT NULL,
    access_token bytea NOT NULL
);

CREATE FUNCTION spillway_notify_drain() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('spillway_drains', OLD.id);
    ELSE
        PERFORM pg_notify('spillway_drains', NEW.id);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER spillway_drains_notify AFTER INSERT OR UPDATE OR DELETE ON spillway_drains
    FOR EACH ROW EXECUTE FUNCTION spillway_notify_drain();
"#;

/// Drains carry one data type each; the ones stored before carry logs.
const DATA_TYPES: &str =
    "ALTER TABLE spillway_drains ADD COLUMN data_type text NOT NULL DEFAULT 'logs'";

/// The channel the drain trigger notifies, with the drain id as payload.
pub(crate) const DRAINS_CHANNEL: &str = "spillway_drains";

/// Applies every migration the database has not seen, under the advisory lock, on `client`'s
/// session, which it leaves without statement or lock timeouts: a migration, or the wait for
/// another replica's, may take longer than the store's `query_timeout`.
pub(super) async fn apply(client: &mut Client) -> Result<(), tokio_postgres::Error> {
    client.batch_execute("SET statement_timeout = 0; SET lock_timeout = 0").await?;
    client.execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY]).await?;
    let applied = apply_locked(client).await;
    // Released at once (the session also ends after).
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]).await;
    applied?;
    unlocked.map(|_| ())
}

async fn apply_locked(client: &mut Client) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS spillway_schema_migrations (
                 version integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await?;
    let row = client
        .query_one("SELECT coalesce(max(version), 0) FROM spillway_schema_migrations", &[])
        .await?;
    let current: i32 = row.get(0);
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO spillway_schema_migrations (version) VALUES ($1)", &[version])
            .await?;
        tx.commit().await?;
        tracing::info!(version, "store migration applied");
    }
    Ok(())
}
