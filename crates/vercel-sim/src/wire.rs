//! Wire helpers: query strings, form bodies, JSON responses and Vercel's error body.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

/// Parses `a=1&b=two` (query string or `application/x-www-form-urlencoded` body).
pub(crate) fn parse_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// The first value of `key` in `pairs`.
pub(crate) fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Decodes `%XX` escapes and `+` (space). Invalid escapes are kept as written.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A JSON response with the given status.
pub(crate) fn json(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

/// An empty response (`204` for deletes).
pub(crate) fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// A refusal on its way to becoming Vercel's error body; small, unlike a response, so it fits
/// in a `Result`.
#[derive(Debug)]
pub(crate) struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: &str) -> Refusal {
        Refusal { status, code, message: message.to_owned() }
    }
}

impl From<Refusal> for Response<Full<Bytes>> {
    fn from(refusal: Refusal) -> Response<Full<Bytes>> {
        error(refusal.status, refusal.code, &refusal.message)
    }
}

/// Vercel's error body: `{"error":{"code","message"}}`.
pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({"error": {"code": code, "message": message}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_percent_decoded() {
        let pairs = parse_pairs("redirect_uri=http%3A%2F%2Flocalhost%2Fcb&code=a+b&x=%zz&y=%4");
        assert_eq!(get(&pairs, "redirect_uri"), Some("http://localhost/cb"));
        assert_eq!(get(&pairs, "code"), Some("a b"));
        assert_eq!(get(&pairs, "x"), Some("%zz"));
        assert_eq!(get(&pairs, "y"), Some("%4"));
    }
}
