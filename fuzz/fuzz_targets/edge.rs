//! Fuzzes the edge's whole request handler (`ingest::harness::Harness`: hyper's parser, routing,
//! method, headers, content encoding, signature, body) over an in-memory pipe, against a test
//! dispatcher. Properties: every answer has a status from the documented set; every non-2xx
//! answer carries `{"error":{"code","message"}}` with a code documented for its status (and
//! `Retry-After` on a 503, `Allow` on a 405); a `503` only when the dispatcher refused or failed;
//! a batch is dispatched only for a `POST` to a drain path whose signature verified (when the
//! drain has a secret) and whose required headers were sent, and its records are exactly the
//! valid records of the (inflated) body; a `200` for a delivery reports those counts, or is a
//! probe (`{}` or empty) that dispatched nothing. Never a panic or a hang.
//!
//! Input: two flag bytes (see `Case`), then `name: value` header lines up to an empty line, then
//! the body. `scripts/fuzz` seeds it with the fixtures and their signatures.
#![no_main]

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use http::{HeaderName, HeaderValue};
use ingest::decode::{decode, PaddedBody};
use ingest::harness::Harness;
use ingest::{DrainCredentials, DrainDirectory, IngestConfig, RequiredHeader};
use libfuzzer_sys::fuzz_target;
use listener::SigningKey;
use record::{Ack, AckWaiter, Batch, Dispatch, Refusal, SinkFailure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "drain-secret-0123456789";
const DRAIN_PATH: &str = "/vercel/logs";
const KEY_SECRET: &str = "k1-secret";
const AUTH: (&str, &str) = ("authorization", "Bearer t0k");
const KEY_HEADER: (&str, &str) = ("x-token", "k1-token");
/// Headers that frame the request: the target sets them itself so that it knows the body hyper
/// reads (and hyper would answer malformed framing itself, without our error shape).
const FRAMING: [&str; 8] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "host",
    "te",
    "upgrade",
    "expect",
    "keep-alive",
];

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
});

/// What the test dispatcher does with a batch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Ack,
    Fail,
    Refuse,
    Drop,
}

struct TestDispatch {
    mode: AtomicU8,
    batches: Mutex<Vec<Batch>>,
}

impl TestDispatch {
    fn mode(&self) -> Mode {
        [Mode::Ack, Mode::Fail, Mode::Refuse, Mode::Drop]
            [usize::from(self.mode.load(Ordering::SeqCst))]
    }
}

impl Dispatch for TestDispatch {
    fn admissible(&self, _bytes: usize) -> Result<(), Refusal> {
        match self.mode() {
            Mode::Refuse => Err(Refusal::Overloaded),
            _ => Ok(()),
        }
    }

    fn try_submit(&self, batch: Batch) -> Result<AckWaiter, Refusal> {
        self.batches.lock().unwrap().push(batch);
        let (mut parts, waiter) = Ack::split(1);
        let part = parts.pop().expect("one part");
        match self.mode() {
            Mode::Ack => part.complete(),
            Mode::Fail => part.fail(SinkFailure { sink: "file", code: "io" }),
            Mode::Refuse => return Err(Refusal::SinkUnavailable("kafka")),
            Mode::Drop => drop(part),
        }
        Ok(waiter)
    }

    fn ready(&self) -> bool {
        self.mode() == Mode::Ack
    }
}

static DISPATCH: LazyLock<Arc<TestDispatch>> = LazyLock::new(|| {
    Arc::new(TestDispatch { mode: AtomicU8::new(0), batches: Mutex::new(Vec::new()) })
});

/// One per-drain path, `<drain path>/k1`, with its own secret and a required header.
struct Drains;

impl DrainDirectory for Drains {
    fn lookup(&self, key: &str) -> Option<DrainCredentials> {
        (key == "k1").then(|| DrainCredentials {
            name: Arc::from("drn_k1"),
            secret: SigningKey::new(KEY_SECRET),
            headers: Arc::from([RequiredHeader::new(KEY_HEADER.0, KEY_HEADER.1).unwrap()]),
            data_type: record::DataType::Logs,
        })
    }
}

/// The request the input describes.
#[derive(Debug)]
struct Case {
    method: &'static str,
    path: &'static str,
    /// The secret and required header of the drain the path names, if it names one.
    drain: Option<(&'static str, Option<&'static str>, Option<(&'static str, &'static str)>)>,
    config: IngestConfig,
    mode: Mode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Vec<u8>,
}

impl Case {
    fn read(data: &[u8]) -> Option<Case> {
        let [a, b, rest @ ..] = data else { return None };
        let (head, body) = split_head(rest);
        let method =
            ["POST", "GET", "HEAD", ["PUT", "DELETE", "OPTIONS", "PATCH"][usize::from(b >> 2 & 3)]]
                [usize::from(a & 3)];
        let mut config = IngestConfig { drain_path: DRAIN_PATH.into(), ..IngestConfig::default() };
        let with_secret = a & 4 != 0;
        config.drain_secret = with_secret.then(|| SigningKey::new(SECRET));
        if b & 32 != 0 {
            config.drain_headers = Arc::from([RequiredHeader::new(AUTH.0, AUTH.1).unwrap()]);
        }
        (config.max_body_bytes, config.max_inflated_bytes) =
            [(16 << 20, 64 << 20), (1024, 64 << 20), (16 << 20, 1024), (256, 256)]
                [usize::from(b >> 6)];
        let (path, drain) = match a >> 6 {
            0 => (
                DRAIN_PATH,
                Some(("default", with_secret.then_some(SECRET), (b & 32 != 0).then_some(AUTH))),
            ),
            1 => ("/vercel/logs/k1", Some(("drn_k1", Some(KEY_SECRET), Some(KEY_HEADER)))),
            2 => ("/vercel/logs/nope", None),
            _ => (["/healthz", "/readyz", "/metrics", "/elsewhere"][usize::from(b >> 2 & 3)], None),
        };
        let mut body = body.to_vec();
        let mut headers = Vec::new();
        if a & 16 != 0 {
            let raw = std::mem::take(&mut body);
            body = gzip(&raw);
            headers.push((http::header::CONTENT_ENCODING, HeaderValue::from_static("gzip")));
            if a & 8 != 0 {
                let signed = if a & 32 != 0 { &raw } else { &body };
                headers.push(signature(drain.and_then(|d| d.1).unwrap_or(SECRET), signed));
            }
        } else if a & 8 != 0 {
            headers.push(signature(drain.and_then(|d| d.1).unwrap_or(SECRET), &body));
        }
        if let (true, Some((_, _, Some((name, value))))) = (b & 16 != 0, drain) {
            headers.push((HeaderName::from_static(name), HeaderValue::from_static(value)));
        }
        headers.extend(parse_headers(head));
        let mode = [Mode::Ack, Mode::Fail, Mode::Refuse, Mode::Drop][usize::from(b & 3)];
        Some(Case { method, path, drain, config, mode, headers, body })
    }

    fn request(&self) -> Vec<u8> {
        let mut out = format!(
            "{} {} HTTP/1.1\r\nhost: fuzz\r\nconnection: close\r\n",
            self.method, self.path
        )
        .into_bytes();
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("content-length: {}\r\n\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    /// The first value sent for `name`.
    fn first(&self, name: &str) -> Option<&HeaderValue> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The value of `name` as the server reads it: `httparse` drops the spaces around it.
    fn sent(&self, name: &str, value: &str) -> bool {
        self.headers.iter().any(|(n, v)| n == name && v.as_bytes().trim_ascii() == value.as_bytes())
    }
}

/// The header lines and the body: the head ends at the first empty line.
fn split_head(rest: &[u8]) -> (&[u8], &[u8]) {
    if let Some(body) = rest.strip_prefix(b"\n") {
        return (&[], body);
    }
    match rest.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&rest[..at], &rest[at + 2..]),
        None => (rest, &[]),
    }
}

/// The valid `name: value` lines of `head` (at most 64: hyper answers 431 past 100 headers).
fn parse_headers(head: &[u8]) -> Vec<(HeaderName, HeaderValue)> {
    let valid = |line: &[u8]| {
        let at = line.iter().position(|b| *b == b':')?;
        let name = HeaderName::from_bytes(line[..at].trim_ascii()).ok()?;
        let value = HeaderValue::from_bytes(line[at + 1..].trim_ascii()).ok()?;
        (!FRAMING.contains(&name.as_str())).then_some((name, value))
    };
    head.split(|b| *b == b'\n').filter_map(valid).take(64).collect()
}

fn signature(secret: &str, body: &[u8]) -> (HeaderName, HeaderValue) {
    let sig = SigningKey::new(secret).sign(body);
    (HeaderName::from_static("x-vercel-signature"), HeaderValue::from_str(&sig).unwrap())
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// A parsed answer.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn parse(bytes: &[u8]) -> Answer {
        let at = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete answer head");
        let head = std::str::from_utf8(&bytes[..at]).expect("an ASCII head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
        let status = status_line[9..12].parse().expect("a numeric status");
        let headers = lines
            .map(|l| l.split_once(':').expect("a header line"))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Answer { status, headers, body: bytes[at + 4..].to_vec() }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

fn exchange(case: &Case) -> (Answer, Vec<Batch>) {
    DISPATCH.mode.store(case.mode as u8, Ordering::SeqCst);
    DISPATCH.batches.lock().unwrap().clear();
    let drains: Arc<dyn DrainDirectory> = Arc::new(Drains);
    let dispatch: Arc<dyn Dispatch> = DISPATCH.clone();
    let harness = Harness::new(case.config.clone(), dispatch, Some(drains)).expect("a harness");
    let request = case.request();
    let bytes = RUNTIME.block_on(async move {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let serving = tokio::spawn(async move { harness.serve_connection(server).await });
        let (mut rd, mut wr) = tokio::io::split(client);
        // The server may answer before reading the whole body (a declared length over the
        // limit) and close: a failed write is then expected.
        let write = async move { wr.write_all(&request).await.ok() };
        let read = async move {
            let mut out = Vec::new();
            rd.read_to_end(&mut out).await.map(|_| out)
        };
        let (_, read) = tokio::join!(write, read);
        let _ = serving.await.expect("the connection task does not panic");
        read.expect("the answer is readable")
    });
    let batches = std::mem::take(&mut *DISPATCH.batches.lock().unwrap());
    (Answer::parse(&bytes), batches)
}

/// The codes documented for each status (README, `ingest::IngestError`).
fn documented(status: u16) -> &'static [&'static str] {
    match status {
        400 => &["body_read_error", "corrupt_gzip", "no_records"],
        401 => &["missing_signature", "missing_header"],
        403 => &["invalid_signature", "invalid_header"],
        404 => &["not_found", "unknown_drain"],
        405 => &["method_not_allowed"],
        408 => &["body_timeout"],
        413 => &["body_too_large", "inflated_body_too_large"],
        415 => &["unsupported_encoding"],
        503 => &["overloaded", "sink_unavailable", "disk_full", "ack_timeout", "not_ready"],
        _ => &[],
    }
}

fn check_error_shape(case: &Case, answer: &Answer) -> String {
    let codes = documented(answer.status);
    assert!(!codes.is_empty(), "undocumented status {}", answer.status);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    if answer.status == 503 {
        assert!(answer.header("retry-after").is_some(), "a 503 carries Retry-After");
    }
    if answer.status == 405 {
        assert!(answer.header("allow").is_some(), "a 405 carries Allow");
    }
    if case.method == "HEAD" {
        return String::new();
    }
    let value: serde_json::Value = serde_json::from_slice(&answer.body).expect("a JSON error body");
    let object = value.as_object().expect("an object");
    assert_eq!(object.len(), 1, "only `error`: {value}");
    let error = object["error"].as_object().expect("`error` is an object");
    assert_eq!(error.len(), 2, "only `code` and `message`: {value}");
    let code = error["code"].as_str().expect("a string code");
    assert!(error["message"].is_string(), "a string message");
    assert!(codes.contains(&code), "{code} is not documented for {}", answer.status);
    code.to_owned()
}

/// The body the handler decodes, as this target reads the request: `None` when the body is
/// gzip that does not inflate within the cap.
fn opened_body(case: &Case) -> Option<Vec<u8>> {
    let encoding =
        case.first("content-encoding").map(|v| v.to_str().unwrap_or("").trim().to_owned());
    let gzip = encoding
        .is_some_and(|e| e.eq_ignore_ascii_case("gzip") || e.eq_ignore_ascii_case("x-gzip"));
    if !gzip {
        return Some(case.body.clone());
    }
    let cap = case.config.max_inflated_bytes as u64;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(&case.body[..]).take(cap + 1).read_to_end(&mut out).ok()?;
    (out.len() as u64 <= cap).then_some(out)
}

fn check_batch(case: &Case, answer: &Answer, batch: &Batch, opened: &[u8]) {
    let (name, secret, required) = case.drain.expect("a batch comes only from a drain path");
    assert_eq!(case.method, "POST", "a batch comes only from a POST");
    assert_eq!(&*batch.drain, name);
    if let Some(secret) = secret {
        let sig = case.first("x-vercel-signature").expect("a signed batch").as_bytes();
        let key = SigningKey::new(secret);
        assert!(
            key.verifies(&case.body, sig) || key.verifies(opened, sig),
            "the signature verified"
        );
    }
    if let Some((header, value)) = required {
        assert!(case.sent(header, value), "the required header was sent");
    }
    let expected = decode(PaddedBody::from_slice(opened));
    if !expected.has_json() {
        // No JSON at all: kept as one dead letter (its head, bounded) before a 400.
        assert_ne!(answer.status, 200, "a body with no JSON is not accepted");
        assert!(batch.records.is_empty(), "no records from a body with no JSON");
        let [reject] = &batch.rejects[..] else { panic!("one dead letter: {:?}", batch.rejects) };
        assert!(matches!(reject.reason.code(), "no_json" | "no_json_truncated"), "{reject:?}");
        assert!(reject.raw.len() <= opened.len(), "a dead letter holds at most the body");
        return;
    }
    let got: Vec<&[u8]> = batch.records.iter().map(|r| r.bytes()).collect();
    let want: Vec<&[u8]> = expected.records.iter().map(|r| r.bytes()).collect();
    assert_eq!(got, want, "the batch holds exactly the body's valid records");
    assert_eq!(batch.rejects.len(), expected.rejects.len());
    if answer.status == 200 {
        let counts: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON counts");
        assert_eq!(counts["accepted"].as_u64(), Some(want.len() as u64));
        assert_eq!(counts["dead_lettered"].as_u64(), Some(batch.rejects.len() as u64));
    }
}

fn check(case: &Case, answer: &Answer, batches: &[Batch]) {
    let code = if answer.status == 200 { String::new() } else { check_error_shape(case, answer) };
    assert!(batches.len() <= 1, "one request, at most one batch");
    if answer.status == 503 {
        let refused = case.mode != Mode::Ack || (case.path == "/readyz" && case.method == "GET");
        assert!(refused, "503 {code} though the dispatcher accepts");
    }
    let opened = opened_body(case);
    if let Some(batch) = batches.first() {
        let opened = opened.as_deref().expect("a dispatched body inflated within the cap");
        // A body with no JSON at all may be kept as dead letters before its 400.
        let allowed = matches!(answer.status, 200 | 503)
            || (code == "no_records" && batch.records.is_empty());
        assert!(allowed, "a batch was dispatched for a {} {code}", answer.status);
        check_batch(case, answer, batch, opened);
    } else if answer.status == 200 && case.method == "POST" && case.drain.is_some() {
        let probe =
            opened.as_deref().is_some_and(|b| b.trim_ascii().is_empty() || b.trim_ascii() == b"{}");
        assert!(probe, "a 200 delivery without a batch is a probe");
        let counts: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON counts");
        assert_eq!(
            (counts["accepted"].as_u64(), counts["dead_lettered"].as_u64()),
            (Some(0), Some(0))
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(case) = Case::read(data) else { return };
    let (answer, batches) = exchange(&case);
    check(&case, &answer, &batches);
});
