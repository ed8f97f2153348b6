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

/// The deepest a message may sit inside the request (a `ResourceSpans` is at depth 1): prost
/// refuses a message nested more than 100 deep, and an unknown field or a group in a message 100
/// deep. The walker refuses every message 100 deep (one level stricter, simpler) and counts groups
/// as prost does, so that it never accepts what prost refuses (`AnyValue`s nest without bound).
const MAX_DEPTH: u32 = 100;

/// The attribute naming the Vercel project a resource's spans belong to.
const PROJECT_ID: &[u8] = b"vercel.projectId";

/// One field's payload.
enum Field<'a> {
    Varint,
    Fixed64,
    Fixed32,
    Bytes(&'a [u8]),
    /// A group, skipped: only an unknown field may be one (prost refuses a known one).
    Group,
}

/// Calls `each` with every field of the message `msg`, nested `depth` deep in the request
/// (groups, a relic proto3 never writes, are skipped as prost skips them, then handed to `each`
/// as [`Field::Group`], which only an unknown field's arm accepts).
fn fields<'a>(msg: &'a [u8], depth: u32, mut each: impl FnMut(u32, Field<'a>) -> Walked) -> Walked {
    if depth >= MAX_DEPTH {
        return Err(Invalid);
    }
    let mut buf = msg;
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        let field = match wire_type {
            WireType::Varint => {
                decode_varint(&mut buf)?;
                Field::Varint
            }
            WireType::SixtyFourBit => advance(&mut buf, 8).map(|_| Field::Fixed64)?,
            WireType::ThirtyTwoBit => advance(&mut buf, 4).map(|_| Field::Fixed32)?,
            WireType::LengthDelimited => {
                let len = decode_varint(&mut buf)?;
                let len = usize::try_from(len).map_err(|_| Invalid)?;
                Field::Bytes(advance(&mut buf, len)?)
            }
            WireType::StartGroup => {
                skip_group(&mut buf, tag, MAX_DEPTH - depth)?;
                Field::Group
            }
            WireType::EndGroup => return Err(Invalid),
        };
        each(tag, field)?;
    }
    Ok(())
}

/// Skips a group as prost's `skip_field` does with `budget` levels of recursion left: each
/// nested group, and each field inside one, takes a level (prost refuses at none left).
fn skip_group(buf: &mut &[u8], tag: u32, budget: u32) -> Walked {
    if budget == 0 {
        return Err(Invalid);
    }
    loop {
        let (inner, wire_type) = decode_key(buf)?;
        match wire_type {
            WireType::EndGroup if inner == tag => return Ok(()),
            WireType::EndGroup => return Err(Invalid),
            WireType::StartGroup => skip_group(buf, inner, budget - 1)?,
            _ if budget == 1 => return Err(Invalid),
            _ => skip_field(wire_type, inner, buf, DecodeContext::default())?,
        }
    }
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

/// A known field's wire type: a varint, a 64- or a 32-bit fixed-width number (each refused in
/// the other's place, as prost refuses them), or length-delimited.
#[derive(Clone, Copy)]
enum Kind {
    Varint,
    Fixed64,
    Fixed32,
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
        (Field::Varint, Kind::Varint)
        | (Field::Fixed64, Kind::Fixed64)
        | (Field::Fixed32, Kind::Fixed32) => Ok(()),
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
    fields(body, 0, |tag, field| match (tag, field) {
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
    let walked = fields(msg, 1, |tag, field| match tag {
        1 => message(field, |b| resource(b, msg, &mut info.project_id)),
        2 => message(field, |b| scope_spans(b, &mut info.spans)),
        3 => utf8(field),
        _ => Ok(()),
    });
    walked.map(|()| info).map_err(|_| info.spans)
}

/// `Resource` (depth 2): attributes (the project id among them), dropped count, entity refs.
fn resource(msg: &[u8], record: &[u8], project_id: &mut Option<(usize, usize)>) -> Walked {
    fields(msg, 2, |tag, field| match tag {
        1 => message(field, |b| {
            let value = key_value(b, 3)?;
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

/// `EntityRef` (depth 3): schema URL, type, id and description keys.
fn entity_ref(msg: &[u8]) -> Walked {
    fields(msg, 3, |tag, field| match tag {
        1..=4 => utf8(field),
        _ => Ok(()),
    })
}

/// `ScopeSpans` (depth 2): the scope, its spans, a schema URL.
fn scope_spans(msg: &[u8], spans: &mut u64) -> Walked {
    fields(msg, 2, |tag, field| match tag {
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

/// `InstrumentationScope` (depth 3): name, version, attributes, dropped count.
fn scope(msg: &[u8]) -> Walked {
    fields(msg, 3, |tag, field| match tag {
        1 | 2 => utf8(field),
        3 => message(field, |b| key_value(b, 4).map(|_| ())),
        4 => scalar(&field, Kind::Varint),
        _ => Ok(()),
    })
}

/// `Span` (depth 3), every field of trace.proto's.
fn span(msg: &[u8]) -> Walked {
    fields(msg, 3, |tag, field| match tag {
        // trace_id, span_id, parent_span_id: bytes.
        1 | 2 | 4 => scalar(&field, Kind::Bytes),
        // trace_state, name.
        3 | 5 => utf8(field),
        // kind, dropped attributes/events/links counts.
        6 | 10 | 12 | 14 => scalar(&field, Kind::Varint),
        // start and end times (fixed64), flags (fixed32).
        7 | 8 => scalar(&field, Kind::Fixed64),
        16 => scalar(&field, Kind::Fixed32),
        9 => message(field, |b| key_value(b, 4).map(|_| ())),
        11 => message(field, event),
        13 => message(field, link),
        15 => message(field, status),
        _ => Ok(()),
    })
}

/// `Span.Event` (depth 4): time, name, attributes, dropped count.
fn event(msg: &[u8]) -> Walked {
    fields(msg, 4, |tag, field| match tag {
        1 => scalar(&field, Kind::Fixed64),
        2 => utf8(field),
        3 => message(field, |b| key_value(b, 5).map(|_| ())),
        4 => scalar(&field, Kind::Varint),
        _ => Ok(()),
    })
}

/// `Span.Link` (depth 4): trace and span ids, trace state, attributes, dropped count, flags.
fn link(msg: &[u8]) -> Walked {
    fields(msg, 4, |tag, field| match tag {
        1 | 2 => scalar(&field, Kind::Bytes),
        3 => utf8(field),
        4 => message(field, |b| key_value(b, 5).map(|_| ())),
        5 => scalar(&field, Kind::Varint),
        6 => scalar(&field, Kind::Fixed32),
        _ => Ok(()),
    })
}

/// `Status` (depth 4): message, code.
fn status(msg: &[u8]) -> Walked {
    fields(msg, 4, |tag, field| match tag {
        2 => utf8(field),
        3 => scalar(&field, Kind::Varint),
        _ => Ok(()),
    })
}

/// `KeyValue`, nested `depth` deep; returns its key and, when its value is a string, that
/// string's bytes.
fn key_value(msg: &[u8], depth: u32) -> Walked<Option<(&[u8], &[u8])>> {
    let (mut key, mut string) = (None, None);
    fields(msg, depth, |tag, field| match (tag, field) {
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

/// `AnyValue`, nested `depth` deep; returns the string when it holds one (its `value` is a
/// oneof: the last field set wins, as in prost). Arrays and key-value lists nest, up to
/// [`MAX_DEPTH`] messages in all.
fn any_value(msg: &[u8], depth: u32) -> Walked<Option<&[u8]>> {
    let mut string = None;
    fields(msg, depth, |tag, field| {
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
            (4, field) => scalar(&field, Kind::Fixed64)?,
            // ArrayValue { repeated AnyValue values = 1 }.
            (5, field) => message(field, |b| {
                fields(b, depth + 1, |tag, field| match tag {
                    1 => message(field, |v| any_value(v, depth + 2).map(|_| ())),
                    _ => Ok(()),
                })
            })?,
            // KeyValueList { repeated KeyValue values = 1 }.
            (6, field) => message(field, |b| {
                fields(b, depth + 1, |tag, field| match tag {
                    1 => message(field, |kv| key_value(kv, depth + 2).map(|_| ())),
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
