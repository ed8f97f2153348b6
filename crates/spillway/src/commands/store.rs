//! `spillway store import --from DIR` and `spillway store rotate-key`: moving a one-node file
//! store into the shared database, and re-sealing its secrets under a new key. Both act on the
//! database `SPILLWAY_DATABASE_URL` names, with `SPILLWAY_STORE_KEY` (and, for a rotation, the
//! old key in `SPILLWAY_STORE_PREVIOUS_KEYS`); both can be run again safely.

use std::process::ExitCode;

use control::postgres::PgStore;
use control::{DrainRegistry, InstallationStore};
use serde_json::json;

use super::args::{StoreArgs, StoreCommand};
use super::failure::{Exit, Failure};
use super::shared_store;
use crate::config::DATABASE_URL_VAR;

/// Runs `spillway store …`; `env` looks up environment variables.
pub fn run_store(args: StoreArgs, env: &dyn Fn(&str) -> Option<String>) -> ExitCode {
    match store_command(args.command, args.json, env) {
        Ok(()) => Exit::Ok.into(),
        Err(failure) => {
            failure.report(args.json, false);
            failure.exit().into()
        }
    }
}

fn store_command(
    command: StoreCommand,
    json_output: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), Failure> {
    let Some(config) = shared_store(env)? else {
        return Err(Failure::Usage(format!(
            "{DATABASE_URL_VAR} is not set: `spillway store` acts on the shared database"
        )));
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::Runtime)?;
    runtime.block_on(async {
        let store = PgStore::connect(config).await?;
        match command {
            StoreCommand::Import { from } => {
                let drains = DrainRegistry::in_dir(&from).load()?;
                let installations = InstallationStore::in_dir(&from).load()?;
                let (new_drains, new_installations) = store.import(&drains, &installations).await?;
                if json_output {
                    println!(
                        "{}",
                        json!({
                            "drains": {"read": drains.len(), "copied": new_drains},
                            "installations": {"read": installations.len(), "copied": new_installations},
                        })
                    );
                } else {
                    println!(
                        "copied {new_drains} of {} drains and {new_installations} of {} \
                         installations from {} into {} (the others were there already)",
                        drains.len(),
                        installations.len(),
                        from.display(),
                        store.at()
                    );
                }
            }
            StoreCommand::RotateKey => {
                let resealed = store.rotate_key().await?;
                let key_id = store.keys().current_id();
                if json_output {
                    println!("{}", json!({"resealed": resealed, "keyId": key_id}));
                } else {
                    println!("re-sealed {resealed} rows under key {key_id} in {}", store.at());
                }
            }
        }
        Ok(())
    })
}
