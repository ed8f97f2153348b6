//! The one shape of an error answer, for every listener: `{"error":{"code","message"}}` with a
//! stable, machine-readable `code`.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::Full;

/// A fully buffered answer.
pub type Reply = Response<Full<Bytes>>;

/// `status` with the body `{"error":{"code":code,"message":message}}` as JSON.
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Reply {
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    reply
}

/// The raw bytes of the `503` sent to a connection over the connection limit before closing it
/// (written straight to the socket: no HTTP machinery is spent on a connection refused).
pub fn over_capacity_response(retry_after_secs: u32) -> Vec<u8> {
    let body = format!(
        r#"{{"error":{{"code":"too_many_connections","message":"{}"}}}}"#,
        "receiver is at its connection limit; retry later"
    );
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: {retry_after_secs}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_http_answer_with_the_error_shape() {
        let raw = String::from_utf8(over_capacity_response(7)).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
        assert!(head.contains("retry-after: 7\r\n"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "too_many_connections");
    }

    #[test]
    fn errors_carry_their_code_and_message() {
        let reply = json_error(StatusCode::FORBIDDEN, "invalid_signature", "no match");
        assert_eq!(reply.status(), StatusCode::FORBIDDEN);
        assert_eq!(reply.headers()[CONTENT_TYPE], "application/json");
    }
}
