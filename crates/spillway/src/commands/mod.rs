//! `spillway drains …`, `spillway env set` and `spillway store …`: the command line over
//! `control::drains`, which keeps Vercel and the drain registry in step. The registry is the
//! shared PostgreSQL store when `SPILLWAY_DATABASE_URL` is set (with `SPILLWAY_STORE_KEY`), else
//! the data directory's files (`<data dir>/drains.json`).
//!
//! The token comes from `SPILLWAY_VERCEL_TOKEN` (never printed), the API from
//! `SPILLWAY_VERCEL_API_URL` (default `https://api.vercel.com`). Output is a table by default and
//! JSON with `--json` ([`render`]); a drain secret is only ever shown redacted. Exit codes: see
//! [`Exit`].

mod args;
mod create;
mod failure;
mod render;
mod store;

use std::collections::HashMap;
use std::process::ExitCode;

use control::drains::{self, Deleted, DrainChange, ALL_ENV_TARGETS};
use control::model::{DrainStatus, EnvTarget, EnvType, EnvVar};
use control::postgres::{PgConfig, PgStore};
use control::{
    ClientConfig, ControlError, DrainEntry, Secret, Stores, VercelClient, DEFAULT_BASE_URL,
};
use serde_json::json;

use crate::config::API_URL_VAR;
pub use args::{
    CommonArgs, CreateArgs, DrainsArgs, DrainsCommand, EncodingArg, EnvArgs, EnvCommand,
    EnvironmentArg, SourceArg, StoreArgs, StoreCommand, TargetArg, UpdateArgs,
};
pub use failure::Exit;
use failure::Failure;
pub use render::redact;
use render::{print_drain, print_legacy_list, print_list, to_name, DrainView, LegacyView};
pub use store::run_store;

/// The variable holding the Vercel API token.
pub const TOKEN_VAR: &str = "SPILLWAY_VERCEL_TOKEN";
/// Page size and page bound of `drains list`.
const LIST_PAGE_SIZE: u32 = 100;
const LIST_MAX_PAGES: u32 = 100;

/// Runs `spillway drains …`; `env` looks up environment variables.
pub fn run_drains(args: DrainsArgs, env: &dyn Fn(&str) -> Option<String>) -> ExitCode {
    let common = args.common.clone();
    finish(
        &common,
        run_async(&common, env, |client, stores| drains(client, stores, args, common.json)),
    )
}

/// Runs `spillway env …`; `env` looks up environment variables.
pub fn run_env(args: EnvArgs, env: &dyn Fn(&str) -> Option<String>) -> ExitCode {
    let common = args.common.clone();
    finish(
        &common,
        run_async(&common, env, |client, _| env_command(client, args.command, common.json)),
    )
}

fn finish(common: &CommonArgs, result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => Exit::Ok.into(),
        Err(failure) => {
            failure.report(common.json, common.team.is_some());
            failure.exit().into()
        }
    }
}

fn run_async<F, Fut>(
    common: &CommonArgs,
    env: &dyn Fn(&str) -> Option<String>,
    command: F,
) -> Result<(), Failure>
where
    F: FnOnce(VercelClient, Stores) -> Fut,
    Fut: std::future::Future<Output = Result<(), Failure>>,
{
    let shared = shared_store(env)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::Runtime)?;
    runtime.block_on(async {
        let stores = open_stores(common, shared).await?;
        let (token, team_id, installation) = credentials(common, env, &stores).await?;
        let client = VercelClient::new(ClientConfig {
            base_url: env(API_URL_VAR).unwrap_or_else(|| DEFAULT_BASE_URL.to_owned()),
            token: Some(token),
            team_id,
            ..ClientConfig::default()
        })?;
        let result = command(client, stores.clone()).await;
        if let (Err(Failure::Api(ControlError::InstallationDisabled { .. })), Some(id)) =
            (&result, &installation)
        {
            // A state of the installation, not a passing error: remember it, so it is not used
            // again.
            let _ = stores.mark_disabled(id).await;
        }
        result
    })
}

/// The shared store the environment configures (`SPILLWAY_DATABASE_URL` and its key), if any.
fn shared_store(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<PgConfig>, Failure> {
    crate::config::store_from_env(env).map_err(|e| Failure::Usage(crate::error_chain(&e)))
}

/// The shared store when one is configured (connected, its migrations applied), else the
/// data directory's files.
async fn open_stores(common: &CommonArgs, shared: Option<PgConfig>) -> Result<Stores, Failure> {
    Ok(match shared {
        Some(pg) => Stores::Postgres(PgStore::connect(pg).await?),
        None => Stores::in_dir(&common.data_dir),
    })
}

/// The token to act with: `SPILLWAY_VERCEL_TOKEN`, else the stored installation (the one given
/// with `--installation`, or the only enabled one), whose team applies unless `--team` is given.
/// Also returns the installation used, if any.
async fn credentials(
    common: &CommonArgs,
    env: &dyn Fn(&str) -> Option<String>,
    stores: &Stores,
) -> Result<(Secret, Option<String>, Option<String>), Failure> {
    if let Some(token) = env(TOKEN_VAR).filter(|t| !t.is_empty()) {
        return Ok((Secret::new(token), common.team.clone(), None));
    }
    let installation =
        stores.the_enabled(common.installation.as_deref()).await?.ok_or(Failure::MissingToken)?;
    let team = common.team.clone().or(installation.team_id);
    Ok((installation.access_token, team, Some(installation.configuration_id)))
}

async fn drains(
    client: VercelClient,
    registry: Stores,
    args: DrainsArgs,
    json_output: bool,
) -> Result<(), Failure> {
    match args.command {
        DrainsCommand::Create(create) => {
            let new = create::new_drain(create)?;
            let created = drains::create_and_register(&client, &registry, new).await?;
            print_drain(&DrainView::new(&created.drain, Some(&created.entry)), json_output);
        }
        DrainsCommand::List { legacy: true } => {
            let views: Vec<LegacyView> =
                client.list_log_drains().await?.iter().map(LegacyView::new).collect();
            print_legacy_list(&views, json_output);
        }
        DrainsCommand::List { legacy: false } => {
            let drains = client.list_all_drains(None, LIST_PAGE_SIZE, LIST_MAX_PAGES).await?;
            let entries: HashMap<String, DrainEntry> =
                registry.drains().await?.into_iter().map(|e| (e.id.clone(), e)).collect();
            let views: Vec<DrainView> =
                drains.iter().map(|d| DrainView::new(d, entries.get(&d.id))).collect();
            print_list(&views, json_output);
        }
        DrainsCommand::Get { id } => {
            let drain = client.get_drain(&id).await?;
            let entry = registry.drain(&id).await?;
            print_drain(&DrainView::new(&drain, entry.as_ref()), json_output);
        }
        DrainsCommand::Update(update) => {
            let status = match (update.enable, update.disable) {
                (true, _) => Some(DrainStatus::Enabled),
                (_, true) => Some(DrainStatus::Disabled),
                _ => None,
            };
            let change = DrainChange { name: update.name, status, url: update.url };
            let (drain, entry) = drains::update(&client, &registry, &update.id, change).await?;
            print_drain(&DrainView::new(&drain, entry.as_ref()), json_output);
        }
        DrainsCommand::Delete { id } => {
            let deleted = drains::delete(&client, &registry, &id).await?;
            print_deleted(&id, deleted, json_output);
        }
        DrainsCommand::Test { id } => {
            let endpoint = drains::test(&client, &registry, &id).await?;
            if json_output {
                println!("{}", json!({"id": id, "ok": true, "endpoint": endpoint}));
            } else {
                println!("{endpoint} accepted the sample batch for {id}");
            }
        }
    }
    Ok(())
}

fn print_deleted(id: &str, deleted: Deleted, json_output: bool) {
    let (gone_already, removed) = match deleted {
        Deleted::Legacy => {
            if json_output {
                println!("{}", json!({"id": id, "deleted": true, "legacy": true}));
            } else {
                println!("deleted legacy log drain {id}");
            }
            return;
        }
        Deleted::AlreadyGone => (true, true),
        Deleted::Deleted { unregistered } => (false, unregistered),
    };
    if json_output {
        println!(
            "{}",
            json!({"id": id, "deleted": true, "alreadyGone": gone_already, "unregistered": removed})
        );
    } else if gone_already {
        println!("{id} was already gone on Vercel; removed it from the registry");
    } else if removed {
        println!("deleted {id} and removed it from the registry");
    } else {
        println!("deleted {id} (it was not in the registry)");
    }
}

async fn env_command(
    client: VercelClient,
    command: EnvCommand,
    json_output: bool,
) -> Result<(), Failure> {
    let EnvCommand::Set { key, value, project, targets } = command;
    let targets: Vec<EnvTarget> = if targets.is_empty() {
        ALL_ENV_TARGETS.to_vec()
    } else {
        targets
            .iter()
            .map(|t| match t {
                TargetArg::Production => EnvTarget::Production,
                TargetArg::Preview => EnvTarget::Preview,
                TargetArg::Development => EnvTarget::Development,
            })
            .collect()
    };
    let var = EnvVar {
        key: key.clone(),
        value: Secret::new(value),
        kind: EnvType::Encrypted,
        target: targets.clone(),
    };
    let answer = client.upsert_env(&project, &[var]).await?;
    if let Some(failed) = answer.failed.into_iter().next() {
        return Err(Failure::EnvRefused { code: failed.error.code, message: failed.error.message });
    }
    let names: Vec<String> = targets.iter().map(to_name).collect();
    if json_output {
        let id = answer.created.first().and_then(|c| c.id.clone());
        println!("{}", json!({"key": key, "project": project, "target": names, "id": id}));
    } else {
        println!("set {key} on {project} ({})", names.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_only_a_short_prefix() {
        let secret = Secret::new("0123456789abcdef0123456789abcdef");
        assert_eq!(redact(&secret), "0123****");
        assert_eq!(redact(&Secret::new("short")), "****");
    }
}
