//! `[server]` and `[vercel]` into the edge's [`IngestConfig`], and `[pipeline]` into the
//! [`PipelineConfig`] whose byte limit must hold the largest body the edge accepts.

use std::net::SocketAddr;
use std::time::Duration;

use ingest::{IngestConfig, RequiredHeader};
use listener::{SigningKey, Tls, TlsFiles};
use pipeline::PipelineConfig;

use super::raw::{RawPipeline, RawServer, RawTls, RawVercel};
use super::Problems;

const GIB: u64 = 1 << 30;

/// `[server]` and `[vercel]`.
pub(super) fn ingest_config(
    s: &RawServer,
    vercel: RawVercel,
    problems: &mut Problems,
) -> IngestConfig {
    let d = IngestConfig::default();
    let mut ingest = IngestConfig::default();
    if let Some(text) = &s.listen {
        match text.parse::<SocketAddr>() {
            Ok(listen) => ingest.listen = listen,
            Err(_) => problems
                .push(format!("server.listen: {text:?} is not an address like {}", d.listen)),
        }
    }
    if let Some(text) = &s.metrics_listen {
        match text.parse::<SocketAddr>() {
            Ok(addr) => ingest.metrics_listen = Some(addr),
            Err(_) => problems.push(format!(
                "server.metrics_listen: {text:?} is not an address like 127.0.0.1:9090"
            )),
        }
    }
    for (i, text) in s.trusted_proxies.iter().flatten().enumerate() {
        match listener::parse_trusted(text) {
            Ok(net) => ingest.trusted_proxies.push(net),
            Err(e) => problems.push(format!("server.trusted_proxies[{i}]: {e}")),
        }
    }
    if let Some(path) = &s.drain_path {
        if !path.starts_with('/') || path.len() < 2 {
            problems.push(format!("server.drain_path: {path:?} must start with / and name a path"));
        }
        ingest.drain_path = path.clone();
    }
    server_limits(s, &mut ingest, problems);
    ingest.tls = s.tls.as_ref().and_then(|tls| tls_files(tls, problems));
    let allow_unsigned = vercel.allow_unsigned.unwrap_or(false);
    vercel_config(vercel, &mut ingest, problems);
    fail_closed(s.listen.is_some(), allow_unsigned, &mut ingest, problems);
    ingest
}

/// `[server]`'s limits and timeouts, each within its range.
fn server_limits(s: &RawServer, ingest: &mut IngestConfig, problems: &mut Problems) {
    let d = IngestConfig::default();
    ingest.max_body_bytes = problems.range(
        "server.max_body_bytes",
        s.max_body_bytes,
        d.max_body_bytes as u64,
        1024,
        GIB,
    ) as usize;
    ingest.max_inflated_bytes = problems.range(
        "server.max_inflated_bytes",
        s.max_inflated_bytes,
        d.max_inflated_bytes as u64,
        1024,
        2 * GIB,
    ) as usize;
    ingest.max_unverified_inflations = problems.range(
        "server.max_unverified_inflations",
        s.max_unverified_inflations,
        d.max_unverified_inflations as u64,
        1,
        1024,
    ) as usize;
    ingest.max_held_body_bytes = problems.range(
        "server.max_held_body_bytes",
        s.max_held_body_bytes,
        d.max_held_body_bytes as u64,
        1 << 20,
        16 << 30,
    ) as usize;
    ingest.max_concurrent_decodes = problems.range(
        "server.max_concurrent_decodes",
        s.max_concurrent_decodes,
        d.max_concurrent_decodes as u64,
        0,
        1024,
    ) as usize;
    ingest.dedup_ids =
        problems.range("server.dedup_ids", s.dedup_ids, d.dedup_ids as u64, 0, 10_000_000) as usize;
    ingest.dedup_window = Duration::from_secs(problems.range(
        "server.dedup_window_secs",
        s.dedup_window_secs,
        d.dedup_window.as_secs(),
        1,
        86_400,
    ));
    ingest.v1_traces = s.v1_traces.unwrap_or(d.v1_traces);
    ingest.max_connections = problems.range(
        "server.max_connections",
        s.max_connections,
        d.max_connections as u64,
        1,
        1 << 20,
    ) as usize;
    let mut seconds = |key: &str, value: Option<u64>, default: Duration| {
        Duration::from_secs(problems.range(key, value, default.as_secs(), 1, 3600))
    };
    ingest.header_read_timeout = seconds(
        "server.header_read_timeout_secs",
        s.header_read_timeout_secs,
        d.header_read_timeout,
    );
    ingest.body_read_timeout =
        seconds("server.body_read_timeout_secs", s.body_read_timeout_secs, d.body_read_timeout);
    ingest.ack_timeout = seconds("server.ack_timeout_secs", s.ack_timeout_secs, d.ack_timeout);
    ingest.shutdown_timeout =
        seconds("server.shutdown_timeout_secs", s.shutdown_timeout_secs, d.shutdown_timeout);
    // 0 is allowed: stop accepting at once (no load balancer in front).
    ingest.drain_delay = Duration::from_secs(problems.range(
        "server.drain_delay_secs",
        s.drain_delay_secs,
        d.drain_delay.as_secs(),
        0,
        3600,
    ));
    ingest.retry_after_secs = problems.range(
        "server.retry_after_secs",
        s.retry_after_secs,
        u64::from(d.retry_after_secs),
        1,
        3600,
    ) as u32;
}

/// `[server.tls]`: both files, readable now and holding a certificate and its key (so that
/// `check-config` and a reload catch a bad pair before it would serve).
fn tls_files(t: &RawTls, problems: &mut Problems) -> Option<TlsFiles> {
    let default_poll = TlsFiles::DEFAULT_POLL_INTERVAL.as_secs();
    let poll = problems.range(
        "server.tls.poll_interval_secs",
        t.poll_interval_secs,
        default_poll,
        1,
        3600,
    );
    let (Some(cert_path), Some(key_path)) = (&t.cert_path, &t.key_path) else {
        problems.push("server.tls: needs both cert_path and key_path");
        return None;
    };
    let files = TlsFiles {
        cert_path: cert_path.clone(),
        key_path: key_path.clone(),
        poll_interval: Duration::from_secs(poll),
    };
    match Tls::load(files.clone()) {
        Ok(_) => Some(files),
        Err(e) => {
            problems.push(format!("server.tls: {e}"));
            None
        }
    }
}

/// Without a drain secret the default drain accepts unsigned deliveries: it then listens on
/// loopback unless an address is configured, and a non-loopback address is refused unless
/// `vercel.allow_unsigned` says it is meant.
fn fail_closed(
    explicit_listen: bool,
    allow_unsigned: bool,
    ingest: &mut IngestConfig,
    problems: &mut Problems,
) {
    if ingest.drain_secret.is_some() {
        return;
    }
    if !explicit_listen {
        ingest.listen = IngestConfig::UNSIGNED_LISTEN;
    }
    if !ingest.listen.ip().is_loopback() && !allow_unsigned {
        problems.push(format!(
            "vercel.drain_secret: required to listen on {} (server.listen), which is not a \
             loopback address: set it (or SPILLWAY_DRAIN_SECRET), listen on 127.0.0.1, or set \
             vercel.allow_unsigned = true to accept unsigned deliveries there on purpose",
            ingest.listen
        ));
    }
}

/// `[vercel]`: the default drain's secret, required headers and verify code.
fn vercel_config(vercel: RawVercel, ingest: &mut IngestConfig, problems: &mut Problems) {
    match vercel.drain_secret {
        Some(secret) if secret.trim().is_empty() => problems
            .push("vercel.drain_secret: is empty (leave it unset to accept unsigned deliveries)"),
        Some(secret) => ingest.drain_secret = Some(SigningKey::new(secret)),
        None => {}
    }
    let previous = vercel.previous_drain_secrets.unwrap_or_default();
    if !previous.is_empty() && ingest.drain_secret.is_none() {
        problems.push("vercel.previous_drain_secrets: set only beside vercel.drain_secret");
    }
    if previous.iter().any(|s| s.trim().is_empty()) {
        problems.push("vercel.previous_drain_secrets: holds an empty secret");
    }
    ingest.previous_drain_secrets = previous.into_iter().map(SigningKey::new).collect();
    let mut required = Vec::new();
    for (i, text) in vercel.required_headers.iter().flatten().enumerate() {
        match RequiredHeader::parse(text) {
            Ok(header) => required.push(header),
            Err(e) => problems.push(format!("vercel.required_headers[{i}]: {e}")),
        }
    }
    ingest.drain_headers = required.into();
    if let Some(code) = vercel.verify_code {
        if code.is_empty() || !code.bytes().all(|b| b.is_ascii_graphic()) {
            problems.push("vercel.verify_code: must be printable ASCII without spaces");
        }
        ingest.verify_code = Some(code);
    }
}

/// `[pipeline]`.
pub(super) fn pipeline_config(
    p: &RawPipeline,
    ingest: &IngestConfig,
    problems: &mut Problems,
) -> PipelineConfig {
    let d = PipelineConfig::default();
    let pipeline = PipelineConfig {
        max_in_flight_batches: problems.range(
            "pipeline.max_in_flight_batches",
            p.max_in_flight_batches,
            d.max_in_flight_batches as u64,
            1,
            1 << 16,
        ) as usize,
        max_in_flight_bytes: problems.range(
            "pipeline.max_in_flight_bytes",
            p.max_in_flight_bytes,
            d.max_in_flight_bytes as u64,
            1 << 20,
            64 * GIB,
        ) as usize,
        max_group_batches: problems.range(
            "pipeline.max_group_batches",
            p.max_group_batches,
            d.max_group_batches as u64,
            1,
            4096,
        ) as usize,
        ..d
    };
    if pipeline.max_in_flight_bytes < ingest.max_inflated_bytes {
        problems.push(format!(
            "pipeline.max_in_flight_bytes ({}) must be at least server.max_inflated_bytes ({})",
            pipeline.max_in_flight_bytes, ingest.max_inflated_bytes
        ));
    }
    pipeline
}
