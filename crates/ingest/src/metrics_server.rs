//! `/metrics` on a listener of its own (`server.metrics_listen`), so that the delivery port,
//! which Vercel (and so anyone) must reach, need not show the process's metrics; the operator
//! keeps this one on a private address.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use listener::Limits;
use tokio::net::TcpListener;

use crate::RenderMetrics;

/// Scrapers are few: a handful of connections is plenty, and bounds what a stray client holds.
const MAX_CONNECTIONS: usize = 16;

/// A bound, not yet running, metrics listener.
pub struct MetricsServer {
    listener: TcpListener,
    render: RenderMetrics,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer").field("addr", &self.listener.local_addr().ok()).finish()
    }
}

impl MetricsServer {
    /// Binds `addr`; `GET /metrics` there answers `render`'s text, anything else `404`.
    pub async fn bind(addr: SocketAddr, render: RenderMetrics) -> std::io::Result<MetricsServer> {
        Ok(MetricsServer { listener: TcpListener::bind(addr).await?, render })
    }

    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves. Returns whether in-flight scrapes finished in time.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> bool {
        let limits = Limits {
            max_connections: MAX_CONNECTIONS,
            header_read_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(5),
            retry_after_secs: 1,
        };
        let render = self.render;
        let handler = move |request: Request<Incoming>| {
            let reply = if request.method() == Method::GET && request.uri().path() == "/metrics" {
                metrics_response(&render)
            } else {
                listener::json_error(StatusCode::NOT_FOUND, "not_found", "not found")
            };
            async move { reply }
        };
        listener::serve(self.listener, limits, handler, shutdown).await
    }
}

/// The metrics in Prometheus (OpenMetrics) text.
pub(crate) fn metrics_response(render: &RenderMetrics) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(render())));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}
