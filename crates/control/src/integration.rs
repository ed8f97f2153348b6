//! The Vercel integration's settings and shared parts: what the install flow ([`crate::install`])
//! and the webhooks ([`crate::webhook`]) work with, whatever transport brings them the request.

use std::net::SocketAddr;
use std::time::Duration;

use listener::SigningKey;

use crate::{ClientConfig, ControlError, Secret, StoreError, Stores, VercelClient};

/// The validated `[integration]` section. `Default` is the one home of its defaults.
#[derive(Debug, Clone)]
pub struct IntegrationConfig {
    /// The integration's OAuth client id.
    pub client_id: String,
    /// The integration's client secret: exchanges codes and signs webhooks (and the drains
    /// Vercel reports as `INTEGRATION_SECRET`).
    pub client_secret: Secret,
    /// The integration's Redirect URL, sent as `redirect_uri` in the code exchange.
    pub redirect_url: String,
    /// The Vercel API (`https://api.vercel.com`; tests point it at a simulator).
    pub api_url: String,
    /// Where the control-plane listener binds.
    pub listen: SocketAddr,
    /// The public URL of this receiver's drain path; created drains point at
    /// `<drain_url>/<path key>`.
    pub drain_url: Option<String>,
    /// Whether an installation gets a drain.
    pub create_drain: bool,
    /// A project environment variable to set on the selected projects, if any.
    pub project_env: Option<String>,
    /// The integration's URL slug on Vercel: `GET /vercel/integration/install` sends the user
    /// to `https://vercel.com/integrations/<slug>/new` with a signed state.
    pub slug: Option<String>,
    /// Teams whose installations are accepted (a personal installation: its user id); empty:
    /// every team and user.
    pub allowed_teams: Vec<String>,
    /// Refuse callbacks without a state (installs begun on Vercel's marketplace).
    pub require_state: bool,
    /// Largest request body the listener reads.
    pub max_body_bytes: usize,
    /// Time a client has to send its request headers.
    pub header_read_timeout: Duration,
    /// Time a client has to send its body.
    pub body_read_timeout: Duration,
    /// Connections open at once; more are closed at once.
    pub max_connections: usize,
    /// Bound on one Vercel API request.
    pub request_timeout: Duration,
    /// Time in-flight requests get at shutdown.
    pub shutdown_timeout: Duration,
}

impl Default for IntegrationConfig {
    fn default() -> IntegrationConfig {
        IntegrationConfig {
            client_id: String::new(),
            client_secret: Secret::new(""),
            redirect_url: String::new(),
            api_url: crate::DEFAULT_BASE_URL.to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            drain_url: None,
            create_drain: true,
            project_env: None,
            slug: None,
            allowed_teams: Vec::new(),
            require_state: false,
            max_body_bytes: 1 << 20,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_connections: 64,
            request_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// The integration: its settings, an API client without a token (each installation's token is
/// added per call), and the stores of the data directory.
#[derive(Debug)]
pub struct Integration {
    pub(crate) config: IntegrationConfig,
    pub(crate) client: VercelClient,
    pub(crate) stores: Stores,
    pub(crate) webhook_key: SigningKey,
}

impl Integration {
    /// The integration of `config`, keeping its installations and drains in `stores`.
    pub fn new(config: IntegrationConfig, stores: Stores) -> Result<Integration, ControlError> {
        let client = VercelClient::new(ClientConfig {
            base_url: config.api_url.clone(),
            request_timeout: config.request_timeout,
            ..ClientConfig::default()
        })?;
        Ok(Integration { client, stores, webhook_key: config.client_secret.signing_key(), config })
    }

    /// The settings.
    pub fn config(&self) -> &IntegrationConfig {
        &self.config
    }

    /// The endpoint of the drain installation `configuration_id` has in the registry, if any.
    pub(crate) async fn existing_endpoint(
        &self,
        configuration_id: &str,
        drain_url: &str,
    ) -> Result<Option<String>, StoreError> {
        let existing = self.stores.drain_of_configuration(configuration_id).await?;
        let endpoint = crate::drains::Endpoint::Under(drain_url.to_owned());
        Ok(existing.map(|e| endpoint.with_key(e.data_type, &e.path_key)))
    }

    /// Marks `configuration_id` disabled (never called again).
    pub(crate) async fn mark_disabled(&self, configuration_id: &str) -> Result<(), StoreError> {
        tracing::warn!(
            configuration_id,
            "integration installation is disabled; marked, not retried"
        );
        self.stores.mark_disabled(configuration_id).await.map(|_| ())
    }
}
