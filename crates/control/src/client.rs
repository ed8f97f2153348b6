//! `VercelClient`: one method per Vercel REST API call, over reqwest with rustls (ring), with
//! team scoping, bounded retries of `429`, and typed errors.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::DISABLED_CODE;
use crate::model::{
    AccessToken, CreateDrain, CreateLogDrain, DeliveryRequest, Drain, DrainList, DrainTestResult,
    EnvUpsert, EnvVar, ExchangeCode, IntegrationConfiguration, LogDrain, TestDrain, UpdateDrain,
    VerifyEndpoint,
};
use crate::{ControlError, Secret};

/// Vercel's API.
pub const DEFAULT_BASE_URL: &str = "https://api.vercel.com";
/// Wait before retrying a `429` that says neither `Retry-After` nor `X-RateLimit-Reset`
/// (doubled per retry, always capped by `max_retry_wait`).
const FALLBACK_RETRY_WAIT: Duration = Duration::from_secs(1);
/// The most a message from the API may carry into an error.
const MAX_MESSAGE_CHARS: usize = 500;

/// How to reach the API. Validated by [`VercelClient::new`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://api.vercel.com` by default; tests point it at a simulator.
    pub base_url: String,
    /// The bearer token; `None` for a client that only exchanges OAuth codes.
    pub token: Option<Secret>,
    /// When set, every request carries `?teamId=<team_id>`.
    pub team_id: Option<String>,
    /// Bound on one request, from connecting to the end of the body.
    pub request_timeout: Duration,
    /// How many times a `429` is retried before giving up (`0`: never).
    pub max_retries: u32,
    /// Cap on one wait before a retry, whatever the API asks for.
    pub max_retry_wait: Duration,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            base_url: DEFAULT_BASE_URL.to_owned(),
            token: None,
            team_id: None,
            request_timeout: Duration::from_secs(30),
            max_retries: 3,
            max_retry_wait: Duration::from_secs(60),
        }
    }
}

/// Query of `GET /v1/drains`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListDrains {
    /// Only drains covering this project.
    pub project_id: Option<String>,
    /// Page size (Vercel: default 20, at most 100).
    pub limit: Option<u32>,
    /// Only drains created before this cursor (`pagination.next` of the previous page).
    pub until: Option<i64>,
}

/// A client of the Vercel REST API for one token (and team). Cheap to clone.
#[derive(Clone)]
pub struct VercelClient {
    http: reqwest::Client,
    base: Url,
    token: Option<Secret>,
    team_id: Option<String>,
    request_timeout: Duration,
    max_retries: u32,
    max_retry_wait: Duration,
}

impl fmt::Debug for VercelClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VercelClient")
            .field("base", &self.base.as_str())
            .field("token", &self.token)
            .field("team_id", &self.team_id)
            .field("request_timeout", &self.request_timeout)
            .field("max_retries", &self.max_retries)
            .field("max_retry_wait", &self.max_retry_wait)
            .finish_non_exhaustive()
    }
}

/// What a request sends as its body.
enum Payload {
    Empty,
    Json(Vec<u8>),
    Form(Vec<(&'static str, String)>),
}

/// One request, retried as a whole.
struct Call<'a> {
    method: Method,
    segments: &'a [&'a str],
    query: Vec<(&'static str, String)>,
    payload: Payload,
    /// Secrets in the payload, kept out of error messages along with the token.
    secrets: Vec<&'a str>,
}

impl<'a> Call<'a> {
    fn new(method: Method, segments: &'a [&'a str]) -> Call<'a> {
        Call { method, segments, query: Vec::new(), payload: Payload::Empty, secrets: Vec::new() }
    }

    fn json(mut self, body: &impl Serialize) -> Call<'a> {
        // Serializing our own model types to a Vec cannot fail (string keys, no custom code).
        self.payload = Payload::Json(serde_json::to_vec(body).expect("model types serialize"));
        self
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Installs ring as rustls' process-wide crypto provider unless one is installed already:
/// reqwest is built with `rustls-no-provider` so that aws-lc-rs is never compiled in.
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another thread installing a provider is fine: one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl VercelClient {
    /// Builds a client. Fails on a base URL that is not `http(s)://…` or if TLS cannot be set up.
    pub fn new(config: ClientConfig) -> Result<VercelClient, ControlError> {
        let base = Url::parse(&config.base_url)
            .map_err(|e| ControlError::Config(format!("base_url: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(ControlError::Config("base_url must be an http(s) URL".to_owned()));
        }
        ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .user_agent(concat!("spillway-control/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ControlError::Config(format!("HTTP client: {e}")))?;
        Ok(VercelClient {
            http,
            base,
            token: config.token,
            team_id: config.team_id,
            request_timeout: config.request_timeout,
            max_retries: config.max_retries,
            max_retry_wait: config.max_retry_wait,
        })
    }

    /// The same client (connection pool, limits) speaking for another token and team, e.g. an
    /// installation's token after [`VercelClient::exchange_code`].
    pub fn with_token(&self, token: Secret, team_id: Option<String>) -> VercelClient {
        VercelClient { token: Some(token), team_id, ..self.clone() }
    }

    /// The team every request is scoped to, if any.
    pub fn team_id(&self) -> Option<&str> {
        self.team_id.as_deref()
    }

    /// `POST /v1/drains`.
    pub async fn create_drain(&self, drain: &CreateDrain) -> Result<Drain, ControlError> {
        let mut call = Call::new(Method::POST, &["v1", "drains"]).json(drain);
        call.secrets = drain.delivery.secrets().collect();
        self.json(call).await
    }

    /// `GET /v1/drains`: one page.
    pub async fn list_drains(&self, query: &ListDrains) -> Result<DrainList, ControlError> {
        let mut call = Call::new(Method::GET, &["v1", "drains"]);
        if let Some(project) = &query.project_id {
            call.query.push(("projectId", project.clone()));
        }
        if let Some(limit) = query.limit {
            call.query.push(("limit", limit.to_string()));
        }
        if let Some(until) = query.until {
            call.query.push(("until", until.to_string()));
        }
        self.json(call).await
    }

    /// Every drain (of `project_id`, if given), following `pagination.next` with pages of
    /// `page_size`. Fails with [`ControlError::TooManyPages`] rather than stop silently when
    /// there are more than `max_pages` pages.
    pub async fn list_all_drains(
        &self,
        project_id: Option<&str>,
        page_size: u32,
        max_pages: u32,
    ) -> Result<Vec<Drain>, ControlError> {
        let mut query = ListDrains {
            project_id: project_id.map(str::to_owned),
            limit: Some(page_size),
            until: None,
        };
        let mut drains = Vec::new();
        for _ in 0..max_pages {
            let page = self.list_drains(&query).await?;
            let empty_page = page.drains.is_empty();
            drains.extend(page.drains);
            match page.pagination.and_then(|p| p.next) {
                // A cursor that does not move back would loop: treat it as the end.
                Some(next) if !empty_page && query.until.is_none_or(|u| next < u) => {
                    query.until = Some(next);
                }
                _ => return Ok(drains),
            }
        }
        Err(ControlError::TooManyPages { max_pages })
    }

    /// `GET /v1/drains/{id}`.
    pub async fn get_drain(&self, id: &str) -> Result<Drain, ControlError> {
        self.json(Call::new(Method::GET, &["v1", "drains", id])).await
    }

    /// `PATCH /v1/drains/{id}`.
    pub async fn update_drain(
        &self,
        id: &str,
        update: &UpdateDrain,
    ) -> Result<Drain, ControlError> {
        let segments = ["v1", "drains", id];
        let mut call = Call::new(Method::PATCH, &segments).json(update);
        call.secrets = update.delivery.iter().flat_map(DeliveryRequest::secrets).collect();
        self.json(call).await
    }

    /// `DELETE /v1/drains/{id}`.
    pub async fn delete_drain(&self, id: &str) -> Result<(), ControlError> {
        self.send(Call::new(Method::DELETE, &["v1", "drains", id])).await.map(drop)
    }

    /// `POST /v1/drains/test`: has Vercel send a sample batch to `test.delivery.endpoint`.
    pub async fn test_drain(&self, test: &TestDrain) -> Result<DrainTestResult, ControlError> {
        let mut call = Call::new(Method::POST, &["v1", "drains", "test"]).json(test);
        call.secrets = test.delivery.secrets().collect();
        self.json(call).await
    }

    /// `POST /v2/integrations/log-drains`: creates a drain through the legacy, deprecated
    /// log-drain API (integration tokens only).
    pub async fn create_log_drain(&self, drain: &CreateLogDrain) -> Result<LogDrain, ControlError> {
        let mut call = Call::new(Method::POST, &["v2", "integrations", "log-drains"]).json(drain);
        call.secrets =
            drain.secret.iter().chain(drain.headers.values()).map(Secret::expose).collect();
        self.json(call).await
    }

    /// `GET /v2/integrations/log-drains`: the installation's legacy log drains (one list, not
    /// paginated).
    pub async fn list_log_drains(&self) -> Result<Vec<LogDrain>, ControlError> {
        self.json(Call::new(Method::GET, &["v2", "integrations", "log-drains"])).await
    }

    /// `DELETE /v1/integrations/log-drains/{id}`.
    pub async fn delete_log_drain(&self, id: &str) -> Result<(), ControlError> {
        let segments = ["v1", "integrations", "log-drains", id];
        self.send(Call::new(Method::DELETE, &segments)).await.map(drop)
    }

    /// `GET /v1/verify-endpoint`: the code the receiver answers in `x-vercel-verify`.
    pub async fn verify_endpoint(&self) -> Result<VerifyEndpoint, ControlError> {
        self.json(Call::new(Method::GET, &["v1", "verify-endpoint"])).await
    }

    /// `POST /v2/oauth/access_token`: exchanges an install redirect's one-time code.
    pub async fn exchange_code(
        &self,
        exchange: &ExchangeCode,
    ) -> Result<AccessToken, ControlError> {
        let mut call = Call::new(Method::POST, &["v2", "oauth", "access_token"]);
        call.payload = Payload::Form(vec![
            ("client_id", exchange.client_id.clone()),
            ("client_secret", exchange.client_secret.expose().to_owned()),
            ("code", exchange.code.expose().to_owned()),
            ("redirect_uri", exchange.redirect_uri.clone()),
        ]);
        call.secrets = vec![exchange.client_secret.expose(), exchange.code.expose()];
        self.json(call).await
    }

    /// `GET /v1/integrations/configuration/{id}`.
    pub async fn get_configuration(
        &self,
        id: &str,
    ) -> Result<IntegrationConfiguration, ControlError> {
        self.json(Call::new(Method::GET, &["v1", "integrations", "configuration", id])).await
    }

    /// `DELETE /v1/integrations/configuration/{id}` (uninstall).
    pub async fn delete_configuration(&self, id: &str) -> Result<(), ControlError> {
        let segments = ["v1", "integrations", "configuration", id];
        self.send(Call::new(Method::DELETE, &segments)).await.map(drop)
    }

    /// `POST /v10/projects/{idOrName}/env?upsert=true`: creates or overwrites `vars`.
    pub async fn upsert_env(
        &self,
        project: &str,
        vars: &[EnvVar],
    ) -> Result<EnvUpsert, ControlError> {
        let segments = ["v10", "projects", project, "env"];
        let mut call = Call::new(Method::POST, &segments).json(&vars);
        call.query.push(("upsert", "true".to_owned()));
        call.secrets = vars.iter().map(|v| v.value.expose()).collect();
        self.json(call).await
    }

    async fn json<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, ControlError> {
        let (status, body) = self.send(call).await?;
        serde_json::from_slice(&body)
            .map_err(|source| ControlError::Decode { status: status.as_u16(), source })
    }

    fn url(&self, call: &Call<'_>) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked in new: the base URL can be a base")
            .pop_if_empty()
            .extend(call.segments);
        {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in &call.query {
                pairs.append_pair(key, value);
            }
            if let Some(team) = &self.team_id {
                pairs.append_pair("teamId", team);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        url
    }

    /// Sends `call`, retrying `429`s within the configured bounds; a non-2xx answer becomes
    /// the matching error.
    async fn send(&self, call: Call<'_>) -> Result<(StatusCode, bytes::Bytes), ControlError> {
        let url = self.url(&call);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let mut request = self.http.request(call.method.clone(), url.clone());
            if let Some(token) = &self.token {
                request = request.bearer_auth(token.expose());
            }
            request = match &call.payload {
                Payload::Empty => request,
                Payload::Json(body) => request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone()),
                Payload::Form(fields) => request.form(fields),
            };
            let response = request.send().await.map_err(|e| self.transport(e))?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await.map_err(|e| self.transport(e))?;
            if status.is_success() {
                return Ok((status, body));
            }
            let (code, message) = self.error_detail(&body, &call.secrets);
            if status == StatusCode::TOO_MANY_REQUESTS {
                let asked = retry_wait(&headers, SystemTime::now());
                if attempt > self.max_retries {
                    return Err(ControlError::RateLimited {
                        code,
                        attempts: attempt,
                        retry_after: asked,
                    });
                }
                let fallback = FALLBACK_RETRY_WAIT.saturating_mul(1 << (attempt - 1).min(16));
                let wait = asked.unwrap_or(fallback).min(self.max_retry_wait);
                tracing::debug!(
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    "vercel api: 429, retrying"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            if status == StatusCode::FORBIDDEN && code == DISABLED_CODE {
                return Err(ControlError::InstallationDisabled { message });
            }
            return Err(ControlError::Api { status: status.as_u16(), code, message });
        }
    }

    fn transport(&self, e: reqwest::Error) -> ControlError {
        if e.is_timeout() {
            ControlError::Timeout(self.request_timeout)
        } else {
            ControlError::Transport(e)
        }
    }

    /// Vercel's `{"error":{"code","message"}}`, with every secret of the call cut out of the
    /// message and the message bounded.
    fn error_detail(&self, body: &[u8], secrets: &[&str]) -> (String, String) {
        let detail = serde_json::from_slice::<ErrorBody>(body).ok().map(|b| b.error);
        let code = detail.as_ref().and_then(|d| d.code.clone()).unwrap_or_else(|| "unknown".into());
        let mut message = detail.and_then(|d| d.message).unwrap_or_default();
        let token = self.token.as_ref().map(Secret::expose);
        for secret in secrets.iter().copied().chain(token) {
            if !secret.is_empty() {
                message = message.replace(secret, "<redacted>");
            }
        }
        if message.chars().count() > MAX_MESSAGE_CHARS {
            message = message.chars().take(MAX_MESSAGE_CHARS).collect::<String>() + "…";
        }
        (code, message)
    }
}

/// How long a `429` asks to wait: `Retry-After` (seconds, or an HTTP date) if present, else
/// until `X-RateLimit-Reset` (epoch seconds); zero for a time already past; else `None`.
fn retry_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let until = |at: SystemTime| at.duration_since(now).unwrap_or(Duration::ZERO);
    if let Some(after) = text(RETRY_AFTER.as_str()) {
        if let Ok(secs) = after.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(at) = httpdate::parse_http_date(after) {
            return Some(until(at));
        }
    }
    let reset = text("x-ratelimit-reset")?.parse::<u64>().ok()?;
    Some(until(UNIX_EPOCH + Duration::from_secs(reset)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_wins_over_reset_and_reset_counts_from_now() {
        let now = UNIX_EPOCH + Duration::from_millis(1_000_500);
        let mut headers = HeaderMap::new();
        assert_eq!(retry_wait(&headers, now), None);
        headers.insert("x-ratelimit-reset", HeaderValue::from_static("1003"));
        assert_eq!(retry_wait(&headers, now), Some(Duration::from_millis(2500)));
        headers.insert("x-ratelimit-reset", HeaderValue::from_static("999"));
        assert_eq!(retry_wait(&headers, now), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_wait(&headers, now), Some(Duration::from_secs(7)));
        // An HTTP date (RFC 9110): 1004 s after the epoch, 3.5 s from now.
        headers.insert(RETRY_AFTER, HeaderValue::from_static("Thu, 01 Jan 1970 00:16:44 GMT"));
        assert_eq!(retry_wait(&headers, now), Some(Duration::from_millis(3500)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("Thu, 01 Jan 1970 00:00:01 GMT"));
        assert_eq!(retry_wait(&headers, now), Some(Duration::ZERO));
        // Neither a number nor a date: the reset time decides.
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_wait(&headers, now), Some(Duration::ZERO));
    }

    #[test]
    fn every_request_carries_the_team_and_ids_are_escaped() {
        let client = VercelClient::new(ClientConfig {
            base_url: "http://127.0.0.1:9/api/".to_owned(),
            team_id: Some("team_1".to_owned()),
            ..ClientConfig::default()
        })
        .unwrap();
        let mut call = Call::new(Method::GET, &["v10", "projects", "a/b c", "env"]);
        call.query.push(("upsert", "true".to_owned()));
        assert_eq!(
            client.url(&call).as_str(),
            "http://127.0.0.1:9/api/v10/projects/a%2Fb%20c/env?upsert=true&teamId=team_1"
        );
        let bare = client.with_token(Secret::new("t"), None);
        assert_eq!(
            bare.url(&Call::new(Method::GET, &["v1", "drains"])).as_str(),
            "http://127.0.0.1:9/api/v1/drains"
        );
    }

    #[test]
    fn error_messages_lose_the_token_and_the_call_secrets() {
        let client = VercelClient::new(ClientConfig {
            token: Some(Secret::new("tok_abc")),
            ..ClientConfig::default()
        })
        .unwrap();
        let body = br#"{"error":{"code":"bad","message":"token tok_abc and code c0de rejected"}}"#;
        let (code, message) = client.error_detail(body, &["c0de"]);
        assert_eq!(code, "bad");
        assert_eq!(message, "token <redacted> and code <redacted> rejected");
        let (code, message) = client.error_detail(b"<html>bad gateway</html>", &[]);
        assert_eq!((code.as_str(), message.as_str()), ("unknown", ""));
    }

    #[test]
    fn bad_base_urls_are_refused() {
        for base in ["ftp://x/", "not a url", "mailto:a@b"] {
            let config = ClientConfig { base_url: base.to_owned(), ..ClientConfig::default() };
            assert!(matches!(VercelClient::new(config), Err(ControlError::Config(_))), "{base}");
        }
    }
}
