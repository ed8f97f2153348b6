//! The socket-less harness (`ingest::harness`) that `fuzz/` drives: a delivery written as bytes
//! into an in-memory pipe gets the answer a socket would, and its batch reaches the dispatcher.

mod common;

use std::sync::Arc;

use common::Keep;
use ingest::harness::{gunzip, Harness};
use ingest::IngestConfig;
use listener::SigningKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../fixtures/vercel/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(path).unwrap()
}

/// Sends `request` on a fresh connection and returns the whole answer.
fn exchange(harness: &Harness, request: Vec<u8>) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let harness = harness.clone();
    runtime.block_on(async move {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let serving = tokio::spawn(async move { harness.serve_connection(server).await });
        client.write_all(&request).await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        serving.await.unwrap().unwrap();
        String::from_utf8(answer).unwrap()
    })
}

fn post(signature: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut head = "POST /vercel/logs HTTP/1.1\r\nhost: t\r\nconnection: close\r\n".to_owned();
    if let Some(sig) = signature {
        head.push_str(&format!("x-vercel-signature: {sig}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    [head.as_bytes(), body].concat()
}

#[test]
fn a_delivery_through_the_harness_is_answered_and_dispatched_as_from_a_socket() {
    let key = SigningKey::new("drain-secret-0123456789");
    let config = IngestConfig { drain_secret: Some(key.clone()), ..IngestConfig::default() };
    let keep = Arc::new(Keep::default());
    let harness = Harness::new(config, keep.clone(), None).unwrap();
    let body = fixture("logs.ndjson");

    let answer = exchange(&harness, post(Some(&key.sign(&body)), &body));
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(answer.ends_with(r#"{"accepted":5,"dead_lettered":0}"#), "{answer}");
    assert_eq!(keep.0.lock().unwrap()[0].records.len(), 5);

    let answer = exchange(&harness, post(None, &body));
    assert!(answer.starts_with("HTTP/1.1 401 "), "{answer}");
    assert!(answer.contains(r#""code":"missing_signature""#), "{answer}");
    assert_eq!(keep.0.lock().unwrap().len(), 1, "nothing more dispatched");
}

#[test]
fn the_exposed_inflater_keeps_its_cap() {
    let gz = fixture("logs.ndjson.gz");
    assert_eq!(gunzip(&gz, 1 << 20).unwrap(), fixture("logs.ndjson"));
    assert_eq!(gunzip(&gz, 10).unwrap_err().code(), "inflated_body_too_large");
}

#[test]
fn previous_secrets_verify_raw_and_inflated_bodies_during_a_rotation() {
    let (old, new) = (SigningKey::new("old-drain-secret"), SigningKey::new("new-drain-secret"));
    let config = IngestConfig {
        drain_secret: Some(new.clone()),
        previous_drain_secrets: Arc::from([old.clone()]),
        ..IngestConfig::default()
    };
    let harness = Harness::new(config, Arc::new(Keep::default()), None).unwrap();
    let body = fixture("logs.ndjson");
    for key in [&new, &old] {
        let answer = exchange(&harness, post(Some(&key.sign(&body)), &body));
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    }
    let other = SigningKey::new("another-secret");
    let answer = exchange(&harness, post(Some(&other.sign(&body)), &body));
    assert!(answer.starts_with("HTTP/1.1 403 "), "{answer}");
    // A body past 256 KiB, read in many frames, is checked on the blocking pool: under the
    // current secret and, when that fails, under a previous one.
    let large = body.repeat(300 * 1024 / body.len() + 1);
    for (key, status) in [(&new, "200"), (&old, "200"), (&other, "403")] {
        let answer = exchange(&harness, post(Some(&key.sign(&large)), &large));
        assert!(answer.starts_with(&format!("HTTP/1.1 {status} ")), "{answer}");
    }

    // Gzip signed over the inflated bytes with the previous secret: checked after inflating.
    let gz = fixture("logs.ndjson.gz");
    let head = format!(
        "POST /vercel/logs HTTP/1.1\r\nhost: t\r\nconnection: close\r\ncontent-encoding: gzip\r\n\
         x-vercel-signature: {}\r\ncontent-length: {}\r\n\r\n",
        old.sign(&body),
        gz.len()
    );
    let answer = exchange(&harness, [head.as_bytes(), &gz].concat());
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");

    // A gzip body past 256 KiB (stored, not compressed): its raw bytes are checked on the
    // blocking thread that then opens it, and its inflated bytes after inflating.
    let mut stored = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    std::io::Write::write_all(&mut stored, &large).unwrap();
    let stored = stored.finish().unwrap();
    assert!(stored.len() > 256 * 1024);
    for (signature, status) in [
        (new.sign(&stored), "200"),
        (old.sign(&large), "200"),
        (new.sign(&large), "200"),
        (other.sign(&large), "403"),
    ] {
        let head = format!(
            "POST /vercel/logs HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\
             content-encoding: gzip\r\nx-vercel-signature: {signature}\r\n\
             content-length: {}\r\n\r\n",
            stored.len()
        );
        let answer = exchange(&harness, [head.as_bytes(), &stored].concat());
        assert!(answer.starts_with(&format!("HTTP/1.1 {status} ")), "{answer}");
    }
}
