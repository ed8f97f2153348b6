//! Spillway's control plane (not built yet): the Vercel REST API client, the integration install
//! flow and drain management.
//!
//! Its place in the design is fixed already: it talks to Vercel's API and to the drain registry
//! the ingest edge reads, and it never touches records. See ARCHITECTURE.md.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
