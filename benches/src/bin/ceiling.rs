//! `ceiling`: an HTTP/1.1 receiver that reads every request body whole and discards it, with the
//! same hyper and tokio setup as Spillway's edge. What it moves is what this machine can move
//! over HTTP at all; end-to-end figures are stated as a fraction of it, measured in the same run.

use std::convert::Infallible;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

async fn discard(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut body = req.into_body();
    let mut bytes = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            bytes += data.len();
        }
    }
    Ok(Response::new(Full::new(Bytes::from(format!("{{\"discarded\":{bytes}}}")))))
}

/// jemalloc, as the receiver has it, so the ceiling stays the fastest server we know.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8090".into());
    let listener = TcpListener::bind(&listen).await?;
    eprintln!("ceiling: discarding bodies on {listen}");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service_fn(discard));
        tokio::spawn(conn);
    }
}
