//! Who a request came from: the connection's peer, or, when the peer is one of the configured
//! trusted proxies, the address that proxy names in `X-Forwarded-For`. The header is never
//! believed from anyone else: any client can write it.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
pub use ipnet::IpNet;

/// Hops of `X-Forwarded-For` looked at, at most (a bound on the work a header can ask for).
const MAX_HOPS: usize = 16;

/// The peer of the connection a request arrived on; [`crate::serve`] sets it as a request
/// extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// The client's address. `peer` itself unless it is in `trusted`; then, walking
/// `X-Forwarded-For` from the nearest hop outward (each proxy appends the address it was
/// reached from), the first address that is not a trusted proxy. A malformed hop ends the walk
/// at the last address known good: nothing beyond it can be believed.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev().take(MAX_HOPS) {
        let Ok(ip) = hop.parse::<IpAddr>() else { break };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// A trusted proxy as configured: a network (`10.0.0.0/8`) or one address (`127.0.0.1`).
pub fn parse_trusted(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is not an address or a network like 10.0.0.0/8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(peer: &str, forwarded: &[&str], trusted: &[&str], expected: &str) {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        let trusted: Vec<IpNet> = trusted.iter().map(|t| parse_trusted(t).unwrap()).collect();
        let got = client_addr(peer.parse().unwrap(), &headers, &trusted);
        assert_eq!(got, expected.parse::<IpAddr>().unwrap(), "{peer} {forwarded:?} {trusted:?}");
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_proxy() {
        check("203.0.113.9", &["198.51.100.1"], &["127.0.0.1"], "203.0.113.9");
        check("127.0.0.1", &["198.51.100.1"], &["127.0.0.1"], "198.51.100.1");
        check("127.0.0.1", &[], &["127.0.0.1"], "127.0.0.1");
        check("127.0.0.1", &["198.51.100.1"], &[], "127.0.0.1");
    }

    #[test]
    fn the_walk_stops_at_the_first_untrusted_hop_from_the_nearest() {
        // A client that forges a first hop is named by the proxy's own append, not believed.
        check("10.0.0.2", &["1.1.1.1, 198.51.100.7, 10.0.0.1"], &["10.0.0.0/8"], "198.51.100.7");
        check("10.0.0.2", &["1.1.1.1", "198.51.100.7"], &["10.0.0.0/8"], "198.51.100.7");
        check("10.0.0.2", &["10.0.0.3"], &["10.0.0.0/8"], "10.0.0.3");
        check("10.0.0.2", &["2001:db8::1"], &["10.0.0.0/8"], "2001:db8::1");
    }

    #[test]
    fn a_malformed_hop_ends_the_walk() {
        check("10.0.0.2", &["198.51.100.7, junk"], &["10.0.0.0/8"], "10.0.0.2");
        check("10.0.0.2", &["junk, 10.0.0.9"], &["10.0.0.0/8"], "10.0.0.9");
        assert!(parse_trusted("10.0.0.0/33").is_err());
        assert!(parse_trusted("nowhere").is_err());
        assert_eq!(parse_trusted(" ::1 ").unwrap().to_string(), "::1/128");
    }
}
