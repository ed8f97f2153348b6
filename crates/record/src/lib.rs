//! Spillway's shared vocabulary: [`Record`], [`Batch`], [`Reject`], [`DataType`], the end-to-end [`ack`]
//! machinery and the [`Dispatch`] hand-off between the ingest edge and the pipeline.
//!
//! This crate sits at the bottom of the crate graph. It knows nothing about HTTP, JSON parsing,
//! files or Kafka: a record is an opaque, already validated line of JSON plus the byte spans of
//! the few fields routing needs.
//!
//! ```
//! use bytes::Bytes;
//! use record::{FieldSpan, Record, RecordMeta};
//!
//! let line = Bytes::from_static(br#"{"id":"1","projectId":"prj_a","timestamp":1}"#);
//! let meta = RecordMeta { project_id: FieldSpan::new(23, 5, false), ..RecordMeta::default() };
//! let record = Record::new(line, meta);
//! assert_eq!(record.project_id().as_deref(), Some("prj_a"));
//! ```
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod ack;
mod batch;
mod data_type;
mod record;

pub use ack::{Ack, AckPart, AckWaiter, SinkFailure};
pub use batch::{Batch, Dispatch, Refusal, Reject, RejectReason};
pub use data_type::{DataType, UnknownDataType};
pub use record::{FieldSpan, Record, RecordMeta};
