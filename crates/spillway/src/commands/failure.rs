//! Why a command failed, and how that is said: a message, a hint, an exit code, and with
//! `--json` one JSON object on stderr.

use std::process::ExitCode;

use control::drains::DrainOpError;
use control::{ControlError, StoreError};
use serde_json::json;

use super::TOKEN_VAR;
use crate::error_chain;

/// The exit codes of these commands (clap's own usage errors exit with 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done.
    Ok = 0,
    /// Usage or configuration error (bad arguments, an unusable `SPILLWAY_VERCEL_API_URL`).
    Usage = 2,
    /// The Vercel API refused or failed (not found, bad request, rate limited after retries,
    /// unreachable, a test delivery the endpoint did not accept).
    Api = 3,
    /// Authentication or authorisation: no token, `401`, `403` (wrong team, disabled
    /// installation).
    Auth = 4,
    /// Local failure: the drain registry could not be read or written.
    Local = 5,
    /// The shared store (PostgreSQL) cannot be reached: nothing was changed; retry later.
    Unavailable = 6,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

/// Why a command failed.
#[derive(Debug)]
pub(crate) enum Failure {
    MissingToken,
    /// An argument clap could not check without echoing a credential.
    Usage(String),
    Api(ControlError),
    Store(StoreError),
    /// A drain operation's own failure: created but not registered, or a failed test delivery.
    Drain(DrainOpError),
    EnvRefused {
        code: String,
        message: String,
    },
    Runtime(std::io::Error),
}

impl From<ControlError> for Failure {
    fn from(e: ControlError) -> Failure {
        Failure::Api(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure::Store(e)
    }
}

impl From<DrainOpError> for Failure {
    fn from(e: DrainOpError) -> Failure {
        match e {
            DrainOpError::Api(e) => Failure::Api(e),
            DrainOpError::Store(e) => Failure::Store(e),
            other => Failure::Drain(other),
        }
    }
}

impl Failure {
    pub(crate) fn exit(&self) -> Exit {
        match self {
            Failure::MissingToken => Exit::Auth,
            Failure::Usage(_) | Failure::Api(ControlError::Config(_)) => Exit::Usage,
            Failure::Api(ControlError::InstallationDisabled { .. }) => Exit::Auth,
            Failure::Api(e) if matches!(e.status(), Some(401 | 403)) => Exit::Auth,
            Failure::Api(_)
            | Failure::Drain(DrainOpError::TestFailed { .. })
            | Failure::EnvRefused { .. } => Exit::Api,
            Failure::Store(e) if e.is_unavailable() => Exit::Unavailable,
            Failure::Drain(DrainOpError::Unregistered { source, .. })
                if source.is_unavailable() =>
            {
                Exit::Unavailable
            }
            Failure::Store(_) | Failure::Drain(_) | Failure::Runtime(_) => Exit::Local,
        }
    }

    fn message(&self) -> String {
        match self {
            Failure::MissingToken => {
                format!("{TOKEN_VAR} is not set and no single enabled installation is stored")
            }
            Failure::Usage(message) => message.clone(),
            // Said the way every other API error says it: status, Vercel's code, its message.
            Failure::Api(ControlError::InstallationDisabled { message }) => {
                format!("Vercel API answered 403 integration_configuration_disabled: {message}")
            }
            Failure::Api(e) => error_chain(e),
            Failure::Store(e) => error_chain(e),
            Failure::Drain(e) => e.to_string(),
            Failure::EnvRefused { code, message } => {
                format!("Vercel refused the variable ({code}): {message}")
            }
            Failure::Runtime(e) => format!("cannot start the async runtime: {e}"),
        }
    }

    fn hint(&self, team_given: bool) -> Option<&'static str> {
        match self {
            Failure::MissingToken => Some(
                "export a Vercel token as SPILLWAY_VERCEL_TOKEN, or install the integration \
                     (with several installations stored, pass --installation)",
            ),
            Failure::Api(ControlError::InstallationDisabled { .. }) => {
                Some("the integration was disabled in Vercel; reinstall it")
            }
            Failure::Api(ControlError::RateLimited { .. }) => Some("rate limited; try again later"),
            Failure::Api(e) => match (e.status(), e.code()) {
                (Some(403), Some("forbidden")) if !team_given => {
                    Some("is this a team installation? pass --team")
                }
                (Some(403), _) => Some("check that the token may act for this team (--team)"),
                (Some(401), _) => Some("the token is invalid or expired"),
                (Some(404), _) if !team_given => {
                    Some("no such drain for this token; a team's drain needs --team")
                }
                (Some(404), _) => Some("no such drain for this token and team"),
                (Some(400), Some("drain_enable_not_allowed")) => {
                    Some("Vercel disabled this drain; create a new one instead")
                }
                _ if e.status().is_none() => {
                    Some("is SPILLWAY_VERCEL_API_URL right and the network up?")
                }
                _ => None,
            },
            Failure::Drain(DrainOpError::TestFailed { .. }) => {
                Some("is the receiver running and configured with this drain's secret?")
            }
            Failure::Store(e) if e.is_unavailable() => {
                Some("is the database up? deliveries are still served meanwhile; try again")
            }
            Failure::Store(_) | Failure::Drain(_) => Some(
                "check the data directory (--data-dir or SPILLWAY_DATA_DIR), or the database \
                 (SPILLWAY_DATABASE_URL)",
            ),
            Failure::Usage(_) | Failure::EnvRefused { .. } | Failure::Runtime(_) => None,
        }
    }

    pub(crate) fn report(&self, json_output: bool, team_given: bool) {
        let hint = self.hint(team_given);
        if json_output {
            let (status, code) = match self {
                Failure::Api(e) => (e.status(), e.code().map(str::to_owned)),
                Failure::Drain(DrainOpError::TestFailed { status, .. }) => {
                    (*status, Some("test_failed".to_owned()))
                }
                Failure::EnvRefused { code, .. } => (None, Some(code.clone())),
                Failure::Store(e) if e.is_unavailable() => {
                    (None, Some("store_unavailable".to_owned()))
                }
                _ => (None, None),
            };
            let error = json!({"error": {
                "exit": self.exit() as u8,
                "status": status,
                "code": code,
                "message": self.message(),
                "hint": hint,
            }});
            eprintln!("{error}");
        } else {
            eprintln!("spillway: {}", self.message());
            if let Some(hint) = hint {
                eprintln!("hint: {hint}");
            }
        }
    }
}
