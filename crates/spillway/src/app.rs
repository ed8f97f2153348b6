//! Wiring: the sinks and their pipeline, the edge in front of them with the drain registry, and
//! the integration's control plane when it is configured; one shutdown for all of them.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use control::postgres::{PgConfig, PgStore};
use control::server::{ControlMetrics, ControlPlane};
use control::DataType;
use control::Stores;
use ingest::{DrainDirectory, IngestMetrics, MetricsServer, Server};
use pipeline::file::{FileSink, FileSinkConfig};
use pipeline::kafka::KafkaSink;
use pipeline::{Pipeline, PipelineMetrics, Sink, Workers};
use prometheus_client::registry::Registry;
use tokio::signal::unix::Signal;

use crate::config::Config;
use crate::registry::{FeedDirectory, RegistryDirectory};
use crate::reload::{ConfigReload, Extra, ReloadMetrics};

/// A started application: listening, sinks open, not yet serving.
#[derive(Debug)]
pub struct App {
    server: Server,
    /// `/metrics` on its own address (`server.metrics_listen`), when configured.
    metrics: Option<MetricsServer>,
    control: Option<ControlPlane>,
    workers: Workers,
    shutdown_timeout: Duration,
    /// How long the edge keeps serving after the stop signal; the other listeners stop with it.
    drain_delay: Duration,
    reloads: ReloadMetrics,
}

impl App {
    /// Opens the sinks, starts their workers and binds the listener.
    pub async fn start(config: Config) -> anyhow::Result<App> {
        let mut registry = Registry::default();
        let pipeline_metrics = PipelineMetrics::register(&mut registry);
        let ingest_metrics = IngestMetrics::register(&mut registry);
        let control_metrics =
            config.integration.is_some().then(|| ControlMetrics::register(&mut registry));
        crate::durability::report(&config, &mut registry);
        let reloads = ReloadMetrics::register(&mut registry);

        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        if let Some(file) = config.file_sink.clone() {
            for (data_type, file) in file_sinks_by_type(file, &config.data_dir) {
                sinks.push(Box::new(FileSink::records_of(data_type, file, &pipeline_metrics)?));
            }
        }
        if let Some(kafka) = config.kafka.clone() {
            sinks.push(Box::new(KafkaSink::open(kafka, &pipeline_metrics)?));
        }
        sinks.push(Box::new(FileSink::dead_letter(config.dead_letter.clone(), &pipeline_metrics)?));
        let (pipeline, workers) =
            Pipeline::start(config.pipeline.clone(), sinks, pipeline_metrics)?;

        // Drains created with `spillway drains create` or by the integration are served on
        // their own paths; Vercel signs the integration's with its client secret.
        let client_secret = config.integration.as_ref().map(|i| i.client_secret.signing_key());
        let (stores, directory): (Stores, Arc<dyn DrainDirectory>) = match config.store.clone() {
            Some(pg) => {
                let store = open_shared(pg).await?;
                let directory = FeedDirectory::spawn(store.clone(), client_secret);
                directory.health().register(&mut registry);
                (Stores::Postgres(store), Arc::new(directory))
            }
            None => {
                let file = config.data_dir.join(control::REGISTRY_FILE);
                let directory = RegistryDirectory::start(file, client_secret)?;
                (Stores::in_dir(&config.data_dir), Arc::new(directory))
            }
        };

        let registry = Arc::new(registry);
        let render = Arc::new(move || {
            let mut text = String::new();
            // Writing into a String cannot fail.
            let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
            text
        });
        warn_if_unsigned(&config);
        let metrics = match config.ingest.metrics_listen {
            Some(addr) => Some(MetricsServer::bind(addr, render.clone()).await?),
            None => None,
        };
        let (shutdown_timeout, drain_delay) =
            (config.ingest.shutdown_timeout, config.ingest.drain_delay);
        let server =
            Server::bind(config.ingest, Arc::new(pipeline), ingest_metrics, render).await?;
        let server = server.with_drains(directory);
        let control = match (config.integration, control_metrics) {
            (Some(integration), Some(metrics)) => {
                Some(ControlPlane::bind(integration, stores, metrics).await?)
            }
            _ => None,
        };
        Ok(App { server, metrics, control, workers, shutdown_timeout, drain_delay, reloads })
    }

    /// Re-reads the configuration from `path` at every signal on `hangups` (`SIGHUP`) and
    /// applies its live part (see [`crate::reload`]); `started` is the file's keys and values
    /// as read at start ([`crate::config::load_with_table`]); `extra` applies what lives outside
    /// the app (the log filter).
    pub fn reload_on(
        &self,
        hangups: Signal,
        (path, started): (Option<PathBuf>, Option<toml::Table>),
        extra: Option<Extra>,
    ) {
        let reloader = self.server.reloader();
        ConfigReload { reloader, metrics: self.reloads.clone(), path, started, extra }
            .spawn(hangups);
    }

    /// Where `/metrics` is served when `server.metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|m| m.local_addr().ok())
    }

    /// Where the server listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr().expect("a bound listener has an address")
    }

    /// Where the integration's control-plane listener listens, when the integration is
    /// configured.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control.as_ref().and_then(|c| c.local_addr().ok())
    }

    /// Serves until `shutdown` resolves; then stops accepting, lets in-flight deliveries finish,
    /// drains the sinks and completes their files. Returns whether everything finished in time.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> bool {
        let addr = self.local_addr();
        tracing::info!(%addr, "serving");
        // One shutdown signal for every listener. The edge keeps serving for the drain delay
        // after it (and says so on /readyz); the control plane and /metrics stop when it does,
        // so webhooks and scrapes keep working while the load balancer takes the replica out.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let wait = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        let drain_delay = self.drain_delay;
        let delayed = |stopped: tokio::sync::watch::Receiver<bool>| async move {
            wait(stopped).await;
            tokio::time::sleep(drain_delay).await;
        };
        let trigger = async move {
            shutdown.await;
            let _ = stop.send(true);
        };
        let control = async {
            if let Some(control) = self.control {
                control.serve(delayed(stopped.clone())).await;
            }
        };
        let metrics = async {
            if let Some(metrics) = self.metrics {
                metrics.serve(delayed(stopped.clone())).await;
            }
        };
        let (_, requests_done, (), ()) =
            tokio::join!(trigger, self.server.serve(wait(stopped.clone())), control, metrics);
        // The server (and with it the last handle to the pipeline) is gone: workers drain.
        let timeout = self.shutdown_timeout;
        let late = tokio::task::spawn_blocking(move || self.workers.join(timeout))
            .await
            .unwrap_or_default();
        if !late.is_empty() {
            tracing::error!(sinks = ?late, "sinks did not finish in time");
        }
        tracing::info!("stopped");
        requests_done && late.is_empty()
    }
}

/// The shared store, its migrations applied. A database that cannot be reached does not stop
/// the start: the receiver serves the default drain, reports the store as degraded, and its
/// feed connects (and migrates) when the database is back. A database that refuses
/// (credentials, permissions) does stop it.
async fn open_shared(config: PgConfig) -> anyhow::Result<PgStore> {
    match PgStore::connect(config.clone()).await {
        Ok(store) => Ok(store),
        Err(e) if e.is_unavailable() => {
            tracing::warn!(error = %e, "drain store unavailable at start; retrying in the background");
            Ok(PgStore::lazy(config)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// A records file sink per data type served, each in a directory of its own so that no file
/// mixes types: logs where `sinks.file.dir` says (`<data dir>/logs`), the other types in
/// `<data dir>/<type slug>` (`traces`, `speed-insights`, `analytics`, `audit-log`), with the
/// same settings (trace files are `.binpb`: one `ExportTraceServiceRequest` each). What their
/// crash recovery sets aside goes to a directory of their type's within the dead-letter one:
/// files of two types may have the same name, and the set-aside file is named after its file.
fn file_sinks_by_type(logs: FileSinkConfig, data_dir: &Path) -> Vec<(DataType, FileSinkConfig)> {
    let others =
        [DataType::Traces, DataType::SpeedInsights, DataType::Analytics, DataType::AuditLog];
    let mut sinks: Vec<_> = others
        .into_iter()
        .map(|t| {
            let invalid_dir = logs.invalid_dir.as_ref().map(|dir| dir.join(t.slug()));
            (t, FileSinkConfig { dir: data_dir.join(t.slug()), invalid_dir, ..logs.clone() })
        })
        .collect();
    sinks.insert(0, (DataType::Logs, logs));
    sinks
}

/// Says at start-up that the default drain takes unsigned deliveries, and where.
fn warn_if_unsigned(config: &Config) {
    if config.ingest.drain_secret.is_some() {
        return;
    }
    let listen = config.ingest.listen;
    if listen.ip().is_loopback() {
        tracing::warn!(
            %listen,
            "no drain secret configured: accepting unsigned deliveries on loopback only; set \
             SPILLWAY_DRAIN_SECRET (or vercel.drain_secret) to listen on other addresses"
        );
    } else {
        tracing::warn!(
            %listen,
            "NO DRAIN SECRET CONFIGURED and vercel.allow_unsigned = true: anyone who can reach \
             this address can deliver unsigned records"
        );
    }
}
