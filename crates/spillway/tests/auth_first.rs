//! Authentication before work, over real sockets: on a drain with a secret, nothing is inflated
//! or decoded for a request that shows no signature (Vercel's unsigned `{}` probe aside), and
//! gzip bodies whose signature does not match their raw bytes are inflated only a few at once;
//! what the headers alone refuse (a malformed signature, a missing required header) is refused
//! before any inflating.

mod common;

use std::net::SocketAddr;

use common::*;

/// The value of an unlabelled counter on `/metrics`.
fn counter(addr: SocketAddr, name: &str) -> u64 {
    let text = String::from_utf8(send(addr, "GET", "/metrics", &[], b"").body).unwrap();
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{name} missing from\n{text}"))
        .parse()
        .unwrap()
}

/// Would catch the edge inflating (here: past `max_inflated_bytes`, which today's code answers
/// `413`) or decoding a body before it has seen a signature: the bomb is refused `401` and the
/// inflated-bytes counter never moves, nor for a small unsigned gzip body of records.
#[test]
fn an_unsigned_gzip_body_is_refused_before_inflating() {
    let app = TestApp::start(|c| c.ingest.max_inflated_bytes = 64 * 1024);
    let bomb = gzip(&vec![b' '; 8 << 20]);
    let records = gzip(&fixture("logs.ndjson"));
    for body in [&bomb, &records] {
        let reply = send(app.addr, "POST", "/vercel/logs", &[("content-encoding", "gzip")], body);
        assert_eq!((reply.status, reply.error_code().as_str()), (401, "missing_signature"));
        assert!(reply.header("x-vercel-verify").is_none());
    }
    // Plain bodies likewise are refused without a look inside (not a 400 for bad JSON).
    let reply = send(app.addr, "POST", "/vercel/logs", &[], b"not json at all");
    assert_eq!((reply.status, reply.error_code().as_str()), (401, "missing_signature"));
    assert_eq!(counter(app.addr, "spillway_inflated_bytes_total"), 0);
    assert!(lines_in(&app.dir("logs")).is_empty());
    assert!(lines_in(&app.dir("dead-letter")).is_empty());
}

/// Would catch the gate refusing Vercel's endpoint verification: an unsigned `{}` (or empty
/// body), plain or gzip, is still answered `200` with the verify code.
#[test]
fn an_unsigned_probe_is_still_answered_plain_or_gzip() {
    let app = TestApp::start(|_| {});
    for (body, encoding) in
        [(b"{}".to_vec(), "identity"), (gzip(b"{}"), "gzip"), (gzip(b""), "gzip")]
    {
        let reply =
            send(app.addr, "POST", "/vercel/logs", &[("content-encoding", encoding)], &body);
        assert_eq!(reply.status, 200, "{encoding}: {reply:?}");
        assert_eq!(reply.header("x-vercel-verify"), Some(VERIFY_CODE));
    }
    assert!(lines_in(&app.dir("logs")).is_empty());
}

/// Would catch unverified inflation without a bound (today's code inflates every such body at
/// once, answering each `403`): with one place, concurrent gzip bodies signed with another
/// secret get `503 overloaded` with `Retry-After` while one is being inflated. Rounds of
/// concurrent deliveries are sent until one overlaps (bounded: 20 rounds).
#[test]
fn unverified_gzip_inflations_are_bounded() {
    let app = TestApp::start(|c| {
        c.ingest.max_unverified_inflations = 1;
        c.ingest.max_inflated_bytes = 8 << 20;
    });
    // Inflating 8 MiB takes some milliseconds: long enough for the others to arrive.
    let body = gzip(&vec![b'x'; 8 << 20]);
    let forged = listener::SigningKey::new("not-the-secret").sign(&body);
    let headers = [("content-encoding", "gzip"), ("x-vercel-signature", forged.as_str())];
    let mut seen_overloaded = false;
    for _ in 0..20 {
        let replies: Vec<Reply> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..6)
                .map(|_| s.spawn(|| send(app.addr, "POST", "/vercel/logs", &headers, &body)))
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        for reply in &replies {
            match (reply.status, reply.error_code().as_str()) {
                (403, "invalid_signature") => {}
                (503, "overloaded") => {
                    assert_eq!(reply.header("retry-after"), Some("1"));
                    seen_overloaded = true;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        if seen_overloaded {
            break;
        }
    }
    assert!(seen_overloaded, "no delivery was refused while another was inflated");
    // A delivery signed over the compressed bytes needs no place and is served meanwhile.
    let plain = fixture("logs.ndjson");
    let reply = deliver_encoded(app.addr, &gzip(&plain), "gzip");
    assert_eq!(reply.status, 200, "{reply:?}");
}

/// Would catch the edge inflating a gzip body whose headers already refuse it (today's code
/// would answer these `413` after inflating past `max_inflated_bytes`): a signature that is not
/// 40 hex digits is `403`, a missing required header `401`, and nothing is inflated.
#[test]
fn a_body_the_headers_refuse_is_not_inflated() {
    let app = TestApp::start(|c| {
        c.ingest.max_inflated_bytes = 64 * 1024;
        c.ingest.drain_headers = vec![ingest::RequiredHeader::new("x-team", "t").unwrap()].into();
    });
    let bomb = gzip(&vec![b' '; 8 << 20]);
    let signed = listener::SigningKey::new(SECRET).sign(&bomb);
    let gz = ("content-encoding", "gzip");
    for (headers, expected) in [
        (vec![gz, ("x-team", "t"), ("x-vercel-signature", "zz")], (403, "invalid_signature")),
        (vec![gz, ("x-vercel-signature", signed.as_str())], (401, "missing_header")),
    ] {
        let reply = send(app.addr, "POST", "/vercel/logs", &headers, &bomb);
        assert_eq!((reply.status, reply.error_code().as_str()), expected, "{headers:?}");
    }
    assert_eq!(counter(app.addr, "spillway_inflated_bytes_total"), 0);
    // A probe is still a probe, before the headers are checked, as it always was.
    let reply = send(app.addr, "POST", "/vercel/logs", &[gz], &gzip(b"{}"));
    assert_eq!(reply.status, 200, "{reply:?}");
}
