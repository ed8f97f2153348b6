//! The integration's control-plane listener: a thin HTTP adapter over [`Integration`], separate
//! from the drain edge, that `spillway serve` runs when the integration is configured.
//!
//! - `GET /vercel/integration/install`: an install that starts here: a redirect to the
//!   integration's page on Vercel with a signed, expiring state.
//! - `GET /vercel/integration/callback`: the install ([`Integration::install`]), then a redirect
//!   to `next` (Vercel or a relative path only: never an open redirect).
//! - `POST /vercel/integration/webhook`: a signed event ([`Integration::webhook`]).
//!
//! Every failure is `{"error":{"code","message"}}` with a stable code, mapped in
//! [`install_reply`] and [`webhook_reply`]; no token, secret or code appears in an answer.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use hyper::{Method, Request, Response, StatusCode};
use listener::{json_error, Limits, Reply};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::install::{Callback, InstallError};
use crate::install_state::{state_cookie, STATE_COOKIE, STATE_LIFETIME};
use crate::webhook::{WebhookError, WebhookOutcome};
use crate::{ControlError, Integration, IntegrationConfig, Stores};

/// Where an install starts on our side (a redirect to Vercel with a state).
pub const INSTALL_PATH: &str = "/vercel/integration/install";
/// The install redirect's path (the integration's Redirect URL points here).
pub const CALLBACK_PATH: &str = "/vercel/integration/callback";
/// The integration's webhook URL path.
pub const WEBHOOK_PATH: &str = "/vercel/integration/webhook";

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listener could not bind.
    #[error("cannot listen on {addr} (integration.listen)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The API client could not be built.
    #[error("cannot set up the Vercel API client")]
    Client(#[source] ControlError),
}

/// The control plane's metrics: requests by route and status class (bounded labels).
#[derive(Debug, Clone, Default)]
pub struct ControlMetrics {
    requests: Family<[(&'static str, &'static str); 2], Counter>,
}

impl ControlMetrics {
    /// Creates the metrics and registers them in `registry` under `spillway_control_`.
    pub fn register(registry: &mut Registry) -> ControlMetrics {
        let metrics = ControlMetrics::default();
        registry.sub_registry_with_prefix("spillway_control").register(
            "requests",
            "Integration control-plane requests answered, by route and status class",
            metrics.requests.clone(),
        );
        metrics
    }

    fn request(&self, route: &'static str, status: StatusCode) {
        let class = match status.as_u16() {
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests.get_or_create(&[("route", route), ("status", class)]).inc();
    }
}

struct Shared {
    integration: Integration,
    metrics: ControlMetrics,
}

/// The bound control-plane listener, not yet serving.
pub struct ControlPlane {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane").field("listener", &self.listener).finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// Binds `config.listen`, keeping installations and drains in `stores`.
    pub async fn bind(
        config: IntegrationConfig,
        stores: Stores,
        metrics: ControlMetrics,
    ) -> Result<ControlPlane, ServerError> {
        let listen = config.listen;
        let integration = Integration::new(config, stores).map_err(ServerError::Client)?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| ServerError::Bind { addr: listen, source })?;
        Ok(ControlPlane { listener, shared: Arc::new(Shared { integration, metrics }) })
    }

    /// Where the listener listens.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish (bounded).
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let ControlPlane { listener, shared } = self;
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "integration control plane serving");
        }
        let config = shared.integration.config();
        let limits = Limits {
            max_connections: config.max_connections,
            header_read_timeout: config.header_read_timeout,
            shutdown_timeout: config.shutdown_timeout,
            retry_after_secs: 1,
        };
        let handler = move |request| {
            let shared = Arc::clone(&shared);
            async move { handle(&shared, request).await }
        };
        if !listener::serve(listener, limits, handler, shutdown).await {
            tracing::warn!("control plane: requests did not finish in time");
        }
    }
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Reply {
    let route = match request.uri().path() {
        CALLBACK_PATH => "callback",
        INSTALL_PATH => "install",
        WEBHOOK_PATH => "webhook",
        _ => "other",
    };
    let reply = route_request(shared, request).await;
    shared.metrics.request(route, reply.status());
    reply
}

async fn route_request(shared: &Shared, request: Request<Incoming>) -> Reply {
    let integration = &shared.integration;
    match (request.method(), request.uri().path()) {
        (&Method::GET, CALLBACK_PATH) => {
            let mut callback = Callback::parse(request.uri().query().unwrap_or(""));
            let cookies = request.headers().get_all(COOKIE).iter().filter_map(|v| v.to_str().ok());
            callback.state_cookie = state_cookie(cookies).map(str::to_owned);
            let next = callback.next.clone();
            match integration.install(callback).await {
                Ok(()) => redirect(next.as_deref()),
                Err(e) => install_reply(&e),
            }
        }
        (&Method::GET, INSTALL_PATH) => match integration.install_page() {
            Ok((url, nonce)) => {
                let mut reply =
                    found(HeaderValue::from_str(&url).unwrap_or(HeaderValue::from_static("/")));
                // Sent back on Vercel's redirect to the callback (a top-level GET: `Lax`).
                let cookie = format!(
                    "{STATE_COOKIE}={nonce}; Max-Age={}; Path=/vercel/integration; HttpOnly; \
                     Secure; SameSite=Lax",
                    STATE_LIFETIME.as_secs()
                );
                if let Ok(cookie) = HeaderValue::from_str(&cookie) {
                    reply.headers_mut().insert(SET_COOKIE, cookie);
                }
                reply
            }
            Err(e) => install_reply(&e),
        },
        (&Method::POST, WEBHOOK_PATH) => webhook(integration, request).await,
        (_, CALLBACK_PATH | INSTALL_PATH) => not_allowed("GET"),
        (_, WEBHOOK_PATH) => not_allowed("POST"),
        _ => json_error(StatusCode::NOT_FOUND, "not_found", "no such path"),
    }
}

/// `POST /vercel/integration/webhook`: the signature must be there before the body is read.
async fn webhook(integration: &Integration, request: Request<Incoming>) -> Reply {
    let signature = request.headers().get("x-vercel-signature").map(|v| v.as_bytes().to_vec());
    let Some(signature) = signature else {
        return json_error(
            StatusCode::FORBIDDEN,
            "missing_signature",
            "x-vercel-signature is required",
        );
    };
    let body = match read_body(integration.config(), request.into_body()).await {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    match integration.webhook(&signature, &body).await {
        Ok(outcome) => ok(&outcome),
        Err(e) => webhook_reply(&e),
    }
}

/// The answer to an install that did not complete.
fn install_reply(error: &InstallError) -> Reply {
    let (status, code) = match error {
        InstallError::InvalidRequest => (StatusCode::BAD_REQUEST, "invalid_request"),
        InstallError::Disabled => (StatusCode::FORBIDDEN, "integration_configuration_disabled"),
        InstallError::CodeRefused => (StatusCode::BAD_REQUEST, "invalid_code"),
        InstallError::VercelUnavailable => (StatusCode::BAD_GATEWAY, "vercel_unavailable"),
        InstallError::DrainNotCreated => (StatusCode::BAD_GATEWAY, "drain_not_created"),
        InstallError::ProjectsUnknown => (StatusCode::BAD_GATEWAY, "projects_unknown"),
        InstallError::InstallationMismatch => (StatusCode::BAD_REQUEST, "installation_mismatch"),
        InstallError::TeamNotAllowed => (StatusCode::FORBIDDEN, "team_not_allowed"),
        InstallError::InvalidState(_) => (StatusCode::FORBIDDEN, "invalid_state"),
        InstallError::MissingState => (StatusCode::FORBIDDEN, "missing_state"),
        InstallError::NoInstallPage => (StatusCode::NOT_FOUND, "install_not_configured"),
        InstallError::Store(e) => return local_failure(e),
    };
    json_error(status, code, &error.to_string())
}

/// The answer to a webhook that was refused.
fn webhook_reply(error: &WebhookError) -> Reply {
    let (status, code) = match error {
        WebhookError::InvalidSignature => (StatusCode::FORBIDDEN, "invalid_signature"),
        WebhookError::InvalidBody(_) => (StatusCode::BAD_REQUEST, "invalid_body"),
        WebhookError::Store(e) => return local_failure(e),
    };
    json_error(status, code, &error.to_string())
}

/// A store failure: `503 store_unavailable` while the shared store cannot be reached (the
/// caller may retry: Vercel redelivers webhooks), else `500 local_store`.
fn local_failure(e: &crate::StoreError) -> Reply {
    if e.is_unavailable() {
        tracing::warn!(error = %e, "integration: store unavailable");
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the store is unavailable; try again shortly",
        );
    }
    tracing::error!(error = %e, "integration: store failed");
    json_error(StatusCode::INTERNAL_SERVER_ERROR, "local_store", "the store failed")
}

fn not_allowed(allow: &'static str) -> Reply {
    let mut reply =
        json_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed");
    reply.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
    reply
}

/// `200` with what the event did (see [`WebhookOutcome`]).
fn ok(outcome: &WebhookOutcome) -> Reply {
    // Serialising a plain enum of counts and flags cannot fail.
    let body = serde_json::to_vec(outcome).unwrap_or_else(|_| b"{}".to_vec());
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    reply.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    reply
}

/// Reads a body within the listener's size and time bounds.
async fn read_body(config: &IntegrationConfig, body: Incoming) -> Result<Bytes, Reply> {
    let limited = Limited::new(body, config.max_body_bytes);
    match tokio::time::timeout(config.body_read_timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the body is too large",
        )),
        Ok(Err(_)) => Err(json_error(
            StatusCode::BAD_REQUEST,
            "body_unreadable",
            "the body could not be read",
        )),
        Err(_) => {
            Err(json_error(StatusCode::REQUEST_TIMEOUT, "body_timeout", "the body took too long"))
        }
    }
}

/// Where to send the user after the install: `next` if it is a relative path or an https URL on
/// vercel.com, else `/`.
pub fn safe_next(next: Option<&str>) -> String {
    let Some(next) = next else { return "/".to_owned() };
    let printable = next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if printable && next.starts_with('/') && !next.starts_with("//") {
        return next.to_owned();
    }
    match url::Url::parse(next) {
        Ok(url)
            if url.scheme() == "https"
                && url.username().is_empty()
                && url.password().is_none()
                && url.port().is_none()
                && url
                    .host_str()
                    .is_some_and(|h| h == "vercel.com" || h.ends_with(".vercel.com")) =>
        {
            url.to_string()
        }
        _ => "/".to_owned(),
    }
}

fn redirect(next: Option<&str>) -> Reply {
    // `safe_next` returns printable ASCII only (a serialized URL or a checked path).
    found(HeaderValue::from_str(&safe_next(next)).unwrap_or(HeaderValue::from_static("/")))
}

fn found(location: HeaderValue) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::new()));
    *reply.status_mut() = StatusCode::FOUND;
    reply.headers_mut().insert(LOCATION, location);
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_a_relative_path_or_vercel_only() {
        let cases = [
            (None, "/"),
            (Some("/dashboard?x=1"), "/dashboard?x=1"),
            (Some("https://vercel.com/team/integrations"), "https://vercel.com/team/integrations"),
            (Some("https://app.vercel.com/x"), "https://app.vercel.com/x"),
            (Some("https://evil.example/"), "/"),
            (Some("https://vercel.com.evil.example/"), "/"),
            (Some("https://evilvercel.com/"), "/"),
            (Some("http://vercel.com/"), "/"),
            (Some("//evil.example/"), "/"),
            (Some("/\\evil.example"), "/"),
            (Some("https://user@vercel.com/"), "/"),
            (Some("javascript:alert(1)"), "/"),
            (Some("/a\r\nset-cookie: x"), "/"),
        ];
        for (next, expected) in cases {
            assert_eq!(safe_next(next), expected, "{next:?}");
        }
    }
}
