//! Spillway's control plane: a typed client of the Vercel REST API (docs/vercel/PROTOCOL.md §4),
//! the drain operations, the integration's install flow and webhooks, and the listener that
//! serves them.
//!
//! [`VercelClient`] scopes every request to the configured team (`?teamId=`), retries `429`s
//! within a configured bound (honouring `Retry-After`, else `X-RateLimit-Reset`), and maps
//! Vercel's `{"error":{"code","message"}}` to [`ControlError`], with a variant of its own for a
//! disabled installation. Tokens and secrets are [`Secret`]s, which never show in `Debug` or in
//! an error message. [`DrainRegistry`] is the local file of the drains Spillway created, with
//! their path keys and secrets, and [`InstallationStore`] the integration installations with their
//! tokens; both are [`store::JsonStore`] files. [`drains`] creates, updates, deletes and tests
//! drains on Vercel and in the registry together; [`Integration`] holds the install flow
//! ([`install`]) and the webhooks ([`webhook`]), which [`server::ControlPlane`] serves over HTTP.
//! It never touches records. See ARCHITECTURE.md.
//!
//! ```no_run
//! # async fn demo() -> Result<(), control::ControlError> {
//! use control::{ClientConfig, Secret, VercelClient};
//!
//! let client = VercelClient::new(ClientConfig {
//!     token: Some(Secret::new("…")),
//!     team_id: Some("team_123".to_owned()),
//!     ..ClientConfig::default()
//! })?;
//! let drains = client.list_all_drains(None, 100, 10).await?;
//! # let _ = drains; Ok(())
//! # }
//! ```
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod client;
pub mod drains;
mod error;
pub mod install;
pub mod install_state;
pub mod installations;
mod integration;
pub mod model;
pub mod postgres;
pub mod registry;
pub mod seal;
mod secret;
pub mod server;
pub mod store;
mod stores;
pub mod webhook;

pub use client::{ClientConfig, ListDrains, VercelClient, DEFAULT_BASE_URL};
pub use error::ControlError;
pub use installations::{Installation, InstallationStatus, InstallationStore, INSTALLATIONS_FILE};
pub use integration::{Integration, IntegrationConfig};
pub use record::DataType;
pub use registry::{DrainEntry, DrainKind, DrainRegistry, REGISTRY_FILE};
pub use secret::Secret;
pub use store::StoreError;
pub use stores::Stores;
