//! Stage 2: validates JSON values by walking stage 1's structural indexes, without building a
//! tape and without unescaping strings.
//!
//! Stage 1 already guarantees valid UTF-8, balanced quotes and no raw control characters inside
//! strings, so a string's extent is known from the structurals alone and only its backslash
//! escapes need a look (a `memchr` scan). Numbers and literals are checked by grammar. This is
//! where the decoder wins over a full parse: long `message` strings cost a SIMD scan, not a copy.

use std::cell::Cell;

use record::RejectReason;

use super::escapes;

/// The deepest nesting a record may have.
pub(crate) const MAX_DEPTH: usize = 128;

/// A syntax error somewhere in the value being walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Invalid;

type Walk<T> = Result<T, Invalid>;

/// A routing field found at depth 1: the structural index of its string value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FieldAt {
    /// Index into the structural list of the value's opening quote, if present as a string.
    pub(crate) k: Option<usize>,
    /// Whether the raw string contents hold an escape.
    pub(crate) escaped: bool,
}

/// What a walk of one top-level object found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Fields {
    pub(crate) id: FieldAt,
    pub(crate) project_id: FieldAt,
    pub(crate) source: FieldAt,
    pub(crate) level: FieldAt,
    pub(crate) environment: FieldAt,
    pub(crate) has_timestamp: bool,
    /// `schema`, the marker of every data type but logs.
    pub(crate) schema: FieldAt,
    /// `timestamp` when a string (Speed Insights).
    pub(crate) timestamp_text: FieldAt,
    /// Speed Insights' `metricType`.
    pub(crate) metric_type: FieldAt,
    /// Web Analytics' `eventType`.
    pub(crate) event_type: FieldAt,
    /// Speed Insights' `value` is a number.
    pub(crate) has_value: bool,
}

impl Fields {
    /// The first missing required field of a log record, if any.
    pub(crate) fn missing(&self) -> Option<RejectReason> {
        if self.id.k.is_none() {
            Some(RejectReason::MissingId)
        } else if self.project_id.k.is_none() {
            Some(RejectReason::MissingProjectId)
        } else if !self.has_timestamp {
            Some(RejectReason::MissingTimestamp)
        } else {
            None
        }
    }
}

#[derive(Clone, Copy)]
enum Key {
    Id,
    ProjectId,
    Timestamp,
    Source,
    Level,
    Environment,
    Schema,
    MetricType,
    Value,
    EventType,
    Other,
}

/// A walker over the structurals `idx` (a prefix of `all`) of `buf`, whose current record ends
/// at byte `end`.
pub(crate) struct Walker<'a> {
    buf: &'a [u8],
    /// Every structural of `buf`.
    all: &'a [u32],
    /// The structurals the walk may visit: one bounds check tells a structural is inside.
    idx: &'a [u32],
    end: usize,
    stack: Vec<u8>,
    /// No backslash lies in `buf[bs_from..bs_at]`; `bs_at` is one (or `buf.len()`).
    bs_from: Cell<usize>,
    bs_at: Cell<usize>,
    /// Every escape in `buf` is known to be well formed ([`escapes::scan`]).
    escapes_valid: bool,
    /// When `escapes_valid`, where `buf`'s backslashes are, a bit per byte.
    backslashes: std::borrow::Cow<'a, [u64]>,
}

impl<'a> Walker<'a> {
    pub(crate) fn new(buf: &'a [u8], idx: &'a [u32]) -> Walker<'a> {
        Walker {
            buf,
            all: idx,
            idx,
            end: buf.len(),
            stack: Vec::with_capacity(16),
            bs_from: Cell::new(0),
            bs_at: Cell::new(0),
            escapes_valid: false,
            backslashes: std::borrow::Cow::Borrowed(&[]),
        }
    }

    /// Checks every escape of the walked buffer at once, so that strings need not each check
    /// their own (when one is malformed, they still do, to find whose it is). `known` are the
    /// buffer's backslashes when stage 1 already found every escape valid.
    pub(crate) fn check_escapes(&mut self, known: Option<&'a [u64]>) {
        match known {
            Some(bits) => {
                self.backslashes = std::borrow::Cow::Borrowed(bits);
                self.escapes_valid = true;
            }
            None => {
                let mut bits = Vec::new();
                self.escapes_valid = escapes::scan(self.buf, &mut bits);
                self.backslashes = std::borrow::Cow::Owned(bits);
            }
        }
    }

    /// Restricts the walk to the structurals before `lim` and the bytes before `end`.
    pub(crate) fn bound(&mut self, lim: usize, end: usize) {
        self.idx = &self.all[..lim.min(self.all.len())];
        self.end = end.min(self.buf.len());
    }

    /// The walked buffer.
    pub(crate) fn input(&self) -> &'a [u8] {
        self.buf
    }

    /// Byte position of structural `k`.
    #[inline]
    pub(crate) fn pos(&self, k: usize) -> usize {
        self.all[k] as usize
    }

    /// The byte at structural `k`, or `Invalid` past the bound.
    #[inline]
    fn byte(&self, k: usize) -> Walk<u8> {
        match self.idx.get(k) {
            Some(&at) => Ok(self.buf[at as usize]),
            None => Err(Invalid),
        }
    }

    /// The end of the token that starts at structural `k`: the next structural (or the record
    /// end), less any whitespace before it.
    #[inline]
    pub(crate) fn token_end(&self, k: usize) -> usize {
        let start = self.all[k] as usize;
        let mut end = self.idx.get(k + 1).map_or(self.end, |&next| next as usize);
        while end > start + 1 && is_ws(self.buf[end - 1]) {
            end -= 1;
        }
        end
    }

    /// The raw contents (without quotes, escapes kept) of the string token at `k`.
    pub(crate) fn raw_string(&self, k: usize) -> &'a [u8] {
        &self.buf[self.pos(k) + 1..self.token_end(k) - 1]
    }

    /// The decoded contents of the string token at `k`; `None` for an invalid escape.
    pub(crate) fn text(&self, k: usize, escaped: bool) -> Option<std::borrow::Cow<'a, [u8]>> {
        let raw = self.raw_string(k);
        if !escaped {
            return Some(std::borrow::Cow::Borrowed(raw));
        }
        let value = record::FieldSpan::new(0, raw.len() as u32, true).value(raw)?;
        Some(std::borrow::Cow::Owned(value.into_owned().into_bytes()))
    }

    /// Whether no whitespace separates the tokens of structurals `from..to`.
    pub(crate) fn is_compact(&self, from: usize, to: usize) -> bool {
        (from..to.saturating_sub(1)).all(|k| !is_ws(self.buf[self.all[k + 1] as usize - 1]))
    }

    /// Validates the string token at `k`; returns whether its contents hold an escape.
    #[inline]
    fn string(&self, k: usize) -> Walk<bool> {
        self.string_contents(k).map(|(_, escaped)| escaped)
    }

    /// Validates the string token at `k`; returns its raw contents (without quotes) and whether
    /// they hold an escape. Always inlined: called for every key and string value, the call
    /// itself (saving registers, returning the slice through memory) cost a quarter of it.
    #[inline(always)]
    fn string_contents(&self, k: usize) -> Walk<(&'a [u8], bool)> {
        let start = self.pos(k);
        let end = self.token_end(k);
        if end < start + 2 || self.buf[end - 1] != b'"' {
            return Err(Invalid);
        }
        let contents = &self.buf[start + 1..end - 1];
        match self.first_backslash(start + 1, end - 1) {
            None => Ok((contents, false)),
            Some(_) if self.escapes_valid => Ok((contents, true)),
            Some(first) => {
                escapes::validate(contents, first - start - 1).map(|()| (contents, true))
            }
        }
    }

    /// The first backslash in `buf[from..to]`.
    ///
    /// After [`Self::check_escapes`] found every escape valid, its bits answer. Otherwise:
    /// most strings hold none, and most are short, so one `memchr` per string would cost more in
    /// calls than in scanning. Instead the position of the next backslash is remembered: strings
    /// are visited in body order, so each byte is scanned about once per body.
    #[inline(always)]
    fn first_backslash(&self, from: usize, to: usize) -> Option<usize> {
        if self.escapes_valid {
            return escapes::first_in(&self.backslashes, from, to);
        }
        if from < self.bs_from.get() || self.bs_at.get() < from {
            let at = memchr::memchr(b'\\', &self.buf[from..]).map_or(self.buf.len(), |i| from + i);
            self.bs_from.set(from);
            self.bs_at.set(at);
        }
        let at = self.bs_at.get();
        (at < to).then_some(at)
    }

    /// Validates `"key" :` at `k`; returns the structural index of the value.
    #[inline]
    fn key(&self, k: usize) -> Walk<usize> {
        if self.byte(k)? != b'"' {
            return Err(Invalid);
        }
        self.string(k)?;
        if self.byte(k + 1)? != b':' {
            return Err(Invalid);
        }
        Ok(k + 2)
    }

    /// Validates the scalar token at `k` (number or literal).
    #[inline]
    fn scalar(&self, k: usize) -> Walk<()> {
        let token = &self.buf[self.pos(k)..self.token_end(k)];
        let ok = match token[0] {
            b't' => token == b"true",
            b'f' => token == b"false",
            b'n' => token == b"null",
            _ => is_number(token),
        };
        if ok {
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    /// Validates any JSON value starting at structural `k`; returns the index after it.
    pub(crate) fn value(&mut self, mut k: usize) -> Walk<usize> {
        self.stack.clear();
        loop {
            match self.byte(k)? {
                b'{' => {
                    if self.byte(k + 1)? == b'}' {
                        k += 2;
                    } else {
                        self.push(b'{')?;
                        k = self.key(k + 1)?;
                        continue;
                    }
                }
                b'[' => {
                    if self.byte(k + 1)? == b']' {
                        k += 2;
                    } else {
                        self.push(b'[')?;
                        k += 1;
                        continue;
                    }
                }
                b'"' => {
                    self.string(k)?;
                    k += 1;
                }
                b'}' | b']' | b',' | b':' => return Err(Invalid),
                _ => {
                    self.scalar(k)?;
                    k += 1;
                }
            }
            // A value is complete: close containers until one expects another element.
            loop {
                match self.stack.last() {
                    None => return Ok(k),
                    Some(b'{') => match self.byte(k)? {
                        b',' => {
                            k = self.key(k + 1)?;
                            break;
                        }
                        b'}' => {
                            k += 1;
                            self.stack.pop();
                        }
                        _ => return Err(Invalid),
                    },
                    Some(_) => match self.byte(k)? {
                        b',' => {
                            k += 1;
                            break;
                        }
                        b']' => {
                            k += 1;
                            self.stack.pop();
                        }
                        _ => return Err(Invalid),
                    },
                }
            }
        }
    }

    fn push(&mut self, container: u8) -> Walk<()> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(Invalid);
        }
        self.stack.push(container);
        Ok(())
    }

    /// Walks the top-level object at `k` (which must be `{`), noting the routing fields.
    /// Returns the fields and the index after the object.
    pub(crate) fn object(&mut self, k: usize) -> Walk<(Fields, usize)> {
        let mut fields = Fields::default();
        if self.byte(k)? != b'{' {
            return Err(Invalid);
        }
        if self.byte(k + 1)? == b'}' {
            return Ok((fields, k + 2));
        }
        let mut k = k + 1;
        loop {
            if self.byte(k)? != b'"' {
                return Err(Invalid);
            }
            let (key, key_escaped) = self.string_contents(k)?;
            let key = Self::classify(key, key_escaped);
            if self.byte(k + 1)? != b':' {
                return Err(Invalid);
            }
            k += 2;
            let value_is_string = self.byte(k)? == b'"';
            let slot = match key {
                Key::Id => Some(&mut fields.id),
                Key::ProjectId => Some(&mut fields.project_id),
                Key::Source => Some(&mut fields.source),
                Key::Level => Some(&mut fields.level),
                Key::Environment => Some(&mut fields.environment),
                Key::Schema => Some(&mut fields.schema),
                Key::MetricType => Some(&mut fields.metric_type),
                Key::EventType => Some(&mut fields.event_type),
                Key::Timestamp => {
                    let first = self.byte(k)?;
                    fields.has_timestamp = first == b'-' || first.is_ascii_digit();
                    Some(&mut fields.timestamp_text)
                }
                Key::Value => {
                    let first = self.byte(k)?;
                    fields.has_value = first == b'-' || first.is_ascii_digit();
                    None
                }
                Key::Other => None,
            };
            // A repeated key: the last one counts, as for every common JSON reader, so routing
            // agrees with what consumers of the record will see.
            match slot {
                Some(slot) if value_is_string => {
                    let escaped = self.string(k)?;
                    *slot = FieldAt { k: Some(k), escaped };
                    k += 1;
                }
                Some(slot) => {
                    *slot = FieldAt::default();
                    k = self.value(k)?;
                }
                // Most values of the other fields are strings and scalars: checked here at once,
                // without the container walk's set-up.
                None if value_is_string => {
                    self.string(k)?;
                    k += 1;
                }
                None => match self.byte(k)? {
                    b'{' | b'[' => k = self.value(k)?,
                    b'}' | b']' | b',' | b':' => return Err(Invalid),
                    _ => {
                        self.scalar(k)?;
                        k += 1;
                    }
                },
            }
            match self.byte(k)? {
                b',' => k += 1,
                b'}' => return Ok((fields, k + 1)),
                _ => return Err(Invalid),
            }
        }
    }

    /// Which routing field a key's raw contents name.
    fn classify(raw: &[u8], escaped: bool) -> Key {
        let unescaped;
        let name: &[u8] = if escaped {
            match record::FieldSpan::new(0, raw.len() as u32, true).value(raw) {
                Some(s) => {
                    unescaped = s.into_owned();
                    unescaped.as_bytes()
                }
                None => return Key::Other,
            }
        } else {
            raw
        };
        // The first byte rules out most keys at once; a full comparison (length, then bytes)
        // runs only for a key that starts like one of ours.
        let is = |known: &[u8], key: Key| if name == known { key } else { Key::Other };
        match name.first() {
            Some(b'i') => is(b"id", Key::Id),
            Some(b'p') => is(b"projectId", Key::ProjectId),
            Some(b't') => is(b"timestamp", Key::Timestamp),
            Some(b's') if name == b"source" => Key::Source,
            Some(b's') => is(b"schema", Key::Schema),
            Some(b'l') => is(b"level", Key::Level),
            Some(b'e') if name == b"environment" => Key::Environment,
            Some(b'e') => is(b"eventType", Key::EventType),
            Some(b'm') => is(b"metricType", Key::MetricType),
            Some(b'v') => is(b"value", Key::Value),
            _ => Key::Other,
        }
    }

    /// From a structural `k` inside a broken array element, the index of the `,` or `]` that
    /// ends the element at array depth, or `None` if the array never closes.
    pub(crate) fn resync(&self, mut k: usize) -> Option<usize> {
        let mut depth = 0usize;
        while k < self.idx.len() {
            match self.buf[self.pos(k)] {
                b'{' | b'[' => depth += 1,
                b'}' => depth = depth.saturating_sub(1),
                b']' if depth == 0 => return Some(k),
                b']' => depth -= 1,
                b',' if depth == 0 => return Some(k),
                _ => {}
            }
            k += 1;
        }
        None
    }
}

/// JSON insignificant whitespace.
#[inline]
pub(crate) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
fn is_number(t: &[u8]) -> bool {
    // Skips a run of digits from `i`; returns how many there were.
    let digits = |i: &mut usize| {
        let from = *i;
        while t.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - from
    };
    let mut i = usize::from(t.first() == Some(&b'-'));
    match t.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if t.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(t.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(t.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == t.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_grammar() {
        for ok in ["0", "-0", "12", "1.5", "-1.5e10", "2.5E+3", "1e-7", "1e042476460300"] {
            assert!(is_number(ok.as_bytes()), "{ok}");
        }
        for bad in ["", "-", "01", "1.", ".5", "1e", "1e+", "+1", "0x1", "1.5.2", "NaN"] {
            assert!(!is_number(bad.as_bytes()), "{bad}");
        }
    }
}
