//! The files of trace drains: protobuf frames instead of lines, and their crash recovery.
//!
//! A trace record is the protobuf encoding of one `ResourceSpans`, binary (any byte, `\n`
//! included), so it cannot be a line. Each is written as field 1, length-delimited: the byte
//! 0x0A, the record's length as a base-128 varint, the record. Field 1 of an OTLP
//! `ExportTraceServiceRequest` is its repeated `resource_spans`, so a complete `.binpb` file is
//! exactly one such request, readable whole by any OTLP decoder.
//!
//! Recovery walks the frames from the start. A last frame the file ends inside is a write that
//! was never acknowledged: it is cut. From the first frame that is not valid (not tag 0x0A, a
//! bad varint, zero length, or contents that are not well-formed protobuf wire format at their
//! top level, such as the zeros a power loss leaves) to the end, the bytes are set aside as dead
//! letters, durable before the `.open` file is cut: no reader can tell a frame boundary inside
//! garbage, so nothing after it is kept.

use std::io::{self, IoSlice};
use std::ops::Range;

use record::Batch;

use super::encode::encode_recovered;
use super::recover::{
    append_all, complete_recovered, read_exact_at, write_whole, PART_SUFFIX,
    RECOVERED_INVALID_PREFIX,
};
use super::rotation::{millis_now, FRAMES_OPEN};
use super::FileSinkConfig;
use crate::storage::{Storage, StoredFile};

/// The key of field 1, length-delimited: `ExportTraceServiceRequest.resource_spans`.
const TAG: u8 = 0x0A;
/// A u64 takes at most this many varint bytes.
const MAX_VARINT: usize = 10;
/// Files are read back, and invalid tails set aside, in pieces this large.
const PIECE: usize = 64 * 1024;

/// Appends `value` as a protobuf base-128 varint.
fn put_varint(mut value: u64, buf: &mut Vec<u8>) {
    while value >= 0x80 {
        buf.push(value as u8 | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

/// How many bytes `value` takes as a varint.
fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends the frame prefix (tag and length) of each record of `batch` to `prefixes`; returns
/// how many records. An empty record (an empty `ResourceSpans`, which carries nothing) gets no
/// frame: a zero length is what recovery takes for garbage.
pub(super) fn frame_prefixes(batch: &Batch, prefixes: &mut Vec<u8>) -> u64 {
    for record in batch.records.iter().filter(|r| !r.bytes().is_empty()) {
        prefixes.push(TAG);
        put_varint(record.bytes().len() as u64, prefixes);
    }
    batch.records.len() as u64
}

/// Pushes the frames of `batch`: each its prefix, from `prefixes` at `at` (which
/// [`frame_prefixes`] filled), and the record's bytes in the received body (no copy).
pub(super) fn frame_pieces<'a>(
    batch: &'a Batch,
    prefixes: &'a [u8],
    at: &mut usize,
    pieces: &mut Vec<IoSlice<'a>>,
) {
    for record in batch.records.iter().filter(|r| !r.bytes().is_empty()) {
        let len = 1 + varint_len(record.bytes().len() as u64);
        pieces.push(IoSlice::new(&prefixes[*at..*at + len]));
        pieces.push(IoSlice::new(record.bytes()));
        *at += len;
    }
}

/// A forward reader of a file's first `len` bytes, through a bounded buffer.
struct Reader<'f> {
    file: &'f dyn StoredFile,
    len: u64,
    buf: Vec<u8>,
    /// Where in the file `buf` starts.
    start: u64,
}

/// A varint read back.
enum Varint {
    /// Its value and where it ends.
    Value(u64, u64),
    /// The limit came before its last byte.
    Truncated,
    /// Longer than a u64 allows.
    Bad,
}

impl Reader<'_> {
    /// The byte at `at`, which is before `len`.
    fn byte(&mut self, at: u64) -> io::Result<u8> {
        if at < self.start || at >= self.start + self.buf.len() as u64 {
            let want = PIECE.min((self.len - at) as usize);
            self.buf.resize(want, 0);
            read_exact_at(self.file, &mut self.buf, at)?;
            self.start = at;
        }
        Ok(self.buf[(at - self.start) as usize])
    }

    /// The varint at `at`, which must end by `end` (at most `len`).
    fn varint(&mut self, at: u64, end: u64) -> io::Result<Varint> {
        let mut value = 0u64;
        for i in 0..MAX_VARINT {
            if at + i as u64 >= end {
                return Ok(Varint::Truncated);
            }
            let b = self.byte(at + i as u64)?;
            // The tenth byte holds the top bit of a u64 only.
            if i == MAX_VARINT - 1 && b > 1 {
                return Ok(Varint::Bad);
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(Varint::Value(value, at + i as u64 + 1));
            }
        }
        Ok(Varint::Bad)
    }

    /// Whether `range` is well-formed protobuf wire format at its top level: every field a key
    /// (field number at least 1, wire type varint, 64-bit, length-delimited or 32-bit) and a
    /// payload that fits.
    fn fields_fit(&mut self, range: Range<u64>) -> io::Result<bool> {
        let (mut at, end) = (range.start, range.end);
        while at < end {
            let Varint::Value(key, after) = self.varint(at, end)? else { return Ok(false) };
            if key >> 3 == 0 || key > u64::from(u32::MAX) {
                return Ok(false);
            }
            let next = match key & 7 {
                0 => match self.varint(after, end)? {
                    Varint::Value(_, next) => Some(next),
                    _ => None,
                },
                1 => after.checked_add(8),
                2 => match self.varint(after, end)? {
                    Varint::Value(len, from) => from.checked_add(len),
                    _ => None,
                },
                5 => after.checked_add(4),
                _ => None,
            };
            match next {
                Some(next) if next <= end => at = next,
                _ => return Ok(false),
            }
        }
        Ok(true)
    }
}

/// What a frame walk found after the whole, valid frames.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Walked {
    /// Where the whole, valid frames end.
    pub(super) whole: u64,
    /// Whether the rest is invalid (to set aside) rather than a partial last frame (to cut).
    pub(super) invalid: bool,
}

/// Walks the frames of the first `len` bytes of `file`.
pub(super) fn walk(file: &dyn StoredFile, len: u64) -> io::Result<Walked> {
    let mut reader = Reader { file, len, buf: Vec::new(), start: 0 };
    let mut at = 0;
    while at < len {
        let stop = |invalid| Ok(Walked { whole: at, invalid });
        if reader.byte(at)? != TAG {
            return stop(true);
        }
        let (size, from) = match reader.varint(at + 1, len)? {
            Varint::Value(0, _) | Varint::Bad => return stop(true),
            Varint::Truncated => return stop(false),
            Varint::Value(size, from) => (size, from),
        };
        match from.checked_add(size) {
            Some(end) if end <= len => match reader.fields_fit(from..end)? {
                true => at = end,
                false => return stop(true),
            },
            _ => return stop(false),
        }
    }
    Ok(Walked { whole: len, invalid: false })
}

/// Recovers one `.binpb.open` file: sets aside an invalid tail, cuts it or a partial last
/// frame, completes the rest; returns whether a completed file remains.
pub(super) fn recover_frames(
    storage: &dyn Storage,
    config: &FileSinkConfig,
    name: &str,
) -> io::Result<bool> {
    let path = config.dir.join(name);
    let file = storage.open(&path)?;
    let len = file.size()?;
    let walked = walk(&*file, len)?;
    if walked.invalid {
        set_aside_tail(storage, config, name, &*file, walked.whole..len)?;
    }
    complete_recovered(storage, &path, file, walked.whole, len)
}

/// Writes `tail` of the crashed file `name` as dead letters, in pieces of at most [`PIECE`]
/// bytes (each with its offset), to a complete, durable file in the dead-letter directory.
/// Done again whole if recovery is interrupted: the file is replaced, never appended to.
fn set_aside_tail(
    storage: &dyn Storage,
    config: &FileSinkConfig,
    name: &str,
    file: &dyn StoredFile,
    tail: Range<u64>,
) -> io::Result<()> {
    let stem = name.strip_suffix(FRAMES_OPEN).unwrap_or(name);
    let dead_dir = config.invalid_dir.as_deref().unwrap_or(&config.dir);
    storage.create_dir_all(dead_dir, config.dir_mode)?;
    let dead = format!("{RECOVERED_INVALID_PREFIX}{stem}");
    let now = millis_now();
    write_whole(storage, config, dead_dir, &dead, PART_SUFFIX, |out| {
        let (mut piece, mut letter) = (vec![0u8; PIECE], Vec::new());
        let mut at = tail.start;
        while at < tail.end {
            let piece = &mut piece[..PIECE.min((tail.end - at) as usize)];
            read_exact_at(file, piece, at)?;
            letter.clear();
            encode_recovered(name, at, piece, now, true, &mut letter);
            append_all(out, &letter)?;
            at += piece.len() as u64;
        }
        Ok(())
    })?;
    tracing::warn!(
        file = %config.dir.join(name).display(),
        bytes = tail.end - tail.start,
        to = %dead_dir.join(format!("{dead}.ndjson")).display(),
        "set aside the invalid tail of a crashed file"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_as_long_as_their_values_need() {
        for (value, bytes) in [
            (0u64, &[0u8][..]),
            (1, &[1]),
            (127, &[0x7f]),
            (128, &[0x80, 1]),
            (300, &[0xac, 2]),
            (u64::MAX, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1]),
        ] {
            let mut buf = Vec::new();
            put_varint(value, &mut buf);
            assert_eq!(buf, bytes, "{value}");
            assert_eq!(varint_len(value), bytes.len(), "{value}");
        }
    }
}
