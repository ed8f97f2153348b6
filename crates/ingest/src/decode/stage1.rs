//! simd-json's SIMD stage 1 (structural indexing, UTF-8 and string control-character checks),
//! run over a whole padded buffer with per-thread reused buffers.
//!
//! simd-json exposes stage 1 only as part of a full parse. The buffer handed in starts with a
//! `]` sentinel, so stage 2 stops at its very first structural, having written nothing; the
//! structural indexes that stage 1 left in [`simd_json::Buffers`] are then ours to walk. A stage-1
//! failure (bad UTF-8, a raw control character inside a string, an unclosed string) is told
//! apart from that deliberate stage-2 stop by the error's position and character.

use std::cell::RefCell;

use simd_json::{Buffers, Tape};

/// Bytes of padding the SIMD stage may read past the end of the input.
pub(crate) const PADDING: usize = simd_json::INPUT_PADDING;

/// The byte placed before the body so that stage 2 stops at once.
pub(crate) const SENTINEL: u8 = b']';

struct Scratch {
    buffers: Buffers,
    tape: Option<Tape<'static>>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> =
        RefCell::new(Scratch { buffers: Buffers::new(64 * 1024), tape: Some(Tape::null()) });
}

/// Runs stage 1 over `buf[..len]` (which starts with [`SENTINEL`] and is followed by at least
/// [`PADDING`] bytes) and calls `walk` with the structural indexes, or with `None` when the
/// input fails stage 1.
pub(crate) fn with_structurals<R>(
    buf: &mut [u8],
    len: usize,
    walk: impl FnOnce(&[u8], Option<&[u32]>) -> R,
) -> R {
    debug_assert_eq!(buf.first(), Some(&SENTINEL));
    debug_assert!(buf.len() >= len + PADDING);
    let stage1_ok = SCRATCH.with(|cell| {
        let mut guard = cell.borrow_mut();
        let scratch = &mut *guard;
        let mut tape: Tape<'_> = scratch.tape.take().unwrap_or_else(Tape::null);
        let result = simd_json::fill_tape_padded(buf, len, &mut scratch.buffers, &mut tape);
        scratch.tape = Some(tape.reset());
        match result {
            // Only the sentinel can make stage 2 fail at index 0 on `]`.
            Err(e) => e.index() == 0 && e.character() == Some(SENTINEL as char),
            // Unreachable with the sentinel in place; treat as a stage-1 failure to stay safe.
            Ok(()) => false,
        }
    });
    let walked = if stage1_ok {
        SCRATCH.with(|cell| walk(&buf[..len], Some(cell.borrow().buffers.structural_indexes())))
    } else {
        // The scratch is released: the walk may run stage 1 again on parts of the input.
        walk(&buf[..len], None)
    };
    if len > KEEP_SCRATCH_BYTES {
        // A thread's buffers grow to its largest body (a few times its size) and would stay so;
        // after a rare large one they go back to their usual size.
        SCRATCH.with(|cell| cell.borrow_mut().buffers = Buffers::new(64 * 1024));
    }
    walked
}

/// Bodies up to this size leave the thread's stage-1 buffers as they grew.
const KEEP_SCRATCH_BYTES: usize = 4 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    fn run(body: &[u8]) -> Option<Vec<u32>> {
        let mut buf = vec![SENTINEL];
        buf.extend_from_slice(body);
        let len = buf.len();
        buf.resize(len + PADDING, b' ');
        with_structurals(&mut buf, len, |_, idx| idx.map(<[u32]>::to_vec))
    }

    #[test]
    fn structurals_of_two_lines_are_found() {
        assert_eq!(
            run(b"{\"a\":1}\n{\"b\":\"x\"}"),
            Some(vec![0, 1, 2, 5, 6, 7, 9, 10, 13, 14, 17])
        );
    }

    #[test]
    fn stage1_failures_are_reported() {
        assert_eq!(run(b"{\"a\":\"\n\"}"), None, "raw newline inside a string");
        assert_eq!(run(b"{\"a\":\"\xff\"}"), None, "invalid UTF-8");
        assert_eq!(run(b"{\"a\":\"open}"), None, "unclosed string");
    }
}
