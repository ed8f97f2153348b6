//! The accept loop every listener runs: a connection limit answered with a raw `503`, a header
//! read timeout, keep-alive, and graceful shutdown bounded in time.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::client::Peer;
use crate::graceful::{self, Closing};
use crate::reply::{over_capacity_response, Reply};
use crate::tls::Tls;

/// The most a connection's read buffer grows to (hyper's default is about 400 KiB). A buffer
/// grown while a large body streamed in stays with its keep-alive connection: with hundreds of
/// connections that is hundreds of MiB. 64 KiB still reads a 1 MiB body in 16 reads.
pub(crate) const READ_BUFFER_BYTES: usize = 64 * 1024;

/// A listener's bounds.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once; one more is answered `503` and closed.
    pub max_connections: usize,
    /// Time a client has to send a request's headers.
    pub header_read_timeout: Duration,
    /// Time in-flight requests get to finish once shutdown begins.
    pub shutdown_timeout: Duration,
    /// The `Retry-After` seconds of the connection-limit `503`.
    pub retry_after_secs: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(30),
            retry_after_secs: 1,
        }
    }
}

/// Serves `listener` with `handler` until `shutdown` resolves, then stops accepting and gives
/// in-flight requests up to `limits.shutdown_timeout` to finish. Returns whether they all did.
pub async fn serve<H, F>(
    listener: TcpListener,
    limits: Limits,
    handler: H,
    shutdown: impl Future<Output = ()>,
) -> bool
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    serve_with(listener, limits, None, handler, shutdown).await
}

/// [`serve`], over TLS when `tls` is set (see [`crate::serve_tls`]).
pub(crate) async fn serve_with<H, F>(
    listener: TcpListener,
    limits: Limits,
    tls: Option<Tls>,
    handler: H,
    shutdown: impl Future<Output = ()>,
) -> bool
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let _watch = tls.as_ref().map(Tls::watch);
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let closing = Closing::new();
    let refusal = over_capacity_response(limits.retry_after_secs);
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
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            // A fresh socket's send buffer is empty, so this small write does not block. A TLS
            // client would read it as a broken record: it is only closed (a handshake to say
            // 503 would spend, on each connection past the limit, what the limit protects).
            if tls.is_none() {
                let _ = stream.try_write(&refusal);
            }
            tracing::debug!(%peer, "connection refused: at max_connections");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let service = service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(Peer(peer));
            let answer = handler(request);
            async move { Ok::<_, Infallible>(answer.await) }
        });
        if let Some(tls) = &tls {
            let watcher = closing.watcher();
            tls.spawn((stream, peer), permit, service, watcher, limits.header_read_timeout);
            continue;
        }
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .keep_alive(true)
            .max_buf_size(READ_BUFFER_BYTES)
            .serve_connection(TokioIo::new(stream), service);
        // Watched by `closing`: shutdown waits for it (bounded below).
        let watcher = closing.watcher();
        tokio::spawn(async move {
            if let (Err(e), _) = graceful::watch(conn, watcher, None).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    let timeout = limits.shutdown_timeout;
    tokio::select! {
        () = closing.close() => true,
        () = tokio::time::sleep(timeout) => {
            tracing::warn!(?timeout, "in-flight requests did not finish in time");
            false
        }
    }
}
