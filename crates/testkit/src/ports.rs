//! Loopback addresses nothing listens on, for a process a test starts or a connection a test
//! expects to be refused.
//!
//! The ports come from just below the kernel's ephemeral range, never from inside it, and a
//! process never hands out the same port twice. A port from the ephemeral range (what binding
//! port 0 gives) can be taken, between the test choosing it and its child binding it, as the
//! source port of any outgoing connection on the machine, a parallel test's client for one; the
//! child then fails to bind, and a readiness probe that connects to the port may even connect to
//! itself (a TCP self-connect) and report the dead child as listening.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

/// How many ports below the ephemeral range are handed out.
const SPAN: u16 = 12_000;

/// Ports this process has handed out.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// An address on 127.0.0.1 that was free a moment ago, below the ephemeral port range and not
/// handed out before by this process. Nothing listens on it until the test starts something
/// there.
pub fn free_addr() -> SocketAddr {
    let top = ephemeral_start();
    let bottom = top.saturating_sub(SPAN).max(1024);
    let span = u32::from(top - bottom);
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    // Start somewhere different in each process, so suites run one after another do not reuse
    // the ports of the last one's lingering connections.
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos())
        ^ std::process::id().wrapping_mul(2_654_435_761);
    for step in 0..span {
        // 7919 is prime and does not divide `span` in practice: the walk visits every port.
        let port = bottom + ((seed.wrapping_add(step.wrapping_mul(7919))) % span) as u16;
        if handed_out.contains(&port) {
            continue;
        }
        if let Ok(addr) = TcpListener::bind(("127.0.0.1", port)).and_then(|l| l.local_addr()) {
            handed_out.insert(port);
            return addr;
        }
    }
    panic!("no free loopback port in {bottom}..{top}");
}

/// The port of [`free_addr`].
pub fn free_port() -> u16 {
    free_addr().port()
}

/// The first port of the kernel's ephemeral range (32768 where it cannot be read).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_bindable_outside_the_ephemeral_range_and_never_repeat() {
        let top = ephemeral_start();
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        assert!(ports.iter().all(|&p| p < top && p >= top.saturating_sub(SPAN)), "{ports:?}");
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
        for port in &ports[..5] {
            TcpListener::bind(("127.0.0.1", *port)).expect("a handed-out port is free");
        }
    }
}
