//! The Vercel integration's settings and shared parts: what the install flow ([`crate::install`])
//! and the webhooks ([`crate::webhook`]) work with, whatever transport brings them the request.

use std::net::SocketAddr;
use std::time::Duration;

use listener::SigningKey;
use record::DataType;

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
    /// Whether an installation gets drains.
    pub create_drain: bool,
    /// The data types an installation gets a drain of, one drain each (`[Logs]`). A drain of
    /// another type than logs points at that type's receiver path when `drain_url` ends in
    /// `/vercel/logs` (`…/vercel/traces/<key>`), else under `drain_url` itself.
    pub data_types: Vec<DataType>,
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
            data_types: vec![DataType::Logs],
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
        // The first configured type's, as the install sets it; an installation made when other
        // types were configured has one of those.
        let types = self.config.data_types.iter().chain(DataType::ALL.iter());
        for &data_type in types {
            if let Some(e) = self.stores.drain_of_configuration(configuration_id, data_type).await?
            {
                return Ok(Some(
                    type_endpoint(drain_url, data_type).with_key(data_type, &e.path_key),
                ));
            }
        }
        Ok(None)
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

/// Where an installation's drain of `data_type` delivers, before its path key: `drain_url`,
/// with its `/vercel/logs` ending swapped for the type's receiver path.
pub(crate) fn type_endpoint(drain_url: &str, data_type: DataType) -> crate::drains::Endpoint {
    let trimmed = drain_url.trim_end_matches('/');
    let url = match trimmed.strip_suffix(crate::drains::RECEIVER_PATH) {
        Some(base) => format!("{base}{}", crate::drains::receiver_path(data_type)),
        None => trimmed.to_owned(),
    };
    crate::drains::Endpoint::Under(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_type_gets_its_receiver_path_when_drain_url_is_the_log_path() {
        let key = |url: &str, t: DataType| type_endpoint(url, t).with_key(t, "k");
        assert_eq!(key("https://x/vercel/logs", DataType::Logs), "https://x/vercel/logs/k");
        assert_eq!(
            key("https://x/vercel/logs/", DataType::SpeedInsights),
            "https://x/vercel/speed-insights/k"
        );
        assert_eq!(key("https://x/in", DataType::Traces), "https://x/in/k");
        assert_eq!(IntegrationConfig::default().data_types, [DataType::Logs]);
    }
}
