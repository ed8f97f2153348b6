//! The simulator over raw HTTP on 127.0.0.1: rate-limit headers, forced `429`s, the OAuth form
//! endpoint, and signed webhooks to a loopback receiver.

use testkit::Receiver;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vercel_sim::{DeliveryError, RateLimitHint, Simulator};

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// Sends one raw HTTP/1.1 request with `Connection: close` and reads the whole answer.
async fn raw(addr: std::net::SocketAddr, head: &str, body: &str) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{head}\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    Answer { status, headers, body: body.to_owned() }
}

#[tokio::test]
async fn every_answer_carries_rate_limit_headers() {
    let (addr, sim) = Simulator::start().await.unwrap();
    let token = sim.config().user_token;
    let auth = format!("Authorization: Bearer {token}");
    let ok = raw(addr, &format!("GET /v1/verify-endpoint HTTP/1.1\r\n{auth}"), "").await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["verificationCode"], sim.config().verification_code);
    let missing = raw(addr, &format!("GET /v9/nothing HTTP/1.1\r\n{auth}"), "").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["code"], "not_found");
    let anonymous = raw(addr, "GET /v1/drains HTTP/1.1", "").await;
    assert_eq!(anonymous.status, 403);
    assert_eq!(anonymous.json()["error"]["code"], "forbidden");
    for answer in [&ok, &missing, &anonymous] {
        for name in ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"] {
            let value = answer.header(name).unwrap_or_else(|| panic!("{name} missing"));
            assert!(value.parse::<u64>().is_ok(), "{name}: {value}");
        }
    }
    let remaining = |a: &Answer| a.header("x-ratelimit-remaining").unwrap().parse::<u64>().unwrap();
    assert!(remaining(&anonymous) < remaining(&ok));
    assert_eq!(sim.request_count(), 3);
}

#[tokio::test]
async fn forced_429s_come_with_and_without_retry_after() {
    let (addr, sim) = Simulator::start().await.unwrap();
    let get = "GET /v1/drains HTTP/1.1\r\nAuthorization: Bearer sim_user_token";

    sim.fail_next_requests(1, RateLimitHint::RetryAfter(7));
    let limited = raw(addr, get, "").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("7"));
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    let body = limited.json();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(body["error"]["limit"]["reset"].is_u64());

    sim.fail_next_requests(1, RateLimitHint::ResetAt(4_000_000_000));
    let limited = raw(addr, get, "").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), None);
    assert_eq!(limited.header("x-ratelimit-reset"), Some("4000000000"));

    let fine = raw(addr, get, "").await;
    assert_eq!(fine.status, 200);
    assert_eq!(fine.json()["drains"], serde_json::json!([]));
}

#[tokio::test]
async fn oauth_exchange_takes_a_form_and_names_what_is_wrong() {
    let (addr, sim) = Simulator::start().await.unwrap();
    let post = "POST /v2/oauth/access_token HTTP/1.1\r\n\
                Content-Type: application/x-www-form-urlencoded";
    let missing = raw(addr, post, "client_id=oac_sim&code=x").await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.json()["error"]["code"], "invalid_request");

    let code = sim.issue_code("icfg_raw", Some("team_sim"));
    let form = format!(
        "client_id=oac_sim&client_secret=sim_client_secret&code={code}\
         &redirect_uri=http%3A%2F%2F127.0.0.1%2Fcallback"
    );
    let ok = raw(addr, post, &form).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let token = ok.json();
    assert_eq!(token["installation_id"], "icfg_raw");
    assert_eq!(token["team_id"], "team_sim");
    let access = token["access_token"].as_str().unwrap().to_owned();

    // The installation's token is a team token: it needs teamId=team_sim.
    let bare = format!("GET /v1/drains HTTP/1.1\r\nAuthorization: Bearer {access}");
    assert_eq!(raw(addr, &bare, "").await.status, 403);
    let scoped =
        format!("GET /v1/drains?teamId=team_sim HTTP/1.1\r\nAuthorization: Bearer {access}");
    assert_eq!(raw(addr, &scoped, "").await.status, 200);

    let again = raw(addr, post, &form).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.json()["error"]["code"], "invalid_grant");
}

#[tokio::test]
async fn webhooks_are_signed_with_the_client_secret() {
    let (_, sim) = Simulator::start().await.unwrap();
    for event in
        ["integration-configuration.removed", "integration-configuration.scope-change-confirmed"]
    {
        let receiver = Receiver::start();
        let url = receiver.url("/webhooks/vercel");
        let payload = serde_json::json!({"configuration": {"id": "icfg_1"}});
        let status = sim.send_webhook(&url, event, payload).await;
        assert_eq!(status.unwrap(), 200);
        let request = receiver.next();
        let line = (request.method.as_str(), request.path.as_str(), request.version.as_str());
        assert_eq!(line, ("POST", "/webhooks/vercel", "HTTP/1.1"), "{request:?}");
        assert!(request.header("x-vercel-signature").is_some(), "signed: {request:?}");
        assert!(request.signed_with("sim_client_secret"), "signature matches the body");
        let event_body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(event_body["type"], event);
        assert_eq!(event_body["payload"]["configuration"]["id"], "icfg_1");
    }
}

#[tokio::test]
async fn webhooks_never_leave_the_machine() {
    let (_, sim) = Simulator::start().await.unwrap();
    for url in ["http://example.com/hook", "https://127.0.0.1:1/hook", "http://10.1.2.3/"] {
        let result = sim.send_webhook(url, "project.created", serde_json::json!({})).await;
        assert!(matches!(result, Err(DeliveryError::NotLoopback)), "{url}: {result:?}");
    }
    // Nothing listens there.
    let url = format!("http://{}/", testkit::free_addr());
    let result = sim.send_webhook(&url, "project.created", serde_json::json!({})).await;
    assert!(matches!(result, Err(DeliveryError::Io(_))), "{result:?}");
}

#[tokio::test]
async fn a_drains_deliveries_are_signed_gzipped_samples_of_its_type() {
    let (addr, sim) = Simulator::start().await.unwrap();
    let receiver = Receiver::start();
    receiver.require_signature("audit-secret");
    let body = serde_json::json!({
        "name": "audit", "schemas": {"audit_log": {"version": "v1"}},
        "delivery": {"type": "http", "endpoint": receiver.url("/vercel/audit-log/k"),
                     "encoding": "ndjson", "compression": "gzip", "secret": "audit-secret",
                     "headers": {"x-tenant": "t1"}},
    })
    .to_string();
    let head = "POST /v1/drains HTTP/1.1\r\nAuthorization: Bearer sim_user_token";
    let created = raw(addr, head, &body).await;
    assert_eq!(created.status, 200, "{}", created.body);
    let id = created.json()["id"].as_str().unwrap().to_owned();

    assert_eq!(sim.deliver_sample(&id).await.unwrap(), 200);
    let request = receiver.next();
    assert_eq!(request.path, "/vercel/audit-log/k");
    assert!(request.signed_with("audit-secret"), "signed as sent, compressed");
    assert_eq!(request.header("content-encoding"), Some("gzip"));
    assert_eq!(request.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(request.header("x-tenant"), Some("t1"));
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&request.body[..]), &mut text)
        .unwrap();
    for line in text.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(record["schema"], "vercel.audit_log.v1", "{record}");
    }
    assert!(matches!(sim.deliver_sample("drn_none").await, Err(DeliveryError::NoSuchDrain)));
}
