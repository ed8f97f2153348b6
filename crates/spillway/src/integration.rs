//! The integration's control-plane listener (PROTOCOL.md §4, "OAuth install flow"): a small
//! hyper server, separate from the ingest edge, that `spillway serve` runs when the
//! integration's client id, client secret and redirect URL are configured.
//!
//! - `GET /vercel/integration/callback`: exchanges the install redirect's one-time code, stores
//!   the installation (`<data dir>/installations.json`), creates a drain for it pointing at this
//!   receiver (registered in `drains.json`, so the edge serves it at once), sets `project_env`
//!   on the selected projects (best effort), then redirects to `next` (Vercel or a relative
//!   path only: never an open redirect).
//! - `POST /vercel/integration/webhook`: checks `x-vercel-signature` (HMAC-SHA1 with the client
//!   secret), then forgets a removed installation and its drains, records confirmed scopes, or
//!   sets `project_env` on a project created in an all-projects installation's scope.
//!
//! `integration_configuration_disabled` marks the installation disabled; it is never called
//! again. No token, secret or code appears in a log line, an error or a response.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use control::model::{
    log_schemas, AccessToken, CreateDrain, DeliveryRequest, Encoding, EnvTarget, EnvType, EnvVar,
    ExchangeCode, IntegrationConfiguration, ProjectScope, ProjectSelection,
};
use control::registry::{generate_path_key, generate_secret};
use control::{
    ClientConfig, ControlError, DrainEntry, DrainKind, DrainRegistry, Installation,
    InstallationStatus, InstallationStore, Secret, StoreError, VercelClient,
};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, LOCATION};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The install redirect's path (the integration's Redirect URL points here).
pub const CALLBACK_PATH: &str = "/vercel/integration/callback";
/// The integration's webhook URL path.
pub const WEBHOOK_PATH: &str = "/vercel/integration/webhook";
/// The installation store in the data directory.
pub const INSTALLATIONS_FILE: &str = "installations.json";

type Reply = Response<Full<Bytes>>;

/// The validated `[integration]` section.
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
            api_url: control::DEFAULT_BASE_URL.to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            drain_url: None,
            create_drain: true,
            project_env: None,
            max_body_bytes: 1 << 20,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_connections: 64,
            request_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
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
    config: IntegrationConfig,
    metrics: ControlMetrics,
    client: VercelClient,
    installations: InstallationStore,
    drains: DrainRegistry,
    webhook_secret: ingest::Secret,
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
    /// Binds `config.listen`, with the installation store and drain registry in `data_dir`.
    pub async fn bind(
        config: IntegrationConfig,
        data_dir: &Path,
        metrics: ControlMetrics,
    ) -> Result<ControlPlane, IntegrationError> {
        let client = VercelClient::new(ClientConfig {
            base_url: config.api_url.clone(),
            request_timeout: config.request_timeout,
            ..ClientConfig::default()
        })
        .map_err(IntegrationError::Client)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| IntegrationError::Bind { addr: config.listen, source })?;
        let shared = Shared {
            client,
            installations: InstallationStore::new(data_dir.join(INSTALLATIONS_FILE)),
            drains: DrainRegistry::new(data_dir.join(crate::drains::REGISTRY_FILE)),
            webhook_secret: ingest::Secret::new(config.client_secret.expose()),
            config,
            metrics,
        };
        Ok(ControlPlane { listener, shared: Arc::new(shared) })
    }

    /// Where the listener listens.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish (bounded).
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let ControlPlane { listener, shared } = self;
        let limit = Arc::new(Semaphore::new(shared.config.max_connections));
        let refusal = ingest::over_capacity_response(1);
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "integration control plane serving");
        }
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "control plane: accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
                // As the edge does: a fresh socket's send buffer takes this small write at once.
                let _ = stream.try_write(&refusal);
                tracing::debug!("control plane: connection refused at max_connections");
                continue;
            };
            let conn_shared = Arc::clone(&shared);
            let service = service_fn(move |request| {
                let shared = Arc::clone(&conn_shared);
                async move { Ok::<_, Infallible>(handle(&shared, request).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(shared.config.header_read_timeout)
                .serve_connection(TokioIo::new(stream), service);
            let conn = graceful.watch(conn);
            // Tracked by `graceful`: shutdown waits for it (bounded below).
            tokio::spawn(async move {
                let _ = conn.await;
                drop(permit);
            });
        }
        drop(listener);
        let timeout = shared.config.shutdown_timeout;
        if tokio::time::timeout(timeout, graceful.shutdown()).await.is_err() {
            tracing::warn!(?timeout, "control plane: requests did not finish in time");
        }
    }
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Reply {
    let route = match request.uri().path() {
        CALLBACK_PATH => "callback",
        WEBHOOK_PATH => "webhook",
        _ => "other",
    };
    let reply = route_request(shared, request).await;
    shared.metrics.request(route, reply.status());
    reply
}

async fn route_request(shared: &Shared, request: Request<Incoming>) -> Reply {
    let path = request.uri().path();
    match (request.method(), path) {
        (&Method::GET, CALLBACK_PATH) => {
            let query = request.uri().query().unwrap_or("").to_owned();
            callback(shared, &query).await
        }
        (&Method::POST, WEBHOOK_PATH) => webhook(shared, request).await,
        (_, CALLBACK_PATH) => not_allowed("GET"),
        (_, WEBHOOK_PATH) => not_allowed("POST"),
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such path"),
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Reply {
    let body = json!({"error": {"code": code, "message": message}}).to_string();
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    reply
}

fn not_allowed(allow: &'static str) -> Reply {
    let mut reply =
        error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed");
    reply.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
    reply
}

fn ok() -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from_static(b"{}")));
    reply.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    reply
}

fn disabled() -> Reply {
    error(
        StatusCode::FORBIDDEN,
        "integration_configuration_disabled",
        "the integration installation is disabled",
    )
}

fn local_failure(e: &StoreError) -> Reply {
    tracing::error!(error = %e, "integration: local store failed");
    error(StatusCode::INTERNAL_SERVER_ERROR, "local_store", "the local store is unavailable")
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Runs a (small, fsyncing) store operation off the async workers.
async fn blocking<R: Send + 'static>(work: impl FnOnce() -> R + Send + 'static) -> R {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The install redirect's query.
#[derive(Default)]
struct Callback {
    code: Option<Secret>,
    configuration_id: Option<String>,
    team_id: Option<String>,
    next: Option<String>,
}

impl Callback {
    fn parse(query: &str) -> Callback {
        let mut callback = Callback::default();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let value = value.into_owned();
            match key.as_ref() {
                "code" => callback.code = Some(Secret::new(value)),
                "configurationId" => callback.configuration_id = Some(value),
                "teamId" => callback.team_id = Some(value),
                "next" => callback.next = Some(value),
                _ => {}
            }
        }
        callback
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
    let location = safe_next(next);
    let mut reply = Response::new(Full::new(Bytes::new()));
    *reply.status_mut() = StatusCode::FOUND;
    // `safe_next` returns printable ASCII only (a serialized URL or a checked path).
    let value = HeaderValue::from_str(&location).unwrap_or(HeaderValue::from_static("/"));
    reply.headers_mut().insert(LOCATION, value);
    reply
}

/// Marks `configuration_id` disabled (never called again) and answers `403`.
async fn mark_disabled(shared: &Shared, configuration_id: &str) -> Reply {
    tracing::warn!(configuration_id, "integration installation is disabled; marked, not retried");
    let store = shared.installations.clone();
    let id = configuration_id.to_owned();
    match blocking(move || store.modify(&id, |i| i.status = InstallationStatus::Disabled)).await {
        Ok(_) => disabled(),
        Err(e) => local_failure(&e),
    }
}

/// `GET /vercel/integration/callback`.
async fn callback(shared: &Shared, query: &str) -> Reply {
    let request = Callback::parse(query);
    let (Some(code), Some(configuration_id)) = (request.code, request.configuration_id) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code and configurationId are required",
        );
    };
    let store = shared.installations.clone();
    let id = configuration_id.clone();
    match blocking(move || store.get(&id)).await {
        Ok(Some(known)) if known.status == InstallationStatus::Disabled => return disabled(),
        Ok(_) => {}
        Err(e) => return local_failure(&e),
    }
    let exchange = ExchangeCode {
        client_id: shared.config.client_id.clone(),
        client_secret: shared.config.client_secret.clone(),
        code,
        redirect_uri: shared.config.redirect_url.clone(),
    };
    let token = match shared.client.exchange_code(&exchange).await {
        Ok(token) => token,
        Err(ControlError::InstallationDisabled { .. }) => return disabled(),
        Err(e) if e.status().is_some_and(|s| (400..500).contains(&s)) => {
            tracing::warn!(
                configuration_id,
                status = e.status(),
                code = e.code(),
                "code exchange refused"
            );
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_code",
                "the authorization code was refused (already used, expired or unknown)",
            );
        }
        Err(e) => {
            tracing::error!(configuration_id, error = %e, "code exchange failed");
            return error(StatusCode::BAD_GATEWAY, "vercel_unavailable", "the Vercel API failed");
        }
    };
    if token.installation_id != configuration_id {
        tracing::warn!(
            configuration_id,
            installation_id = token.installation_id,
            "the token's installation differs from the redirect's configuration"
        );
    }
    if request.team_id.is_some() && request.team_id != token.team_id {
        tracing::warn!(
            configuration_id,
            "the redirect's teamId differs from the token's; using the token's"
        );
    }
    match install(shared, &configuration_id, token).await {
        Ok(()) => redirect(request.next.as_deref()),
        Err(reply) => reply,
    }
}

/// Stores the installation, reads its configuration, creates its drain and sets `project_env`.
async fn install(shared: &Shared, configuration_id: &str, token: AccessToken) -> Result<(), Reply> {
    let installation = Installation {
        configuration_id: configuration_id.to_owned(),
        team_id: token.team_id.clone(),
        access_token: token.access_token.clone(),
        user_id: token.user_id.clone(),
        installation_id: token.installation_id.clone(),
        scopes: Vec::new(),
        created_at_ms: now_ms(),
        status: InstallationStatus::Enabled,
    };
    let store = shared.installations.clone();
    blocking(move || store.upsert(installation)).await.map_err(|e| local_failure(&e))?;
    tracing::info!(configuration_id, team_id = token.team_id.as_deref(), "installation stored");

    let client = shared.client.with_token(token.access_token, token.team_id.clone());
    let configuration = match client.get_configuration(configuration_id).await {
        Ok(configuration) => {
            let (store, id, scopes) = (
                shared.installations.clone(),
                configuration_id.to_owned(),
                configuration.scopes.clone(),
            );
            blocking(move || store.modify(&id, |i| i.scopes = scopes))
                .await
                .map_err(|e| local_failure(&e))?;
            Some(configuration)
        }
        Err(ControlError::InstallationDisabled { .. }) => {
            return Err(mark_disabled(shared, configuration_id).await)
        }
        Err(e) => {
            // Scopes stay unknown; the drain can still be tried.
            tracing::warn!(
                configuration_id,
                status = e.status(),
                code = e.code(),
                "cannot read the configuration"
            );
            None
        }
    };
    let selected = configuration
        .as_ref()
        .filter(|c| c.project_selection == Some(ProjectSelection::Selected))
        .map(|c| c.projects.clone());

    let mut endpoint = None;
    if shared.config.create_drain {
        if let Some(drain_url) = &shared.config.drain_url {
            endpoint =
                create_drain(shared, &client, configuration_id, drain_url, selected.as_deref())
                    .await?;
        }
    }
    if let Some(key) = &shared.config.project_env {
        set_project_env(shared, &client, configuration_id, configuration.as_ref(), key, endpoint)
            .await?;
    }
    Ok(())
}

/// An installation drain's endpoint: always its own path under `drain_url`, since the receiver
/// finds integration drains by their key.
fn installation_endpoint(drain_url: &str, path_key: &str) -> String {
    format!("{}/{path_key}", drain_url.trim_end_matches('/'))
}

/// The endpoint of the drain installation `configuration_id` has in the registry, if any.
async fn existing_endpoint(
    shared: &Shared,
    configuration_id: &str,
    drain_url: &str,
) -> Result<Option<String>, Reply> {
    let registry = shared.drains.clone();
    let id = configuration_id.to_owned();
    let existing = blocking(move || {
        registry
            .load()
            .map(|all| all.into_iter().find(|e| e.configuration_id.as_deref() == Some(&id)))
    })
    .await
    .map_err(|e| local_failure(&e))?;
    Ok(existing.map(|e| installation_endpoint(drain_url, &e.path_key)))
}

/// Creates the installation's drain unless it has one; returns its endpoint.
async fn create_drain(
    shared: &Shared,
    client: &VercelClient,
    configuration_id: &str,
    drain_url: &str,
    selected: Option<&[String]>,
) -> Result<Option<String>, Reply> {
    if let Some(endpoint) = existing_endpoint(shared, configuration_id, drain_url).await? {
        return Ok(Some(endpoint));
    }
    let (path_key, secret) = generate_path_key()
        .and_then(|key| Ok((key, generate_secret()?)))
        .map_err(|e| local_failure(&e))?;
    let endpoint = installation_endpoint(drain_url, &path_key);
    let mut delivery = DeliveryRequest::http(endpoint.clone(), Encoding::Ndjson);
    delivery.secret = Some(secret.clone());
    let (projects, project_ids) = match selected {
        Some(ids) if !ids.is_empty() => (ProjectScope::Some, ids.to_vec()),
        _ => (ProjectScope::All, Vec::new()),
    };
    let request = CreateDrain {
        name: "spillway".to_owned(),
        projects: Some(projects),
        project_ids,
        schemas: log_schemas(),
        delivery,
        sampling: None,
        filter: None,
    };
    let drain = match client.create_drain(&request).await {
        Ok(drain) => drain,
        Err(ControlError::InstallationDisabled { .. }) => {
            return Err(mark_disabled(shared, configuration_id).await)
        }
        Err(e) => {
            tracing::error!(
                configuration_id,
                status = e.status(),
                code = e.code(),
                "cannot create the installation's drain"
            );
            return Err(error(
                StatusCode::BAD_GATEWAY,
                "drain_not_created",
                "the Vercel API refused the drain",
            ));
        }
    };
    let integration_secret = drain
        .delivery
        .as_ref()
        .and_then(|d| d.secret.as_ref())
        .is_some_and(|s| s.is_integration_secret());
    let entry = DrainEntry {
        id: drain.id.clone(),
        path_key,
        secret,
        team_id: drain.team_id.clone().or_else(|| client.team_id().map(str::to_owned)),
        kind: DrainKind::Integration,
        created_at_ms: drain.created_at.unwrap_or_else(now_ms),
        configuration_id: Some(configuration_id.to_owned()),
        integration_secret,
        headers: Vec::new(),
    };
    let registry = shared.drains.clone();
    if let Err(e) = blocking(move || registry.insert(entry)).await {
        // A drain whose secret is nowhere but on Vercel is of no use to the receiver.
        let _ = client.delete_drain(&drain.id).await;
        return Err(local_failure(&e));
    }
    tracing::info!(configuration_id, drain = drain.id, "installation drain created");
    Ok(Some(endpoint))
}

/// Best effort: upserts `key` on the configuration's selected projects; failures are logged.
/// (An installation that sees every project gets it on each new one, from `project.created`.)
async fn set_project_env(
    shared: &Shared,
    client: &VercelClient,
    configuration_id: &str,
    configuration: Option<&IntegrationConfiguration>,
    key: &str,
    endpoint: Option<String>,
) -> Result<(), Reply> {
    let projects = match configuration {
        Some(c) if c.project_selection == Some(ProjectSelection::Selected) => c.projects.clone(),
        _ => {
            tracing::info!(configuration_id, "project_env: no selected projects to set it on");
            return Ok(());
        }
    };
    upsert_project_env(shared, client, configuration_id, &projects, key, endpoint).await
}

/// Best effort: upserts `key` on `projects`, valued the installation's drain endpoint (else
/// its configuration id); failures are logged, a disabled installation is marked.
async fn upsert_project_env(
    shared: &Shared,
    client: &VercelClient,
    configuration_id: &str,
    projects: &[String],
    key: &str,
    endpoint: Option<String>,
) -> Result<(), Reply> {
    let value = endpoint.unwrap_or_else(|| configuration_id.to_owned());
    let vars = [EnvVar {
        key: key.to_owned(),
        value: Secret::new(value),
        kind: EnvType::Encrypted,
        target: vec![EnvTarget::Production, EnvTarget::Preview, EnvTarget::Development],
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
                return Err(mark_disabled(shared, configuration_id).await)
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

/// Reads a body within the listener's size and time bounds.
async fn read_body(shared: &Shared, body: Incoming) -> Result<Bytes, Reply> {
    let limited = Limited::new(body, shared.config.max_body_bytes);
    match tokio::time::timeout(shared.config.body_read_timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "the body is too large"))
        }
        Ok(Err(_)) => {
            Err(error(StatusCode::BAD_REQUEST, "body_unreadable", "the body could not be read"))
        }
        Err(_) => Err(error(StatusCode::REQUEST_TIMEOUT, "body_timeout", "the body took too long")),
    }
}

/// `POST /vercel/integration/webhook`.
async fn webhook(shared: &Shared, request: Request<Incoming>) -> Reply {
    let signature = request.headers().get("x-vercel-signature").map(|v| v.as_bytes().to_vec());
    let Some(signature) = signature else {
        return error(StatusCode::FORBIDDEN, "missing_signature", "x-vercel-signature is required");
    };
    let body = match read_body(shared, request.into_body()).await {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    if !shared.webhook_secret.verifies(&body, &signature) {
        return error(StatusCode::FORBIDDEN, "invalid_signature", "the signature does not match");
    }
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "invalid_body", "the body is not a JSON event");
    };
    let payload = &event["payload"];
    let configuration_id = payload["configuration"]["id"]
        .as_str()
        .or_else(|| payload["configurationId"].as_str())
        .map(str::to_owned);
    match (event["type"].as_str(), configuration_id) {
        (Some("integration-configuration.removed"), Some(id)) => {
            let (store, registry) = (shared.installations.clone(), shared.drains.clone());
            let log_id = id.clone();
            let removed = blocking(move || {
                let installation = store.remove(&id)?;
                let drains = registry.remove_configuration(&id)?;
                Ok::<_, StoreError>((installation.is_some(), drains.len()))
            })
            .await;
            match removed {
                Ok((known, drains)) => {
                    tracing::info!(
                        configuration_id = log_id,
                        known,
                        drains,
                        "installation removed"
                    );
                    ok()
                }
                Err(e) => local_failure(&e),
            }
        }
        (Some("integration-configuration.scope-change-confirmed"), Some(id)) => {
            let scopes = payload["configuration"]["scopes"]
                .as_array()
                .or_else(|| payload["scopes"].as_array())
                .map(|s| s.iter().filter_map(Value::as_str).map(str::to_owned).collect::<Vec<_>>());
            let Some(scopes) = scopes else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    "the event carries no scopes",
                );
            };
            let store = shared.installations.clone();
            let log_id = id.clone();
            match blocking(move || store.modify(&id, |i| i.scopes = scopes)).await {
                Ok(known) => {
                    tracing::info!(configuration_id = log_id, known, "installation scopes updated");
                    ok()
                }
                Err(e) => local_failure(&e),
            }
        }
        (
            Some(
                "integration-configuration.removed"
                | "integration-configuration.scope-change-confirmed",
            ),
            None,
        ) => error(StatusCode::BAD_REQUEST, "invalid_body", "the event names no configuration"),
        (Some("project.created"), configuration_id) => {
            project_created(shared, payload, configuration_id).await
        }
        _ => ok(),
    }
}

/// `project.created`, which Vercel sends for installations that see every project of their
/// scope: with `project_env` configured, the new project gets it as selected projects get it at
/// install. The installations concerned are the one the event names, else the enabled ones of
/// the event's team (or, without a team, of its user).
async fn project_created(
    shared: &Shared,
    payload: &Value,
    configuration_id: Option<String>,
) -> Reply {
    let Some(key) = &shared.config.project_env else { return ok() };
    let Some(project) = payload["project"]["id"].as_str() else {
        return error(StatusCode::BAD_REQUEST, "invalid_body", "the event names no project");
    };
    let (team, user) = (payload["team"]["id"].as_str(), payload["user"]["id"].as_str());
    let store = shared.installations.clone();
    let installations = match blocking(move || store.load()).await {
        Ok(all) => all,
        Err(e) => return local_failure(&e),
    };
    let concerned = installations.into_iter().filter(|i| {
        i.status == InstallationStatus::Enabled
            && match &configuration_id {
                Some(id) => i.configuration_id == *id,
                None => {
                    i.team_id.as_deref() == team
                        && (team.is_some() || user == Some(i.user_id.as_str()))
                }
            }
    });
    for installation in concerned {
        let endpoint = match &shared.config.drain_url {
            Some(url) => match existing_endpoint(shared, &installation.configuration_id, url).await
            {
                Ok(endpoint) => endpoint,
                Err(reply) => return reply,
            },
            None => None,
        };
        let client = shared
            .client
            .with_token(installation.access_token.clone(), installation.team_id.clone());
        let projects = [project.to_owned()];
        let id = &installation.configuration_id;
        // A disabled installation is marked by the upsert; the event is acknowledged all the
        // same (Vercel would only send it again).
        let _ = upsert_project_env(shared, &client, id, &projects, key, endpoint).await;
    }
    ok()
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

    #[test]
    fn the_callback_query_is_decoded() {
        let c = Callback::parse("code=a%2Bb&configurationId=icfg_1&teamId=team_1&next=%2Fx");
        assert_eq!(c.code.unwrap().expose(), "a+b");
        assert_eq!(c.configuration_id.as_deref(), Some("icfg_1"));
        assert_eq!(c.team_id.as_deref(), Some("team_1"));
        assert_eq!(c.next.as_deref(), Some("/x"));
    }
}
