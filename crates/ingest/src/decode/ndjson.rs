//! NDJSON bodies: stage 1 and the walk run over one chunk of whole lines at a time.
//!
//! A delivery is up to some MiB; its structural indexes are about 40% of its size again. Stage 1
//! over the whole body and then the walk over it would read both back from memory after they
//! left the core's caches; in chunks of [`CHUNK_BYTES`] the walk finds them still there. A
//! chunk that fails stage 1 (bad UTF-8, an unclosed string) is decoded line by line, so the
//! damage of one line never slows the rest of the body.

use super::stage1::{with_structurals, Structurals, SENTINEL};
use super::walk::Walker;
use super::{classify, meta, one_value, trim, Framing, Output, Source};

/// The bytes of whole lines that go through stage 1 together (a longer line is a chunk alone).
const CHUNK_BYTES: usize = 32 * 1024;

/// Decodes the NDJSON body `buf[1..len]` (sentinel first, padding after `len`) chunk by chunk.
///
/// Each chunk runs from the byte after a newline to the end of a later line's newline. The byte
/// before a chunk (the previous newline) stands in as its stage-1 sentinel while it is decoded
/// and is put back after, so the body ends as it came.
pub(super) fn decode_chunks(buf: &mut [u8], len: usize, out: &mut Output) {
    // `from` is the chunk's sentinel slot: the chunk's bytes start at `from + 1`.
    let mut from = 0;
    while from + 1 < len {
        let target = (from + CHUNK_BYTES).min(len);
        let end = memchr::memchr(b'\n', &buf[target..len]).map_or(len, |i| target + i + 1);
        let held = std::mem::replace(&mut buf[from], SENTINEL);
        out.base = from;
        with_structurals(&mut buf[from..], end - from, |input, found| match found {
            Some(found) => walk_lines(input, found, out),
            None => line_by_line(input, out),
        });
        buf[from] = held;
        from = end - 1;
    }
    out.base = 0;
}

/// The non-blank lines of `input[1..]`: each line's bounds with surrounding whitespace trimmed,
/// and where its newline sits (the input's end for a last line without one).
fn lines(input: &[u8]) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    let mut line_start = 1;
    std::iter::from_fn(move || {
        while line_start < input.len() {
            let line_end =
                memchr::memchr(b'\n', &input[line_start..]).map_or(input.len(), |i| line_start + i);
            let (start, end) = trim(input, line_start, line_end);
            line_start = line_end + 1;
            if start < end {
                return Some((start, end, line_end));
            }
        }
        None
    })
}

/// Every line of a chunk that passed stage 1, walked over its structurals `idx`.
fn walk_lines(input: &[u8], found: Structurals<'_>, out: &mut Output) {
    let idx = found.idx;
    let mut w = Walker::new(input, idx);
    w.check_escapes(found.backslashes);
    let mut k = 0;
    // Skip the sentinel's own structural.
    while k < idx.len() && idx[k] == 0 {
        k += 1;
    }
    for (start, end, line_end) in lines(input) {
        let first = k;
        k = first_at_or_past(idx, k, end);
        match classify(&mut w, (first, k, end), out.data_type) {
            Ok(fields) => {
                // A line that ends right at its newline keeps it, so files get whole lines.
                let terminated = end == line_end && line_end < input.len();
                let stop = if terminated { end + 1 } else { end };
                out.push((Source::Body(start, stop), meta(&w, &fields, start), terminated))
            }
            Err(reason) => out.reject(start, end, reason),
        }
    }
}

/// The index of the first structural at or past byte `end`, searching from `k`.
///
/// A line's structurals end there. A record has some hundred of them, so the search gallops
/// from `k` and bisects only the last stride: a bisection over all the chunk's structurals
/// would touch far-away indexes first.
fn first_at_or_past(idx: &[u32], k: usize, end: usize) -> usize {
    let before = |at: &u32| (*at as usize) < end;
    let (mut lo, mut stride) = (k, 64);
    while lo + stride < idx.len() && before(&idx[lo + stride]) {
        lo += stride;
        stride *= 2;
    }
    let hi = (lo + stride + 1).min(idx.len());
    lo + idx[lo..hi].partition_point(before)
}

/// The slow path for a chunk that failed stage 1: each line through stage 1 alone.
fn line_by_line(input: &[u8], out: &mut Output) {
    for (start, end, line_end) in lines(input) {
        let terminated = end == line_end && line_end < input.len();
        one_value(input, start, end, Framing::Line { terminated }, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{decode, PaddedBody};

    #[test]
    fn gallop_agrees_with_a_bisection_of_the_rest() {
        let idx: Vec<u32> = (0..1000u32).map(|i| i * 10 + i % 7).collect();
        for k in [0, 1, 63, 64, 65, 500, 999, 1000] {
            for end in [0, 1, 2, 100, 641, 642, 643, 1500, 9990, 9996, 9997, 20000] {
                let expect = k + idx[k..].partition_point(|&at| (at as usize) < end);
                assert_eq!(first_at_or_past(&idx, k, end), expect, "k {k} end {end}");
            }
        }
    }

    /// A body of many chunks, one of which fails stage 1, decodes as each line alone would.
    #[test]
    fn chunks_decode_every_line_as_alone_and_leave_the_body_as_it_came() {
        let mut body = Vec::new();
        let mut expect_records = Vec::new();
        for i in 0..(3 * CHUNK_BYTES / 60) {
            let line = match i % 97 {
                // Bad UTF-8 fails its chunk's stage 1; the chunk goes line by line.
                13 => b"{\"id\":\"\xff\",\"projectId\":\"p\",\"timestamp\":1}".to_vec(),
                50 => b"   ".to_vec(),
                51 => b"[1]".to_vec(),
                _ => format!("{{\"id\":\"r{i}\",\"projectId\":\"p\",\"timestamp\":{i}}}")
                    .into_bytes(),
            };
            if !matches!(i % 97, 13 | 50 | 51) {
                expect_records.push((line.clone(), true));
            }
            body.extend_from_slice(&line);
            body.push(b'\n');
        }
        // A long last line without a newline.
        let last = format!(
            "{{\"id\":\"last\",\"projectId\":\"p\",\"timestamp\":1,\"m\":\"{}\"}}",
            "x".repeat(CHUNK_BYTES)
        );
        body.extend_from_slice(last.as_bytes());
        expect_records.push((last.into_bytes(), false));

        let decoded = decode(PaddedBody::from_slice(&body));
        assert_eq!(&decoded.body[..], &body[..], "the body ends as it came");
        let got: Vec<(&[u8], bool)> =
            decoded.records.iter().map(|r| (r.bytes(), r.line().is_some())).collect();
        let want: Vec<(&[u8], bool)> = expect_records
            .iter()
            .map(|(line, terminated)| (line.as_slice(), *terminated))
            .collect();
        assert_eq!(got, want);
        for r in &decoded.records {
            let id = r.meta().id.value(r.bytes()).expect("an id");
            assert!(id.starts_with('r') || id == "last", "{id}");
        }
        let codes: Vec<&str> = decoded.rejects.iter().map(|r| r.reason.code()).collect();
        let bad = (0..(3 * CHUNK_BYTES / 60)).filter(|i| i % 97 == 13).count();
        let not_objects = (0..(3 * CHUNK_BYTES / 60)).filter(|i| i % 97 == 51).count();
        assert_eq!(codes.iter().filter(|c| **c == "invalid_json").count(), bad);
        assert_eq!(codes.iter().filter(|c| **c == "not_an_object").count(), not_objects);
        for reject in &decoded.rejects {
            assert_eq!(&body[reject.offset..reject.offset + reject.raw.len()], &reject.raw[..]);
        }
    }
}
