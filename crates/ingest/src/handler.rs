//! One request: routing, the delivery protocol, and the response.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use record::{Batch, DataType, Dispatch, Reject, RejectReason};
use tokio::sync::OwnedSemaphorePermit;

use crate::decode::{decode_as, OtlpEncoding, PaddedBody};
use crate::drains::{check_headers, DrainDirectory, RequiredHeader};
use crate::gate::{authenticate_raw, probe_of, unsigned_probe, Probe, Signed};
use crate::hold::{declared_length, read_body};
use crate::inflate::gunzip;
use crate::live::{verifies_any, Live, LiveCell};
use crate::metrics::EdgeStage;
use crate::metrics_server::metrics_response;
use crate::traces::{self, OpenedTraces};
use listener::SigningKey;

use crate::{IngestConfig, IngestError, IngestMetrics};

/// Renders the process's metrics in Prometheus text format.
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

pub(crate) struct State {
    pub(crate) config: IngestConfig,
    pub(crate) dispatch: Arc<dyn Dispatch>,
    pub(crate) metrics: IngestMetrics,
    pub(crate) render_metrics: RenderMetrics,
    /// What `SIGHUP` can change: read once per request.
    pub(crate) live: Arc<LiveCell>,
    /// The previous secrets of a drain that has none (an allocation made once, not per request).
    pub(crate) no_secrets: Arc<[SigningKey]>,
    pub(crate) drains: Option<Arc<dyn DrainDirectory>>,
    /// Places among the gzip bodies inflated before their signature is known to match.
    pub(crate) unverified: Arc<tokio::sync::Semaphore>,
    /// The request-body bytes (KiB) the edge may hold at once (`max_held_body_bytes`).
    pub(crate) held: crate::hold::Held,
    /// The inflated bytes of the gzip bodies being decoded: a budget of the same size apart.
    pub(crate) inflated: crate::hold::Held,
    /// Places among the large bodies decoded at once (`max_concurrent_decodes`).
    pub(crate) decodes: Arc<tokio::sync::Semaphore>,
    /// Set at the stop signal: `/readyz` answers `503` from then on, deliveries are still served.
    pub(crate) draining: AtomicBool,
    /// Record ids acknowledged recently (`dedup_ids`), when turned on.
    pub(crate) seen: Option<crate::seen::SeenIds>,
}

/// Which drain a request is for: its name in batches, the secret it must be signed with and
/// the headers it must carry.
struct Target {
    name: Arc<str>,
    secret: Option<SigningKey>,
    /// Also accepted, after `secret` (a rotation of the default drain's).
    previous: Arc<[SigningKey]>,
    headers: Arc<[RequiredHeader]>,
    /// What the path serves: the drain's records must be of it.
    data_type: DataType,
    /// The live configuration this request is served under.
    live: Arc<Live>,
}

const SIGNATURE: &str = "x-vercel-signature";
const VERIFY: &str = "x-vercel-verify";

#[derive(Clone, Copy)]
enum Encoding {
    Identity,
    Gzip,
}

pub(crate) async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let live = state.live.load();
    let client = req.extensions().get::<listener::Peer>().map(|peer| {
        listener::client_addr(peer.0.ip(), req.headers(), &state.config.trusted_proxies)
    });
    // Failures on a trace path are answered as OTLP/HTTP wants them.
    let otlp = match served(req.uri().path(), &state.config.drain_path, state.config.v1_traces) {
        Some(Served::Default(DataType::Traces) | Served::Registered(DataType::Traces, _)) => {
            Some(traces::declared(req.headers()).ok().flatten().unwrap_or(OtlpEncoding::Protobuf))
        }
        _ => None,
    };
    let mut response = match route(&state, Arc::clone(&live), req).await {
        Ok(response) => response,
        Err(error) => error_response(&state, &error, client, otlp),
    };
    if response.status().is_success() {
        if let Some(code) = &live.verify {
            response.headers_mut().insert(VERIFY, code.clone());
        }
    }
    state.metrics.request(response.status(), started.elapsed().as_secs_f64());
    response
}

async fn route(
    state: &Arc<State>,
    live: Arc<Live>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, IngestError> {
    let path = req.uri().path();
    let target = match served(path, &state.config.drain_path, state.config.v1_traces) {
        Some(Served::Default(data_type)) => Some(Target {
            name: Arc::clone(&state.config.drain_name),
            secret: live.drain_secret.clone(),
            previous: Arc::clone(&live.previous_secrets),
            headers: Arc::clone(&live.drain_headers),
            data_type,
            live,
        }),
        Some(Served::Registered(data_type, key)) => {
            let found = state.drains.as_ref().and_then(|d| d.lookup(key));
            // A drain is served at its own type's path only: a key is no credential for
            // another type's records.
            let credentials =
                found.filter(|c| c.data_type == data_type).ok_or(IngestError::UnknownDrain)?;
            Some(Target {
                name: credentials.name,
                secret: Some(credentials.secret),
                previous: Arc::clone(&state.no_secrets),
                headers: credentials.headers,
                data_type,
                live,
            })
        }
        None => None,
    };
    if let Some(target) = target {
        return match *req.method() {
            Method::POST => deliver(Arc::clone(state), req, target).await,
            Method::GET | Method::HEAD => Ok(json(StatusCode::OK, r#"{"status":"ok"}"#.into())),
            _ => Err(IngestError::MethodNotAllowed),
        };
    }
    match (req.method(), path) {
        (&Method::GET, "/healthz") => Ok(json(StatusCode::OK, r#"{"status":"ok"}"#.into())),
        (&Method::GET, "/readyz")
            if state.dispatch.ready() && !state.draining.load(Ordering::Relaxed) =>
        {
            let body = match &state.drains {
                Some(drains) if drains.degraded() => r#"{"status":"ready","store":"degraded"}"#,
                Some(_) => r#"{"status":"ready","store":"ok"}"#,
                None => r#"{"status":"ready"}"#,
            };
            Ok(json(StatusCode::OK, body.into()))
        }
        (&Method::GET, "/readyz") => Err(IngestError::NotReady),
        // Served by a listener of its own when `metrics_listen` is set.
        (&Method::GET, "/metrics") if state.config.metrics_listen.is_none() => {
            Ok(metrics_response(&state.render_metrics))
        }
        _ => Err(IngestError::NotFound),
    }
}

/// Identity bodies larger than this are opened (verified, decoded) on the blocking pool, so
/// that a big delivery never holds a runtime worker for milliseconds. Gzip bodies are always
/// opened there: inflating is never done on a runtime thread.
const INLINE_BYTES: usize = 256 * 1024;

/// A delivery: read, authenticate, inflate, decode, hand off, wait for the sinks, answer.
async fn deliver(
    state: Arc<State>,
    req: Request<Incoming>,
    target: Target,
) -> Result<Response<Full<Bytes>>, IngestError> {
    let config = Arc::clone(&target.live);
    let encoding = content_encoding(req.headers())?;
    if target.data_type == DataType::Traces {
        traces::declared(req.headers())?;
    }
    let declared = declared_length(req.headers());
    if declared.is_some_and(|n| n > config.max_body_bytes) {
        return Err(IngestError::BodyTooLarge { limit: config.max_body_bytes });
    }
    // Refuse before reading when the pipeline is full: a fast 503 instead of a stalled socket.
    state.dispatch.admissible(declared.unwrap_or(0))?;
    // Room for the body before reading it, waited for up to the body's read time; the read then
    // has that time again.
    let (wait, max) = (config.body_read_timeout, config.max_body_bytes);
    let mut held = state.held.room_for(declared, max, wait).await?;
    let (parts, body) = req.into_parts();
    let reading = Instant::now();
    let deadline = tokio::time::Instant::from_std(reading + wait);
    let read = read_body(body, (declared, max), (&state.held, &mut held), deadline);
    let raw =
        tokio::time::timeout_at(deadline, read).await.map_err(|_| IngestError::BodyTimeout)??;
    state.metrics.stage(EdgeStage::Read, reading.elapsed().as_secs_f64());
    state.metrics.received(raw.len());
    let signature = parts.headers.get(SIGNATURE).map(|v| v.as_bytes().to_vec());
    let headers_checked = check_headers(&target.headers, &parts.headers);
    let content_type = parts.headers.get(CONTENT_TYPE).cloned();
    let gzip = matches!(encoding, Encoding::Gzip);

    // Authentication before any inflating or decoding.
    let signed = match (&target.secret, signature.as_deref()) {
        (None, _) => Signed::NotRequired,
        (Some(_), None) => {
            if let Some(found) = unsigned_probe(raw.as_slice(), gzip) {
                return Ok(probe(&state, target.data_type, content_type.as_ref(), found));
            }
            headers_checked?;
            return Err(IngestError::MissingSignature);
        }
        // Checked where the body is opened, first.
        (Some(_), Some(_)) => Signed::Pending,
    };
    // What the headers alone decide is refused before the body is inflated or even hashed: a
    // required header missing, or a signature that is not 40 hex digits (it cannot match). A
    // probe is still a probe, as where the body is opened.
    let malformed = signed == Signed::Pending
        && signature.as_deref().and_then(listener::signature_bytes).is_none();
    if (malformed || headers_checked.is_err()) && unsigned_probe(raw.as_slice(), gzip).is_none() {
        headers_checked?;
        return Err(IngestError::BadSignature);
    }
    let data_type = target.data_type;
    // Never a gzip body here: opening one may wait for room (`Held::block_for`).
    let opened = if !gzip && raw.len() <= INLINE_BYTES {
        let (signed, _permit) = authenticate(&state, &target, (&raw, gzip), signed, &signature)?;
        let auth = (signed, signature.as_deref());
        open_delivery(&state, &target, (raw, gzip, content_type), auth, headers_checked)?
    } else {
        let slot = Arc::clone(&state.decodes).acquire_owned().await;
        let state = Arc::clone(&state);
        let spawned = Instant::now();
        // One hop to the blocking pool: the body's signature is checked there, then it is
        // opened.
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            state.metrics.stage(EdgeStage::BlockingPool, spawned.elapsed().as_secs_f64());
            let (signed, _permit) =
                authenticate(&state, &target, (&raw, gzip), signed, &signature)?;
            let auth = (signed, signature.as_deref());
            open_delivery(&state, &target, (raw, gzip, content_type), auth, headers_checked)
        })
        .await
        .map_err(|_| IngestError::Overloaded)??
    };
    match opened {
        Opened::Probe(found, content_type) => {
            Ok(probe(&state, data_type, content_type.as_ref(), found))
        }
        Opened::Batch(batch) => store(&state, batch).await,
        Opened::NoJson(batch) => {
            // Kept in the dead-letter files first: a 400 loses nothing an operator may need.
            submit_and_wait(&state, batch).await?;
            Err(IngestError::NoRecords)
        }
        Opened::Traces(OpenedTraces::Batch(mut batch, mut answer)) => {
            traces::set_aside_unfit(&*state.dispatch, &mut batch, &mut answer);
            if traces::has_content(&batch) {
                submit_and_wait(&state, batch).await?;
            }
            Ok(traces::stored(&answer))
        }
        Opened::Traces(OpenedTraces::Invalid(batch, why)) => {
            submit_and_wait(&state, batch).await?;
            Err(IngestError::InvalidOtlp(why))
        }
    }
}

/// [`authenticate_raw`] for `target`'s keys and the edge's places among unverified inflations.
fn authenticate(
    state: &State,
    target: &Target,
    (raw, gzip): (&PaddedBody, bool),
    signed: Signed,
    signature: &Option<Vec<u8>>,
) -> Result<(Signed, Option<OwnedSemaphorePermit>), IngestError> {
    let keys = target.secret.as_ref().map(|secret| (secret, &target.previous));
    let found = (raw.as_slice(), signature.as_deref());
    authenticate_raw((&state.metrics, &state.unverified), keys, found, (signed, gzip))
}

/// What a delivery's body turned out to be.
enum Opened {
    /// Vercel's endpoint verification, with the request's `Content-Type`: nothing to store.
    Probe(Probe, Option<HeaderValue>),
    /// Records (and perhaps rejects) to store, answered `200` once stored.
    Batch(Batch),
    /// No JSON at all: one reject holding the body's first bytes, answered `400` once stored.
    NoJson(Batch),
    /// A trace request: resources to store, or a request refused whole.
    Traces(OpenedTraces),
}

/// The most of a body with no JSON at all that is kept as its dead letter.
const NO_JSON_KEPT_BYTES: usize = 64 * 1024;

/// Endpoint verification: answered whether signed or not, and nothing is stored.
/// The answer to Vercel's probe: as the path's data type answers a delivery of nothing.
fn probe(
    state: &State,
    data_type: DataType,
    content_type: Option<&HeaderValue>,
    found: Probe,
) -> Response<Full<Bytes>> {
    state.metrics.probe();
    match data_type {
        DataType::Traces => traces::probed(content_type, found),
        _ => json(StatusCode::OK, r#"{"accepted":0,"dead_lettered":0}"#.into()),
    }
}

/// Hands `batch` to the pipeline and answers once every sink holding part of it confirmed.
/// With `dedup_ids` on, records whose id was acknowledged recently are left out and counted
/// (`"duplicates"` in the answer); the ids kept are remembered once the batch is acknowledged.
async fn store(state: &State, mut batch: Batch) -> Result<Response<Full<Bytes>>, IngestError> {
    let data_type = batch.data_type;
    let seen = state.seen.as_ref().filter(|_| crate::seen::has_ids(data_type));
    let (keys, duplicates) = seen.map(|s| s.drop_seen(&mut batch)).unwrap_or_default();
    state.dispatch.set_aside_unfit(&mut batch);
    let (accepted, dead_lettered) = (batch.records.len(), batch.rejects.len());
    // A batch of nothing but duplicates has nothing left to store.
    if accepted + dead_lettered > 0 || duplicates == 0 {
        submit_and_wait(state, batch).await?;
    }
    let mut answer = format!(r#"{{"accepted":{accepted},"dead_lettered":{dead_lettered}"#);
    if let Some(seen) = seen {
        seen.remember(keys);
        state.metrics.duplicates(data_type, duplicates);
        if duplicates > 0 {
            answer.push_str(&format!(r#","duplicates":{duplicates}"#));
        }
    }
    answer.push('}');
    Ok(json(StatusCode::OK, answer))
}

/// Hands `batch` to the pipeline and waits until every sink holding part of it confirmed.
async fn submit_and_wait(state: &State, batch: Batch) -> Result<(), IngestError> {
    let accepted = batch.records.len();
    let started = Instant::now();
    let rejected: Vec<RejectReason> = batch.rejects.iter().map(|r| r.reason).collect();
    let waiter = state.dispatch.try_submit(batch)?;
    tokio::time::timeout(state.config.ack_timeout, waiter.wait())
        .await
        .map_err(|_| IngestError::AckTimeout)?
        .map_err(IngestError::SinkUnavailable)?;
    state.metrics.stored(accepted, &rejected, started.elapsed().as_secs_f64());
    Ok(())
}

/// The CPU part of a delivery: inflate, finish verifying, decode. `auth` is how far the signature was checked before (over the raw bytes) and the
/// signature itself; `headers_checked` is the outcome of the drain's required-header check,
/// which, like the signature, a probe need not pass.
fn open_delivery(
    state: &State,
    target: &Target,
    (raw, gzip, content_type): (PaddedBody, bool, Option<HeaderValue>),
    (signed, signature): (Signed, Option<&[u8]>),
    headers_checked: Result<(), IngestError>,
) -> Result<Opened, IngestError> {
    let started = Instant::now();
    let opened =
        open_body(state, target, (raw, gzip, content_type), (signed, signature), headers_checked);
    state.metrics.stage(EdgeStage::Decode, started.elapsed().as_secs_f64());
    opened
}

/// [`open_delivery`]'s work, timed there.
fn open_body(
    state: &State,
    target: &Target,
    (raw, gzip, content_type): (PaddedBody, bool, Option<HeaderValue>),
    (signed, signature): (Signed, Option<&[u8]>),
    headers_checked: Result<(), IngestError>,
) -> Result<Opened, IngestError> {
    let body = if gzip {
        let mut inflated = gunzip(raw.as_slice(), target.live.max_inflated_bytes)?;
        drop(raw);
        inflated.shrink_to_fit();
        state.metrics.inflated(inflated.len());
        inflated
    } else {
        raw
    };
    if let Some(found) = probe_of(body.as_slice()) {
        return Ok(Opened::Probe(found, content_type));
    }
    headers_checked?;
    let mut verified = None;
    if let Some(secret) = &target.secret {
        let sig = signature.ok_or(IngestError::MissingSignature)?;
        if signed == Signed::Raw {
            state.metrics.signature("raw");
        } else if gzip && verifies_any(secret, &target.previous, body.as_slice(), sig) {
            state.metrics.signature("inflated");
        } else {
            return Err(IngestError::BadSignature);
        }
        verified = listener::signature_bytes(sig);
    }
    // A gzip body's inflated bytes, counted once it is known to be signed and until the end of
    // the decode (the batch then counts in the pipeline's in-flight bytes). Gzip bodies are
    // opened on the blocking pool, where this may wait (see `hold`).
    let _inflated_held = match gzip {
        true => Some(state.inflated.block_for(body.capacity(), target.live.body_read_timeout)?),
        false => None,
    };
    let pinned_bytes = body.len();
    let digest =
        crate::digest::batch_digest(&target.name, target.data_type, body.as_slice(), verified);
    let mut batch = Batch {
        drain: Arc::clone(&target.name),
        data_type: target.data_type,
        received_at_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        records: Vec::new(),
        body: Bytes::new(),
        rejects: Vec::new(),
        pinned_bytes,
        digest,
    };
    if target.data_type == DataType::Traces {
        return Ok(Opened::Traces(traces::open(batch, body, content_type.as_ref())));
    }
    let decoded = decode_as(body, target.data_type);
    let has_json = decoded.has_json();
    (batch.records, batch.body, batch.rejects) = (decoded.records, decoded.body, decoded.rejects);
    if !has_json {
        keep_head_only(&mut batch);
        return Ok(Opened::NoJson(batch));
    }
    Ok(Opened::Batch(batch))
}

/// Makes a batch with no JSON at all one reject holding its body's first
/// [`NO_JSON_KEPT_BYTES`] (copied, so the whole body need not stay in memory meanwhile).
fn keep_head_only(batch: &mut Batch) {
    let whole = batch.body.len();
    let kept = Bytes::copy_from_slice(&batch.body[..whole.min(NO_JSON_KEPT_BYTES)]);
    let reason =
        if whole > kept.len() { RejectReason::NoJsonTruncated } else { RejectReason::NoJson };
    batch.records.clear();
    batch.rejects = vec![Reject { raw: kept.clone(), reason, offset: 0 }];
    batch.pinned_bytes = kept.len();
    batch.body = kept;
}

/// What a delivery path serves.
#[derive(Debug, PartialEq, Eq)]
enum Served<'a> {
    /// The default drain (the configured secret), for this type.
    Default(DataType),
    /// The registered drain of this key, if it is of this type.
    Registered(DataType, &'a str),
}

/// The JSON types besides logs, each served at `/vercel/<slug>` (the default drain) and
/// `/vercel/<slug>/<key>` (registered drains); traces (OTLP/HTTP) too.
const SLUG_TYPES: [DataType; 4] =
    [DataType::Traces, DataType::SpeedInsights, DataType::Analytics, DataType::AuditLog];

/// What `path` serves: logs at the drain path (`/vercel/logs`) and `<drain path>/<key>`, the
/// other types at `/vercel/<slug>` and `/vercel/<slug>/<key>`, and the default trace drain at
/// `/v1/traces` too when `v1_traces` is set.
fn served<'a>(path: &'a str, drain_path: &str, v1_traces: bool) -> Option<Served<'a>> {
    if path == drain_path {
        return Some(Served::Default(DataType::Logs));
    }
    if v1_traces && path == traces::V1_TRACES {
        return Some(Served::Default(DataType::Traces));
    }
    if let Some(key) = drain_key(path, drain_path) {
        return Some(Served::Registered(DataType::Logs, key));
    }
    let rest = path.strip_prefix("/vercel/")?;
    let (slug, key) = match rest.split_once('/') {
        Some((slug, key)) => (slug, Some(key)),
        None => (rest, None),
    };
    let data_type = SLUG_TYPES.into_iter().find(|t| t.slug() == slug)?;
    match key {
        None => Some(Served::Default(data_type)),
        Some(key) if !key.is_empty() && !key.contains('/') => {
            Some(Served::Registered(data_type, key))
        }
        Some(_) => None,
    }
}

/// The key of a per-drain path `<drain path>/<key>` (one segment, not empty).
fn drain_key<'a>(path: &'a str, drain_path: &str) -> Option<&'a str> {
    let key = path.strip_prefix(drain_path)?.strip_prefix('/')?;
    (!key.is_empty() && !key.contains('/')).then_some(key)
}

fn content_encoding(headers: &HeaderMap) -> Result<Encoding, IngestError> {
    let Some(value) = headers.get(CONTENT_ENCODING) else { return Ok(Encoding::Identity) };
    let text = value.to_str().unwrap_or("").trim();
    if text.eq_ignore_ascii_case("gzip") || text.eq_ignore_ascii_case("x-gzip") {
        Ok(Encoding::Gzip)
    } else if text.is_empty() || text.eq_ignore_ascii_case("identity") {
        Ok(Encoding::Identity)
    } else {
        let shown: String = text.chars().take(32).collect();
        Err(IngestError::UnsupportedEncoding(shown))
    }
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn error_response(
    state: &State,
    error: &IngestError,
    client: Option<std::net::IpAddr>,
    otlp: Option<OtlpEncoding>,
) -> Response<Full<Bytes>> {
    let mut response = match otlp {
        Some(encoding) => traces::failure(encoding, error),
        None => listener::json_error(error.status(), error.code(), &error.to_string()),
    };
    if error.is_retryable() {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(state.config.retry_after_secs));
    }
    if matches!(error, IngestError::MethodNotAllowed) {
        response.headers_mut().insert(ALLOW, HeaderValue::from_static("POST, GET, HEAD"));
    }
    let client = client.map(tracing::field::display);
    if matches!(error, IngestError::SinkUnavailable(_) | IngestError::AckTimeout) {
        tracing::warn!(code = error.code(), error = %error, client, "batch not stored; answered 503");
    } else {
        tracing::debug!(code = error.code(), status = error.status().as_u16(), client, "refused");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served_at<'a>(path: &'a str, drain_path: &str) -> Option<Served<'a>> {
        served(path, drain_path, false)
    }

    #[test]
    fn each_type_has_its_paths_and_v1_traces_only_when_set() {
        let drain = "/vercel/logs";
        assert_eq!(served_at("/vercel/logs", drain), Some(Served::Default(DataType::Logs)));
        assert_eq!(
            served_at("/vercel/logs/k1", drain),
            Some(Served::Registered(DataType::Logs, "k1"))
        );
        for t in SLUG_TYPES {
            let path = format!("/vercel/{}", t.slug());
            assert_eq!(served_at(&path, drain), Some(Served::Default(t)));
            let keyed = format!("{path}/k1");
            assert_eq!(served_at(&keyed, drain), Some(Served::Registered(t, "k1")));
            assert_eq!(served_at(&format!("{path}/"), drain), None);
            assert_eq!(served_at(&format!("{path}/k1/x"), drain), None);
        }
        for none in ["/v1/traces", "/vercel/speed_insights", "/vercel", "/vercel/"] {
            assert_eq!(served_at(none, drain), None, "{none}");
        }
        assert_eq!(served("/v1/traces", drain, true), Some(Served::Default(DataType::Traces)));
        assert_eq!(served("/v1/traces/k1", drain, true), None);
        // A configured drain path moves logs only.
        assert_eq!(served_at("/in", "/in"), Some(Served::Default(DataType::Logs)));
        assert_eq!(served_at("/vercel/logs", "/in"), None);
        assert_eq!(
            served_at("/vercel/analytics", "/in"),
            Some(Served::Default(DataType::Analytics))
        );
    }
}
