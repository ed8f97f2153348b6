//! `loadgen`: replays realistic, signed Vercel deliveries against a receiver over many keep-alive
//! connections, at the maximum rate or at a fixed rate (open loop), for a fixed time or a fixed
//! number of batches; prints a live progress line and a summary (throughput, latency
//! percentiles, non-2xx by status), or JSON with `--json`. A connection the receiver closes
//! (`Connection: close`, or a `503`) is opened again for the next batch.
//!
//! Every request is a distinct batch, as Vercel's are: each body ends with one extra record
//! (the nonce) carrying the request's sequence number, so a receiver that recognises repeated
//! batches cannot make a replayed corpus look faster than it is. Sequence numbers start at the
//! run's start time in nanoseconds, so two runs against one receiver (a maximum-rate run, then a
//! fixed-rate one) never send the same batch either. The signature is finished from
//! an HMAC state precomputed over the rest of the body, so a unique signed body costs the client
//! almost nothing. With gzip, the nonce is its own gzip member after the compressed rest.
//! `--chunked` sends bodies without a `Content-Length`, in chunks of 64 KiB and the nonce.
//!
//! `--type` sends another JSON data type's records (`speed-insights`, `analytics`, `audit-log`)
//! to its path (`/vercel/<type>` unless `--url` says otherwise). Bodies are sent as
//! `application/x-ndjson` (`--format ndjson`, their default) or `application/json`
//! (`--format json`).
//!
//! `--type traces` sends OTLP trace batches (`ExportTraceServiceRequest`s of resources of 10-50
//! spans, about 360 bytes per span as protobuf; `spillway_benches::otlp_batches`) as
//! `application/x-protobuf` (`--format proto`, their default) or OTLP/JSON (`--format json`);
//! `--records` counts spans, and so do the records in the summary. Their nonce is one more
//! resource with a span unique to the request: one more `resource_spans` field after the
//! protobuf (repeated fields concatenate), or the last element of OTLP/JSON's `resourceSpans`,
//! which it closes.
//!
//! `--acked-out PATH` writes what was answered 2xx as a multiset of record digests
//! ([`spillway_benches::acked`]), for `topic-check` to find every acknowledged record in Kafka
//! (NDJSON bodies only; digests are taken before the clock starts, the file written after it).
//!
//! ```text
//! loadgen --url http://127.0.0.1:8080/vercel/logs --secret S --connections 16 --duration-secs 10
//! loadgen --type speed-insights --format json --secret S --batches 1000
//! loadgen --type traces --gzip --secret S --batch-bytes 262144 --duration-secs 10
//! ```

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use hmac::{Hmac, Mac};
use record::DataType;
use sha1::Sha1;
use spillway_benches::acked::{digest, Acked};
use spillway_benches::schedule::Schedule;
use spillway_benches::{Corpus, OtlpEncoding};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
#[command(about = "Replays signed Vercel deliveries against a receiver")]
struct Args {
    /// The drain URL (http only): http://HOST:PORT/PATH; default
    /// http://127.0.0.1:8080/vercel/<type>.
    #[arg(long)]
    url: Option<String>,
    /// The drain's data type: logs, speed-insights, analytics, audit-log or traces.
    #[arg(long = "type", default_value = "logs", value_parser = data_type)]
    data_type: DataType,
    /// The drain secret to sign with; unsigned without one.
    #[arg(long, env = "SPILLWAY_DRAIN_SECRET")]
    secret: Option<String>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Run this long (ignored with --batches).
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Send exactly this many batches instead of running for a duration.
    #[arg(long)]
    batches: Option<u64>,
    /// Batches per second in total (open loop); 0 sends as fast as the receiver answers.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Target size of one batch before compression, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    batch_bytes: usize,
    /// Records (spans, for traces) in the corpus the batches are cut from.
    #[arg(long, default_value_t = 20_000)]
    records: usize,
    /// The corpus seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Body format: ndjson or json for the JSON types (default ndjson), proto or json (OTLP/JSON)
    /// for traces (default proto).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Compress bodies with gzip (Content-Encoding: gzip).
    #[arg(long)]
    gzip: bool,
    /// Send bodies chunked (Transfer-Encoding: chunked), without a Content-Length.
    #[arg(long)]
    chunked: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Write the records of the batches answered 2xx here, as digests (NDJSON bodies only).
    #[arg(long)]
    acked_out: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Ndjson,
    Json,
    Proto,
}

impl Format {
    /// The format bodies of `data_type` are sent in: `requested`, or the type's default.
    fn of(requested: Option<Format>, data_type: DataType) -> Result<Format, String> {
        match (data_type, requested) {
            (DataType::Traces, None) => Ok(Format::Proto),
            (DataType::Traces, Some(Format::Ndjson)) => Err("traces are proto or json".into()),
            (DataType::Traces, Some(format)) => Ok(format),
            (_, None) => Ok(Format::Ndjson),
            (_, Some(Format::Proto)) => Err(format!("{data_type} is ndjson or json, not proto")),
            (_, Some(format)) => Ok(format),
        }
    }

    /// The Content-Type of bodies of this format.
    fn content_type(self) -> &'static str {
        match self {
            Format::Ndjson => "application/x-ndjson",
            Format::Json => "application/json",
            Format::Proto => OtlpEncoding::Protobuf.content_type(),
        }
    }

    /// How OTLP requests are encoded in this format.
    fn otlp(self) -> OtlpEncoding {
        if self == Format::Proto {
            OtlpEncoding::Protobuf
        } else {
            OtlpEncoding::Json
        }
    }
}

fn data_type(name: &str) -> Result<DataType, String> {
    name.parse::<DataType>().map_err(|e| e.to_string())
}

/// The distinct end of request `seq`'s body (see the module docs).
fn nonce(seq: u64, (format, data_type): (Format, DataType)) -> Vec<u8> {
    if data_type == DataType::Traces {
        return format.otlp().nonce(seq);
    }
    let record = spillway_benches::nonce(data_type, seq);
    match format {
        Format::Ndjson => format!("{record}\n").into_bytes(),
        _ => format!(",{record}]").into_bytes(),
    }
}

/// One prepared batch: the request head (less length and signature), the body less its nonce
/// (as sent: in chunks with `--chunked`), the HMAC state over that body, and what it carries.
struct Prepared {
    head: String,
    body: Vec<u8>,
    chunked: bool,
    mac: Option<Hmac<Sha1>>,
    records: u64,
    body_bytes: u64,
    /// The digest of each record of the body less its nonce, with `--acked-out`.
    digests: Vec<u64>,
}

impl Prepared {
    /// The request for sequence number `seq`: head, then body, then the nonce.
    fn request(&self, seq: u64, kind: (Format, DataType), gzip: bool) -> (String, Vec<u8>) {
        let mut nonce = nonce(seq, kind);
        if gzip {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&nonce).expect("gzip into memory");
            nonce = e.finish().expect("gzip into memory");
        }
        let mut head = match self.chunked {
            true => self.head.clone(),
            false => format!("{}content-length: {}\r\n", self.head, self.body.len() + nonce.len()),
        };
        if let Some(mac) = &self.mac {
            let mut mac = mac.clone();
            mac.update(&nonce);
            head.push_str(&format!(
                "x-vercel-signature: {}\r\n",
                hex::encode(mac.finalize().into_bytes())
            ));
        }
        head.push_str("\r\n");
        if self.chunked {
            // The nonce as the last chunk, then the end of the body.
            let size = format!("{:x}\r\n", nonce.len());
            nonce = [size.as_bytes(), &nonce, b"\r\n0\r\n\r\n"].concat();
        }
        (head, nonce)
    }
}

struct Totals {
    sent: AtomicU64,
    ok_records: AtomicU64,
    ok_bytes: AtomicU64,
    statuses: Mutex<BTreeMap<u16, u64>>,
    errors: AtomicU64,
}

/// The bodies to send less their nonces, each with the records it carries (counting the nonce)
/// and its size.
fn bodies(args: &Args, format: Format) -> Vec<(Vec<u8>, u64, u64)> {
    if args.data_type == DataType::Traces {
        let (seed, encoding) = (args.seed, format.otlp());
        let batches =
            spillway_benches::otlp_batches(seed, args.records, args.batch_bytes, encoding);
        return batches
            .iter()
            .map(|request| {
                let body = encoding.encode_open(request);
                let spans = spillway_benches::otlp_span_count(request) as u64 + 1;
                let size = body.len() as u64;
                (body, spans, size)
            })
            .collect();
    }
    let corpus = Corpus::of(args.data_type, args.seed, args.records);
    let mut out = Vec::new();
    let mut start = 0;
    while start < corpus.records.len() {
        let mut end = start;
        let mut size = 0;
        while end < corpus.records.len() && size < args.batch_bytes {
            size += corpus.records[end].len() + 1;
            end += 1;
        }
        let part = Corpus { records: corpus.records[start..end].to_vec() };
        let body = match format {
            Format::Json => {
                let mut array = part.json_array();
                array.pop(); // the closing bracket comes with the nonce
                array
            }
            _ => part.ndjson(),
        };
        out.push((body, (end - start + 1) as u64, size as u64));
        start = end;
    }
    out
}

fn prepare(args: &Args, format: Format, host: &str, path: &str) -> Vec<Prepared> {
    let mut out = Vec::new();
    for (mut body, records, body_bytes) in bodies(args, format) {
        let digests = match args.acked_out {
            Some(_) => body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(digest).collect(),
            None => Vec::new(),
        };
        let content_type = format.content_type();
        let mut head =
            format!("POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: {content_type}\r\n");
        if args.gzip {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&body).expect("gzip into memory");
            body = e.finish().expect("gzip into memory");
            head.push_str("content-encoding: gzip\r\n");
        }
        let mac = args.secret.as_ref().map(|secret| {
            let mut mac =
                Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
            mac.update(&body);
            mac
        });
        if args.chunked {
            head.push_str("transfer-encoding: chunked\r\n");
            let frame = |c: &[u8]| [format!("{:x}\r\n", c.len()).as_bytes(), c, b"\r\n"].concat();
            body = body.chunks(64 << 10).flat_map(frame).collect();
        }
        let chunked = args.chunked;
        out.push(Prepared { head, body, chunked, mac, records, body_bytes, digests });
    }
    out
}

/// Reads one response; returns its status and whether the receiver closes the connection after
/// it (`Connection: close`).
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<(u16, bool)> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).unwrap_or("");
            let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            let header = |name: &str| {
                head.lines().skip(1).find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
                })
            };
            let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok((status, close));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// What every connection needs: where to send, what, and when.
struct Plan {
    addr: SocketAddr,
    prepared: Arc<Vec<Prepared>>,
    schedule: Arc<Schedule>,
    format: Format,
    data_type: DataType,
    gzip: bool,
    /// The sequence number of batch 0: the run's start in nanoseconds since the epoch.
    first_seq: u64,
}

impl Plan {
    /// The sequence number batch `i` carries in its nonce.
    fn seq(&self, i: u64) -> u64 {
        self.first_seq.wrapping_add(i)
    }
}

/// One keep-alive connection's loop: sends batches until the plan is done, recording each
/// answer in `totals`; returns the latencies and the numbers of the batches answered 2xx.
async fn connection(plan: Arc<Plan>, totals: Arc<Totals>) -> (Histogram<u64>, Vec<u64>) {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    let mut acked = Vec::new();
    let mut stream: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(4096);
    loop {
        let Some((i, scheduled)) = plan.schedule.next().await else { break };
        let p = &plan.prepared[(i as usize) % plan.prepared.len()];
        if stream.is_none() {
            match TcpStream::connect(plan.addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    stream = Some(s);
                }
                Err(_) => {
                    totals.errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let s = stream.as_mut().expect("connected above");
        let (head, nonce) = p.request(plan.seq(i), (plan.format, plan.data_type), plan.gzip);
        let result = async {
            s.write_all(head.as_bytes()).await?;
            s.write_all(&p.body).await?;
            s.write_all(&nonce).await?;
            read_response(s, &mut buf).await
        }
        .await;
        totals.sent.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok((status, close)) => {
                let micros = scheduled.elapsed().as_micros().clamp(1, 60_000_000) as u64;
                let _ = hist.record(micros);
                totals.answered(status, p);
                if (200..300).contains(&status) {
                    acked.push(i);
                }
                if close || status == 503 || status == 0 {
                    stream = None; // closed by the receiver, or it may have closed it
                }
            }
            Err(_) => {
                totals.errors.fetch_add(1, Ordering::Relaxed);
                stream = None;
            }
        }
    }
    (hist, acked)
}

impl Totals {
    fn answered(&self, status: u16, p: &Prepared) {
        if (200..300).contains(&status) {
            self.ok_records.fetch_add(p.records, Ordering::Relaxed);
            self.ok_bytes.fetch_add(p.body_bytes, Ordering::Relaxed);
        }
        *self.statuses.lock().expect("status map").entry(status).or_default() += 1;
    }
}

/// Prints a live progress line every second until aborted.
async fn progress(totals: Arc<Totals>, started: Instant) {
    let mut last = (Instant::now(), 0u64, 0u64);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (records, bytes) =
            (totals.ok_records.load(Ordering::Relaxed), totals.ok_bytes.load(Ordering::Relaxed));
        let dt = last.0.elapsed().as_secs_f64();
        eprint!(
            "\r{:6.1}s  {:>10.0} records/s  {:>8.1} MB/s  statuses {:?}   ",
            started.elapsed().as_secs_f64(),
            (records - last.1) as f64 / dt,
            (bytes - last.2) as f64 / dt / 1e6,
            totals.statuses.lock().expect("status map")
        );
        last = (Instant::now(), records, bytes);
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let format = Format::of(args.format, args.data_type).unwrap_or_else(|e| {
        eprintln!("loadgen: --format: {e}");
        std::process::exit(2)
    });
    if args.acked_out.is_some() && format != Format::Ndjson {
        eprintln!("loadgen: --acked-out takes NDJSON bodies only");
        std::process::exit(2)
    }
    let url = args
        .url
        .clone()
        .unwrap_or_else(|| format!("http://127.0.0.1:8080/vercel/{}", args.data_type.slug()));
    let rest = url.strip_prefix("http://").expect("--url must start with http://");
    let (host, path) =
        rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let addr: SocketAddr =
        tokio::net::lookup_host(host).await.expect("resolve host").next().expect("an address");
    let prepared = Arc::new(prepare(&args, format, host, &path));
    eprintln!(
        "loadgen: {} batches of ~{} KiB ({} records) prepared; {} connections, {}",
        prepared.len(),
        args.batch_bytes / 1024,
        args.records,
        args.connections,
        if args.rate > 0.0 { format!("{} batches/s", args.rate) } else { "max rate".into() }
    );
    let totals = Arc::new(Totals {
        sent: AtomicU64::new(0),
        ok_records: AtomicU64::new(0),
        ok_bytes: AtomicU64::new(0),
        statuses: Mutex::new(BTreeMap::new()),
        errors: AtomicU64::new(0),
    });
    let schedule = Schedule::new(Duration::from_secs(args.duration_secs), args.batches, args.rate);
    let started = schedule.started();
    let pacer = schedule.pace();
    let plan = Arc::new(Plan {
        addr,
        prepared,
        schedule,
        format,
        data_type: args.data_type,
        gzip: args.gzip,
        first_seq: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64),
    });
    let tasks: Vec<_> = (0..args.connections)
        .map(|_| tokio::spawn(connection(Arc::clone(&plan), Arc::clone(&totals))))
        .collect();
    let progress = tokio::spawn(progress(Arc::clone(&totals), started));
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    let mut acked = Vec::new();
    for t in tasks {
        if let Ok((h, seqs)) = t.await {
            let _ = hist.add(h);
            acked.extend(seqs);
        }
    }
    progress.abort();
    if let Some(pacer) = pacer {
        pacer.join().expect("the pacer thread");
    }
    eprintln!();
    if let Some(path) = &args.acked_out {
        write_acked(path, &plan, &acked);
    }
    report(&totals, &hist, started.elapsed().as_secs_f64(), args.json);
}

/// Writes the records of the batches numbered `acked` (each body's, then its nonce) to `path`.
fn write_acked(path: &std::path::Path, plan: &Plan, acked: &[u64]) {
    let mut out = Acked::default();
    for &i in acked {
        let p = &plan.prepared[(i as usize) % plan.prepared.len()];
        let nonce = spillway_benches::nonce(plan.data_type, plan.seq(i));
        out.add_batch(p.digests.iter().copied().chain([digest(nonce.as_bytes())]));
    }
    std::fs::write(path, out.to_json().to_string()).expect("write --acked-out");
}

/// Where `--json` samples the latency CDF: 0.00..=0.99 by 0.01, then 0.999 and 1.
fn cdf_quantiles() -> impl Iterator<Item = f64> {
    (0..100).map(|i| f64::from(i) / 100.0).chain([0.999, 1.0])
}

/// Prints the run's summary, as JSON with `--json`.
fn report(totals: &Totals, hist: &Histogram<u64>, elapsed: f64, json: bool) {
    let records = totals.ok_records.load(Ordering::Relaxed);
    let bytes = totals.ok_bytes.load(Ordering::Relaxed);
    let statuses = totals.statuses.lock().expect("status map").clone();
    let non_2xx: BTreeMap<u16, u64> =
        statuses.iter().filter(|(s, _)| !(200..300).contains(*s)).map(|(s, n)| (*s, *n)).collect();
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let summary = serde_json::json!({
        "seconds": elapsed,
        "batches": totals.sent.load(Ordering::Relaxed),
        "records_per_sec": records as f64 / elapsed,
        "mb_per_sec": bytes as f64 / elapsed / 1e6,
        "accepted_records": records,
        "accepted_bytes": bytes,
        "latency_ms": {"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "max": hist.max() as f64 / 1000.0},
        // The latency CDF as [quantile, ms] points, for `plot`: every percentile, then the tail.
        "latency_cdf_ms": cdf_quantiles().map(|q| [q, ms(q)]).collect::<Vec<_>>(),
        "non_2xx": non_2xx,
        "connection_errors": totals.errors.load(Ordering::Relaxed),
    });
    if json {
        println!("{summary}");
    } else {
        println!(
            "{:.1} s: {:.0} records/s, {:.1} MB/s (uncompressed); latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms; non-2xx {:?}; connection errors {}",
            elapsed,
            records as f64 / elapsed,
            bytes as f64 / elapsed / 1e6,
            ms(0.5),
            ms(0.9),
            ms(0.99),
            hist.max() as f64 / 1000.0,
            non_2xx,
            totals.errors.load(Ordering::Relaxed)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each type's formats: an explicit `--format proto` for traces was once refused as not
    /// being a JSON type's format, so only the default reached proto.
    #[test]
    fn every_type_takes_its_formats_and_refuses_the_others() {
        assert_eq!(Format::of(None, DataType::Traces), Ok(Format::Proto));
        assert_eq!(Format::of(Some(Format::Proto), DataType::Traces), Ok(Format::Proto));
        assert_eq!(Format::of(Some(Format::Json), DataType::Traces), Ok(Format::Json));
        assert!(Format::of(Some(Format::Ndjson), DataType::Traces).is_err());
        assert_eq!(Format::of(None, DataType::Logs), Ok(Format::Ndjson));
        assert_eq!(Format::of(Some(Format::Json), DataType::AuditLog), Ok(Format::Json));
        assert!(Format::of(Some(Format::Proto), DataType::SpeedInsights).is_err());
    }
}
