//! TLS termination for [`crate::serve`]: rustls with the `ring` provider and its safe defaults
//! (TLS 1.2 and 1.3, forward-secret AEAD suites only), HTTP/1.1 or HTTP/2 by ALPN (HTTP/2 with
//! its streams, headers and windows bounded), and a
//! certificate that is re-read when its PEM files change without touching open connections:
//! every handshake asks [`CertStore`] for the current key, so only new connections see a new one.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::service::Service;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;

use crate::accept::{Limits, READ_BUFFER_BYTES};
use crate::graceful::{self, Watcher};
use crate::idle::Idle;
use crate::preface::{FirstBytes, HTTP2_PREFACE_BYTES};
use crate::reply::Reply;

/// Streams open at once on one HTTP/2 connection. A client that wants more sends on more
/// connections, each counted by `max_connections`.
const HTTP2_MAX_STREAMS: u32 = 4;
/// An HTTP/2 stream's header block, decoded (hyper's own default, stated).
const HTTP2_MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;
/// HTTP/2 flow control: body bytes a client may send ahead of the handler's reading them, on a
/// stream and on the connection (all its streams together). h2 holds them in memory before the
/// handler has room for the body (`max_held_body_bytes`) or has checked its signature, so the
/// connection's window bounds what one connection can make the process hold unread:
/// `max_connections` × 256 KiB in all (hyper's defaults are 1 MiB each). A window is also what
/// moves per round trip: a 16 MiB body at a 120 ms round trip takes about 8 s.
const HTTP2_STREAM_WINDOW_BYTES: u32 = 256 * 1024;
const HTTP2_CONNECTION_WINDOW_BYTES: u32 = HTTP2_STREAM_WINDOW_BYTES;

/// [`crate::serve`] over TLS: each accepted connection's handshake is bounded by
/// `limits.header_read_timeout`, the certificate files are polled while it serves.
pub async fn serve_tls<H, F>(
    listener: TcpListener,
    limits: Limits,
    tls: Tls,
    handler: H,
    shutdown: impl Future<Output = ()>,
) -> bool
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    crate::accept::serve_with(listener, limits, Some(tls), handler, shutdown).await
}

/// Where a listener's certificate chain and private key are, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert_path: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
    /// How often the files' modification times are checked; a change is loaded for the
    /// handshakes that follow.
    pub poll_interval: Duration,
}

/// A TLS acceptor whose certificate can be replaced while it serves. Cloning it shares the
/// certificate.
#[derive(Clone)]
pub struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
    store: Arc<CertStore>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls").field("files", &self.store.files).finish()
    }
}

impl TlsFiles {
    /// How often the files are checked unless configured otherwise.
    pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(10);
}

impl Tls {
    /// Loads `files` (failing if they cannot be read, hold no certificate or key, or the key
    /// is not the certificate's) and builds the acceptor.
    pub fn load(files: TlsFiles) -> io::Result<Tls> {
        let (key, stamp) = load_key(&files)?;
        let store =
            Arc::new(CertStore { files, current: RwLock::new(key), stamp: Mutex::new(stamp) });
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&store) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        Ok(Tls { acceptor, store })
    }

    /// Re-reads the files if their modification time, size or inode changed since they were
    /// last read. `Ok(true)`: a new certificate serves the next handshakes. On error the current one
    /// stays, and the same files are not retried until they change again.
    pub fn reload_if_changed(&self) -> io::Result<bool> {
        let now = stamp_of(&self.store.files)?;
        if *self.store.stamp.lock().expect("stamp lock") == now {
            return Ok(false);
        }
        self.reload().map(|()| true)
    }

    /// Re-reads the files now (on `SIGHUP`). On error the current certificate stays.
    pub fn reload(&self) -> io::Result<()> {
        // Stamped before the read: files replaced during it (the key renamed into place, then
        // the certificate) differ from the stamp, and are read again at the next poll.
        if let Ok(stamp) = stamp_of(&self.store.files) {
            *self.store.stamp.lock().expect("stamp lock") = stamp;
        }
        let (key, _) = load_key(&self.store.files)?;
        *self.store.current.write().expect("certificate lock") = key;
        Ok(())
    }

    /// The files served.
    pub fn files(&self) -> &TlsFiles {
        &self.store.files
    }

    /// Polls the files every `poll_interval` until the returned guard is dropped.
    pub(crate) fn watch(&self) -> WatchGuard {
        let tls = self.clone();
        let task = tokio::spawn(async move {
            let every = tls.store.files.poll_interval;
            // The files were just read: the first check is one interval away.
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match tls.reload_if_changed() {
                    Ok(true) => {
                        tracing::info!(files = ?tls.store.files, "TLS certificate reloaded")
                    }
                    Ok(false) => {}
                    Err(e) => tracing::error!(
                        files = ?tls.store.files, error = %e,
                        "TLS certificate not reloaded; the previous one keeps serving"
                    ),
                }
            }
        });
        WatchGuard(task)
    }

    /// Serves one accepted connection on its own task: the handshake (bounded by
    /// `handshake_timeout`; a client that does not speak TLS fails it and is closed), then
    /// HTTP/1.1 or HTTP/2 as negotiated, watched by `watcher` for graceful shutdown.
    pub(crate) fn spawn<S>(
        &self,
        (stream, peer): (TcpStream, SocketAddr),
        permit: OwnedSemaphorePermit,
        service: S,
        watcher: Watcher,
        handshake_timeout: Duration,
    ) where
        S: Service<Request<Incoming>, Response = Reply> + Send + Clone + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let acceptor = self.acceptor.clone();
        tokio::spawn(async move {
            let stream =
                match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                };
            // By ALPN, not by hyper-util's `auto` sniffing, whose read of the first bytes has no
            // timer: a client silent after its handshake would hold its place for ever.
            let ended = match stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                true => {
                    let stream = FirstBytes::new(stream, HTTP2_PREFACE_BYTES, handshake_timeout);
                    let idle = Idle::new();
                    let tracked = Arc::clone(&idle);
                    let service = service_fn(move |request| {
                        let busy = tracked.busy();
                        let answer = service.call(request);
                        async move {
                            let answer = answer.await;
                            drop(busy);
                            answer
                        }
                    });
                    let conn = http2::Builder::new(TokioExecutor::new())
                        .timer(TokioTimer::new())
                        .max_concurrent_streams(HTTP2_MAX_STREAMS)
                        .max_header_list_size(HTTP2_MAX_HEADER_LIST_BYTES)
                        .initial_stream_window_size(HTTP2_STREAM_WINDOW_BYTES)
                        .initial_connection_window_size(HTTP2_CONNECTION_WINDOW_BYTES)
                        // A client that stops answering pings is closed.
                        .keep_alive_interval(handshake_timeout)
                        .keep_alive_timeout(handshake_timeout)
                        .serve_connection(TokioIo::new(stream), service);
                    // Closed (with a GOAWAY) once it has had no request in flight for the
                    // header timeout, as hyper closes an idle HTTP/1.1 connection.
                    let idle = Some((&*idle, handshake_timeout));
                    let (ended, dropped) = graceful::watch(conn, watcher, idle).await;
                    if dropped {
                        tracing::debug!(%peer, "idle HTTP/2 connection dropped: its GOAWAY did not finish");
                    }
                    ended
                }
                false => {
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(handshake_timeout)
                        .keep_alive(true)
                        .max_buf_size(READ_BUFFER_BYTES)
                        .serve_connection(TokioIo::new(stream), service);
                    graceful::watch(conn, watcher, None).await.0
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "TLS connection ended with an error");
            }
            drop(permit);
        });
    }
}

/// Stops a [`Tls::watch`] task when dropped.
pub(crate) struct WatchGuard(tokio::task::JoinHandle<()>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The certificate every new handshake gets: read once per handshake, replaced by a reload.
struct CertStore {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' modification times and sizes when last read.
    stamp: Mutex<Stamp>,
}

type Stamp = [(SystemTime, u64, u64); 2];

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore").field("files", &self.files).finish()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().expect("certificate lock")))
    }
}

/// Each file's modification time, size and inode: a file renamed into place is a new inode, so
/// a replacement is seen even within the clock tick of the one before and of the same size.
fn stamp_of(files: &TlsFiles) -> io::Result<Stamp> {
    let one = |path: &Path| -> io::Result<(SystemTime, u64, u64)> {
        let meta = std::fs::metadata(path).map_err(|e| in_file(path, e))?;
        Ok((meta.modified()?, meta.len(), std::os::unix::fs::MetadataExt::ino(&meta)))
    };
    Ok([one(&files.cert_path)?, one(&files.key_path)?])
}

/// Reads both files; the stamp is taken before reading, so a write during the read is seen
/// as a change at the next poll.
fn load_key(files: &TlsFiles) -> io::Result<(Arc<CertifiedKey>, Stamp)> {
    let stamp = stamp_of(files)?;
    let cert_path = &files.cert_path;
    let chain = CertificateDer::pem_file_iter(cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| in_file(cert_path, io::Error::other(e)))?;
    if chain.is_empty() {
        return Err(in_file(cert_path, io::Error::other("no CERTIFICATE in the file")));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key_path)
        .map_err(|e| in_file(&files.key_path, io::Error::other(e)))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| in_file(&files.key_path, io::Error::other(e)))?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|e| {
        io::Error::new(io::ErrorKind::InvalidData, format!("key and certificate: {e}"))
    })?;
    Ok((Arc::new(certified), stamp))
}

/// Names the file in an error (never its contents: a key file's bytes are a secret).
fn in_file(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}
