//! One accepted log record: a zero-copy slice of the received body plus routing field spans.

use std::borrow::Cow;

use bytes::Bytes;

/// Where a string field's raw (still JSON-escaped) contents sit inside a record's bytes.
///
/// A span of length zero with `start == u32::MAX` means "absent". Spans are kept as offsets
/// rather than sub-slices so that building a record costs no reference-count traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpan {
    start: u32,
    len: u32,
    escaped: bool,
}

impl FieldSpan {
    /// The absent field.
    pub const ABSENT: FieldSpan = FieldSpan { start: u32::MAX, len: 0, escaped: false };

    /// A field whose raw contents are `len` bytes at `start`; `escaped` says whether they hold
    /// a backslash escape that must be decoded before use.
    pub const fn new(start: u32, len: u32, escaped: bool) -> FieldSpan {
        FieldSpan { start, len, escaped }
    }

    /// Whether the record has this field as a string.
    pub const fn is_present(&self) -> bool {
        self.start != u32::MAX
    }

    /// The raw bytes of the field inside `line`, if present.
    pub fn raw<'a>(&self, line: &'a [u8]) -> Option<&'a [u8]> {
        if !self.is_present() {
            return None;
        }
        let start = self.start as usize;
        line.get(start..start + self.len as usize)
    }

    /// The decoded string value of the field inside `line`, if present.
    ///
    /// Borrowed when the raw contents hold no escape, which is the common case.
    pub fn value<'a>(&self, line: &'a [u8]) -> Option<Cow<'a, str>> {
        let raw = self.raw(line)?;
        if self.escaped {
            unescape(raw).map(Cow::Owned)
        } else {
            std::str::from_utf8(raw).ok().map(Cow::Borrowed)
        }
    }

    /// The decoded value of the field inside `line` as bytes, if present: the raw contents
    /// themselves when they hold no escape, not checked as UTF-8 again (the decoder checked the
    /// whole body), for a sink that hands the value on as bytes (a Kafka key or header).
    pub fn value_bytes<'a>(&self, line: &'a [u8]) -> Option<Cow<'a, [u8]>> {
        let raw = self.raw(line)?;
        if self.escaped {
            unescape(raw).map(|s| Cow::Owned(s.into_bytes()))
        } else {
            Some(Cow::Borrowed(raw))
        }
    }
}

impl Default for FieldSpan {
    fn default() -> Self {
        FieldSpan::ABSENT
    }
}

/// The routing fields of a record, as spans into its bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordMeta {
    /// `id`: the de-duplication key downstream.
    pub id: FieldSpan,
    /// `projectId`: the partitioning key.
    pub project_id: FieldSpan,
    /// `source` (`build`, `edge`, `lambda`, ...), when a string.
    pub source: FieldSpan,
    /// `level` (`info`, `warning`, `error`, `fatal`), when a string.
    pub level: FieldSpan,
    /// `environment` (`production`, `preview`), when a string.
    pub environment: FieldSpan,
}

/// One validated log record: a compact JSON object, the exact bytes a sink writes.
///
/// When the record sits in its buffer right before a `\n` (NDJSON lines do), the record keeps
/// that newline too, so a file sink can hand the kernel whole lines without copying them.
#[derive(Debug, Clone)]
pub struct Record {
    /// The record, followed by `\n` when `terminated`.
    line: Bytes,
    terminated: bool,
    meta: RecordMeta,
}

impl Record {
    /// A record over `line` (no terminator) whose routing fields sit at the spans of `meta`.
    pub fn new(line: Bytes, meta: RecordMeta) -> Record {
        Record { line, terminated: false, meta }
    }

    /// A record over `line`, which ends with the record's `\n` terminator.
    pub fn terminated(line: Bytes, meta: RecordMeta) -> Record {
        debug_assert_eq!(line.last(), Some(&b'\n'));
        Record { line, terminated: true, meta }
    }

    /// The record's JSON bytes, without a line terminator.
    pub fn bytes(&self) -> &[u8] {
        if self.terminated {
            &self.line[..self.line.len() - 1]
        } else {
            &self.line
        }
    }

    /// [`Record::bytes`], as a handle on the same buffer (no copy).
    pub fn to_bytes(&self) -> Bytes {
        self.line.slice(..self.bytes().len())
    }

    /// The record with its `\n`, when its buffer holds one right after it.
    pub fn line(&self) -> Option<&[u8]> {
        self.terminated.then_some(&self.line[..])
    }

    /// The routing spans.
    pub fn meta(&self) -> &RecordMeta {
        &self.meta
    }

    /// `id`, decoded.
    pub fn id(&self) -> Option<Cow<'_, str>> {
        self.meta.id.value(self.bytes())
    }

    /// `projectId`, decoded.
    pub fn project_id(&self) -> Option<Cow<'_, str>> {
        self.meta.project_id.value(self.bytes())
    }

    /// `source`, decoded, when the record has it as a string.
    pub fn source(&self) -> Option<Cow<'_, str>> {
        self.meta.source.value(self.bytes())
    }

    /// `level`, decoded, when the record has it as a string.
    pub fn level(&self) -> Option<Cow<'_, str>> {
        self.meta.level.value(self.bytes())
    }

    /// `environment`, decoded, when the record has it as a string.
    pub fn environment(&self) -> Option<Cow<'_, str>> {
        self.meta.environment.value(self.bytes())
    }
}

/// Decodes the contents of a JSON string (without its quotes). `None` for an invalid escape.
fn unescape(raw: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let text = std::str::from_utf8(raw).ok()?;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let decoded = match chars.next()? {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let high = hex4(&mut chars)?;
                if (0xD800..0xDC00).contains(&high) {
                    if chars.next()? != '\\' || chars.next()? != 'u' {
                        return None;
                    }
                    let low = hex4(&mut chars)?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return None;
                    }
                    char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))?
                } else {
                    char::from_u32(high)?
                }
            }
            _ => return None,
        };
        out.push(decoded);
    }
    Some(out)
}

fn hex4(chars: &mut std::str::Chars<'_>) -> Option<u32> {
    let mut value = 0;
    for _ in 0..4 {
        value = value * 16 + chars.next()?.to_digit(16)?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_field_is_decoded() {
        let line = br#"{"projectId":"pr\u006a_\ud83d\ude80\n"}"#;
        let span = FieldSpan::new(14, 23, true);
        assert_eq!(span.raw(line), Some(&br#"pr\u006a_\ud83d\ude80\n"#[..]));
        assert_eq!(span.value(line).as_deref(), Some("prj_\u{1F680}\n"));
        assert_eq!(span.value_bytes(line).as_deref(), Some("prj_\u{1F680}\n".as_bytes()));
    }

    #[test]
    fn unescaped_field_bytes_are_borrowed() {
        let line = br#"{"projectId":"prj_1"}"#;
        let span = FieldSpan::new(14, 5, false);
        assert!(matches!(span.value_bytes(line), Some(Cow::Borrowed(b"prj_1"))));
        assert_eq!(FieldSpan::ABSENT.value_bytes(line), None);
        assert_eq!(FieldSpan::new(1, 6, true).value_bytes(br#""\ud83d""#), None);
    }

    #[test]
    fn lone_surrogate_is_not_a_value() {
        let line = br#""\ud83d""#;
        assert_eq!(FieldSpan::new(1, 6, true).value(line), None);
    }

    #[test]
    fn absent_field_has_no_value() {
        assert_eq!(FieldSpan::ABSENT.value(b"{}"), None);
        assert!(!FieldSpan::default().is_present());
    }
}
