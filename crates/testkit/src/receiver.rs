//! A loopback HTTP/1.1 receiver: listens on `127.0.0.1:0`, records every request it is sent
//! (method, path, headers, body) for the test to read, and answers each with a status the test
//! chooses. It stands in for a drain endpoint or a webhook target.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// How long [`Receiver::next`] waits for a request, and a connection for its next bytes.
const WAIT: Duration = Duration::from_secs(10);

/// The status a receiver answers a request with.
type Answer = Box<dyn Fn(&Request) -> u16 + Send>;

/// One request as a [`Receiver`] read it off the socket.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    /// `POST`, `GET`, ...
    pub method: String,
    /// The request target as sent: the path, with its query string if any.
    pub path: String,
    /// `HTTP/1.1`, as sent.
    pub version: String,
    /// Every header in the order sent, names as sent, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body, `content-length` bytes of it.
    pub body: Vec<u8>,
}

impl Request {
    /// The value of the first header called `name`, in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut matching = self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name));
        matching.next().map(|(_, value)| value.as_str())
    }

    /// The body as text.
    ///
    /// # Panics
    ///
    /// When the body is not UTF-8.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or_else(|e| panic!("body is not UTF-8 ({e})"))
    }

    /// Whether `x-vercel-signature` is the hex HMAC-SHA1 of the body with `secret`, computed
    /// here independently of the code under test.
    pub fn signed_with(&self, secret: &str) -> bool {
        let Some(Ok(given)) = self.header("x-vercel-signature").map(hex::decode) else {
            return false;
        };
        let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes()).expect("any key");
        mac.update(&self.body);
        mac.verify_slice(&given).is_ok()
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("version", &self.version)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

/// An HTTP/1.1 endpoint on `127.0.0.1`, served by a thread of its own (so it works the same
/// from synchronous and `async` tests) until dropped. Every request is recorded before it is
/// answered, one request per connection, with an empty body and `connection: close`. Bodies
/// must come with a `content-length`; others are answered `411` and not recorded.
pub struct Receiver {
    addr: SocketAddr,
    requests: mpsc::Receiver<Request>,
    answer: Arc<Mutex<Answer>>,
    stopping: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Listens on a free port of 127.0.0.1 and answers every request `200` until told
    /// otherwise.
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let addr = listener.local_addr().expect("a bound address");
        let (sender, requests) = mpsc::channel();
        let answer: Arc<Mutex<Answer>> = Arc::new(Mutex::new(Box::new(|_: &Request| 200)));
        let stopping = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (answer, stopping) = (Arc::clone(&answer), Arc::clone(&stopping));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (answer, sender) = (Arc::clone(&answer), sender.clone());
                    std::thread::spawn(move || {
                        if let Err(e) = serve(stream, &answer, &sender) {
                            eprintln!("testkit receiver at {addr}: {e}");
                        }
                    });
                }
            })
        };
        Receiver { addr, requests, answer, stopping, acceptor: Some(acceptor) }
    }

    /// From now on, answers each request with the status `answer` gives for it.
    pub fn answer_with(&self, answer: impl Fn(&Request) -> u16 + Send + 'static) {
        *self.answer.lock().unwrap() = Box::new(answer);
    }

    /// From now on, answers `200` to a request [`Request::signed_with`] `secret` and `403` to
    /// any other, as a drain endpoint checking Vercel's signature does.
    pub fn require_signature(&self, secret: &str) {
        let secret = secret.to_owned();
        self.answer_with(move |request| if request.signed_with(&secret) { 200 } else { 403 });
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr><path>`; `path` starts with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The oldest request not yet taken.
    ///
    /// # Panics
    ///
    /// When none arrives within ten seconds.
    pub fn next(&self) -> Request {
        self.requests.recv_timeout(WAIT).unwrap_or_else(|_| {
            panic!("no request reached the receiver at {} within {WAIT:?}", self.addr)
        })
    }
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the acceptor, which sees `stopping` and returns, closing the listener.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Reads one request from `stream`, records it and answers it.
fn serve(
    mut stream: TcpStream,
    answer: &Mutex<Answer>,
    requests: &mpsc::Sender<Request>,
) -> io::Result<()> {
    stream.set_read_timeout(Some(WAIT))?;
    let status = match read_request(&mut stream)? {
        Some(request) => {
            let status = (answer.lock().unwrap())(&request);
            // The test may be gone already; the answer is still owed.
            let _ = requests.send(request);
            status
        }
        None => 411,
    };
    write!(
        stream,
        "HTTP/1.1 {status} {}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        reason(status)
    )?;
    stream.flush()
}

/// One request with a `content-length` body (none when absent), or `None` for a body sent
/// another way.
fn read_request(stream: &mut impl Read) -> io::Result<Option<Request>> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed inside the head"));
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ').map(str::to_owned);
    let (method, path, version) = (
        request_line.next().unwrap_or_default(),
        request_line.next().unwrap_or_default(),
        request_line.next().unwrap_or_default(),
    );
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let mut request = Request { method, path, version, headers, body: Vec::new() };
    if request.header("transfer-encoding").is_some() {
        return Ok(None);
    }
    let length = match request.header("content-length") {
        Some(value) => value.parse::<usize>().map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("content-length {value:?}: {e}"))
        })?,
        None => 0,
    };
    let mut body = buffer.split_off(head_end);
    while body.len() < length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed inside the body"));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    request.body = body;
    Ok(Some(request))
}

/// The reason phrase for the statuses tests answer with (clients do not read it).
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        411 => "Length Required",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `request` to `addr` and returns the status line of the answer.
    fn exchange(addr: SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer.lines().next().unwrap().to_owned()
    }

    #[test]
    fn requests_are_recorded_and_answered_with_the_chosen_status() {
        let receiver = Receiver::start();
        let status = exchange(
            receiver.addr(),
            "POST /in?x=1 HTTP/1.1\r\nHost: t\r\nX-Vercel-Signature: 00\r\n\
             Content-Length: 5\r\n\r\nhello",
        );
        assert_eq!(status, "HTTP/1.1 200 OK");
        let request = receiver.next();
        assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/in?x=1"));
        assert_eq!(request.version, "HTTP/1.1");
        assert_eq!(request.header("x-vercel-signature"), Some("00"));
        assert_eq!(request.text(), "hello");

        receiver.require_signature("secret");
        // HMAC-SHA1("secret", "hello"), as `openssl dgst -sha1 -hmac secret` gives it.
        let signed = "POST / HTTP/1.1\r\n\
                      x-vercel-signature: 5112055c05f944f85755efc5cd8970e194e9f45b\r\n\
                      content-length: 5\r\n\r\nhello";
        assert_eq!(exchange(receiver.addr(), signed), "HTTP/1.1 200 OK");
        assert!(receiver.next().signed_with("secret"));
        let forged = signed.replace("5112", "0000");
        assert_eq!(exchange(receiver.addr(), &forged), "HTTP/1.1 403 Forbidden");
        assert!(!receiver.next().signed_with("secret"));

        receiver.answer_with(|_| 503);
        assert_eq!(
            exchange(receiver.addr(), "GET / HTTP/1.1\r\n\r\n"),
            "HTTP/1.1 503 Service Unavailable"
        );
        assert!(receiver.next().body.is_empty());
        // The head alone: the receiver answers before reading any chunk.
        let chunked = "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n";
        assert_eq!(exchange(receiver.addr(), chunked), "HTTP/1.1 411 Length Required");
        assert_eq!(receiver.url("/a"), format!("http://{}/a", receiver.addr()));
    }

    #[test]
    fn a_dropped_receiver_stops_listening() {
        let addr = Receiver::start().addr();
        assert!(TcpStream::connect(addr).is_err());
    }
}
