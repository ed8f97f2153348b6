//! The delivery decoder: a pure function from a received body to records and per-record rejects.
//!
//! - NDJSON (`{` first): every line is one record, passed through byte for byte (surrounding
//!   whitespace and `\r` trimmed); blank lines are skipped.
//! - JSON array (`[` first): every element is one record, emitted as one compact line
//!   (whitespace outside strings removed, content unchanged).
//!
//! A log record must be a JSON object with a string `id`, a string `projectId` and a numeric
//! `timestamp`, and no `schema`; the other JSON types ([`decode_as`]) carry their `schema` and
//! their own required fields (`data_types`). Every other field is kept as is. Numbers are held to JSON's grammar, not to a
//! float's range (`1e400` is a number, as RFC 8259 allows). Of a repeated key the last counts,
//! as for `JSON.parse` and serde_json. A record failing that is a
//! [`Reject`], never a failure of the batch. Accepted records are zero-copy slices of the body; only array elements
//! that hold whitespace are copied, into one buffer shared by the whole batch.
//!
//! The whole body goes through simd-json's SIMD stage 1 in one pass ([`stage1`]); the structural
//! walker ([`walk`]) then validates each record. If stage 1 rejects the body as a whole (a line
//! with bad UTF-8 or an unclosed string), each line or element is decoded on its own so that the
//! good ones beside it survive.
//!
//! ```
//! use ingest::decode::{decode, PaddedBody};
//!
//! let body = PaddedBody::from_slice(b"{\"id\":\"a\",\"projectId\":\"p\",\"timestamp\":1}\n[1]\n");
//! let decoded = decode(body);
//! assert_eq!(decoded.records.len(), 1);
//! assert_eq!(decoded.rejects[0].reason.code(), "not_an_object");
//! ```

mod data_types;
mod escapes;
mod ndjson;
mod otlp;
mod stage1;
mod walk;

use bytes::{Bytes, BytesMut};
use record::{DataType, FieldSpan, Record, RecordMeta, Reject, RejectReason};

pub(crate) use self::otlp::spans_in;
pub use self::otlp::{decode_otlp, InvalidRequest, OtlpDecoded, OtlpEncoding};
use self::stage1::{with_structurals, Structurals, PADDING, SENTINEL};
use self::walk::{is_ws, FieldAt, Fields, Walker};

/// A body buffer laid out for the SIMD stage: a sentinel byte, the body, then padding.
///
/// The ingest edge reads the request straight into one of these, so decoding needs no copy.
#[derive(Debug, Clone)]
pub struct PaddedBody {
    buf: Vec<u8>,
}

impl PaddedBody {
    /// An empty body with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> PaddedBody {
        let mut buf = Vec::with_capacity(capacity + 1 + PADDING);
        buf.push(SENTINEL);
        PaddedBody { buf }
    }

    /// A padded copy of `body`.
    pub fn from_slice(body: &[u8]) -> PaddedBody {
        let mut padded = PaddedBody::with_capacity(body.len());
        padded.extend_from_slice(body);
        padded
    }

    /// Gives back the buffer's room beyond the body and its padding.
    pub fn shrink_to_fit(&mut self) {
        self.buf.shrink_to(self.buf.len() + PADDING);
    }

    /// Appends bytes to the body.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The body's length in bytes.
    pub fn len(&self) -> usize {
        self.buf.len() - 1
    }

    /// The bytes of memory the buffer holds, sentinel and padding included.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The body.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[1..]
    }

    /// The body as shared bytes (no copy).
    pub fn into_bytes(self) -> Bytes {
        Bytes::from(self.buf).slice(1..)
    }

    /// A writer that appends to the body (for inflating into it).
    pub fn writer(&mut self) -> impl std::io::Write + '_ {
        BodyWriter(&mut self.buf)
    }
}

struct BodyWriter<'a>(&'a mut Vec<u8>);

impl std::io::Write for BodyWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How a body was framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON value per line.
    Ndjson,
    /// One JSON array of values.
    JsonArray,
}

/// The outcome of decoding one body.
#[derive(Debug)]
pub struct Decoded {
    /// How the body was framed.
    pub format: Format,
    /// The accepted records, in body order.
    pub records: Vec<Record>,
    /// The rejected lines or elements, in body order.
    pub rejects: Vec<Reject>,
    /// The body that records and rejects are slices of (array elements with whitespace aside).
    pub body: Bytes,
}

impl Decoded {
    /// Whether anything in the body parsed as JSON (an accepted record, or a reject that is at
    /// least a JSON value). A body with none is undecodable as a whole.
    pub fn has_json(&self) -> bool {
        !self.records.is_empty()
            || self.rejects.iter().any(|r| r.reason != RejectReason::InvalidJson)
    }
}

/// Decodes a log drain's delivery body. Never fails as a whole: what cannot be read becomes
/// rejects.
pub fn decode(body: PaddedBody) -> Decoded {
    decode_as(body, DataType::Logs)
}

/// Decodes a delivery body of a drain of `data_type`: as [`decode`], each record checked
/// against its type's `schema` and required fields (a record of another type is a
/// [`RejectReason::WrongDataType`] reject).
pub fn decode_as(body: PaddedBody, data_type: DataType) -> Decoded {
    let mut buf = body.buf;
    let len = buf.len();
    buf.resize(len + PADDING, b' ');
    let format = match buf[1..len].iter().find(|b| !is_ws(**b)) {
        Some(b'[') => Format::JsonArray,
        _ => Format::Ndjson,
    };
    let mut out = Output::new(data_type);
    match format {
        Format::Ndjson => ndjson::decode_chunks(&mut buf, len, &mut out),
        Format::JsonArray => with_structurals(&mut buf, len, |input, found| match found {
            Some(found) => array(input, found, &mut out),
            None => array_element_by_element(input, &mut out),
        }),
    }
    buf.truncate(len);
    let whole = Bytes::from(buf).slice(1..);
    out.finish(format, &whole)
}

/// Where a record's bytes come from.
#[derive(Debug)]
enum Source {
    /// `start..end` of the body (offsets in the sentinel-prefixed buffer).
    Body(usize, usize),
    /// `start..end` of the batch's compaction buffer.
    Compacted(usize, usize),
    /// A buffer of its own (slow path only).
    Owned(Bytes),
}

struct Output {
    /// Where the walked input starts in the sentinel-prefixed body: the offsets handed to
    /// [`Output::push`] and [`Output::reject`] are the input's.
    base: usize,
    /// The drain's data type, which every record must be of.
    data_type: DataType,
    /// Each record's source, fields, and whether its source range ends with its `\n`.
    records: Vec<(Source, RecordMeta, bool)>,
    rejects: Vec<(usize, usize, RejectReason)>,
    compacted: BytesMut,
}

impl Output {
    fn new(data_type: DataType) -> Output {
        Output {
            base: 0,
            data_type,
            records: Vec::new(),
            rejects: Vec::new(),
            compacted: BytesMut::new(),
        }
    }

    fn push(&mut self, (source, meta, terminated): (Source, RecordMeta, bool)) {
        let source = match source {
            Source::Body(start, end) => Source::Body(self.base + start, self.base + end),
            other => other,
        };
        self.records.push((source, meta, terminated));
    }

    fn reject(&mut self, start: usize, end: usize, reason: RejectReason) {
        self.rejects.push((self.base + start, self.base + end, reason));
    }

    fn finish(self, format: Format, whole: &Bytes) -> Decoded {
        let compacted = self.compacted.freeze();
        let records = self
            .records
            .into_iter()
            .map(|(source, meta, terminated)| {
                let bytes = match source {
                    Source::Body(start, end) => whole.slice(start - 1..end - 1),
                    Source::Compacted(start, end) => compacted.slice(start..end),
                    Source::Owned(bytes) => bytes,
                };
                if terminated {
                    Record::terminated(bytes, meta)
                } else {
                    Record::new(bytes, meta)
                }
            })
            .collect();
        let rejects = self
            .rejects
            .into_iter()
            .map(|(start, end, reason)| Reject {
                raw: whole.slice(start - 1..end - 1),
                reason,
                offset: start - 1,
            })
            .collect();
        Decoded { format, records, rejects, body: whole.clone() }
    }
}

/// The span of a routing field inside a record that starts at byte `record_start` of the
/// walked buffer (zero-copy case).
fn span(w: &Walker<'_>, field: FieldAt, record_start: usize) -> FieldSpan {
    match field.k {
        None => FieldSpan::ABSENT,
        Some(k) => {
            let start = w.pos(k) + 1;
            let len = w.token_end(k) - 1 - start;
            FieldSpan::new((start - record_start) as u32, len as u32, field.escaped)
        }
    }
}

fn meta(w: &Walker<'_>, f: &Fields, record_start: usize) -> RecordMeta {
    RecordMeta {
        id: span(w, f.id, record_start),
        project_id: span(w, f.project_id, record_start),
        source: span(w, f.source, record_start),
        level: span(w, f.level, record_start),
        environment: span(w, f.environment, record_start),
    }
}

/// Trims JSON whitespace from both ends of `input[start..end]`.
fn trim(input: &[u8], mut start: usize, mut end: usize) -> (usize, usize) {
    while start < end && is_ws(input[start]) {
        start += 1;
    }
    while end > start && is_ws(input[end - 1]) {
        end -= 1;
    }
    (start, end)
}

/// Classifies one record whose structurals are `k..lim` and bytes `start..end`: accepted with
/// its fields, or rejected with a reason.
fn classify(
    w: &mut Walker<'_>,
    (k, lim, end): (usize, usize, usize),
    data_type: DataType,
) -> Result<Fields, RejectReason> {
    w.bound(lim, end);
    match w.object(k) {
        Ok((fields, after)) if after == lim => fields.check(w, data_type).map_or(Ok(fields), Err),
        Ok(_) => Err(RejectReason::InvalidJson),
        Err(_) => match w.value(k) {
            Ok(after) if after == lim => Err(RejectReason::NotAnObject),
            _ => Err(RejectReason::InvalidJson),
        },
    }
}

fn array(input: &[u8], found: Structurals<'_>, out: &mut Output) {
    let idx = found.idx;
    let mut w = Walker::new(input, idx);
    w.check_escapes(found.backslashes);
    let n = idx.len();
    let body_end = trim(input, 1, input.len()).1;
    let ends_element = |w: &Walker<'_>, k: usize| k < n && matches!(input[w.pos(k)], b',' | b']');
    // idx[0] is the sentinel, idx[1] the opening bracket.
    let mut k = 2;
    if k < n && input[w.pos(k)] == b']' {
        k += 1;
    } else {
        while k < n {
            let start = w.pos(k);
            w.bound(n, input.len());
            let after = match w.object(k) {
                Ok((fields, after)) if ends_element(&w, after) => {
                    let end = w.token_end(after - 1);
                    match fields.check(&w, out.data_type) {
                        None => accept_element(&w, &fields, k, after, start, end, out),
                        Some(reason) => out.reject(start, end, reason),
                    }
                    after
                }
                _ => match w.value(k) {
                    Ok(after) if ends_element(&w, after) => {
                        let end = w.token_end(after - 1);
                        out.reject(start, end, RejectReason::NotAnObject);
                        after
                    }
                    _ => match w.resync(k) {
                        Some(stop) => {
                            let end = trim(input, start, w.pos(stop)).1;
                            out.reject(start, end.max(start + 1), RejectReason::InvalidJson);
                            stop
                        }
                        None => {
                            out.reject(start, body_end, RejectReason::InvalidJson);
                            return;
                        }
                    },
                },
            };
            k = after + 1;
            if input[w.pos(after)] == b']' {
                break;
            }
        }
    }
    // Anything after the closing bracket is kept as a reject rather than silently dropped.
    if k < n {
        let start = w.pos(k);
        out.reject(start, body_end.max(start + 1), RejectReason::InvalidJson);
    }
}

/// An accepted array element at structurals `k..after`, bytes `start..end`: a slice of the body
/// when it is already compact, else a compact copy in the batch's shared buffer.
fn accept_element(
    w: &Walker<'_>,
    fields: &Fields,
    k: usize,
    after: usize,
    start: usize,
    end: usize,
    out: &mut Output,
) {
    if w.is_compact(k, after) {
        out.push((Source::Body(start, end), meta(w, fields, start), false));
        return;
    }
    let base = out.compacted.len();
    let mut meta = RecordMeta::default();
    for i in k..after {
        let (from, to) = (w.pos(i), w.token_end(i));
        let at = out.compacted.len() - base;
        let field_span = |field: FieldAt| {
            (field.k == Some(i))
                .then(|| FieldSpan::new(at as u32 + 1, (to - from - 2) as u32, field.escaped))
        };
        if let Some(s) = field_span(fields.id) {
            meta.id = s;
        }
        if let Some(s) = field_span(fields.project_id) {
            meta.project_id = s;
        }
        if let Some(s) = field_span(fields.source) {
            meta.source = s;
        }
        if let Some(s) = field_span(fields.level) {
            meta.level = s;
        }
        if let Some(s) = field_span(fields.environment) {
            meta.environment = s;
        }
        out.compacted.extend_from_slice(&w.input()[from..to]);
    }
    out.compacted.extend_from_slice(b"\n");
    out.push((Source::Compacted(base, out.compacted.len()), meta, true));
}

/// What one value decoded alone is.
#[derive(Clone, Copy)]
enum Framing {
    /// An NDJSON line: passed through as it is (with its newline when `terminated`).
    Line { terminated: bool },
    /// A JSON-array element: compacted like any other element.
    Element,
}

/// The slow path for an array whose body failed stage 1: split elements with a byte scanner,
/// then each element through stage 1 alone.
fn array_element_by_element(input: &[u8], out: &mut Output) {
    let (open, body_end) = trim(input, 1, input.len());
    let mut start = open + 1;
    for (elem_start, elem_end) in split_array(input, start, body_end) {
        let (s, e) = trim(input, elem_start, elem_end);
        if s < e {
            one_value(input, s, e, Framing::Element, out);
        }
        start = elem_end + 1;
    }
    let (s, e) = trim(input, start.min(body_end), body_end);
    if s < e && !(e == s + 1 && input[s] == b']') {
        out.reject(s, e, RejectReason::InvalidJson);
    }
}

/// Splits `input[from..to]` (just after `[`) at depth-zero commas, until the closing `]`.
/// Returns element ranges; the last range ends at the `]` (or at `to` if it never closes).
fn split_array(input: &[u8], from: usize, to: usize) -> Vec<(usize, usize)> {
    let mut parts = Vec::new();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut start = from;
    for (i, &b) in input.iter().enumerate().take(to).skip(from) {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' => depth = depth.saturating_sub(1),
            b']' if depth == 0 => {
                parts.push((start, i));
                return parts;
            }
            b']' => depth -= 1,
            b',' if depth == 0 => {
                parts.push((start, i));
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push((start, to));
    parts
}

/// Decodes `input[start..end]` (an NDJSON line or an array element) as one record from a private
/// padded copy.
fn one_value(input: &[u8], start: usize, end: usize, framing: Framing, out: &mut Output) {
    let mut copy = Vec::with_capacity(end - start + 1 + PADDING);
    copy.push(SENTINEL);
    copy.extend_from_slice(&input[start..end]);
    let len = copy.len();
    copy.resize(len + PADDING, b' ');
    let data_type = out.data_type;
    let outcome = with_structurals(&mut copy, len, |line, found| {
        let Some(Structurals { idx, .. }) = found else { return Err(RejectReason::InvalidJson) };
        let mut w = Walker::new(line, idx);
        let n = idx.len();
        let fields = classify(&mut w, (1, n, line.len()), data_type)?;
        if let Framing::Line { terminated } = framing {
            let stop = if terminated { end + 1 } else { end };
            return Ok((Source::Body(start, stop), meta(&w, &fields, 1), terminated));
        }
        let mut private = Output::new(data_type);
        accept_element(&w, &fields, 1, n, 1, line.len(), &mut private);
        Ok(match private.records.pop() {
            Some((Source::Compacted(..), meta, _)) => {
                (Source::Owned(private.compacted.freeze()), meta, true)
            }
            Some((_, meta, _)) => (Source::Body(start, end), meta, false),
            None => unreachable!("accept_element always pushes one record"),
        })
    });
    match outcome {
        Ok(record) => out.push(record),
        Err(reason) => out.reject(start, end, reason),
    }
}
