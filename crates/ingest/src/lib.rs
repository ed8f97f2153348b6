//! The ingest edge of Spillway: Vercel's log-drain delivery protocol over HTTP/1.1.
//!
//! - [`decode`]: the pure body decoder (NDJSON / JSON array -> records and rejects).
//! - [`Server`]: the hyper server. `POST` on the drain path is a delivery: its signature is
//!   checked over the raw bytes before anything else (an unsigned body is refused at once,
//!   Vercel's probe aside), gzip is inflated under a cap on the blocking pool, the body is
//!   decoded, the batch is handed to a [`record::Dispatch`] and the client is answered only
//!   once every sink holding part of it confirmed. `GET`/`HEAD` on the drain path and unsigned
//!   `{}` bodies are verification probes. `/healthz`, `/readyz` and `/metrics` serve operators
//!   ([`MetricsServer`]: `/metrics` on an address of its own instead).
//! - [`DrainDirectory`]: drains with their own path (`<drain path>/<key>`) and secret, looked
//!   up per request; [`RequiredHeader`]: a header a drain's deliveries must carry.
//! - [`IngestError`]: every failure, mapped to a status in exactly one place.
//! - [`harness`]: the handler over any byte stream and the inflater, for tests and `fuzz/`.
//!
//! This crate knows nothing of files or Kafka: it sees the pipeline only as a `Dispatch`.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod config;
pub mod decode;
mod digest;
mod drains;
mod error;
mod gate;
mod handler;
pub mod harness;
mod hold;
mod inflate;
mod live;
mod metrics;
mod metrics_server;
mod seen;
mod server;
mod traces;

pub use config::IngestConfig;
pub use drains::{DrainCredentials, DrainDirectory, InvalidHeader, RequiredHeader};
pub use error::IngestError;
pub use handler::RenderMetrics;
pub use live::{Reloader, LIVE_KEYS};
pub use metrics::IngestMetrics;
pub use metrics_server::MetricsServer;
pub use server::Server;
