//! The HTTP/1.1 server: the drain protocol's handler behind the shared accept loop
//! (`listener::serve`: connection limit, header timeout, keep-alive, graceful shutdown that lets
//! in-flight deliveries finish).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use listener::Limits;
use record::Dispatch;
use tokio::net::TcpListener;

use crate::handler::{handle, RenderMetrics, State};
use crate::live::{Live, LiveCell, Reloader};
use crate::{DrainDirectory, IngestConfig, IngestMetrics};

/// A bound, not yet running, ingest server.
pub struct Server {
    listener: TcpListener,
    state: Arc<State>,
    tls: Option<listener::Tls>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.listener.local_addr().ok()).finish()
    }
}

impl Server {
    /// Binds the listener. `render_metrics` serves `GET /metrics`.
    pub async fn bind(
        config: IngestConfig,
        dispatch: Arc<dyn Dispatch>,
        metrics: IngestMetrics,
        render_metrics: RenderMetrics,
    ) -> std::io::Result<Server> {
        let tls = config.tls.clone().map(listener::Tls::load).transpose()?;
        let listener = TcpListener::bind(config.listen).await?;
        let state = Arc::new(new_state(config, dispatch, metrics, render_metrics)?);
        Ok(Server { listener, state, tls })
    }

    /// Also serves the drains of `drains` on their own paths, `<drain path>/<key>`.
    pub fn with_drains(mut self, drains: Arc<dyn DrainDirectory>) -> Server {
        let state = Arc::get_mut(&mut self.state).expect("the state is shared only once serving");
        state.drains = Some(drains);
        self
    }

    /// Applies new configurations to this server while it serves (on `SIGHUP`).
    pub fn reloader(&self) -> Reloader {
        let started = self.state.config.clone();
        Reloader::new(Arc::clone(&self.state.live), started, self.tls.clone())
    }

    /// The address the server listens on (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves; then `/readyz` answers `503` while deliveries are still
    /// served for `drain_delay` (a load balancer's health check takes the receiver out of
    /// rotation before its port closes); then stops accepting, answers the requests still on
    /// keep-alive connections with `Connection: close`, and gives in-flight requests up to
    /// `shutdown_timeout` to finish. Returns whether they all did.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> bool {
        let Server { listener, state, tls } = self;
        let drain = {
            let state = Arc::clone(&state);
            async move {
                shutdown.await;
                state.draining.store(true, Ordering::Relaxed);
                let delay = state.config.drain_delay;
                tracing::info!(?delay, "draining: /readyz answers 503, deliveries still served");
                tokio::time::sleep(delay).await;
                tracing::info!("drain delay over: no longer accepting connections");
            }
        };
        let limits = Limits {
            max_connections: state.config.max_connections,
            header_read_timeout: state.config.header_read_timeout,
            shutdown_timeout: state.config.shutdown_timeout,
            retry_after_secs: state.config.retry_after_secs,
        };
        let handler = move |request| handle(Arc::clone(&state), request);
        match tls {
            Some(tls) => listener::serve_tls(listener, limits, tls, handler, drain).await,
            None => listener::serve(listener, limits, handler, drain).await,
        }
    }
}

/// The handler's state, shared by [`Server::bind`] and the socket-less [`crate::harness`].
pub(crate) fn new_state(
    config: IngestConfig,
    dispatch: Arc<dyn Dispatch>,
    metrics: IngestMetrics,
    render_metrics: RenderMetrics,
) -> std::io::Result<State> {
    let live = Arc::new(LiveCell::new(Live::new(&config)?));
    let no_secrets = Arc::from([]);
    let unverified = Arc::new(tokio::sync::Semaphore::new(config.max_unverified_inflations));
    let held = crate::hold::Held::new(config.max_held_body_bytes);
    let inflated = crate::hold::Held::new(config.max_held_body_bytes);
    let decodes = match config.max_concurrent_decodes {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let decodes = Arc::new(tokio::sync::Semaphore::new(decodes));
    let draining = AtomicBool::new(false);
    let seen = crate::seen::SeenIds::new(config.dedup_ids, config.dedup_window);
    Ok(State {
        config,
        dispatch,
        metrics,
        render_metrics,
        live,
        no_secrets,
        drains: None,
        unverified,
        held,
        inflated,
        decodes,
        draining,
        seen,
    })
}
