//! TLS termination over real sockets on 127.0.0.1, with certificates made in the test: signed
//! deliveries stored over HTTP/1.1 and HTTP/2 (by ALPN), a rewritten certificate served to new
//! connections while an open one keeps working, plain HTTP to the TLS port refused cleanly, and
//! a client silent after its handshake closed, whichever protocol it chose, and one past the
//! connection limit closed without a plain-text answer;
//! a reload (`SIGHUP`) re-reads the files at once, and one with a bad pair changes nothing.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Keep;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use ingest::{IngestConfig, IngestMetrics, Server};
use listener::{SigningKey, TlsFiles};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const SECRET: &str = "tls-test-drain-secret";

/// A self-signed certificate for `localhost`, written to `dir` (replacing any before it).
fn write_cert(dir: &Path) -> CertificateDer<'static> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    // Written next to the files and renamed over them, as deploy tooling does, so that a
    // poll never sees half a file.
    std::fs::write(dir.join("key.tmp"), made.key_pair.serialize_pem()).unwrap();
    std::fs::write(dir.join("cert.tmp"), made.cert.pem()).unwrap();
    std::fs::rename(dir.join("key.tmp"), dir.join("key.pem")).unwrap();
    std::fs::rename(dir.join("cert.tmp"), dir.join("cert.pem")).unwrap();
    made.cert.der().clone()
}

struct Edge {
    addr: SocketAddr,
    kept: Arc<Keep>,
    config: IngestConfig,
    reloader: ingest::Reloader,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(dir: &Path) -> Edge {
    start_polling(dir, Duration::from_millis(50)).await
}

async fn start_limited(dir: &Path, max_connections: usize) -> Edge {
    start_with(dir, Duration::from_millis(50), max_connections).await
}

async fn start_polling(dir: &Path, poll_interval: Duration) -> Edge {
    start_with(dir, poll_interval, 1024).await
}

async fn start_with(dir: &Path, poll_interval: Duration, max_connections: usize) -> Edge {
    let mut config = IngestConfig::new("127.0.0.1:0".parse().unwrap());
    config.max_connections = max_connections;
    config.drain_secret = Some(SigningKey::new(SECRET));
    config.header_read_timeout = Duration::from_secs(2);
    config.tls = Some(TlsFiles {
        cert_path: dir.join("cert.pem"),
        key_path: dir.join("key.pem"),
        poll_interval,
    });
    let kept = Arc::new(Keep::default());
    let metrics = IngestMetrics::register(&mut prometheus_client::registry::Registry::default());
    let render = Arc::new(String::new);
    let server = Server::bind(config.clone(), kept.clone(), metrics, render).await.unwrap();
    let reloader = server.reloader();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    Edge { addr, kept, config, reloader, _stop: stop }
}

/// A TLS connection trusting `roots`, offering `alpn`.
async fn connect(
    addr: SocketAddr,
    roots: &[CertificateDer<'static>],
    alpn: &[u8],
) -> TlsStream<TcpStream> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap()
}

fn served_cert(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned()
}

fn delivery() -> http::Request<Full<Bytes>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/vercel/logs.ndjson");
    let body = std::fs::read(path).unwrap();
    http::Request::post("/vercel/logs")
        .header("host", "localhost")
        .header("x-vercel-signature", SigningKey::new(SECRET).sign(&body))
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

type H1 = http1::SendRequest<Full<Bytes>>;

async fn h1(stream: TlsStream<TcpStream>) -> H1 {
    let (send, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    send
}

async fn status(send: &mut H1) -> u16 {
    let response = send.send_request(delivery()).await.unwrap();
    let code = response.status().as_u16();
    response.into_body().collect().await.unwrap();
    code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_deliveries_are_stored_over_http1_and_http2() {
    let dir = tempfile::tempdir().unwrap();
    let cert = write_cert(dir.path());
    let edge = start(dir.path()).await;

    let stream = connect(edge.addr, std::slice::from_ref(&cert), b"http/1.1").await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(status(&mut h1(stream).await).await, 200);

    let stream = connect(edge.addr, &[cert], b"h2").await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) =
        http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let response = send.send_request(delivery()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);

    let kept = edge.kept.0.lock().unwrap();
    assert_eq!(kept.len(), 2, "one batch per protocol");
    assert!(kept.iter().all(|b| !b.records.is_empty() && b.rejects.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_certificate_serves_new_connections_and_open_ones_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_cert(dir.path());
    let edge = start(dir.path()).await;
    let old = connect(edge.addr, std::slice::from_ref(&first), b"http/1.1").await;
    assert_eq!(served_cert(&old), first);
    let mut old = h1(old).await;
    assert_eq!(status(&mut old).await, 200);

    let second = write_cert(dir.path());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fresh = connect(edge.addr, &[first.clone(), second.clone()], b"http/1.1").await;
        if served_cert(&fresh) == second {
            assert_eq!(status(&mut h1(fresh).await).await, 200);
            break;
        }
        assert!(Instant::now() < deadline, "the rewritten certificate was never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status(&mut old).await, 200, "the connection opened before the rotation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_the_tls_port_is_refused_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let cert = write_cert(dir.path());
    let edge = start(dir.path()).await;

    let mut plain = TcpStream::connect(edge.addr).await.unwrap();
    plain.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    let closed = read.expect("the connection was not closed within the header timeout");
    // Closed by the server: at most a TLS alert record (content type 21), never HTTP.
    assert!(closed.is_ok() || answer.is_empty(), "{closed:?}");
    assert!(answer.first().is_none_or(|&b| b == 21), "answered {answer:?}");

    // A client that says nothing at all is closed by the handshake timeout.
    let mut silent = TcpStream::connect(edge.addr).await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "a silent connection was held past the header timeout");

    let stream = connect(edge.addr, &[cert], b"http/1.1").await;
    assert_eq!(status(&mut h1(stream).await).await, 200, "still serving TLS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_silent_after_its_handshake_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let cert = write_cert(dir.path());
    let edge = start(dir.path()).await;
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    // The header timeout is 2 s. An HTTP/2 client that sent its preface gets pings, and is
    // closed when it leaves them unanswered (2 s apart, then 2 s to answer).
    let silences: [(&[u8], &[u8]); 4] =
        [(b"http/1.1", b""), (b"h2", b""), (b"h2", &PREFACE[..8]), (b"h2", PREFACE)];
    let mut waits = Vec::new();
    for (alpn, sent) in silences {
        let mut stream = connect(edge.addr, std::slice::from_ref(&cert), alpn).await;
        stream.write_all(sent).await.unwrap();
        let closed = async move {
            let mut buf = [0u8; 1024];
            while let Ok(1..) = stream.read(&mut buf).await {}
        };
        let within = tokio::time::timeout(Duration::from_secs(10), closed);
        waits.push((alpn, sent, tokio::spawn(within)));
    }
    for (alpn, sent, wait) in waits {
        let alpn = String::from_utf8_lossy(alpn);
        let sent = String::from_utf8_lossy(sent);
        assert!(wait.await.unwrap().is_ok(), "{alpn} after {sent:?}: still open after 10 s");
    }
    // A real HTTP/2 client answers pings by itself: after its request it is idle, and closed,
    // with a GOAWAY: the client's connection ends without an error. (Closed without one, it
    // ends in an unexpected EOF, and a request sent at that moment would be lost unanswered.)
    let stream = connect(edge.addr, &[cert], b"h2").await;
    let (mut send, conn) =
        http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    let conn = tokio::spawn(conn);
    assert_eq!(send.send_request(delivery()).await.unwrap().status(), 200, "still serving");
    let closed = tokio::time::timeout(Duration::from_secs(10), conn).await;
    let ended = closed.expect("an idle HTTP/2 connection is still open after 10 s").unwrap();
    assert!(ended.is_ok(), "the idle HTTP/2 connection was not closed gracefully: {ended:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_client_that_never_takes_its_answer_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let cert = write_cert(dir.path());
    let edge = start(dir.path()).await;
    // A window of 0: the answer's body can never be sent, so its stream never ends, while the
    // client answers every ping. After the idle bound (2 s) and its GOAWAY, the connection has
    // the bound again to finish, then it is dropped.
    let stream = connect(edge.addr, &[cert], b"h2").await;
    let (mut send, conn) = http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(0)
        .handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let request = http::Request::get("/healthz").header("host", "localhost");
    let answer = send.send_request(request.body(Full::new(Bytes::new())).unwrap()).await.unwrap();
    assert_eq!(answer.status(), 200);
    let closed = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(closed.is_ok(), "a stream left open holds an idle HTTP/2 connection past 10 s");
    drop(answer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_past_the_limit_is_closed_without_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let cert = write_cert(dir.path());
    let edge = start_limited(dir.path(), 1).await;
    let held = connect(edge.addr, std::slice::from_ref(&cert), b"http/1.1").await;
    let mut past = TcpStream::connect(edge.addr).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), past.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection past the limit was left open");
    // A TLS client would read `HTTP/1.1 503` as a record of content type 72 ('H').
    assert!(answer.is_empty(), "answered {:?}", String::from_utf8_lossy(&answer));
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_reads_the_files_at_once_and_one_with_a_bad_pair_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_cert(dir.path());
    // Never polled within the test: only the reload can bring the second certificate.
    let edge = start_polling(dir.path(), Duration::from_secs(3600)).await;
    let second = write_cert(dir.path());
    let roots = [first.clone(), second.clone()];
    assert_eq!(served_cert(&connect(edge.addr, &roots, b"h2").await), first);

    // A rotation: `delivery()` is signed with SECRET, now only a previous secret.
    let mut rotated = edge.config.clone();
    rotated.drain_secret = Some(SigningKey::new("the-next-secret"));
    rotated.previous_drain_secrets = Arc::from([SigningKey::new(SECRET)]);
    assert_eq!(edge.reloader.apply(&rotated), Ok(vec![]));
    let fresh = connect(edge.addr, &roots, b"http/1.1").await;
    assert_eq!(served_cert(&fresh), second, "served right after the reload");
    assert_eq!(status(&mut h1(fresh).await).await, 200, "signed with a previous secret");

    // A key file that does not load: the new secret (without SECRET) must not apply either.
    std::fs::write(dir.path().join("key.pem"), "not a key").unwrap();
    let mut refused = edge.config.clone();
    refused.drain_secret = Some(SigningKey::new("never-applied"));
    let problems = edge.reloader.apply(&refused).unwrap_err();
    assert!(problems.contains("server.tls"), "{problems}");
    let fresh = connect(edge.addr, &roots, b"http/1.1").await;
    assert_eq!(served_cert(&fresh), second, "the previous certificate keeps serving");
    assert_eq!(status(&mut h1(fresh).await).await, 200, "the previous secrets still apply");
}
