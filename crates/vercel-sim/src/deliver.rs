//! Outgoing deliveries (drain sample batches and integration webhooks): signed `POST`s to loopback
//! URLs only, each bounded by a timeout.

use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use sha1::Sha1;

/// How long one outgoing delivery (connect, send, read the answer) may take.
pub(crate) const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// `body` gzip-compressed, as a drain with `compression: "gzip"` sends it.
pub(crate) fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

/// Lowercase hex HMAC-SHA1 of `body` keyed by `secret`, as in `x-vercel-signature`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Why an outgoing delivery did not produce an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The URL is not `http://` to `127.0.0.1`, `localhost` or `[::1]`: the simulator never
    /// sends anything off the machine.
    #[error("the simulator delivers only to http:// loopback URLs")]
    NotLoopback,
    /// Connecting or talking to the endpoint failed.
    #[error("delivery failed: {0}")]
    Io(String),
    /// The endpoint did not answer within the delivery timeout.
    #[error("delivery timed out")]
    Timeout,
    /// No drain has that id.
    #[error("no such drain")]
    NoSuchDrain,
}

/// The parts of a loopback `http://` URL.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    authority: String,
    connect: String,
    path: String,
}

fn parse_loopback(url: &str) -> Result<Target, DeliveryError> {
    let rest = url.strip_prefix("http://").ok_or(DeliveryError::NotLoopback)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => {
            (h, p.parse::<u16>().map_err(|_| DeliveryError::NotLoopback)?)
        }
        _ => (authority, 80),
    };
    let connect_host = match host {
        "127.0.0.1" | "localhost" => "127.0.0.1",
        "[::1]" => "[::1]",
        _ => return Err(DeliveryError::NotLoopback),
    };
    Ok(Target {
        authority: authority.to_owned(),
        connect: format!("{connect_host}:{port}"),
        path: path.to_owned(),
    })
}

/// `POST`s `body` to `url` with `headers`, returning the status and the answer's body.
pub(crate) async fn post(
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Result<(u16, Bytes), DeliveryError> {
    let target = parse_loopback(url)?;
    tokio::time::timeout(DELIVERY_TIMEOUT, post_to(target, headers, body))
        .await
        .map_err(|_| DeliveryError::Timeout)?
}

async fn post_to(
    target: Target,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Result<(u16, Bytes), DeliveryError> {
    let io = |e: &dyn std::fmt::Display| DeliveryError::Io(e.to_string());
    let stream = tokio::net::TcpStream::connect(&target.connect).await.map_err(|e| io(&e))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| io(&e))?;
    let mut builder =
        http::Request::post(&target.path).header(http::header::HOST, &target.authority);
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type")) {
        builder = builder.header(http::header::CONTENT_TYPE, "application/json");
    }
    for (name, value) in headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let request = builder.body(Full::new(Bytes::from(body))).map_err(|e| io(&e))?;
    let exchange = async move {
        let response = sender.send_request(request).await.map_err(|e| io(&e))?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map_err(|e| io(&e))?.to_bytes();
        // Dropping the sender lets the connection future below finish.
        drop(sender);
        Ok((status, body))
    };
    // The connection future drives the socket; both are polled together rather than spawned.
    let (result, _) = tokio::join!(exchange, connection);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_http_urls_are_targets() {
        let t = parse_loopback("http://127.0.0.1:8080/vercel/logs?x=1").unwrap();
        assert_eq!(t.connect, "127.0.0.1:8080");
        assert_eq!(t.path, "/vercel/logs?x=1");
        assert_eq!(parse_loopback("http://localhost:9").unwrap().path, "/");
        assert_eq!(parse_loopback("http://[::1]:9/a").unwrap().connect, "[::1]:9");
        for url in [
            "https://127.0.0.1:1/",
            "http://example.com/",
            "http://127.0.0.1.example.com/",
            "http://10.0.0.1:80/",
            "ftp://localhost/",
        ] {
            assert!(matches!(parse_loopback(url), Err(DeliveryError::NotLoopback)), "{url}");
        }
    }

    #[test]
    fn signature_matches_a_known_vector() {
        // RFC 2202 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }
}
