//! What Spillway's HTTP listeners share: the drain edge (`ingest`) and the integration's
//! control plane (`control`) each run one, and the Vercel simulator runs the same loop.
//!
//! - [`serve`]: the accept loop. At most [`Limits::max_connections`] connections at once (one
//!   more is answered with a raw `503` and closed, without any HTTP machinery), a header read
//!   timeout per connection, and graceful shutdown that gives in-flight requests a bounded time.
//! - [`json_error`] and [`over_capacity_response`]: the one shape of an error answer,
//!   `{"error":{"code":"…","message":"…"}}`.
//! - [`serve_tls`] and [`Tls`]: the same loop behind rustls (HTTP/1.1 or HTTP/2 by ALPN), its
//!   certificate re-read from its PEM files when they change, for new handshakes only.
//! - [`client_addr`]: who a request came from ([`Peer`], or the `X-Forwarded-For` of a
//!   trusted proxy).
//! - [`SigningKey`]: the HMAC-SHA1 key of `x-vercel-signature`, compared in constant time and
//!   never shown in `Debug`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use listener::{json_error, serve, Limits};
//!
//! let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let handler = |_request| async {
//!     json_error(http::StatusCode::NOT_FOUND, "not_found", "no such path")
//! };
//! let finished = serve(socket, Limits::default(), handler, std::future::pending()).await;
//! # let _ = finished; Ok(())
//! # }
//! ```
//!
//! Invariant: depends on no other crate of the workspace; knows nothing of drains or records.

mod accept;
mod client;
mod graceful;
mod idle;
mod preface;
mod reply;
mod signing;
mod tls;

pub use accept::{serve, Limits};
pub use client::{client_addr, parse_trusted, IpNet, Peer};
pub use reply::{json_error, over_capacity_response, Reply};
pub use signing::{signature_bytes, SigningKey};
pub use tls::{serve_tls, Tls, TlsFiles};
