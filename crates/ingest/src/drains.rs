//! Drains besides the default one: each has its own URL path, `<drain path>/<key>`, and its own
//! signature secret, looked up per request so that drains created or deleted while the server
//! runs take effect without a restart.
//!
//! The edge knows drains only through [`DrainDirectory`]; where they are stored is the binary's
//! business (the control plane's registry), so this crate does not depend on it.

use std::fmt;
use std::sync::Arc;

use crate::Secret;

/// What the edge needs to accept deliveries for one drain.
#[derive(Clone)]
pub struct DrainCredentials {
    /// The drain's name in batches, dead letters and logs (its id).
    pub name: Arc<str>,
    /// The secret its deliveries are signed with.
    pub secret: Secret,
}

impl fmt::Debug for DrainCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrainCredentials").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Finds a drain by the key in its URL path.
pub trait DrainDirectory: Send + Sync + 'static {
    /// The drain whose path key is `key`, if there is one now.
    fn lookup(&self, key: &str) -> Option<DrainCredentials>;
}
