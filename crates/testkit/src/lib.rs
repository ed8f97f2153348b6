//! Test support shared by Spillway's test suites, and nothing else: free loopback ports, a
//! bounded poll of an observable condition, `block_on` on a throwaway runtime, one loopback
//! HTTP [`Receiver`] that records what it is sent, a throwaway PostgreSQL cluster
//! ([`Postgres`]) for the store tests, and the tansu Kafka-protocol broker ([`tansu`]) for the
//! real-broker tests.
//!
//! This crate is test support only. No product crate may depend on it except as a
//! dev-dependency, and it depends on no workspace crate, so any crate's tests can use it.

mod poll;
mod ports;
mod postgres;
mod receiver;
pub mod tansu;

pub use poll::{eventually, poll_until, wait_until};
pub use ports::{free_addr, free_port};
pub use postgres::Postgres;
pub use receiver::{Receiver, Request};

/// Runs `future` to completion on a fresh current-thread tokio runtime with its I/O and time
/// drivers enabled, for synchronous tests that wait on an `async` API.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
        .block_on(future)
}
