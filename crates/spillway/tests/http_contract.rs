//! The HTTP contract, over real sockets, with the Vercel fixtures: every status the receiver
//! answers, what it stores for each, and the headers Vercel relies on.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use testkit::poll_until;

fn ndjson_lines(body: &[u8]) -> Vec<String> {
    String::from_utf8(body.to_vec())
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn signed_ndjson_delivery_is_stored_byte_for_byte_and_answered_200() {
    let app = TestApp::start(|_| {});
    let body = fixture("logs.ndjson");
    let sig = fixture_signature("logs.ndjson");
    let reply = send(app.addr, "POST", "/vercel/logs", &[("x-vercel-signature", &sig)], &body);
    assert_eq!(reply.status, 200, "{:?}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.json(), serde_json::json!({"accepted": 5, "dead_lettered": 0}));
    assert_eq!(reply.header("x-vercel-verify"), Some(VERIFY_CODE));
    // A 200 means written: the records are on disk now, exactly as received.
    assert_eq!(lines_in(&app.dir("logs")), ndjson_lines(&body));
    assert!(lines_in(&app.dir("dead-letter")).is_empty());
}

#[test]
fn signed_json_array_delivery_is_stored_as_compact_lines() {
    let app = TestApp::start(|_| {});
    let body = fixture("logs-array.json");
    let sig = fixture_signature("logs-array.json");
    let reply = send(app.addr, "POST", "/vercel/logs", &[("x-vercel-signature", &sig)], &body);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["accepted"], 3);
    let stored = lines_in(&app.dir("logs"));
    let expected: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
    assert_eq!(stored.len(), 3);
    for (line, element) in stored.iter().zip(&expected) {
        assert!(!line.contains(": ") && !line.contains("\n"), "not compact: {line}");
        assert_eq!(&serde_json::from_str::<serde_json::Value>(line).unwrap(), element);
    }
    // Content inside strings is untouched, whitespace and unicode included.
    assert!(
        stored[0].contains(r#""userAgent":["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"]"#)
    );
    assert!(stored[1].contains("\"branch\":\"feat/été-🚀\""));
}

#[test]
fn gzip_delivery_signed_over_compressed_bytes_is_200() {
    let app = TestApp::start(|_| {});
    let body = fixture("logs.ndjson.gz");
    let sig = fixture_signature("logs.ndjson.gz");
    let reply = send(
        app.addr,
        "POST",
        "/vercel/logs",
        &[("x-vercel-signature", &sig), ("content-encoding", "gzip")],
        &body,
    );
    assert_eq!(reply.status, 200);
    let stored = lines_in(&app.dir("logs"));
    assert_eq!(reply.json()["accepted"], stored.len());
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain).unwrap();
    assert_eq!(stored, ndjson_lines(&plain));
}

#[test]
fn gzip_delivery_signed_over_inflated_bytes_is_200_and_counted() {
    let app = TestApp::start(|_| {});
    let plain = fixture("logs.ndjson");
    let sig = fixture_signature("logs.ndjson");
    let reply = send(
        app.addr,
        "POST",
        "/vercel/logs",
        &[("x-vercel-signature", &sig), ("content-encoding", "gzip")],
        &gzip(&plain),
    );
    assert_eq!(reply.status, 200);
    assert_eq!(lines_in(&app.dir("logs")), ndjson_lines(&plain));
    let metrics = String::from_utf8(send(app.addr, "GET", "/metrics", &[], b"").body).unwrap();
    assert!(metrics.contains("spillway_signature_matches_total{over=\"inflated\"} 1"), "{metrics}");
}

#[test]
fn batch_with_bad_lines_is_200_and_bad_lines_are_dead_lettered() {
    let app = TestApp::start(|_| {});
    let body = fixture("logs-partly-bad.ndjson");
    let reply = deliver(app.addr, &body);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), serde_json::json!({"accepted": 3, "dead_lettered": 3}));
    let good: Vec<String> =
        ndjson_lines(&body).into_iter().filter(|l| l.contains("\"projectId\"")).collect();
    assert_eq!(lines_in(&app.dir("logs")), good);
    let dead: Vec<serde_json::Value> = lines_in(&app.dir("dead-letter"))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reasons: Vec<&str> = dead.iter().map(|d| d["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["invalid_json", "not_an_object", "missing_id"]);
    assert_eq!(dead[1]["raw"], "[1,2,3]");
    assert!(dead.iter().all(|d| d["drain"] == "default" && d["received_at_ms"].is_u64()));
}

#[test]
fn vercel_test_delivery_is_stored() {
    let app = TestApp::start(|_| {});
    let body = fixture("test-delivery.json");
    let sig = fixture_signature("test-delivery.json");
    let reply = send(app.addr, "POST", "/vercel/logs", &[("x-vercel-signature", &sig)], &body);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), serde_json::json!({"accepted": 2, "dead_lettered": 0}));
    assert!(lines_in(&app.dir("logs")).iter().all(|l| l.contains("SAMPLE MESSAGE:")));
}

#[test]
fn unsigned_verification_probe_is_200_with_the_verify_code_and_stores_nothing() {
    let app = TestApp::start(|_| {});
    for body in [fixture("verify-probe.json"), Vec::new()] {
        let reply = send(app.addr, "POST", "/vercel/logs", &[], &body);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-vercel-verify"), Some(VERIFY_CODE));
    }
    assert!(lines_in(&app.dir("logs")).is_empty());
    assert!(lines_in(&app.dir("dead-letter")).is_empty());
}

#[test]
fn get_and_head_on_the_drain_path_answer_the_verify_code() {
    let app = TestApp::start(|_| {});
    for method in ["GET", "HEAD"] {
        let mut stream = TcpStream::connect(app.addr).unwrap();
        stream
            .write_all(format!("{method} /vercel/logs HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
            .unwrap();
        let reply = if method == "HEAD" {
            let mut head = [0u8; 1024];
            let n = stream.read(&mut head).unwrap();
            let text = String::from_utf8_lossy(&head[..n]).to_lowercase();
            assert!(text.starts_with("http/1.1 200"), "{text}");
            assert!(text.contains(&format!("x-vercel-verify: {VERIFY_CODE}")), "{text}");
            continue;
        } else {
            read_reply(&mut stream)
        };
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-vercel-verify"), Some(VERIFY_CODE));
    }
}

#[test]
fn missing_signature_is_401_and_stores_nothing() {
    let app = TestApp::start(|_| {});
    let reply = send(app.addr, "POST", "/vercel/logs", &[], &fixture("logs.ndjson"));
    assert_eq!(reply.status, 401);
    assert_eq!(reply.error_code(), "missing_signature");
    assert!(reply.header("x-vercel-verify").is_none());
    assert!(lines_in(&app.dir("logs")).is_empty());
}

#[test]
fn wrong_signature_is_403_and_stores_nothing() {
    let app = TestApp::start(|_| {});
    let body = fixture("logs.ndjson");
    let forged = listener::SigningKey::new("not-the-secret").sign(&body);
    for sig in [forged.as_str(), "zz", &fixture_signature("logs-array.json")] {
        let reply = send(app.addr, "POST", "/vercel/logs", &[("x-vercel-signature", sig)], &body);
        assert_eq!(reply.status, 403, "signature {sig}");
        assert_eq!(reply.error_code(), "invalid_signature");
        let message = reply.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(!message.contains(SECRET) && !message.contains(sig), "{message}");
    }
    assert!(lines_in(&app.dir("logs")).is_empty());
}

#[test]
fn a_required_header_missing_is_401_and_with_another_value_403_and_stores_nothing() {
    const TOKEN: &str = "Bearer tok-9f8e7d";
    let app = TestApp::start(|c| {
        c.ingest.drain_headers =
            vec![ingest::RequiredHeader::new("Authorization", TOKEN).unwrap()].into();
    });
    let body = fixture("logs.ndjson");
    let sig = fixture_signature("logs.ndjson");
    let post = |headers: &[(&str, &str)]| send(app.addr, "POST", "/vercel/logs", headers, &body);

    let reply = post(&[("x-vercel-signature", &sig)]);
    assert_eq!((reply.status, reply.error_code().as_str()), (401, "missing_header"));
    assert!(reply.header("x-vercel-verify").is_none());
    for wrong in ["Bearer tok-9f8e7", "Bearer tok-9f8e7e", "bearer tok-9f8e7d"] {
        let reply = post(&[("x-vercel-signature", &sig), ("authorization", wrong)]);
        assert_eq!((reply.status, reply.error_code().as_str()), (403, "invalid_header"), "{wrong}");
        assert!(!String::from_utf8_lossy(&reply.body).contains("tok-"), "{reply:?}");
    }
    // The header does not stand in for the signature.
    let reply = post(&[("authorization", TOKEN)]);
    assert_eq!((reply.status, reply.error_code().as_str()), (401, "missing_signature"));
    assert!(lines_in(&app.dir("logs")).is_empty());

    // Vercel's endpoint check is answered without it, as without a signature.
    let reply = send(app.addr, "POST", "/vercel/logs", &[], &fixture("verify-probe.json"));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-vercel-verify"), Some(VERIFY_CODE));

    let reply = post(&[("x-vercel-signature", &sig), ("Authorization", TOKEN)]);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(lines_in(&app.dir("logs")).len(), 5);
}

#[test]
fn other_methods_on_the_drain_path_are_405_with_allow() {
    let app = TestApp::start(|_| {});
    let reply = send(app.addr, "PUT", "/vercel/logs", &[], b"{}");
    assert_eq!(reply.status, 405);
    assert_eq!(reply.error_code(), "method_not_allowed");
    assert_eq!(reply.header("allow"), Some("POST, GET, HEAD"));
}

#[test]
fn body_over_the_cap_is_413_whether_declared_or_streamed() {
    let app = TestApp::start(|c| c.ingest.max_body_bytes = 2048);
    let body = vec![b' '; 4096];
    let reply = deliver(app.addr, &body);
    assert_eq!(reply.status, 413);
    assert_eq!(reply.error_code(), "body_too_large");
    // Chunked: no length up front, the cap is enforced while reading.
    let mut stream = TcpStream::connect(app.addr).unwrap();
    let mut req =
        b"POST /vercel/logs HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        req.extend_from_slice(b"400\r\n");
        req.extend_from_slice(&[b' '; 0x400]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let reply = exchange(&mut stream, &req);
    assert_eq!(reply.status, 413);
    assert_eq!(reply.error_code(), "body_too_large");
}

#[test]
fn gzip_body_inflating_over_the_cap_is_413() {
    let app = TestApp::start(|c| c.ingest.max_inflated_bytes = 64 * 1024);
    let bomb = gzip(&vec![b' '; 8 << 20]);
    let reply = deliver_encoded(app.addr, &bomb, "gzip");
    assert_eq!(reply.status, 413);
    assert_eq!(reply.error_code(), "inflated_body_too_large");
}

#[test]
fn unsupported_content_encoding_is_415() {
    let app = TestApp::start(|_| {});
    let body = fixture("logs.ndjson");
    let reply = deliver_encoded(app.addr, &body, "br");
    assert_eq!(reply.status, 415);
    assert_eq!(reply.error_code(), "unsupported_encoding");
}

#[test]
fn corrupt_gzip_is_400() {
    let app = TestApp::start(|_| {});
    let mut body = fixture("logs.ndjson.gz");
    let n = body.len();
    body[n / 2] ^= 0x55;
    body[n - 6] ^= 0x55;
    let reply = deliver_encoded(app.addr, &body, "gzip");
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code(), "corrupt_gzip");
}

#[test]
fn body_without_any_json_record_is_400_and_kept_as_one_dead_letter() {
    let app = TestApp::start(|_| {});
    let reply = deliver(app.addr, b"this is not json\nnor is this\n");
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code(), "no_records");
    assert!(lines_in(&app.dir("logs")).is_empty());
    // More in tests/no_json.rs.
    assert_eq!(lines_in(&app.dir("dead-letter")).len(), 1);
}

#[test]
fn unknown_path_is_404() {
    let app = TestApp::start(|_| {});
    let reply = send(app.addr, "GET", "/nope", &[], b"");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error_code(), "not_found");
}

#[test]
fn sink_failure_is_503_with_retry_after_and_readyz_follows() {
    let app = TestApp::start(|_| {});
    assert_eq!(send(app.addr, "GET", "/readyz", &[], b"").status, 200);
    std::fs::remove_dir_all(app.dir("logs")).unwrap();
    let reply = deliver(app.addr, &fixture("logs.ndjson"));
    assert_eq!(reply.status, 503);
    assert_eq!(reply.error_code(), "sink_unavailable");
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert!(reply.header("x-vercel-verify").is_none());
    let ready = poll_until(
        Duration::from_secs(5),
        || send(app.addr, "GET", "/readyz", &[], b""),
        |ready| ready.status != 200,
    );
    assert_eq!(ready.status, 503);
    assert_eq!(ready.error_code(), "not_ready");
    // The directory comes back: so does the sink, on the next delivery.
    std::fs::create_dir_all(app.dir("logs")).unwrap();
    let reply = deliver(app.addr, &fixture("logs.ndjson"));
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(send(app.addr, "GET", "/readyz", &[], b"").status, 200);
}

#[test]
fn connections_over_the_limit_get_503_at_once() {
    let app = TestApp::start(|c| c.ingest.max_connections = 1);
    assert_second_connection_refused(app.addr, &request("GET", "/healthz", &[], b""), 200);
}

#[test]
fn keep_alive_serves_many_deliveries_on_one_connection() {
    let app = TestApp::start(|_| {});
    let mut stream = TcpStream::connect(app.addr).unwrap();
    for i in 0..5 {
        let body = format!(r#"{{"id":"ka-{i}","projectId":"p","timestamp":{i}}}"#);
        let sig = sign(body.as_bytes());
        let req = request("POST", "/vercel/logs", &[("x-vercel-signature", &sig)], body.as_bytes());
        assert_eq!(exchange(&mut stream, &req).status, 200);
    }
    assert_eq!(lines_in(&app.dir("logs")).len(), 5);
}

#[test]
fn a_redelivered_identical_batch_is_acknowledged_but_not_written_twice() {
    let app = TestApp::start(|_| {});
    let body = fixture("logs-partly-bad.ndjson");
    for _ in 0..3 {
        let reply = deliver(app.addr, &body);
        assert_eq!(reply.json(), serde_json::json!({"accepted": 3, "dead_lettered": 3}));
    }
    assert_eq!(lines_in(&app.dir("logs")).len(), 3);
    assert_eq!(lines_in(&app.dir("dead-letter")).len(), 3);
    let metrics = String::from_utf8(send(app.addr, "GET", "/metrics", &[], b"").body).unwrap();
    assert!(
        metrics.contains("spillway_sink_retried_batches_skipped_total{sink=\"file\"} 2"),
        "{metrics}"
    );
}

#[test]
fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let app = TestApp::start(|c| c.ingest.header_read_timeout = Duration::from_millis(300));
    let mut stream = TcpStream::connect(app.addr).unwrap();
    stream.write_all(b"POST /vercel/logs HTTP/1.1\r\nhost: x\r\n").unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    // hyper answers 408 or simply closes; either way the connection ends well before 10 s.
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => continue,
        }
    }
    assert!(started.elapsed() < Duration::from_secs(5), "held for {:?}", started.elapsed());
}

#[test]
fn healthz_and_metrics_report() {
    let app = TestApp::start(|_| {});
    assert_eq!(send(app.addr, "GET", "/healthz", &[], b"").status, 200);
    assert_eq!(deliver(app.addr, &fixture("logs-partly-bad.ndjson")).status, 200);
    assert_eq!(send(app.addr, "PUT", "/vercel/logs", &[], b"").status, 405);
    let reply = send(app.addr, "GET", "/metrics", &[], b"");
    assert_eq!(reply.status, 200);
    let text = String::from_utf8(reply.body).unwrap();
    for line in [
        "spillway_http_requests_total{status=\"200\"} 2",
        "spillway_http_requests_total{status=\"405\"} 1",
        "spillway_records_accepted_total 3",
        "spillway_records_dead_lettered_total{reason=\"invalid_json\"} 1",
        "spillway_records_dead_lettered_total{reason=\"missing_id\"} 1",
        "spillway_signature_matches_total{over=\"raw\"} 1",
        "spillway_sink_records_written_total{sink=\"file\"} 3",
        "# TYPE spillway_batches_in_flight gauge",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(text.contains("spillway_sink_write_seconds_count{sink=\"file\"} 1"), "{text}");
    // Every answered request is timed (the /metrics request itself is answered after this text).
    assert!(text.contains("spillway_request_seconds_count 3"), "{text}");
    // The one delivery passed through each edge stage of a signed identity body once.
    for stage in ["read", "verify", "decode", "ack"] {
        let line = format!("spillway_edge_stage_seconds_count{{stage=\"{stage}\"}} 1");
        assert!(text.contains(&line), "missing {line:?} in\n{text}");
    }
    let received: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("spillway_received_bytes_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(received, fixture("logs-partly-bad.ndjson").len() as u64);
}

#[test]
fn without_a_secret_unsigned_deliveries_are_accepted() {
    let app = TestApp::start(|c| c.ingest.drain_secret = None);
    let reply = send(app.addr, "POST", "/vercel/logs", &[], &fixture("logs.ndjson"));
    assert_eq!(reply.status, 200);
    assert_eq!(lines_in(&app.dir("logs")).len(), 5);
}

#[test]
fn stopping_finishes_and_completes_every_file() {
    let mut app = TestApp::start(|_| {});
    assert_eq!(deliver(app.addr, &fixture("logs-partly-bad.ndjson")).status, 200);
    assert!(app.stop());
    for dir in ["logs", "dead-letter"] {
        let names: Vec<String> = std::fs::read_dir(app.dir(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        assert_eq!(names.len(), 1, "{dir}: {names:?}");
        assert!(names[0].ends_with(".ndjson"), "{dir}: {names:?}");
    }
    assert_eq!(lines_in(&app.dir("logs")).len(), 3);
}

#[test]
fn large_deliveries_plain_and_gzip_are_stored_whole() {
    let app = TestApp::start(|_| {});
    let body = spillway_benches::Corpus::new(3, 3000).ndjson();
    assert!(body.len() > 1 << 20);
    assert_eq!(deliver(app.addr, &body).json()["accepted"], 3000);
    // Another batch (an identical one would be recognised as a retry and not written twice).
    let other = spillway_benches::Corpus::new(4, 3000).ndjson();
    let packed = gzip(&other);
    assert!(packed.len() > 32 * 1024, "{} bytes", packed.len());
    let reply = deliver_encoded(app.addr, &packed, "gzip");
    assert_eq!(reply.json()["accepted"], 3000);
    let stored = lines_in(&app.dir("logs"));
    assert_eq!(stored.len(), 6000);
    assert_eq!(&stored[..3000], &ndjson_lines(&body)[..]);
    assert_eq!(&stored[3000..], &ndjson_lines(&other)[..]);
}
