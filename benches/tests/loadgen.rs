//! `loadgen` against a recording HTTP server over a real socket: every batch it sends is distinct,
//! within one run and across two runs against the same receiver, and each is correctly signed.
//!
//! A receiver that skips a repeated batch (the sinks' batch-digest window does) would otherwise
//! answer a second run's batches without writing them, and a bench that measures latency in a
//! second run right after a first would measure no writes at all.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use sha1::Sha1;

const SECRET: &str = "loadgen-test-secret";

/// One request's body and signature header.
type Received = (Vec<u8>, String);

/// Serves HTTP/1.1 connections, answering 200 and recording each request; with `close`, each
/// answer says `Connection: close` and the connection is closed after it.
fn recording_server(close: bool) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let log = Arc::clone(&log);
            std::thread::spawn(move || serve(stream, &log, close));
        }
    });
    (format!("http://{addr}/vercel/logs"), seen)
}

fn serve(stream: TcpStream, log: &Mutex<Vec<Received>>, close: bool) {
    let mut writer = stream.try_clone().expect("clone the stream");
    let mut reader = BufReader::new(stream);
    loop {
        let (mut length, mut signature) = (0usize, String::new());
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            reader.read_line(&mut line).expect("a header line");
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').expect("a header");
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().expect("a length"),
                "x-vercel-signature" => signature = value.trim().to_string(),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("the body");
        log.lock().expect("log lock").push((body, signature));
        if close {
            writer
                .write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
                .expect("answer");
            return;
        }
        writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").expect("answer");
    }
}

/// Runs loadgen for `batches` batches over two connections (with `extra` arguments); its JSON
/// summary.
fn run_loadgen(url: &str, batches: u32, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--url", url, "--secret", SECRET, "--connections", "2", "--records", "200"])
        .args(["--batch-bytes", "16384", "--batches", &batches.to_string(), "--json"])
        .args(extra)
        .output()
        .expect("run loadgen");
    assert!(out.status.success(), "loadgen failed: {}", out.status);
    serde_json::from_slice(&out.stdout).expect("loadgen's JSON summary")
}

#[test]
fn every_batch_is_distinct_across_runs_and_signed() {
    let (url, seen) = recording_server(false);
    run_loadgen(&url, 12, &[]);
    // A fixed-rate run sends every batch too, paced by its own thread.
    let summary = run_loadgen(&url, 12, &["--rate", "400"]);
    assert_eq!(summary["batches"], 12, "{summary}");
    assert!(summary["seconds"].as_f64().expect("seconds") >= 0.0275, "batch 11 is due at 27.5 ms");
    let seen = seen.lock().expect("log lock");
    assert_eq!(seen.len(), 24, "every batch of both runs arrived");
    let distinct: HashSet<&[u8]> = seen.iter().map(|(body, _)| body.as_slice()).collect();
    assert_eq!(distinct.len(), 24, "a batch was sent twice");
    for (body, signature) in seen.iter() {
        let mut mac = Hmac::<Sha1>::new_from_slice(SECRET.as_bytes()).expect("any key");
        mac.update(body);
        assert_eq!(signature, &hex::encode(mac.finalize().into_bytes()), "a bad signature");
        assert!(body.ends_with(b"\n"), "NDJSON lines end with a newline");
    }
}

#[test]
fn a_connection_the_receiver_closes_is_opened_again() {
    let (url, seen) = recording_server(true);
    let summary = run_loadgen(&url, 8, &[]);
    assert_eq!(summary["connection_errors"], 0, "a batch went to a closed connection: {summary}");
    assert_eq!(summary["batches"], 8, "{summary}");
    assert_eq!(summary["non_2xx"], serde_json::json!({}), "every batch answered 200: {summary}");
    assert_eq!(seen.lock().expect("log lock").len(), 8, "every batch arrived");
}
