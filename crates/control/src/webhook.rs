//! The integration's webhooks: signed with the client secret (`x-vercel-signature`, HMAC-SHA1),
//! then one of the events below. A removed installation is forgotten with its drains, confirmed
//! scopes are recorded, and a project created in an all-projects installation's scope gets
//! `project_env`. Other events are acknowledged and ignored.

use serde::Deserialize;

use crate::{InstallationStatus, Integration, StoreError};

/// The events handled, as Vercel sends them (`{"type": …, "payload": {…}}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    /// `integration-configuration.removed`: the installation was uninstalled.
    ConfigurationRemoved {
        /// The installation, `icfg_…`.
        configuration_id: String,
    },
    /// `integration-configuration.scope-change-confirmed`: the user granted new scopes.
    ScopeChangeConfirmed {
        /// The installation.
        configuration_id: String,
        /// The scopes now granted.
        scopes: Vec<String>,
    },
    /// `project.created`, sent for installations that see every project of their scope.
    ProjectCreated {
        /// The new project, if the event names it.
        project_id: Option<String>,
        /// Its team, if any.
        team_id: Option<String>,
        /// The user, for a personal scope.
        user_id: Option<String>,
        /// The installation, when the event names one.
        configuration_id: Option<String>,
    },
    /// Any other event type.
    Other,
}

/// What a handled event did; the webhook's `200` answer says it as JSON
/// (`{"outcome":"removed","known":false,"drains":0}`), so a redelivered or concurrent event
/// shows that it changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum WebhookOutcome {
    /// An installation was forgotten (`known`: it was stored) with `drains` drains.
    Removed {
        /// Whether it was stored.
        known: bool,
        /// How many of its drains were removed from the registry.
        drains: usize,
    },
    /// Scopes were recorded (`known`: the installation was stored).
    ScopesUpdated {
        /// Whether it was stored.
        known: bool,
    },
    /// `project_env` was set (best effort) for this many installations.
    ProjectEnv {
        /// The installations concerned.
        installations: usize,
    },
    /// Nothing to do.
    Ignored,
}

/// Why an event was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The signature does not match the body.
    #[error("the signature does not match")]
    InvalidSignature,
    /// The body is not a well-formed event; the message says what is missing.
    #[error("{0}")]
    InvalidBody(&'static str),
    /// The local stores could not be read or written.
    #[error("the local store is unavailable")]
    Store(#[source] StoreError),
}

impl From<StoreError> for WebhookError {
    fn from(e: StoreError) -> WebhookError {
        WebhookError::Store(e)
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    payload: Payload,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    configuration: Option<ConfigurationRef>,
    configuration_id: Option<String>,
    scopes: Option<Vec<String>>,
    project: Option<IdRef>,
    team: Option<IdRef>,
    user: Option<IdRef>,
}

#[derive(Deserialize)]
struct ConfigurationRef {
    id: Option<String>,
    scopes: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct IdRef {
    id: Option<String>,
}

fn id_of(reference: Option<IdRef>) -> Option<String> {
    reference.and_then(|r| r.id)
}

impl WebhookEvent {
    /// Reads an event from its JSON body.
    pub fn parse(body: &[u8]) -> Result<WebhookEvent, WebhookError> {
        let envelope: Envelope = serde_json::from_slice(body)
            .map_err(|_| WebhookError::InvalidBody("the body is not a JSON event"))?;
        let mut payload = envelope.payload;
        let (nested_id, nested_scopes) = match payload.configuration.take() {
            Some(c) => (c.id, c.scopes),
            None => (None, None),
        };
        let configuration_id = nested_id.or(payload.configuration_id);
        let named = |id: Option<String>| {
            id.ok_or(WebhookError::InvalidBody("the event names no configuration"))
        };
        Ok(match envelope.kind.as_deref() {
            Some("integration-configuration.removed") => {
                WebhookEvent::ConfigurationRemoved { configuration_id: named(configuration_id)? }
            }
            Some("integration-configuration.scope-change-confirmed") => {
                let configuration_id = named(configuration_id)?;
                let scopes = nested_scopes
                    .or(payload.scopes)
                    .ok_or(WebhookError::InvalidBody("the event carries no scopes"))?;
                WebhookEvent::ScopeChangeConfirmed { configuration_id, scopes }
            }
            Some("project.created") => WebhookEvent::ProjectCreated {
                project_id: id_of(payload.project),
                team_id: id_of(payload.team),
                user_id: id_of(payload.user),
                configuration_id,
            },
            _ => WebhookEvent::Other,
        })
    }
}

impl Integration {
    /// Checks `signature` over `body`, then handles the event.
    pub async fn webhook(
        &self,
        signature: &[u8],
        body: &[u8],
    ) -> Result<WebhookOutcome, WebhookError> {
        if !self.webhook_key.verifies(body, signature) {
            return Err(WebhookError::InvalidSignature);
        }
        match WebhookEvent::parse(body)? {
            WebhookEvent::ConfigurationRemoved { configuration_id } => {
                self.remove(configuration_id).await
            }
            WebhookEvent::ScopeChangeConfirmed { configuration_id, scopes } => {
                let known = self
                    .stores
                    .modify_installation(&configuration_id, |i| i.scopes = scopes)
                    .await?;
                tracing::info!(configuration_id, known, "installation scopes updated");
                Ok(WebhookOutcome::ScopesUpdated { known })
            }
            WebhookEvent::ProjectCreated { project_id, team_id, user_id, configuration_id } => {
                let Some(key) = &self.config.project_env else {
                    return Ok(WebhookOutcome::Ignored);
                };
                let project =
                    project_id.ok_or(WebhookError::InvalidBody("the event names no project"))?;
                let scope = Scope { configuration_id, team_id, user_id };
                self.project_created(key, &project, &scope).await
            }
            WebhookEvent::Other => Ok(WebhookOutcome::Ignored),
        }
    }

    async fn remove(&self, configuration_id: String) -> Result<WebhookOutcome, WebhookError> {
        let (known, drains) = self.stores.remove_configuration(&configuration_id).await?;
        tracing::info!(configuration_id, known, drains, "installation removed");
        Ok(WebhookOutcome::Removed { known, drains })
    }

    /// With `project_env` configured, the new project gets it as selected projects get it at
    /// install. The installations concerned are the one the event names, else the enabled ones
    /// of the event's team (or, without a team, of its user).
    async fn project_created(
        &self,
        key: &str,
        project: &str,
        scope: &Scope,
    ) -> Result<WebhookOutcome, WebhookError> {
        let installations = self.stores.installations().await?;
        let concerned: Vec<_> = installations
            .into_iter()
            .filter(|i| i.status == InstallationStatus::Enabled && scope.concerns(i))
            .collect();
        for installation in &concerned {
            let endpoint = match &self.config.drain_url {
                Some(url) => self.existing_endpoint(&installation.configuration_id, url).await?,
                None => None,
            };
            let client = self
                .client
                .with_token(installation.access_token.clone(), installation.team_id.clone());
            let projects = [project.to_owned()];
            let id = &installation.configuration_id;
            // A disabled installation is marked by the upsert; the event is acknowledged all
            // the same (Vercel would only send it again).
            let _ = self.upsert_project_env(&client, id, &projects, key, endpoint).await;
        }
        Ok(WebhookOutcome::ProjectEnv { installations: concerned.len() })
    }
}

/// Whose installations a `project.created` event concerns.
struct Scope {
    configuration_id: Option<String>,
    team_id: Option<String>,
    user_id: Option<String>,
}

impl Scope {
    fn concerns(&self, installation: &crate::Installation) -> bool {
        match &self.configuration_id {
            Some(id) => installation.configuration_id == *id,
            None => {
                installation.team_id == self.team_id
                    && (self.team_id.is_some()
                        || self.user_id.as_deref() == Some(installation.user_id.as_str()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_is_answered_as_tagged_json() {
        let said = |o: WebhookOutcome| serde_json::to_string(&o).unwrap();
        assert_eq!(
            said(WebhookOutcome::Removed { known: false, drains: 0 }),
            r#"{"outcome":"removed","known":false,"drains":0}"#
        );
        assert_eq!(said(WebhookOutcome::Ignored), r#"{"outcome":"ignored"}"#);
    }

    #[test]
    fn events_are_read_from_either_payload_shape() {
        let removed = br#"{"type":"integration-configuration.removed","payload":{"configuration":{"id":"icfg_1"}}}"#;
        assert_eq!(
            WebhookEvent::parse(removed).unwrap(),
            WebhookEvent::ConfigurationRemoved { configuration_id: "icfg_1".into() }
        );
        let scopes = br#"{"type":"integration-configuration.scope-change-confirmed","payload":{"configurationId":"icfg_2","scopes":["read:project"]}}"#;
        assert_eq!(
            WebhookEvent::parse(scopes).unwrap(),
            WebhookEvent::ScopeChangeConfirmed {
                configuration_id: "icfg_2".into(),
                scopes: vec!["read:project".into()]
            }
        );
        let other = br#"{"type":"deployment.created","payload":{"x":1}}"#;
        assert_eq!(WebhookEvent::parse(other).unwrap(), WebhookEvent::Other);
    }

    #[test]
    fn malformed_events_say_what_is_missing() {
        let cases: [(&[u8], &str); 3] = [
            (b"not json", "the body is not a JSON event"),
            (br#"{"type":"integration-configuration.removed","payload":{}}"#, "the event names no configuration"),
            (br#"{"type":"integration-configuration.scope-change-confirmed","payload":{"configurationId":"icfg_1"}}"#, "the event carries no scopes"),
        ];
        for (body, message) in cases {
            let error = WebhookEvent::parse(body).unwrap_err();
            assert_eq!(error.to_string(), message);
        }
    }
}
