//! The edge without a socket, for tests and fuzzing: a [`Harness`] serves one HTTP/1.1
//! connection over any byte stream (a `tokio::io::duplex` pipe in `fuzz/`), so the bytes a client
//! sends reach hyper's parser, routing and the whole delivery protocol exactly as from a socket,
//! and [`gunzip`] exposes the capped inflater. Not for production wiring: use [`crate::Server`].

use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use record::Dispatch;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::handler::{handle, State};
use crate::server::new_state;
use crate::{DrainDirectory, IngestConfig, IngestError, IngestMetrics};

/// The request handler of a [`crate::Server`], without its listener and its accept loop (no
/// connection limit, no header read timeout: the caller owns the stream).
#[derive(Clone)]
pub struct Harness {
    state: Arc<State>,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness").finish_non_exhaustive()
    }
}

impl Harness {
    /// The handler of `config` handing batches to `dispatch`, with per-drain paths from
    /// `drains`; `/metrics` answers a fixed text. Fails as [`crate::Server::bind`] does on a
    /// verify code that is not a header value (`config.listen` is not used).
    pub fn new(
        config: IngestConfig,
        dispatch: Arc<dyn Dispatch>,
        drains: Option<Arc<dyn DrainDirectory>>,
    ) -> std::io::Result<Harness> {
        let metrics =
            IngestMetrics::register(&mut prometheus_client::registry::Registry::default());
        let render = Arc::new(|| "# EOF\n".to_owned());
        let mut state = new_state(config, dispatch, metrics, render)?;
        state.drains = drains;
        Ok(Harness { state: Arc::new(state) })
    }

    /// Serves the requests that arrive on `io` until the client closes it (or sends
    /// `Connection: close`). Must run inside a tokio runtime with time enabled.
    pub async fn serve_connection<IO>(&self, io: IO) -> Result<(), hyper::Error>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let state = Arc::clone(&self.state);
        let service = service_fn(move |request| {
            let answer = handle(Arc::clone(&state), request);
            async move { Ok::<_, std::convert::Infallible>(answer.await) }
        });
        http1::Builder::new().serve_connection(TokioIo::new(io), service).await
    }
}

/// Inflates `raw` (one or more gzip members) to at most `max` bytes, as the edge does with a
/// `Content-Encoding: gzip` body.
pub fn gunzip(raw: &[u8], max: usize) -> Result<Vec<u8>, IngestError> {
    crate::inflate::gunzip(raw, max).map(|body| body.as_slice().to_vec())
}
