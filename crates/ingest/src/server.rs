//! The HTTP/1.1 server: accept loop with a connection limit, per-connection timeouts,
//! keep-alive, and graceful shutdown that lets in-flight deliveries finish.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use record::Dispatch;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::handler::{handle, over_capacity_response, RenderMetrics, State};
use crate::{DrainDirectory, IngestConfig, IngestMetrics};

/// A bound, not yet running, ingest server.
pub struct Server {
    listener: TcpListener,
    state: Arc<State>,
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
        let listener = TcpListener::bind(config.listen).await?;
        let verify = match &config.verify_code {
            Some(code) => Some(http::HeaderValue::from_str(code).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "verify code is not a valid header value",
                )
            })?),
            None => None,
        };
        let state =
            Arc::new(State { config, dispatch, metrics, render_metrics, verify, drains: None });
        Ok(Server { listener, state })
    }

    /// Also serves the drains of `drains` on their own paths, `<drain path>/<key>`.
    pub fn with_drains(mut self, drains: Arc<dyn DrainDirectory>) -> Server {
        let state = Arc::get_mut(&mut self.state).expect("the state is shared only once serving");
        state.drains = Some(drains);
        self
    }

    /// The address the server listens on (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting and gives in-flight requests up to
    /// `shutdown_timeout` to finish. Returns whether they all did.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> bool {
        let Server { listener, state } = self;
        let limit = Arc::new(Semaphore::new(state.config.max_connections));
        let graceful = GracefulShutdown::new();
        let refusal = over_capacity_response(state.config.retry_after_secs);
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
                // A fresh socket's send buffer is empty, so this small write does not block.
                let _ = stream.try_write(&refusal);
                tracing::debug!(%peer, "connection refused: at max_connections");
                continue;
            };
            let _ = stream.set_nodelay(true);
            let conn_state = Arc::clone(&state);
            let service = service_fn(move |req| {
                let state = Arc::clone(&conn_state);
                async move { Ok::<_, Infallible>(handle(state, req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(state.config.header_read_timeout)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            let conn = graceful.watch(conn);
            // Tracked by `graceful`: shutdown waits for it.
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                drop(permit);
            });
        }
        drop(listener);
        let timeout = state.config.shutdown_timeout;
        tokio::select! {
            () = graceful.shutdown() => true,
            () = tokio::time::sleep(timeout) => {
                tracing::warn!(?timeout, "in-flight requests did not finish in time");
                false
            }
        }
    }
}
