//! The ingest edge of Spillway: Vercel's log-drain delivery protocol over HTTP.
//!
//! - [`decode`]: the pure body decoder (NDJSON / JSON array -> records and rejects).
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod decode;
