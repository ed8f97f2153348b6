//! The Spillway binary's library: configuration, wiring and the command line's commands; the
//! logic lives in the crates it wires (`ingest`, `pipeline`, `control`).
//!
//! The binary (`main.rs`) only parses arguments, loads the [`config`], and runs an [`App`]
//! (`app.rs`: the edge, the pipeline and its sinks, and the integration's control plane when
//! configured). Tests start an [`App`] in-process on `127.0.0.1:0`. [`commands`] maps the
//! drain-management commands (`spillway drains …`, `spillway env set`) onto
//! `control::drains`; [`registry`] serves the control plane's drain registry to the edge.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod app;
pub mod commands;
pub mod config;
mod durability;
pub mod registry;
pub mod reload;

pub use app::App;
pub use config::Config;

/// An error and its causes on one line (`outer: cause: root cause`), for the command line.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
