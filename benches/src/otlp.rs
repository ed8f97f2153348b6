//! Seeded OTLP trace batches shaped like a Vercel trace drain's: resources carrying
//! `vercel.projectId`, `vercel.deploymentId` and `service.name`, of 10-50 spans each (a Next.js
//! server span per request with render and `fetch` children), about 300-500 bytes per span
//! encoded. Shared by the load generator's `--type traces` and the OTLP decode bench.
//!
//! Each request the load generator sends must be distinct, so its nonce is one more resource:
//! appended to an encoded request as one more `resource_spans` field (protobuf repeated fields
//! concatenate), or closing the `resourceSpans` array and the object of OTLP/JSON cut open.
//!
//! ```
//! use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
//! use prost::Message as _;
//! use spillway_benches::{otlp_request, OtlpEncoding};
//!
//! let request = otlp_request(7, 2, 20);
//! let mut body = OtlpEncoding::Protobuf.encode_open(&request);
//! body.extend(OtlpEncoding::Protobuf.nonce(1));
//! let decoded = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
//! assert_eq!(decoded.resource_spans.len(), 3);
//! ```

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{hex, pick, REGIONS};

const ROUTES: [&str; 6] =
    ["/", "/api/orders", "/api/users/[id]", "/blog/[slug]", "/api/cart", "/products/[sku]"];
const METHODS: [&str; 4] = ["GET", "GET", "POST", "PUT"];
const UPSTREAMS: [&str; 4] =
    ["api.stripe.com", "db.example.internal", "cms.example.com", "auth.example.com"];
const START_NS: u64 = 1_700_000_000_000_000_000;

/// `resources` resources of exactly `spans_per_resource` spans each, from `seed`.
pub fn otlp_request(
    seed: u64,
    resources: usize,
    spans_per_resource: usize,
) -> ExportTraceServiceRequest {
    let mut rng = StdRng::seed_from_u64(seed);
    let resource_spans = (0..resources).map(|_| resource(&mut rng, spans_per_resource)).collect();
    ExportTraceServiceRequest { resource_spans }
}

/// How an OTLP request is encoded: the two `Content-Type`s an OTLP/HTTP receiver takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpEncoding {
    /// `application/x-protobuf`: the `ExportTraceServiceRequest` message.
    Protobuf,
    /// `application/json`: OTLP/JSON (hex ids; nanoseconds and 64-bit integers as strings).
    Json,
}

impl OtlpEncoding {
    /// The `Content-Type` of bodies of this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            OtlpEncoding::Protobuf => "application/x-protobuf",
            OtlpEncoding::Json => "application/json",
        }
    }

    /// `request` as a body.
    pub fn encode(self, request: &ExportTraceServiceRequest) -> Vec<u8> {
        match self {
            OtlpEncoding::Protobuf => request.encode_to_vec(),
            OtlpEncoding::Json => {
                serde_json::to_vec(request).expect("OTLP messages serialize to JSON")
            }
        }
    }

    /// `request` as a body that [`OtlpEncoding::nonce`] completes: the protobuf as is, the
    /// OTLP/JSON less its closing `]}`. `request` must hold a resource.
    pub fn encode_open(self, request: &ExportTraceServiceRequest) -> Vec<u8> {
        assert!(!request.resource_spans.is_empty(), "a request to append a nonce to");
        let mut body = self.encode(request);
        if self == OtlpEncoding::Json {
            assert!(body.ends_with(b"]}"), "resourceSpans is the only, so the last, field");
            body.truncate(body.len() - 2);
        }
        body
    }

    /// The nonce for sequence number `seq`, a resource with one span whose ids carry `seq`:
    /// as protobuf, one more `resource_spans` field (tag 1, wire type 2: byte 0x0a, then the
    /// length-delimited message); as OTLP/JSON, `,` the resource `]}`.
    pub fn nonce(self, seq: u64) -> Vec<u8> {
        let resource = nonce_resource(seq);
        match self {
            OtlpEncoding::Protobuf => {
                let mut field = vec![0x0a];
                field.extend(resource.encode_length_delimited_to_vec());
                field
            }
            OtlpEncoding::Json => {
                let mut out = b",".to_vec();
                out.extend(serde_json::to_vec(&resource).expect("OTLP messages serialize"));
                out.extend_from_slice(b"]}");
                out
            }
        }
    }

    /// The bytes `resource` adds to a request in this encoding.
    fn resource_len(self, resource: &ResourceSpans) -> usize {
        match self {
            OtlpEncoding::Protobuf => resource.encoded_len() + 4, // its field tag and length
            OtlpEncoding::Json => serde_json::to_vec(resource).map_or(0, |v| v.len() + 1),
        }
    }
}

/// At least `spans` spans from `seed` in resources of 10-50 spans, cut into requests of about
/// `target_bytes` in `encoding` (a request is closed once it reaches the target).
pub fn otlp_batches(
    seed: u64,
    spans: usize,
    target_bytes: usize,
    encoding: OtlpEncoding,
) -> Vec<ExportTraceServiceRequest> {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut batches, mut current, mut size, mut made) = (Vec::new(), Vec::new(), 0, 0);
    while made < spans {
        let count = rng.random_range(10..=50);
        let r = resource(&mut rng, count);
        size += encoding.resource_len(&r);
        made += count;
        current.push(r);
        if size >= target_bytes {
            batches
                .push(ExportTraceServiceRequest { resource_spans: std::mem::take(&mut current) });
            size = 0;
        }
    }
    if !current.is_empty() {
        batches.push(ExportTraceServiceRequest { resource_spans: current });
    }
    batches
}

/// The spans in `request`.
pub fn otlp_span_count(request: &ExportTraceServiceRequest) -> usize {
    let scopes = request.resource_spans.iter().flat_map(|r| &r.scope_spans);
    scopes.map(|s| s.spans.len()).sum()
}

fn nonce_resource(seq: u64) -> ResourceSpans {
    let mut trace_id = b"loadgen\x01".to_vec();
    trace_id.extend(seq.to_be_bytes());
    let span = Span {
        trace_id,
        span_id: (seq | 1 << 63).to_be_bytes().to_vec(), // never all zero
        name: "loadgen nonce".to_owned(),
        kind: SpanKind::Internal as i32,
        start_time_unix_nano: START_NS,
        end_time_unix_nano: START_NS + 1_000,
        ..Default::default()
    };
    ResourceSpans {
        resource: Some(vercel_resource("prj_loadgen", "dpl_loadgen", "loadgen")),
        scope_spans: vec![ScopeSpans {
            scope: Some(scope("loadgen")),
            spans: vec![span],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn vercel_resource(project: &str, deployment: &str, service: &str) -> Resource {
    Resource {
        attributes: vec![
            string("service.name", service),
            string("vercel.projectId", project),
            string("vercel.deploymentId", deployment),
            string("telemetry.sdk.language", "nodejs"),
            string("telemetry.sdk.name", "opentelemetry"),
            string("telemetry.sdk.version", "1.25.1"),
        ],
        ..Default::default()
    }
}

fn scope(name: &str) -> InstrumentationScope {
    InstrumentationScope {
        name: name.to_owned(),
        version: "1.10.0".to_owned(),
        ..Default::default()
    }
}

/// One deployment's resource with `spans` spans: whole requests (a server span and its
/// children), the last one cut short to make the count exact.
fn resource(rng: &mut StdRng, spans: usize) -> ResourceSpans {
    let project = format!("prj_{}", hex(rng, 24));
    let deployment = format!("dpl_{}", hex(rng, 28));
    let service = format!("app-{}", hex(rng, 6));
    let (mut next, mut fetch) = (Vec::with_capacity(spans), Vec::new());
    let mut start = START_NS + rng.random_range(0..3_600_000_000_000u64);
    while next.len() + fetch.len() < spans {
        let children = rng.random_range(2..8).min(spans - next.len() - fetch.len() - 1);
        request_spans(rng, start, children, (&mut next, &mut fetch));
        start += rng.random_range(1_000_000..500_000_000);
    }
    let region = pick(rng, &REGIONS);
    let mut resource = vercel_resource(&project, &deployment, &service);
    resource.attributes.push(string("vercel.region", region));
    ResourceSpans {
        resource: Some(resource),
        scope_spans: vec![
            ScopeSpans { scope: Some(scope("next.js")), spans: next, ..Default::default() },
            ScopeSpans {
                scope: Some(scope("@vercel/otel/fetch")),
                spans: fetch,
                ..Default::default()
            },
        ]
        .into_iter()
        .filter(|s| !s.spans.is_empty())
        .collect(),
        ..Default::default()
    }
}

/// One request's trace starting at `start` (ns): its server span into `next`, then `children`
/// spans, `fetch` calls into `fetch` and render steps into `next`.
fn request_spans(
    rng: &mut StdRng,
    start: u64,
    children: usize,
    (next, fetch): (&mut Vec<Span>, &mut Vec<Span>),
) {
    let trace_id: Vec<u8> = (0..16).map(|_| rng.random()).collect();
    let root_id: [u8; 8] = rng.random();
    let method = pick(rng, &METHODS);
    let route = pick(rng, &ROUTES);
    let status = [200, 200, 200, 201, 304, 404, 500][rng.random_range(0..7)];
    let duration = rng.random_range(2_000_000..900_000_000u64);
    let target = route.replace("[id]", &hex(rng, 8)).replace("[slug]", &hex(rng, 12));
    let mut root = span(&trace_id, root_id, None, format!("{method} {route}"));
    root.kind = SpanKind::Server as i32;
    (root.start_time_unix_nano, root.end_time_unix_nano) = (start, start + duration);
    root.attributes = vec![
        string("http.method", method),
        string("http.route", route),
        string("http.target", &format!("{target}?ref={}", hex(rng, 6))),
        int("http.status_code", status),
        string("net.host.name", "my-app.vercel.app"),
        string("http.scheme", "https"),
        string("http.flavor", "1.1"),
        string("next.span_type", "BaseServer.handleRequest"),
        string("vercel.request_id", &format!("{}::{}", pick(rng, &REGIONS), hex(rng, 20))),
        string("http.user_agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Safari/605.1"),
    ];
    root.status = Some(status_of(status));
    next.push(root);
    for i in 0..children {
        let at = start + duration / (children as u64 + 1) * (i as u64 + 1);
        let mut child = span(&trace_id, rng.random(), Some(root_id), String::new());
        (child.start_time_unix_nano, child.end_time_unix_nano) = (at, at + duration / 8);
        if rng.random_bool(0.5) {
            fetch_span(rng, &mut child, status);
            fetch.push(child);
        } else {
            child.kind = SpanKind::Internal as i32;
            child.name = format!("render route (app) {route}");
            child.attributes = vec![
                string("next.span_type", "AppRender.getBodyResult"),
                string("next.span_name", &child.name),
                string("next.route", route),
                string("operation.name", "next_js.AppRender.getBodyResult"),
                string("resource.name", route),
            ];
            next.push(child);
        }
    }
}

/// Makes `span` an outgoing `fetch`, failing with an exception event when the request failed.
fn fetch_span(rng: &mut StdRng, span: &mut Span, status: i64) {
    let host = pick(rng, &UPSTREAMS);
    span.kind = SpanKind::Client as i32;
    let url = format!("https://{host}/v1/{}", hex(rng, 6));
    span.name = format!("fetch GET {url}");
    span.attributes = vec![
        string("http.method", "GET"),
        string("http.url", &url),
        int("http.status_code", status),
        string("net.peer.name", host),
        int("net.peer.port", 443),
        string("next.span_type", "AppRender.fetch"),
        string("operation.name", "fetch.GET"),
    ];
    span.status = Some(status_of(status));
    if status >= 500 {
        span.events.push(Event {
            time_unix_nano: span.end_time_unix_nano,
            name: "exception".to_owned(),
            attributes: vec![
                string("exception.type", "FetchError"),
                string("exception.message", &format!("upstream {host} answered {status}")),
            ],
            dropped_attributes_count: 0,
        });
    }
}

fn status_of(http: i64) -> Status {
    if http >= 500 {
        Status { code: StatusCode::Error as i32, message: format!("HTTP {http}") }
    } else {
        Status { code: StatusCode::Unset as i32, message: String::new() }
    }
}

fn span(trace_id: &[u8], id: [u8; 8], parent: Option<[u8; 8]>, name: String) -> Span {
    Span {
        trace_id: trace_id.to_vec(),
        span_id: id.to_vec(),
        parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
        name,
        flags: 0x101, // sampled; the parent's remoteness known (not remote)
        ..Default::default()
    }
}

fn string(key: &str, value: &str) -> KeyValue {
    attribute(key, any_value::Value::StringValue(value.to_owned()))
}

fn int(key: &str, value: i64) -> KeyValue {
    attribute(key, any_value::Value::IntValue(value))
}

fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue { key: key.to_owned(), value: Some(AnyValue { value: Some(value) }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_deterministic_with_realistic_span_sizes() {
        let request = otlp_request(3, 4, 30);
        assert_eq!(request, otlp_request(3, 4, 30));
        assert_eq!(otlp_span_count(&request), 120);
        let per_span = OtlpEncoding::Protobuf.encode(&request).len() / 120;
        assert!((300..=500).contains(&per_span), "{per_span} bytes per span");
        for r in &request.resource_spans {
            let keys: Vec<&str> =
                r.resource.as_ref().unwrap().attributes.iter().map(|kv| kv.key.as_str()).collect();
            for key in ["service.name", "vercel.projectId", "vercel.deploymentId"] {
                assert!(keys.contains(&key), "{key}");
            }
        }
    }

    #[test]
    fn batches_are_cut_near_their_target_size_in_their_encoding() {
        for encoding in [OtlpEncoding::Protobuf, OtlpEncoding::Json] {
            let batches = otlp_batches(5, 5_000, 256 << 10, encoding);
            let spans: usize = batches.iter().map(otlp_span_count).sum();
            assert!((5_000..5_050).contains(&spans), "{spans}");
            for b in &batches[..batches.len() - 1] {
                let len = encoding.encode(b).len();
                assert!((256 << 10..(256 << 10) + 60_000).contains(&len), "{encoding:?}: {len}");
                let mut per_resource = b
                    .resource_spans
                    .iter()
                    .map(|r| r.scope_spans.iter().map(|s| s.spans.len()).sum::<usize>());
                assert!(per_resource.all(|n| (10..=50).contains(&n)));
            }
        }
    }

    #[test]
    fn nonces_make_distinct_valid_requests_in_both_encodings() {
        let request = otlp_request(9, 2, 10);
        for seq in [0, 1, u64::MAX] {
            let mut proto = OtlpEncoding::Protobuf.encode_open(&request);
            proto.extend(OtlpEncoding::Protobuf.nonce(seq));
            let decoded = ExportTraceServiceRequest::decode(proto.as_slice()).unwrap();
            assert_eq!(decoded.resource_spans[..2], request.resource_spans[..]);
            assert_eq!(decoded.resource_spans[2], nonce_resource(seq));

            let mut json = OtlpEncoding::Json.encode_open(&request);
            json.extend(OtlpEncoding::Json.nonce(seq));
            let decoded: ExportTraceServiceRequest = serde_json::from_slice(&json).unwrap();
            assert_eq!(decoded.resource_spans[..2], request.resource_spans[..]);
            assert_eq!(decoded.resource_spans[2], nonce_resource(seq));
        }
        for encoding in [OtlpEncoding::Protobuf, OtlpEncoding::Json] {
            assert_ne!(encoding.nonce(1), encoding.nonce(2), "{encoding:?}");
        }
    }

    #[test]
    fn the_edge_accepts_every_resource_and_nonce_in_both_encodings() {
        use ingest::decode::{decode_otlp, OtlpEncoding as Edge};
        let batches = otlp_batches(11, 400, 32 << 10, OtlpEncoding::Protobuf);
        for (encoding, edge) in
            [(OtlpEncoding::Protobuf, Edge::Protobuf), (OtlpEncoding::Json, Edge::Json)]
        {
            for (seq, request) in batches.iter().enumerate() {
                let mut body = encoding.encode_open(request);
                body.extend(encoding.nonce(seq as u64));
                let decoded = decode_otlp(bytes::Bytes::from(body), edge).unwrap();
                assert!(decoded.rejects.is_empty(), "{encoding:?}: {:?}", decoded.rejects.first());
                assert_eq!(decoded.records.len(), request.resource_spans.len() + 1);
                assert_eq!(decoded.spans, otlp_span_count(request) as u64 + 1, "{encoding:?}");
            }
        }
    }
}
