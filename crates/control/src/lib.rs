//! Spillway's control plane: a typed client of the Vercel REST API (PROTOCOL.md §4) for the
//! integration install flow and drain management.
//!
//! [`VercelClient`] scopes every request to the configured team (`?teamId=`), retries `429`s
//! within a configured bound (honouring `Retry-After`, else `X-RateLimit-Reset`), and maps
//! Vercel's `{"error":{"code","message"}}` to [`ControlError`], with a variant of its own for a
//! disabled installation. Tokens and secrets are [`Secret`]s, which never show in `Debug` or in
//! an error message. [`DrainRegistry`] is the local file of the drains Spillway created, with
//! their path keys and secrets, and [`InstallationStore`] the integration installations with their
//! tokens; both are [`store::JsonStore`] files. It never touches records. See ARCHITECTURE.md.
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
mod error;
pub mod installations;
pub mod model;
pub mod registry;
mod secret;
pub mod store;

pub use client::{ClientConfig, ListDrains, VercelClient, DEFAULT_BASE_URL};
pub use error::ControlError;
pub use installations::{Installation, InstallationStatus, InstallationStore};
pub use registry::{DrainEntry, DrainKind, DrainRegistry, RegistryError};
pub use secret::Secret;
pub use store::StoreError;
