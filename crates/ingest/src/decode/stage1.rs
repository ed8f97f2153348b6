//! Stage 1 (structural indexing, UTF-8 and string control-character checks), run over a whole
//! padded buffer with per-thread reused buffers.
//!
//! Two kernels find the same structurals. Where the CPU has AVX-512, [`avx512`] runs, and checks
//! every escape in the same pass. Elsewhere simd-json's stage 1 runs; simd-json exposes it only
//! as part of a full parse, so the buffer handed in starts with a `]` sentinel: stage 2 stops at
//! its very first structural, having written nothing, and the structural indexes that stage 1
//! left in [`simd_json::Buffers`] are then ours to walk. A stage-1 failure (bad UTF-8, a raw
//! control character inside a string, an unclosed string) is told apart from that deliberate
//! stage-2 stop by the error's position and character.

use std::cell::RefCell;

use simd_json::{Buffers, Tape};

#[cfg(target_arch = "x86_64")]
mod avx512;

/// Bytes of padding the SIMD stage may read past the end of the input.
pub(crate) const PADDING: usize = simd_json::INPUT_PADDING;

/// The byte placed before the body so that stage 2 stops at once.
pub(crate) const SENTINEL: u8 = b']';

/// What stage 1 found in an input that passed it.
#[derive(Clone, Copy)]
pub(crate) struct Structurals<'a> {
    /// The structural indexes.
    pub(crate) idx: &'a [u32],
    /// When every escape of the input was found well formed in the same pass: where its
    /// backslashes are, a bit per byte ([`super::escapes::scan`]'s bits).
    pub(crate) backslashes: Option<&'a [u64]>,
}

struct Scratch {
    buffers: Buffers,
    tape: Option<Tape<'static>>,
    idx: Vec<u32>,
    backslashes: Vec<u64>,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            buffers: Buffers::new(64 * 1024),
            tape: Some(Tape::null()),
            idx: Vec::new(),
            backslashes: Vec::new(),
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
}

/// Which stage 1 runs: ours with AVX-512 where the CPU has it, else simd-json's.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kernel {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    SimdJson,
}

impl Kernel {
    /// The fastest this CPU runs.
    pub(crate) fn best() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            static HAS_AVX512: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
            if *HAS_AVX512.get_or_init(avx512::available) {
                return Kernel::Avx512;
            }
        }
        Kernel::SimdJson
    }
}

/// Runs stage 1 over `buf[..len]` (which starts with [`SENTINEL`] and is followed by at least
/// [`PADDING`] bytes) and calls `walk` with what it found, or with `None` when the input fails
/// stage 1.
pub(crate) fn with_structurals<R>(
    buf: &mut [u8],
    len: usize,
    walk: impl FnOnce(&[u8], Option<Structurals<'_>>) -> R,
) -> R {
    with_kernel(Kernel::best(), buf, len, walk)
}

/// [`with_structurals`] with the given kernel.
pub(crate) fn with_kernel<R>(
    kernel: Kernel,
    buf: &mut [u8],
    len: usize,
    walk: impl FnOnce(&[u8], Option<Structurals<'_>>) -> R,
) -> R {
    debug_assert_eq!(buf.first(), Some(&SENTINEL));
    debug_assert!(buf.len() >= len + PADDING);
    let passed = SCRATCH.with(|cell| {
        let mut guard = cell.borrow_mut();
        let scratch = &mut *guard;
        match kernel {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Kernel::best` chose it, so the CPU has what it needs (tests choose it
            // only where `avx512::available`).
            Kernel::Avx512 => {
                unsafe { avx512::index(&buf[..len], &mut scratch.idx, &mut scratch.backslashes) }
                    .map(|passed| passed.escapes_valid)
            }
            Kernel::SimdJson => simd_json_stage1(scratch, buf, len).then_some(false),
        }
    });
    let walked = match passed {
        Some(escapes_valid) => SCRATCH.with(|cell| {
            let scratch = cell.borrow();
            let structurals = match kernel {
                #[cfg(target_arch = "x86_64")]
                Kernel::Avx512 => Structurals {
                    idx: &scratch.idx,
                    backslashes: escapes_valid.then_some(&scratch.backslashes[..]),
                },
                Kernel::SimdJson => {
                    debug_assert!(!escapes_valid, "simd-json's stage 1 checks no escape");
                    Structurals { idx: scratch.buffers.structural_indexes(), backslashes: None }
                }
            };
            walk(&buf[..len], Some(structurals))
        }),
        // The scratch is released: the walk may run stage 1 again on parts of the input.
        None => walk(&buf[..len], None),
    };
    if len > KEEP_SCRATCH_BYTES {
        // A thread's buffers grow to its largest body (a few times its size) and would stay so;
        // after a rare large one they go back to their usual size.
        SCRATCH.with(|cell| *cell.borrow_mut() = Scratch::new());
    }
    walked
}

/// simd-json's stage 1, which it runs only as part of a full parse: the sentinel makes stage 2
/// stop at once. Whether the input passed.
fn simd_json_stage1(scratch: &mut Scratch, buf: &mut [u8], len: usize) -> bool {
    let mut tape: Tape<'_> = scratch.tape.take().unwrap_or_else(Tape::null);
    let result = simd_json::fill_tape_padded(buf, len, &mut scratch.buffers, &mut tape);
    scratch.tape = Some(tape.reset());
    match result {
        // Only the sentinel can make stage 2 fail at index 0 on `]`.
        Err(e) => e.index() == 0 && e.character() == Some(SENTINEL as char),
        // Unreachable with the sentinel in place; treat as a stage-1 failure to stay safe.
        Ok(()) => false,
    }
}

/// Bodies up to this size leave the thread's stage-1 buffers as they grew.
const KEEP_SCRATCH_BYTES: usize = 4 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    /// What a kernel finds in `body`: the structurals and, when every escape was found valid
    /// in the same pass, the backslash bits. The bytes past the body are not spaces, as in a
    /// chunk of a longer body.
    type Found = Option<(Vec<u32>, Option<Vec<u64>>)>;

    fn run_with(kernel: Kernel, body: &[u8]) -> Found {
        let mut buf = vec![SENTINEL];
        buf.extend_from_slice(body);
        let len = buf.len();
        buf.extend(b"\\\"{:\x01\xff1".iter().cycle().take(PADDING));
        with_kernel(kernel, &mut buf, len, |_, s| {
            s.map(|s| (s.idx.to_vec(), s.backslashes.map(<[u64]>::to_vec)))
        })
    }

    fn run(body: &[u8]) -> Option<Vec<u32>> {
        run_with(Kernel::best(), body).map(|(idx, _)| idx)
    }

    /// Every kernel this CPU has finds what simd-json's stage 1 finds.
    fn kernels_agree(body: &[u8]) {
        let reference = run_with(Kernel::SimdJson, body);
        if let Some((idx, _)) = &reference {
            // The sentinel first, then strictly increasing offsets inside the input.
            assert_eq!(idx.first(), Some(&0));
            assert!(
                idx.windows(2).all(|w| w[0] < w[1])
                    && idx.iter().all(|&i| i as usize <= body.len())
            );
        }
        #[cfg(target_arch = "x86_64")]
        if avx512::available() {
            let found = run_with(Kernel::Avx512, body);
            let shown = String::from_utf8_lossy(body);
            assert_eq!(found.as_ref().map(|f| &f.0), reference.as_ref().map(|r| &r.0), "{shown:?}");
            if found.is_some() {
                // The escape check of the same pass is `escapes::scan`'s.
                let mut input = vec![SENTINEL];
                input.extend_from_slice(body);
                let mut bits = Vec::new();
                let valid = super::super::escapes::scan(&input, &mut bits);
                assert_eq!(found.and_then(|f| f.1), valid.then_some(bits), "{shown:?}");
            }
        }
    }

    /// The kernels below are tested only where the CPU runs them: say so rather than pass.
    fn avx512_is_tested() {
        #[cfg(target_arch = "x86_64")]
        assert!(
            avx512::available() || std::env::var_os("SPILLWAY_WITHOUT_AVX512").is_some(),
            "this CPU has no AVX-512, so its stage 1 cannot be tested here: set \
             SPILLWAY_WITHOUT_AVX512=1 to test the other kernel alone"
        );
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
        avx512_is_tested();
        for bad in [
            &b"{\"a\":\"\n\"}"[..],
            b"{\"a\":\"\xff\"}",
            b"{\"a\":\"open}",
            b"{\"a\":\"\xc3\"}",
            b"{\"a\":\"\x1f\"}",
        ] {
            assert_eq!(run(bad), None, "{:?}", String::from_utf8_lossy(bad));
            kernels_agree(bad);
        }
    }

    #[test]
    fn kernels_agree_at_every_offset_in_a_block() {
        avx512_is_tested();
        let record = r#"{"id":"a\"b\\","n":[1,-2.5e3,true,null],"m":"déjà \u00e9 🚀\n","o":{}}"#;
        for pad in 0..130 {
            let body = format!("{}{record}\n{record}", " ".repeat(pad));
            kernels_agree(body.as_bytes());
            // Cut anywhere: unclosed strings, odd backslashes and split characters at the end.
            kernels_agree(&body.as_bytes()[..body.len() - pad % 40]);
        }
        kernels_agree("[1»]".as_bytes());
    }

    /// Every class of UTF-8 error (overlong, surrogate, too large, too short, too long, cut
    /// off) in every split across two blocks: the AVX-512 kernel refuses exactly what the
    /// standard library does.
    #[test]
    fn utf8_is_refused_as_the_standard_library_refuses_it() {
        avx512_is_tested();
        #[cfg(target_arch = "x86_64")]
        if avx512::available() {
            let firsts = [
                0x41u8, 0x7f, 0x80, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee,
                0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff,
            ];
            let nexts = [0x41u8, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff];
            let opening = br#"{"m":""#;
            for a in firsts {
                for b in nexts {
                    for c in nexts {
                        for d in nexts {
                            // The four bytes from input byte `at` (the sentinel is byte 0): all
                            // four at the end of the first block, split 3/1, 2/2 and 1/3 across
                            // the boundary, or all four in the second block; then the input
                            // ends in that block, or an ASCII block follows.
                            for (at, after) in (60..=64).flat_map(|at| [(at, 0), (at, 70)]) {
                                let mut body = opening.to_vec();
                                body.resize(at - 1, b'x');
                                body.extend_from_slice(&[a, b, c, d]);
                                body.resize(body.len() + after, b'y');
                                body.extend_from_slice(b"\"}");
                                let valid = std::str::from_utf8(&body).is_ok();
                                let found = run_with(Kernel::Avx512, &body).is_some();
                                assert_eq!(found, valid, "{:x?} at {at}", [a, b, c, d]);
                            }
                        }
                    }
                }
            }
            // A character cut off by the end of the input, at and around a block's end.
            for n in 56..=72 {
                for tail in [&[0xc3u8][..], &[0xe6, 0x97], &[0xf0, 0x9f, 0x9a], &[0xc3, 0xa9]] {
                    let mut body = vec![b'x'; n];
                    body.extend_from_slice(tail);
                    let valid = std::str::from_utf8(&body).is_ok();
                    assert_eq!(run_with(Kernel::Avx512, &body).is_some(), valid, "{n} {tail:x?}");
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Bodies dense in what stage 1 must get right (quotes, backslash runs, escapes,
        /// non-ASCII, control characters, invalid UTF-8, whitespace between scalars) at every
        /// length around the 64-byte blocks.
        #[test]
        fn the_avx512_kernel_agrees_with_simd_json(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    &b"{"[..], b"}", b"[", b"]", b":", b",", b"\"", b"\"", b"\\", b"\\\"",
                    b"\\u00e9", b"\\ud83d\\ude80", b"\\ud83d", b"\\ude80", b"\\u12", b"u", b"0",
                    b" ", b"\n", b"\t", b"\r", b"1", b"-2.5e3",
                    b"true", b"null", b"abc", "é".as_bytes(), "日本".as_bytes(),
                    "🚀".as_bytes(), "»".as_bytes(), "˫".as_bytes(),
                    b"\x01", b"\x7f", b"\xff", b"\xc3", b"\x80", b"\xbb",
                    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                ]),
                0..80,
            ),
            pad in 0usize..70,
        ) {
            avx512_is_tested();
            let mut body = vec![b' '; pad];
            parts.iter().for_each(|p| body.extend_from_slice(p));
            kernels_agree(&body);
        }
    }
}
