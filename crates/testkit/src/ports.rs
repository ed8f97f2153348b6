//! Loopback addresses nothing listens on, for a process a test starts or a connection a test
//! expects to be refused.

use std::net::{SocketAddr, TcpListener};

/// An address on 127.0.0.1 that was free a moment ago: the OS picks a port, which is released
/// again before this returns. Nothing listens on it until the test starts something there.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("binding 127.0.0.1:0")
}

/// The port of [`free_addr`].
pub fn free_port() -> u16 {
    free_addr().port()
}
