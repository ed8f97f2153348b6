//! `ControlError`: every way a call to the Vercel API can fail. Messages never carry a token or
//! a secret.

use std::time::Duration;

/// Why a Vercel API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The installation behind the token is disabled (`403 integration_configuration_disabled`).
    /// This is a state of the installation, not a transient failure: callers mark it disabled
    /// and stop calling; the client never retries it.
    #[error("the integration installation is disabled: {message}")]
    InstallationDisabled {
        /// Vercel's message.
        message: String,
    },
    /// Still rate limited (`429`) after the configured number of retries.
    #[error("rate limited by the Vercel API ({code}); gave up after {attempts} attempts")]
    RateLimited {
        /// `too_many_requests` or `rate_limited`.
        code: String,
        /// Requests made, the first one included.
        attempts: u32,
        /// What the last answer asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// Any other answer with Vercel's error body (or none).
    #[error("Vercel API answered {status} {code}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// Vercel's stable error code (`forbidden`, `not_found`, `invalid_grant`, …), or
        /// `unknown` when the body had none.
        code: String,
        /// Vercel's message.
        message: String,
    },
    /// The request did not complete within the configured timeout.
    #[error("the Vercel API did not answer within {0:?}")]
    Timeout(Duration),
    /// Connecting, sending or reading failed.
    #[error("could not reach the Vercel API: {0}")]
    Transport(#[source] reqwest::Error),
    /// A success answer whose body is not what the endpoint documents.
    #[error("unexpected response body from the Vercel API (status {status}): {source}")]
    Decode {
        /// The HTTP status.
        status: u16,
        /// What did not parse.
        #[source]
        source: serde_json::Error,
    },
    /// A list had more pages than the caller's bound.
    #[error("more than {max_pages} pages to list; raise the bound or narrow the query")]
    TooManyPages {
        /// The bound that was hit.
        max_pages: u32,
    },
    /// The client configuration is unusable (base URL, TLS set-up).
    #[error("invalid client configuration: {0}")]
    Config(String),
}

impl ControlError {
    /// The HTTP status of an API answer, if the error is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ControlError::InstallationDisabled { .. } => Some(403),
            ControlError::RateLimited { .. } => Some(429),
            ControlError::Api { status, .. } | ControlError::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Vercel's error code, if the API answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ControlError::InstallationDisabled { .. } => Some(DISABLED_CODE),
            ControlError::RateLimited { code, .. } | ControlError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// The error code of a disabled installation.
pub(crate) const DISABLED_CODE: &str = "integration_configuration_disabled";
