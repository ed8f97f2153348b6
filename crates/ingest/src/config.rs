//! The edge's validated configuration.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use crate::drains::RequiredHeader;
use listener::SigningKey;

/// How the edge listens and what it accepts. Built and validated by the binary.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where `/metrics` is served instead of the delivery port, when set (the binary runs that
    /// listener); `None`: on the delivery port.
    pub metrics_listen: Option<SocketAddr>,
    /// The drain URL path Vercel posts to.
    pub drain_path: String,
    /// The name batches from this path carry (in dead letters and metrics).
    pub drain_name: Arc<str>,
    /// The drain's signature secret; without one, deliveries are accepted unsigned.
    pub drain_secret: Option<SigningKey>,
    /// Secrets also accepted on the default drain while a new `drain_secret` rolls out.
    pub previous_drain_secrets: Arc<[SigningKey]>,
    /// Headers every delivery to the default drain must carry, each with its exact value.
    pub drain_headers: Arc<[RequiredHeader]>,
    /// The code answered in `x-vercel-verify`.
    pub verify_code: Option<String>,
    /// Largest request body accepted, as received.
    pub max_body_bytes: usize,
    /// Largest body accepted after inflating gzip.
    pub max_inflated_bytes: usize,
    /// Most connections open at once; more are answered `503` and closed.
    pub max_connections: usize,
    /// Time a client has to send a request's headers.
    pub header_read_timeout: Duration,
    /// Time a client has to send a request's body.
    pub body_read_timeout: Duration,
    /// Time the sinks have to confirm a batch before the client gets `503`.
    pub ack_timeout: Duration,
    /// The `Retry-After` seconds sent with every `503`.
    pub retry_after_secs: u32,
    /// Time in-flight requests get to finish at shutdown.
    pub shutdown_timeout: Duration,
    /// Time between the stop signal and the listener closing, during which `/readyz` answers
    /// `503` and deliveries are still served, so a load balancer's health check takes the
    /// receiver out of rotation before its port closes.
    pub drain_delay: Duration,
    /// TLS termination with these PEM files; `None`: plain HTTP.
    pub tls: Option<listener::TlsFiles>,
    /// Proxies (a load balancer) whose `X-Forwarded-For` names the client in logs; from anyone
    /// else the header is ignored. Empty: the connection's peer is the client.
    pub trusted_proxies: Vec<listener::IpNet>,
    /// Gzip bodies whose signature does not match their raw bytes that may be inflated at once
    /// to check it over the inflated bytes; past it, such deliveries get a fast `503`. Bounds
    /// what anyone who can reach the port can make the receiver inflate.
    pub max_unverified_inflations: usize,
    /// Request-body bytes held at once, from before a body is read (its `Content-Length`; a chunked
    /// body takes an eighth of it, at most `max_body_bytes`, and more as it arrives, see `hold`)
    /// until it is answered. A request that finds no room waits for it, its body unread, for up to
    /// `body_read_timeout`, then is `503`: memory stays bounded however many connections send at
    /// once. The bytes read of chunked bodies waiting for room to grow, and gzip bodies' inflated
    /// bytes while they are decoded (so that those inflating to more than is left are decoded one
    /// after another), each have a budget of this size of their own.
    pub max_held_body_bytes: usize,
    /// Large bodies decoded at once on the blocking pool (others wait their turn): decoding is
    /// CPU work, and each decoding thread keeps buffers as large as its largest body. 0: one
    /// per CPU.
    pub max_concurrent_decodes: usize,
    /// Record ids (of logs and audit logs) remembered once acknowledged, so a record delivered
    /// again within `dedup_window` is counted and not stored twice; 0 turns it off. About 60
    /// bytes of memory each.
    pub dedup_ids: usize,
    /// How long an acknowledged id is remembered.
    pub dedup_window: Duration,
    /// Also serve the default trace drain at `/v1/traces`, the OTLP/HTTP convention, beside
    /// `/vercel/traces`.
    pub v1_traces: bool,
}

impl IngestConfig {
    /// Where the edge listens when no drain secret and no address are configured: loopback
    /// only, so that a receiver accepting unsigned deliveries is never exposed by default.
    pub const UNSIGNED_LISTEN: SocketAddr =
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));

    /// The defaults, listening on `listen`.
    pub fn new(listen: SocketAddr) -> IngestConfig {
        IngestConfig { listen, ..IngestConfig::default() }
    }
}

impl Default for IngestConfig {
    /// The one home of the edge's defaults: `0.0.0.0:8080` (with a secret; see
    /// [`IngestConfig::UNSIGNED_LISTEN`]), `/metrics` on the delivery port, the drain at
    /// `/vercel/logs`, no secret, 16 MiB bodies (64 MiB inflated), 1024 connections, no
    /// required header, 2 unverified gzip bodies inflated at once, 5 s of drain delay, no
    /// de-duplication by record id (10 minutes when turned on).
    fn default() -> IngestConfig {
        IngestConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            metrics_listen: None,
            drain_path: "/vercel/logs".into(),
            drain_name: Arc::from("default"),
            drain_secret: None,
            previous_drain_secrets: Arc::from([]),
            drain_headers: Arc::from([]),
            verify_code: None,
            max_body_bytes: 16 << 20,
            max_inflated_bytes: 64 << 20,
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            ack_timeout: Duration::from_secs(20),
            retry_after_secs: 1,
            shutdown_timeout: Duration::from_secs(30),
            drain_delay: Duration::from_secs(5),
            max_unverified_inflations: 2,
            max_held_body_bytes: 16 << 20,
            max_concurrent_decodes: 0,
            tls: None,
            trusted_proxies: Vec::new(),
            // Off: Vercel retries whole batches, which the sinks' batch-digest window already
            // stores once, and consumers de-duplicate on `id`; remembering ids costs memory.
            dedup_ids: 0,
            dedup_window: Duration::from_secs(600),
            v1_traces: false,
        }
    }
}
