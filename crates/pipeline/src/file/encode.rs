//! What a file sink writes: a batch's records as whole lines pointing into the received body
//! (gathered into `IoSlice`s, no copy), or its rejects as dead-letter JSON lines.

use std::io::IoSlice;
use std::ops::Range;

use base64::Engine as _;
use record::Batch;

/// The batch's records as whole lines, pointing into the received body (no copy). Lines that
/// follow each other in the body (an NDJSON body's, as a rule) go out as one piece: the kernel
/// copies one large piece into the page cache markedly faster than a thousand 1 KiB ones.
pub(super) fn record_lines<'a>(batch: &'a Batch, pieces: &mut Vec<IoSlice<'a>>) -> u64 {
    let body: &'a [u8] = &batch.body;
    // The run of adjacent lines not yet pushed, as a range of `body`.
    let mut run = 0..0;
    for record in &batch.records {
        match record.line() {
            Some(line) => match offset_in(body, line) {
                Some(at) if run.end == at && !run.is_empty() => run.end += line.len(),
                Some(at) => {
                    push_run(body, &mut run, pieces);
                    run = at..at + line.len();
                }
                None => {
                    push_run(body, &mut run, pieces);
                    pieces.push(IoSlice::new(line));
                }
            },
            None => {
                push_run(body, &mut run, pieces);
                pieces.push(IoSlice::new(record.bytes()));
                pieces.push(IoSlice::new(b"\n"));
            }
        }
    }
    push_run(body, &mut run, pieces);
    batch.records.len() as u64
}

/// Where `part` starts in `whole`, if it lies entirely inside it.
fn offset_in(whole: &[u8], part: &[u8]) -> Option<usize> {
    let at = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (at <= whole.len() && part.len() <= whole.len() - at).then_some(at)
}

/// Pushes the run of adjacent lines (if any) as one piece and empties it.
fn push_run<'a>(body: &'a [u8], run: &mut Range<usize>, pieces: &mut Vec<IoSlice<'a>>) {
    if run.start < run.end {
        pieces.push(IoSlice::new(&body[run.clone()]));
    }
    *run = 0..0;
}

/// Appends one dead-letter JSON line per reject of `batch` to `buf`; returns how many.
pub(super) fn encode_rejects(batch: &Batch, buf: &mut Vec<u8>) -> u64 {
    for reject in &batch.rejects {
        let mut line = serde_json::Map::new();
        line.insert("received_at_ms".into(), batch.received_at_ms.into());
        line.insert("drain".into(), batch.drain.as_ref().into());
        line.insert("data_type".into(), batch.data_type.as_str().into());
        line.insert("reason".into(), reject.reason.code().into());
        line.insert("offset".into(), reject.offset.into());
        push_line(line, &reject.raw, false, buf);
    }
    batch.rejects.len() as u64
}

/// Appends the dead letter of a line (or a piece of a frames file, `binary`: always base64) set
/// aside at crash recovery (see `recover`, `frames`): which file it was in, at which byte
/// offset, and its bytes.
pub(super) fn encode_recovered(
    file: &str,
    offset: u64,
    raw: &[u8],
    at_ms: u64,
    binary: bool,
    buf: &mut Vec<u8>,
) {
    let mut line = serde_json::Map::new();
    line.insert("received_at_ms".into(), at_ms.into());
    line.insert("reason".into(), "recovered_invalid".into());
    line.insert("file".into(), file.into());
    line.insert("offset".into(), offset.into());
    push_line(line, raw, binary, buf);
}

/// Adds `raw` to `line` (as text, or base64 when it is not UTF-8 or `binary`) and appends it to
/// `buf`.
fn push_line(
    mut line: serde_json::Map<String, serde_json::Value>,
    raw: &[u8],
    binary: bool,
    buf: &mut Vec<u8>,
) {
    match std::str::from_utf8(raw) {
        Ok(text) if !binary => line.insert("raw".into(), text.into()),
        _ => line.insert(
            "raw_base64".into(),
            base64::engine::general_purpose::STANDARD.encode(raw).into(),
        ),
    };
    // Serializing a map of plain values into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, &line);
    buf.push(b'\n');
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use record::{Record, RecordMeta};

    use super::*;

    #[test]
    fn adjacent_lines_of_the_body_go_out_as_one_piece() {
        let body = Bytes::from_static(b"a\nb\nnot a record\nc\n");
        let records = vec![
            Record::terminated(body.slice(0..2), RecordMeta::default()),
            Record::terminated(body.slice(2..4), RecordMeta::default()),
            // The rejected line between is skipped, so `c` starts a new piece.
            Record::terminated(body.slice(17..19), RecordMeta::default()),
            // Compacted array elements and slow-path records live elsewhere.
            Record::new(Bytes::from_static(b"d"), RecordMeta::default()),
            Record::terminated(Bytes::from_static(b"e\n"), RecordMeta::default()),
        ];
        let batch = Batch {
            drain: Arc::from("default"),
            data_type: record::DataType::Logs,
            received_at_ms: 0,
            records,
            body,
            rejects: Vec::new(),
            pinned_bytes: 0,
            digest: 0,
        };
        let mut pieces = Vec::new();
        assert_eq!(record_lines(&batch, &mut pieces), 5);
        let pieces: Vec<&[u8]> = pieces.iter().map(|p| &p[..]).collect();
        assert_eq!(pieces, [&b"a\nb\n"[..], b"c\n", b"d", b"\n", b"e\n"]);
    }

    #[test]
    fn a_slice_is_inside_only_when_all_of_it_is() {
        let whole = b"0123456789";
        assert_eq!(offset_in(whole, &whole[3..7]), Some(3));
        assert_eq!(offset_in(whole, &whole[10..]), Some(10));
        assert_eq!(offset_in(&whole[..5], &whole[3..7]), None);
        assert_eq!(offset_in(&whole[5..], &whole[3..7]), None);
    }
}
