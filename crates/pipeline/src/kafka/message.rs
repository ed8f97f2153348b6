//! One message to the producer (value, key, headers `drain`, `data_type`, `source`, `level`,
//! topic), and the bounded codes of Kafka errors.

use std::borrow::Cow;
use std::sync::Arc;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use record::{DataType, Record};

use super::{Context, Tracker, KAFKA};

/// A bounded code for a Kafka error, for failures and metrics.
pub(super) fn error_code(error: &KafkaError) -> &'static str {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::QueueFull) => "queue_full",
        Some(RDKafkaErrorCode::MessageTimedOut) => "message_timed_out",
        Some(RDKafkaErrorCode::AllBrokersDown) => "all_brokers_down",
        Some(RDKafkaErrorCode::UnknownTopicOrPartition) | Some(RDKafkaErrorCode::UnknownTopic) => {
            "unknown_topic"
        }
        Some(RDKafkaErrorCode::MessageSizeTooLarge) => "message_too_large",
        Some(RDKafkaErrorCode::PurgeQueue) | Some(RDKafkaErrorCode::PurgeInflight) => "purged",
        Some(RDKafkaErrorCode::Fatal) => "fatal",
        Some(RDKafkaErrorCode::TopicAuthorizationFailed) => "not_authorized",
        _ => "other",
    }
}

/// librdkafka's bound on what a message takes past its key, value and headers
/// (`RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD`: the record's length, attributes, timestamp and offset
/// deltas, key and value lengths and header count, each varint at its largest).
const MESSAGE_OVERHEAD_BYTES: usize = 5 + 1 + 10 + 5 + 5 + 5 + 5;
/// A header's name and value lengths, each varint at its largest.
const HEADER_OVERHEAD_BYTES: usize = 5 + 5;

/// What librdkafka compares with `message.max.bytes` when `record`, of a batch of `drain` and
/// `data_type`, is produced (as [`send`] and `send_borrowed` build its message), or a little
/// more, never less: a record within it is never refused as too large by the producer.
pub(super) fn wire_size(record: &Record, drain: &str, data_type: DataType) -> usize {
    let fields = RecordFields::of(record);
    let (source, level) = (fields.source.as_ref(), fields.level.as_ref());
    let headers = headers(drain, data_type, source.map(|v| v.len()), level.map(|v| v.len()));
    message_size(fields.key().len(), record.bytes().len(), headers)
}

/// Whether `record`'s message is within `max` (`message.max.bytes`): at once when it fits with
/// a key as long as the record and empty `source` and `level` (the key and those values are
/// parts of the record, so together no longer than it), else by [`wire_size`].
pub(super) fn fits_message(record: &Record, drain: &str, data_type: DataType, max: usize) -> bool {
    let len = record.bytes().len();
    message_size(len, len, headers(drain, data_type, Some(0), Some(0))) <= max
        || wire_size(record, drain, data_type) <= max
}

/// A message's headers as (name, value length), absent ones `None`.
fn headers(
    drain: &str,
    data_type: DataType,
    source: Option<usize>,
    level: Option<usize>,
) -> [(&'static str, Option<usize>); 4] {
    [
        ("drain", Some(drain.len())),
        ("data_type", Some(data_type.as_str().len())),
        ("source", source),
        ("level", level),
    ]
}

/// librdkafka's size of a message of `key` and `value` bytes with `headers`, each varint at its
/// largest.
fn message_size(key: usize, value: usize, headers: [(&str, Option<usize>); 4]) -> usize {
    let header = |(name, value): (&str, Option<usize>)| {
        value.map_or(0, |value| HEADER_OVERHEAD_BYTES + name.len() + value)
    };
    MESSAGE_OVERHEAD_BYTES + key + value + headers.into_iter().map(header).sum::<usize>()
}

/// One message as the producer gets it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Outgoing<'a> {
    pub(super) topic: &'a str,
    pub(super) key: &'a [u8],
    pub(super) drain: &'a [u8],
    pub(super) data_type: &'a [u8],
    pub(super) source: Option<&'a [u8]>,
    pub(super) level: Option<&'a [u8]>,
    pub(super) value: &'a [u8],
}

/// What a record's message carries besides its value: the key (`projectId`, empty when absent)
/// and the `source` and `level` header values, as the record's bytes (the decoder checked them
/// as UTF-8 already; escaped values are decoded).
pub(super) struct RecordFields<'a> {
    key: Option<Cow<'a, [u8]>>,
    pub(super) source: Option<Cow<'a, [u8]>>,
    pub(super) level: Option<Cow<'a, [u8]>>,
}

impl<'a> RecordFields<'a> {
    pub(super) fn of(record: &'a Record) -> RecordFields<'a> {
        let (meta, bytes) = (record.meta(), record.bytes());
        RecordFields {
            key: meta.project_id.value_bytes(bytes),
            source: meta.source.value_bytes(bytes),
            level: meta.level.value_bytes(bytes),
        }
    }

    pub(super) fn key(&self) -> &[u8] {
        self.key.as_deref().unwrap_or_default()
    }
}

/// Enqueues one message whose report goes to `tracker`; the error code if it cannot be.
pub(super) fn send(
    producer: &BaseProducer<Context>,
    m: Outgoing<'_>,
    tracker: &Arc<Tracker>,
) -> Result<(), &'static str> {
    let mut headers = OwnedHeaders::new_with_capacity(4)
        .insert(Header { key: "drain", value: Some(m.drain) })
        .insert(Header { key: "data_type", value: Some(m.data_type) });
    if let Some(source) = m.source {
        headers = headers.insert(Header { key: "source", value: Some(source) });
    }
    if let Some(level) = m.level {
        headers = headers.insert(Header { key: "level", value: Some(level) });
    }
    let message = BaseRecord::with_opaque_to(m.topic, Arc::clone(tracker))
        .payload(m.value)
        .key(m.key)
        .headers(headers);
    producer.send(message).map_err(|(error, _)| {
        let code = error_code(&error);
        producer.context().metrics.write_error(KAFKA, code);
        code
    })
}
