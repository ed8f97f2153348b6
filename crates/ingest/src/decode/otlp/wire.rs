//! A zero-copy validator of OTLP trace messages in protobuf: it walks an
//! `ExportTraceServiceRequest` with prost's wire-format primitives and checks every message it
//! holds against the OpenTelemetry proto definitions (`opentelemetry/proto/trace/v1/trace.proto`,
//! `common/v1/common.proto`, `resource/v1/resource.proto`) without building any of them.
//!
//! What it checks is what prost's own decode of the generated types checks, so that a request
//! this accepts is one every OTLP decoder reads: each key's field number and wire type, varints,
//! lengths that fit, a known field with the wrong wire type, UTF-8 in `string` fields, and a
//! nesting depth limit. Unknown fields are skipped, as proto3 wants. Nothing is copied: the
//! outcome is byte ranges of the body and a few counts.

use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext, WireType};

/// Not a valid message of the expected type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Invalid;

impl From<prost::DecodeError> for Invalid {
    fn from(_: prost::DecodeError) -> Invalid {
        Invalid
    }
}

type Walked<T = ()> = Result<T, Invalid>;

/// The nesting limit of `AnyValue`s inside each other (prost's own recursion limit is 100).
const MAX_DEPTH: u32 = 64;

/// The attribute naming the Vercel project a resource's spans belong to.
const PROJECT_ID: &[u8] = b"vercel.projectId";

/// One field's payload.
enum Field<'a> {
    Varint,
    Fixed,
    Bytes(&'a [u8]),
}

/// Calls `each` with every field of the message `msg` (groups, a relic proto3 never writes,
/// are skipped as prost skips them).
fn fields<'a>(msg: &'a [u8], mut each: impl FnMut(u32, Field<'a>) -> Walked) -> Walked {
    let mut buf = msg;
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        let field = match wire_type {
            WireType::Varint => {
                decode_varint(&mut buf)?;
                Field::Varint
            }
            WireType::SixtyFourBit => advance(&mut buf, 8).map(|_| Field::Fixed)?,
            WireType::ThirtyTwoBit => advance(&mut buf, 4).map(|_| Field::Fixed)?,
            WireType::LengthDelimited => {
                let len = decode_varint(&mut buf)?;
                let len = usize::try_from(len).map_err(|_| Invalid)?;
                Field::Bytes(advance(&mut buf, len)?)
            }
            WireType::StartGroup | WireType::EndGroup => {
                skip_field(wire_type, tag, &mut buf, DecodeContext::default())?;
                continue;
            }
        };
        each(tag, field)?;
    }
    Ok(())
}

/// Takes `n` bytes off the front of `buf`.
fn advance<'a>(buf: &mut &'a [u8], n: usize) -> Walked<&'a [u8]> {
    if n > buf.len() {
        return Err(Invalid);
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

/// A known field's wire type: a varint, a fixed-width number, or length-delimited.
#[derive(Clone, Copy)]
enum Kind {
    Varint,
    Fixed,
    Bytes,
}

fn utf8(field: Field<'_>) -> Walked {
    match field {
        Field::Bytes(b) => simdutf8::basic::from_utf8(b).map(|_| ()).map_err(|_| Invalid),
        _ => Err(Invalid),
    }
}

fn message(field: Field<'_>, walk: impl FnOnce(&[u8]) -> Walked) -> Walked {
    match field {
        Field::Bytes(b) => walk(b),
        _ => Err(Invalid),
    }
}

/// A scalar or `bytes` field: checked by its wire type only (prost refuses a known field that
/// comes with another).
fn scalar(field: &Field<'_>, kind: Kind) -> Walked {
    match (field, kind) {
        (Field::Varint, Kind::Varint) | (Field::Fixed, Kind::Fixed) => Ok(()),
        (Field::Bytes(_), Kind::Bytes) => Ok(()),
        _ => Err(Invalid),
    }
}

/// One `ResourceSpans`, walked: where its project id sits and how many spans it holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResourceInfo {
    /// The byte range of the `vercel.projectId` string attribute's value inside the message.
    pub(crate) project_id: Option<(usize, usize)>,
    /// The spans of all its scopes.
    pub(crate) spans: u64,
}

/// The fields of an `ExportTraceServiceRequest`: the byte range (inside `body`) of each
/// `resource_spans` entry's message, in order. A malformed request as a whole is `Invalid`;
/// the entries themselves are walked by [`resource_spans`].
pub(crate) fn request(body: &[u8]) -> Walked<Vec<(usize, usize)>> {
    let mut entries = Vec::new();
    fields(body, |tag, field| match (tag, field) {
        (1, Field::Bytes(b)) => {
            let start = b.as_ptr() as usize - body.as_ptr() as usize;
            entries.push((start, start + b.len()));
            Ok(())
        }
        (1, _) => Err(Invalid),
        _ => Ok(()),
    })?;
    Ok(entries)
}

/// Walks one `ResourceSpans` message. On failure, the spans counted before the fault.
pub(crate) fn resource_spans(msg: &[u8]) -> Result<ResourceInfo, u64> {
    let mut info = ResourceInfo::default();
    let walked = fields(msg, |tag, field| match tag {
        1 => message(field, |b| resource(b, msg, &mut info.project_id)),
        2 => message(field, |b| scope_spans(b, &mut info.spans)),
        3 => utf8(field),
        _ => Ok(()),
    });
    walked.map(|()| info).map_err(|_| info.spans)
}

/// `Resource`: attributes (the project id among them), dropped count, entity refs.
fn resource(msg: &[u8], record: &[u8], project_id: &mut Option<(usize, usize)>) -> Walked {
    fields(msg, |tag, field| match tag {
        1 => message(field, |b| {
            let value = key_value(b, 0)?;
            if let (None, Some((key, value))) = (&project_id, value) {
                if key == PROJECT_ID {
                    let start = value.as_ptr() as usize - record.as_ptr() as usize;
                    *project_id = Some((start, start + value.len()));
                }
            }
            Ok(())
        }),
        2 => scalar(&field, Kind::Varint),
        3 => message(field, entity_ref),
        _ => Ok(()),
    })
}

/// `EntityRef`: schema URL, type, id and description keys.
fn entity_ref(msg: &[u8]) -> Walked {
    fields(msg, |tag, field| match tag {
        1..=4 => utf8(field),
        _ => Ok(()),
    })
}

/// `ScopeSpans`: the scope, its spans, a schema URL.
fn scope_spans(msg: &[u8], spans: &mut u64) -> Walked {
    fields(msg, |tag, field| match tag {
        1 => message(field, scope),
        2 => {
            message(field, span)?;
            *spans += 1;
            Ok(())
        }
        3 => utf8(field),
        _ => Ok(()),
    })
}

/// `InstrumentationScope`: name, version, attributes, dropped count.
fn scope(msg: &[u8]) -> Walked {
    fields(msg, |tag, field| match tag {
        1 | 2 => utf8(field),
        3 => message(field, |b| key_value(b, 0).map(|_| ())),
        4 => scalar(&field, Kind::Varint),
        _ => Ok(()),
    })
}

/// `Span`, every field of trace.proto's.
fn span(msg: &[u8]) -> Walked {
    fields(msg, |tag, field| match tag {
        // trace_id, span_id, parent_span_id: bytes.
        1 | 2 | 4 => scalar(&field, Kind::Bytes),
        // trace_state, name.
        3 | 5 => utf8(field),
        // kind, dropped attributes/events/links counts.
        6 | 10 | 12 | 14 => scalar(&field, Kind::Varint),
        // start and end times (fixed64), flags (fixed32).
        7 | 8 | 16 => scalar(&field, Kind::Fixed),
        9 => message(field, |b| key_value(b, 0).map(|_| ())),
        11 => message(field, event),
        13 => message(field, link),
        15 => message(field, status),
        _ => Ok(()),
    })
}

/// `Span.Event`: time, name, attributes, dropped count.
fn event(msg: &[u8]) -> Walked {
    fields(msg, |tag, field| match tag {
        1 => scalar(&field, Kind::Fixed),
        2 => utf8(field),
        3 => message(field, |b| key_value(b, 0).map(|_| ())),
        4 => scalar(&field, Kind::Varint),
        _ => Ok(()),
    })
}

/// `Span.Link`: trace and span ids, trace state, attributes, dropped count, flags.
fn link(msg: &[u8]) -> Walked {
    fields(msg, |tag, field| match tag {
        1 | 2 => scalar(&field, Kind::Bytes),
        3 => utf8(field),
        4 => message(field, |b| key_value(b, 0).map(|_| ())),
        5 => scalar(&field, Kind::Varint),
        6 => scalar(&field, Kind::Fixed),
        _ => Ok(()),
    })
}

/// `Status`: message, code.
fn status(msg: &[u8]) -> Walked {
    fields(msg, |tag, field| match tag {
        2 => utf8(field),
        3 => scalar(&field, Kind::Varint),
        _ => Ok(()),
    })
}

/// `KeyValue`; returns its key and, when its value is a string, that string's bytes.
fn key_value(msg: &[u8], depth: u32) -> Walked<Option<(&[u8], &[u8])>> {
    let (mut key, mut string) = (None, None);
    fields(msg, |tag, field| match (tag, field) {
        (1, Field::Bytes(b)) => {
            simdutf8::basic::from_utf8(b).map_err(|_| Invalid)?;
            key = Some(b);
            Ok(())
        }
        (2, Field::Bytes(b)) => {
            string = any_value(b, depth + 1)?;
            Ok(())
        }
        (1 | 2, _) => Err(Invalid),
        _ => Ok(()),
    })?;
    Ok(key.zip(string))
}

/// `AnyValue`; returns the string when it holds one (its `value` is a oneof: the last field
/// set wins, as in prost). Arrays and key-value lists nest, up to [`MAX_DEPTH`].
fn any_value(msg: &[u8], depth: u32) -> Walked<Option<&[u8]>> {
    if depth > MAX_DEPTH {
        return Err(Invalid);
    }
    let mut string = None;
    fields(msg, |tag, field| {
        match (tag, field) {
            (1, Field::Bytes(b)) => {
                simdutf8::basic::from_utf8(b).map_err(|_| Invalid)?;
                string = Some(b);
                return Ok(());
            }
            (1, _) => return Err(Invalid),
            // bool, int.
            (2 | 3, field) => scalar(&field, Kind::Varint)?,
            // double.
            (4, field) => scalar(&field, Kind::Fixed)?,
            // ArrayValue { repeated AnyValue values = 1 }.
            (5, field) => message(field, |b| {
                fields(b, |tag, field| match tag {
                    1 => message(field, |v| any_value(v, depth + 1).map(|_| ())),
                    _ => Ok(()),
                })
            })?,
            // KeyValueList { repeated KeyValue values = 1 }.
            (6, field) => message(field, |b| {
                fields(b, |tag, field| match tag {
                    1 => message(field, |kv| key_value(kv, depth + 1).map(|_| ())),
                    _ => Ok(()),
                })
            })?,
            // bytes.
            (7, field) => scalar(&field, Kind::Bytes)?,
            _ => return Ok(()),
        }
        string = None;
        Ok(())
    })?;
    Ok(string)
}
