//! Producing a record without copying it: librdkafka is handed a pointer to the record's bytes
//! inside the received body instead of a copy (rust-rdkafka's `send` always passes
//! `RD_KAFKA_MSG_F_COPY`, one allocation and one copy per record).
//!
//! Why it is sound: librdkafka reads a message's payload until the message's delivery report,
//! and never frees it (no `RD_KAFKA_MSG_F_FREE`). The payload lives in the batch a [`Tracker`]
//! keeps (`Tracker::keep`), and every enqueued message owns an `Arc<Tracker>` as its opaque,
//! released by rust-rdkafka only after that message's delivery callback (or never, if the
//! producer is torn down with messages still queued: a leak, not a dangling pointer). So the
//! bytes outlive every use, including when the batch itself already failed (a later message
//! could not be enqueued) and its job was let go.
//!
//! Everything else is as rust-rdkafka's own `BaseProducer::send` does it (the same
//! `rd_kafka_producev` call, the same opaque convention, so the producer context's `delivery`
//! callback gets the tracker back as usual); only the message flags differ.

use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::sync::Arc;

use rdkafka::bindings as rdsys;
use rdkafka::bindings::rd_kafka_vtype_t::*;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::util::IntoOpaque;

use super::message::{error_code, Outgoing};
use super::{Context, Tracker, KAFKA};

/// Topic names as C strings, made once per topic rather than once per record.
#[derive(Debug, Default)]
pub(super) struct TopicNames(HashMap<String, CString>);

impl TopicNames {
    fn get(&mut self, topic: &str) -> Result<&CString, &'static str> {
        if !self.0.contains_key(topic) {
            let name = CString::new(topic).map_err(|_| "invalid_topic")?;
            self.0.insert(topic.to_owned(), name);
        }
        Ok(&self.0[topic])
    }
}

/// Enqueues `m` without copying its value; its report goes to `tracker`, which must keep the
/// batch `m.value` points into (see the module's safety argument).
pub(super) fn send_borrowed(
    producer: &BaseProducer<Context>,
    topics: &mut TopicNames,
    m: Outgoing<'_>,
    tracker: &Arc<Tracker>,
) -> Result<(), &'static str> {
    debug_assert!(tracker.keeps_batch(), "the value must live in the tracker's batch");
    let topic = topics.get(m.topic)?;
    let headers = headers(&m);
    let opaque = Arc::clone(tracker).into_ptr();
    // SAFETY: every pointer is valid for the call; librdkafka copies the topic, key and header
    // name strings, takes the headers (on success only) and keeps `m.value` until the message's
    // delivery report, which the tracker (kept alive by the opaque) outlives. The argument list
    // is rust-rdkafka's own for this call, with message flags 0 (no copy, no free).
    let err = unsafe {
        rdsys::rd_kafka_producev(
            producer.client().native_ptr(),
            RD_KAFKA_VTYPE_TOPIC,
            topic.as_ptr(),
            RD_KAFKA_VTYPE_PARTITION,
            -1i32,
            RD_KAFKA_VTYPE_MSGFLAGS,
            0i32,
            RD_KAFKA_VTYPE_VALUE,
            m.value.as_ptr() as *mut c_void,
            m.value.len(),
            RD_KAFKA_VTYPE_KEY,
            m.key.as_ptr() as *const c_void,
            m.key.len(),
            RD_KAFKA_VTYPE_OPAQUE,
            opaque,
            RD_KAFKA_VTYPE_TIMESTAMP,
            0i64,
            RD_KAFKA_VTYPE_HEADERS,
            headers,
            RD_KAFKA_VTYPE_END,
        )
    };
    if err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return Ok(());
    }
    // SAFETY: not enqueued, so the headers and the opaque are still ours.
    unsafe {
        rdsys::rd_kafka_headers_destroy(headers);
        drop(<Arc<Tracker> as IntoOpaque>::from_ptr(opaque));
    }
    let error = KafkaError::MessageProduction(RDKafkaErrorCode::from(err));
    let code = error_code(&error);
    producer.context().metrics.write_error(KAFKA, code);
    Err(code)
}

/// The message's headers (`drain`, `data_type`, and `source`, `level` when present), copied
/// by librdkafka: they are a few bytes each.
fn headers(m: &Outgoing<'_>) -> *mut rdsys::rd_kafka_headers_t {
    let pairs = [
        ("drain", Some(m.drain)),
        ("data_type", Some(m.data_type)),
        ("source", m.source),
        ("level", m.level),
    ];
    // SAFETY: a fresh header list, filled with pointers valid for each call (copied inside).
    unsafe {
        let list = rdsys::rd_kafka_headers_new(4);
        for (name, value) in pairs {
            if let Some(value) = value {
                rdsys::rd_kafka_header_add(
                    list,
                    name.as_ptr().cast(),
                    name.len() as isize,
                    value.as_ptr().cast(),
                    value.len() as isize,
                );
            }
        }
        list
    }
}
