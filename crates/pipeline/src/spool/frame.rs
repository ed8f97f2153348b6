//! The spool's frame: one batch, self-checking, holding what is needed to produce its records
//! again (value, key, topic, headers, drain, digest) without the configuration that routed them.
//!
//! ```text
//! frame   := len:u32 | check:u64 | payload            (len = payload bytes; check = xxh3-64 of it)
//! payload := version:u8 (2) | spooled_at_ms:u64 | digest:u128 | drain:str | data_type:str
//!            | count:u32 | record*
//! (version 1, written before data types, has no data_type: its records are logs)
//! record  := topic:str | key:str | source:opt | level:opt | value:u32 + bytes
//! str     := u16 + bytes;  opt := u16 + bytes, u16::MAX meaning absent
//! ```
//!
//! All integers are little-endian. A frame whose length runs past the end of its file, or whose
//! check does not match, is torn (a crash cut its write): recovery cuts it off.

use bytes::Bytes;
use xxhash_rust::xxh3::xxh3_64;

/// Bytes before a frame's payload: its length and its check.
pub(crate) const HEADER_BYTES: usize = 12;
/// The largest payload a frame may hold (a bound for readers of damaged files).
pub(crate) const MAX_PAYLOAD_BYTES: usize = 1 << 30;
const VERSION: u8 = 2;
/// Frames without a data type, read as logs.
const VERSION_LOGS_ONLY: u8 = 1;

/// Whether a whole frame of `bytes` (header included) can be written: reading refuses a
/// payload over [`MAX_PAYLOAD_BYTES`] as damaged, so a larger one must never be acknowledged.
pub(crate) fn fits(bytes: usize) -> bool {
    bytes.saturating_sub(HEADER_BYTES) <= MAX_PAYLOAD_BYTES
}
const ABSENT: u16 = u16::MAX;

/// One record as the producer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpooledRecord {
    pub(crate) topic: String,
    pub(crate) key: Bytes,
    pub(crate) source: Option<Bytes>,
    pub(crate) level: Option<Bytes>,
    pub(crate) value: Bytes,
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpooledBatch {
    pub(crate) spooled_at_ms: u64,
    pub(crate) digest: u128,
    pub(crate) drain: Bytes,
    /// The batch's data type as its Kafka header spells it (`logs`, `speed_insights`, ...).
    pub(crate) data_type: Bytes,
    pub(crate) records: Vec<SpooledRecord>,
}

/// A record being encoded, borrowed from the batch it came in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordRef<'a> {
    pub(crate) topic: &'a str,
    pub(crate) key: &'a [u8],
    pub(crate) source: Option<&'a [u8]>,
    pub(crate) level: Option<&'a [u8]>,
    pub(crate) value: &'a [u8],
}

/// Starts a frame of `count` records at the end of `out`; returns where it starts, for `finish`.
pub(crate) fn begin(
    out: &mut Vec<u8>,
    spooled_at_ms: u64,
    digest: u128,
    (drain, data_type): (&str, &str),
    count: usize,
) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_BYTES]);
    out.push(VERSION);
    out.extend_from_slice(&spooled_at_ms.to_le_bytes());
    out.extend_from_slice(&digest.to_le_bytes());
    put_str(out, drain.as_bytes());
    put_str(out, data_type.as_bytes());
    out.extend_from_slice(&(count as u32).to_le_bytes());
    start
}

/// Appends one record to the frame being written. Fields longer than their length prefix allows
/// are cut (topics, keys and routing values are short; no value of 4 GiB can be received).
pub(crate) fn put_record(out: &mut Vec<u8>, r: RecordRef<'_>) {
    put_str(out, r.topic.as_bytes());
    put_str(out, r.key);
    put_opt(out, r.source);
    put_opt(out, r.level);
    let value = &r.value[..r.value.len().min(u32::MAX as usize)];
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

/// Ends the frame that `begin` started at `start` (exactly `count` records were put): fills in
/// its length and check.
pub(crate) fn finish(out: &mut [u8], start: usize) {
    let payload_len = out.len() - start - HEADER_BYTES;
    let check = xxh3_64(&out[start + HEADER_BYTES..]);
    out[start..start + 4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    out[start + 4..start + HEADER_BYTES].copy_from_slice(&check.to_le_bytes());
}

/// Appends to `out` one frame holding `payload` as it is.
pub(crate) fn wrap(out: &mut Vec<u8>, payload: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_BYTES]);
    out.extend_from_slice(payload);
    finish(out, start);
}

/// Appends one whole frame to `out`.
#[cfg(test)]
pub(crate) fn encode<'a>(
    out: &mut Vec<u8>,
    spooled_at_ms: u64,
    digest: u128,
    drain: &str,
    records: impl ExactSizeIterator<Item = RecordRef<'a>>,
) {
    let start = begin(out, spooled_at_ms, digest, (drain, "logs"), records.len());
    for r in records {
        put_record(out, r);
    }
    finish(out, start);
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    let s = &s[..s.len().min(ABSENT as usize - 1)];
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s);
}

fn put_opt(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => put_str(out, s),
        None => out.extend_from_slice(&ABSENT.to_le_bytes()),
    }
}

/// A frame's header: the payload's length and check.
pub(crate) fn header(bytes: &[u8; HEADER_BYTES]) -> (usize, u64) {
    let len = u32::from_le_bytes(bytes[..4].try_into().unwrap_or_default()) as usize;
    let check = u64::from_le_bytes(bytes[4..].try_into().unwrap_or_default());
    (len, check)
}

/// Whether `payload` is the one its header describes.
pub(crate) fn checks(payload: &[u8], check: u64) -> bool {
    xxh3_64(payload) == check
}

/// When the frame of `payload` was spooled, read without decoding the rest.
pub(crate) fn spooled_at_ms(payload: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(payload.get(1..9)?.try_into().ok()?))
}

/// Decodes a checked payload; `None` if it is not a frame this version wrote.
pub(crate) fn decode(payload: Bytes) -> Option<SpooledBatch> {
    let mut r = Reader { buf: &payload, at: 0 };
    let version = r.take(1)?[0];
    if version != VERSION && version != VERSION_LOGS_ONLY {
        return None;
    }
    let spooled_at_ms = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
    let digest = u128::from_le_bytes(r.take(16)?.try_into().ok()?);
    let drain = r.str(&payload)?;
    let data_type = match version {
        VERSION => r.str(&payload)?,
        _ => Bytes::from_static(b"logs"),
    };
    let count = u32::from_le_bytes(r.take(4)?.try_into().ok()?) as usize;
    let mut records = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let topic = r.str(&payload)?;
        let topic = String::from_utf8(topic.to_vec()).ok()?;
        let key = r.str(&payload)?;
        let source = r.opt(&payload)?;
        let level = r.opt(&payload)?;
        let len = u32::from_le_bytes(r.take(4)?.try_into().ok()?) as usize;
        let at = r.at;
        r.take(len)?;
        records.push(SpooledRecord {
            topic,
            key,
            source,
            level,
            value: payload.slice(at..at + len),
        });
    }
    (r.at == payload.len()).then_some(SpooledBatch {
        spooled_at_ms,
        digest,
        drain,
        data_type,
        records,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let bytes = self.buf.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(bytes)
    }

    fn len16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    fn str(&mut self, whole: &Bytes) -> Option<Bytes> {
        let len = self.len16()? as usize;
        let at = self.at;
        self.take(len)?;
        Some(whole.slice(at..at + len))
    }

    fn opt(&mut self, whole: &Bytes) -> Option<Option<Bytes>> {
        let len = self.len16()?;
        if len == ABSENT {
            return Some(None);
        }
        let at = self.at;
        self.take(len as usize)?;
        Some(Some(whole.slice(at..at + len as usize)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(out: &mut Vec<u8>, n: usize) {
        let values: Vec<String> = (0..n).map(|i| format!(r#"{{"id":"{i}"}}"#)).collect();
        let records = values.iter().enumerate().map(|(i, v)| RecordRef {
            topic: "vercel-logs",
            key: b"prj_a",
            source: (i % 2 == 0).then_some(&b"edge"[..]),
            level: None,
            value: v.as_bytes(),
        });
        encode(out, 1234, 0xfeed, "drain-a", records);
    }

    fn payload_of(frame: &[u8]) -> (Bytes, u64) {
        let (len, check) = header(frame[..HEADER_BYTES].try_into().unwrap());
        (Bytes::copy_from_slice(&frame[HEADER_BYTES..HEADER_BYTES + len]), check)
    }

    #[test]
    fn a_frame_round_trips() {
        let mut out = Vec::new();
        sample(&mut out, 3);
        let (payload, check) = payload_of(&out);
        assert_eq!(HEADER_BYTES + payload.len(), out.len());
        assert!(checks(&payload, check));
        assert_eq!(spooled_at_ms(&payload), Some(1234));
        let batch = decode(payload).unwrap();
        assert_eq!(
            (batch.spooled_at_ms, batch.digest, &batch.drain[..]),
            (1234, 0xfeed, &b"drain-a"[..])
        );
        assert_eq!(batch.records.len(), 3);
        assert_eq!(&batch.records[1].value[..], br#"{"id":"1"}"#);
        assert_eq!(batch.records[0].source.as_deref(), Some(&b"edge"[..]));
        assert_eq!(
            (batch.records[1].source.as_ref(), batch.records[1].level.as_ref()),
            (None, None)
        );
        assert_eq!(
            (batch.records[2].topic.as_str(), &batch.records[2].key[..]),
            ("vercel-logs", &b"prj_a"[..])
        );
    }

    #[test]
    fn a_frame_of_version_1_is_read_as_logs() {
        let mut out = Vec::new();
        sample(&mut out, 2);
        let (payload, _) = payload_of(&out);
        let batch = decode(payload.clone()).unwrap();
        assert_eq!(&batch.data_type[..], b"logs");
        // The same frame as version 1 wrote it: no data type after the drain.
        let drain_end = 1 + 8 + 16 + 2 + b"drain-a".len();
        let mut v1 = vec![VERSION_LOGS_ONLY];
        v1.extend_from_slice(&payload[1..drain_end]);
        v1.extend_from_slice(&payload[drain_end + 2 + 4..]);
        let old = decode(Bytes::from(v1)).unwrap();
        assert_eq!((&old.data_type[..], old.records), (&b"logs"[..], batch.records));
    }

    #[test]
    fn only_frames_that_reading_accepts_are_written() {
        assert!(fits(HEADER_BYTES + MAX_PAYLOAD_BYTES));
        assert!(!fits(HEADER_BYTES + MAX_PAYLOAD_BYTES + 1));
        let mut header_bytes = [0u8; HEADER_BYTES];
        header_bytes[..4].copy_from_slice(&((MAX_PAYLOAD_BYTES + 1) as u32).to_le_bytes());
        let (len, _) = header(&header_bytes);
        assert!(len > MAX_PAYLOAD_BYTES, "reading would see this length and call it damaged");
    }

    #[test]
    fn a_damaged_frame_fails_its_check_and_a_short_one_does_not_decode() {
        let mut out = Vec::new();
        sample(&mut out, 2);
        let (payload, check) = payload_of(&out);
        let mut damaged = payload.to_vec();
        damaged[20] ^= 1;
        assert!(!checks(&damaged, check));
        assert_eq!(decode(payload.slice(..payload.len() - 1)), None);
    }
}
