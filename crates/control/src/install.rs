//! The install flow (docs/vercel/PROTOCOL.md §4, "OAuth install flow"): the install redirect's
//! one-time code is exchanged for a token, the installation is stored, it gets a drain of each
//! configured data type pointing at this receiver (registered, so the edge serves it at once) and `project_env` is set on the
//! selected projects (best effort).
//!
//! Before anything is stored, the install must hold together: a `state`, when the callback
//! carries one, must be one we issued less than ten minutes ago (`install_state`; required when
//! `require_state` is set), the token must be for the installation the redirect names (else a
//! code from one installation could overwrite another's token), and its team must be allowed
//! (`allowed_teams`).
//!
//! `integration_configuration_disabled` marks the installation disabled; it is never called
//! again. No token, secret or code appears in a log line or an error.

use std::time::SystemTime;

use crate::drains::{create_and_register, DrainOpError, Endpoint, NewDrain, ALL_ENV_TARGETS};
use crate::install_state::{check_state, issue_state, StateError};
use crate::integration::type_endpoint;
use crate::model::{
    AccessToken, Compression, Encoding, EnvType, EnvVar, ExchangeCode, IntegrationConfiguration,
    ProjectSelection,
};
use crate::{
    ControlError, DrainEntry, Installation, InstallationStatus, Integration, Secret, StoreError,
    VercelClient,
};
use record::DataType;

/// The install redirect's query.
#[derive(Debug, Default)]
pub struct Callback {
    /// The one-time code.
    pub code: Option<Secret>,
    /// The installation, `icfg_…`.
    pub configuration_id: Option<String>,
    /// The team, for a team installation.
    pub team_id: Option<String>,
    /// Where the user goes afterwards.
    pub next: Option<String>,
    /// The OAuth state, when the install started on our side.
    pub state: Option<String>,
    /// The nonce in the browser's state cookie, if it sent one.
    pub state_cookie: Option<String>,
}

impl Callback {
    /// Decodes a redirect's query string.
    pub fn parse(query: &str) -> Callback {
        let mut callback = Callback::default();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let value = value.into_owned();
            match key.as_ref() {
                "code" => callback.code = Some(Secret::new(value)),
                "configurationId" => callback.configuration_id = Some(value),
                "teamId" => callback.team_id = Some(value),
                "next" => callback.next = Some(value),
                "state" => callback.state = Some(value),
                _ => {}
            }
        }
        callback
    }
}

/// Why an install did not complete.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The redirect lacks the code or the configuration id.
    #[error("code and configurationId are required")]
    InvalidRequest,
    /// The installation is disabled (marked so; never called again).
    #[error("the integration installation is disabled")]
    Disabled,
    /// Vercel refused the code (already used, expired or unknown).
    #[error("the authorization code was refused (already used, expired or unknown)")]
    CodeRefused,
    /// The Vercel API failed during the exchange.
    #[error("the Vercel API failed")]
    VercelUnavailable,
    /// The installation's configuration, which says which projects it covers, could not be
    /// read (or names a selection this client does not know): nothing was created.
    #[error("cannot read which projects the installation covers; nothing was created")]
    ProjectsUnknown,
    /// Vercel refused to create the installation's drain.
    #[error("the Vercel API refused the drain")]
    DrainNotCreated,
    /// The token is for another installation than the redirect's `configurationId`.
    #[error("the code is for another installation than configurationId")]
    InstallationMismatch,
    /// The installation's team (or, for a personal installation, its user) is not in
    /// `allowed_teams`.
    #[error("this receiver does not serve that team")]
    TeamNotAllowed,
    /// The state was not issued here, or has expired.
    #[error("invalid state: {0}")]
    InvalidState(StateError),
    /// `require_state` is set and the callback carries no state.
    #[error("a state is required: start the install at /vercel/integration/install")]
    MissingState,
    /// No `slug` is configured, so there is no install page to send the user to.
    #[error("integration.slug is not configured")]
    NoInstallPage,
    /// The local stores could not be read or written.
    #[error("the local store is unavailable")]
    Store(#[source] StoreError),
}

impl From<StoreError> for InstallError {
    fn from(e: StoreError) -> InstallError {
        InstallError::Store(e)
    }
}

impl Integration {
    /// Completes the install the redirect `callback` reports.
    pub async fn install(&self, callback: Callback) -> Result<(), InstallError> {
        let (Some(code), Some(configuration_id)) = (callback.code, callback.configuration_id)
        else {
            return Err(InstallError::InvalidRequest);
        };
        self.check_state(callback.state.as_deref(), callback.state_cookie.as_deref())?;
        if let Some(known) = self.stores.installation(&configuration_id).await? {
            if known.status == InstallationStatus::Disabled {
                return Err(InstallError::Disabled);
            }
        }
        let token = self.exchange(code, &configuration_id).await?;
        if token.installation_id != configuration_id {
            // Storing it under the query's id would overwrite that installation's token, team
            // and user with another's.
            tracing::warn!(
                configuration_id,
                installation_id = token.installation_id,
                "install refused: the token is for another installation"
            );
            return Err(InstallError::InstallationMismatch);
        }
        if !self.team_allowed(&token) {
            tracing::warn!(
                configuration_id,
                team_id = token.team_id.as_deref(),
                "install refused: team not in integration.allowed_teams"
            );
            return Err(InstallError::TeamNotAllowed);
        }
        if callback.team_id.is_some() && callback.team_id != token.team_id {
            tracing::warn!(
                configuration_id,
                "the redirect's teamId differs from the token's; using the token's"
            );
        }
        self.set_up(&configuration_id, token).await
    }

    /// Where an install that starts here sends the user: the integration's page on Vercel,
    /// with a fresh state; and the nonce the browser must keep in its state cookie.
    pub fn install_page(&self) -> Result<(String, String), InstallError> {
        let slug = self.config.slug.as_deref().ok_or(InstallError::NoInstallPage)?;
        let (state, nonce) = issue_state(&self.config.client_secret, SystemTime::now())
            .map_err(|e| InstallError::Store(StoreError::Random(e.to_string())))?;
        Ok((format!("https://vercel.com/integrations/{slug}/new?state={state}"), nonce))
    }

    /// A state must be ours, fresh and this browser's; none is allowed unless `require_state`.
    fn check_state(&self, state: Option<&str>, cookie: Option<&str>) -> Result<(), InstallError> {
        match state {
            Some(state) => {
                check_state(&self.config.client_secret, state, cookie, SystemTime::now())
                    .map_err(InstallError::InvalidState)
            }
            None if self.config.require_state => Err(InstallError::MissingState),
            None => Ok(()),
        }
    }

    /// Whether `allowed_teams` (empty: everyone) holds the token's team, or for a personal
    /// installation, which has no team, its user id.
    fn team_allowed(&self, token: &AccessToken) -> bool {
        let allowed = &self.config.allowed_teams;
        let owner = token.team_id.as_deref().unwrap_or(&token.user_id);
        allowed.is_empty() || allowed.iter().any(|a| a == owner)
    }

    async fn exchange(
        &self,
        code: Secret,
        configuration_id: &str,
    ) -> Result<AccessToken, InstallError> {
        let exchange = ExchangeCode {
            client_id: self.config.client_id.clone(),
            client_secret: self.config.client_secret.clone(),
            code,
            redirect_uri: self.config.redirect_url.clone(),
        };
        match self.client.exchange_code(&exchange).await {
            Ok(token) => Ok(token),
            Err(ControlError::InstallationDisabled { .. }) => Err(InstallError::Disabled),
            Err(e) if e.status().is_some_and(|s| (400..500).contains(&s)) => {
                tracing::warn!(
                    configuration_id,
                    status = e.status(),
                    code = e.code(),
                    "code exchange refused"
                );
                Err(InstallError::CodeRefused)
            }
            Err(e) => {
                tracing::error!(configuration_id, error = %e, "code exchange failed");
                Err(InstallError::VercelUnavailable)
            }
        }
    }

    /// Marks the installation disabled and says so.
    async fn disabled(&self, configuration_id: &str) -> InstallError {
        match self.mark_disabled(configuration_id).await {
            Ok(()) => InstallError::Disabled,
            Err(e) => InstallError::Store(e),
        }
    }

    /// Stores the installation, reads its configuration, creates its drain, sets `project_env`.
    async fn set_up(&self, configuration_id: &str, token: AccessToken) -> Result<(), InstallError> {
        let installation = Installation {
            configuration_id: configuration_id.to_owned(),
            team_id: token.team_id.clone(),
            access_token: token.access_token.clone(),
            user_id: token.user_id.clone(),
            installation_id: token.installation_id.clone(),
            scopes: Vec::new(),
            created_at_ms: crate::drains::now_ms(),
            status: InstallationStatus::Enabled,
        };
        self.stores.upsert_installation(installation).await?;
        tracing::info!(configuration_id, team_id = token.team_id.as_deref(), "installation stored");

        let client = self.client.with_token(token.access_token, token.team_id.clone());
        let configuration = self.read_configuration(&client, configuration_id).await?;
        let creates = self.config.create_drain && self.config.drain_url.is_some();
        // Which projects the installation covers: `None` for all of them. Unknown (unread, or
        // a selection this client does not know), nothing is created: a drain of all the
        // team's projects would send logs of projects the user did not share.
        let selected = match configuration.map(|c| (c.project_selection, c.projects)) {
            Some((Some(ProjectSelection::All), _)) => None,
            Some((Some(ProjectSelection::Selected), projects)) => Some(projects),
            _ if creates || self.config.project_env.is_some() => {
                tracing::warn!(configuration_id, "install stopped: its projects are unknown");
                return Err(InstallError::ProjectsUnknown);
            }
            _ => None,
        };
        if selected.as_ref().is_some_and(Vec::is_empty) {
            // An empty list is not "all": there is nothing for a drain to cover.
            tracing::info!(configuration_id, "no drain created: no project is selected");
            return Ok(());
        }
        let mut endpoint = None;
        if let (true, Some(drain_url)) = (creates, &self.config.drain_url) {
            endpoint = self
                .create_drains(&client, configuration_id, drain_url, selected.as_deref())
                .await?;
        }
        if let Some(key) = &self.config.project_env {
            match selected {
                Some(projects) => {
                    self.upsert_project_env(&client, configuration_id, &projects, key, endpoint)
                        .await?;
                }
                None => {
                    tracing::info!(
                        configuration_id,
                        "project_env: no selected projects to set it on"
                    );
                }
            }
        }
        Ok(())
    }

    /// The installation's configuration, its scopes recorded; `None` if it cannot be read.
    async fn read_configuration(
        &self,
        client: &VercelClient,
        configuration_id: &str,
    ) -> Result<Option<IntegrationConfiguration>, InstallError> {
        match client.get_configuration(configuration_id).await {
            Ok(configuration) => {
                let scopes = configuration.scopes.clone();
                self.stores.modify_installation(configuration_id, |i| i.scopes = scopes).await?;
                Ok(Some(configuration))
            }
            Err(ControlError::InstallationDisabled { .. }) => {
                Err(self.disabled(configuration_id).await)
            }
            Err(e) => {
                // Scopes and projects stay unknown.
                tracing::warn!(
                    configuration_id,
                    status = e.status(),
                    code = e.code(),
                    "cannot read the configuration"
                );
                Ok(None)
            }
        }
    }

    /// Creates the installation's drain of each configured type unless it has one; returns the
    /// endpoint of the first type's (the log drain's, by default).
    async fn create_drains(
        &self,
        client: &VercelClient,
        configuration_id: &str,
        drain_url: &str,
        selected: Option<&[String]>,
    ) -> Result<Option<String>, InstallError> {
        let existing: Vec<DrainEntry> = self
            .stores
            .drains()
            .await?
            .into_iter()
            .filter(|e| e.configuration_id.as_deref() == Some(configuration_id))
            .collect();
        let mut first = None;
        for &data_type in &self.config.data_types {
            let endpoint = type_endpoint(drain_url, data_type);
            let endpoint = match existing.iter().find(|e| e.data_type == data_type) {
                Some(entry) => endpoint.with_key(data_type, &entry.path_key),
                None => {
                    let new = (configuration_id, selected, data_type);
                    self.create_drain(client, endpoint, new).await?
                }
            };
            first.get_or_insert(endpoint);
        }
        Ok(first)
    }

    /// Creates the installation's drain of `data_type`; returns its endpoint.
    async fn create_drain(
        &self,
        client: &VercelClient,
        endpoint: Endpoint,
        (configuration_id, selected, data_type): (&str, Option<&[String]>, DataType),
    ) -> Result<String, InstallError> {
        // Traces deliver over OTLP/HTTP: protobuf, the format OTLP receivers take first.
        let encoding =
            if data_type == DataType::Traces { Encoding::Proto } else { Encoding::Ndjson };
        let new = NewDrain {
            // The log drain keeps the name installs have always given it.
            name: match data_type {
                DataType::Logs => "spillway".to_owned(),
                other => format!("spillway {}", other.slug()),
            },
            endpoint,
            project_ids: selected.map(<[String]>::to_vec).unwrap_or_default(),
            encoding,
            compression: Compression::None,
            headers: Vec::new(),
            filter: None,
            sampling: Vec::new(),
            configuration_id: Some(configuration_id.to_owned()),
            data_type,
        };
        match create_and_register(client, &self.stores, new).await {
            Ok(created) => {
                tracing::info!(
                    configuration_id,
                    drain = created.drain.id,
                    data_type = data_type.as_str(),
                    "installation drain created"
                );
                Ok(created.endpoint)
            }
            Err(DrainOpError::Api(ControlError::InstallationDisabled { .. })) => {
                Err(self.disabled(configuration_id).await)
            }
            Err(DrainOpError::Api(e)) => {
                tracing::error!(
                    configuration_id,
                    data_type = data_type.as_str(),
                    status = e.status(),
                    code = e.code(),
                    "cannot create the installation's drain"
                );
                Err(InstallError::DrainNotCreated)
            }
            Err(DrainOpError::Store(e) | DrainOpError::Unregistered { source: e, .. }) => {
                Err(InstallError::Store(e))
            }
            Err(DrainOpError::TestFailed { .. }) => Err(InstallError::DrainNotCreated),
        }
    }

    /// Best effort: upserts `key` on `projects`, valued the installation's drain endpoint (else
    /// its configuration id); failures are logged, a disabled installation is marked.
    pub(crate) async fn upsert_project_env(
        &self,
        client: &VercelClient,
        configuration_id: &str,
        projects: &[String],
        key: &str,
        endpoint: Option<String>,
    ) -> Result<(), InstallError> {
        let value = endpoint.unwrap_or_else(|| configuration_id.to_owned());
        let vars = [EnvVar {
            key: key.to_owned(),
            value: Secret::new(value),
            kind: EnvType::Encrypted,
            target: ALL_ENV_TARGETS.to_vec(),
        }];
        for project in projects {
            match client.upsert_env(project, &vars).await {
                Ok(answer) => {
                    for failure in &answer.failed {
                        tracing::warn!(
                            configuration_id,
                            project,
                            code = failure.error.code,
                            "project_env refused"
                        );
                    }
                }
                Err(ControlError::InstallationDisabled { .. }) => {
                    return Err(self.disabled(configuration_id).await)
                }
                Err(e) => {
                    tracing::warn!(
                        configuration_id,
                        project,
                        status = e.status(),
                        code = e.code(),
                        "project_env failed"
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callback_query_is_decoded() {
        let c = Callback::parse("code=a%2Bb&configurationId=icfg_1&teamId=team_1&next=%2Fx");
        assert_eq!(c.code.unwrap().expose(), "a+b");
        assert_eq!(c.configuration_id.as_deref(), Some("icfg_1"));
        assert_eq!(c.team_id.as_deref(), Some("team_1"));
        assert_eq!(c.next.as_deref(), Some("/x"));
        assert_eq!(Callback::parse("state=1.ab.cd").state.as_deref(), Some("1.ab.cd"));
    }
}
