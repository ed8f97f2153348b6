//! Stage 1 with AVX-512: simdjson's structural indexing, with the escape check fused in.
//!
//! The same algorithm as simd-json's AVX2 stage 1 (and simdjson's), 64 bytes to one register:
//! backslash runs decide which quotes are escaped, a carry-less multiply turns the quotes into
//! the mask of bytes inside strings, operators and whitespace are compared into masks, and the
//! structurals (operators and quotes outside strings, and the first byte of each scalar) are
//! packed with `vpcompressb` and written out 16 at a time. What it adds:
//!
//! - **Escapes are checked in the same pass.** The backslash mask and the escaped characters are
//!   already at hand for the quotes; the escaped ones are checked as [`escapes::scan`] does and
//!   the backslash masks are kept for the walk, which then never reads a string's bytes at all.
//! - **UTF-8 is checked only where it is not ASCII.** A block without a byte over `0x7f` is
//!   valid as it is; each run of blocks with such bytes is bounded by ASCII on both sides (so by
//!   character boundaries) and goes to `simdutf8` on its own. Logs are mostly ASCII.
//!
//! The structurals are the ones simd-json's stage 1 finds for any input that passes it, and it
//! fails exactly the inputs simd-json's fails (invalid UTF-8, a control character inside a
//! string, an unclosed string): the tests in [`super`] check both against simd-json.

use std::arch::x86_64::{
    __m128i, __m512i, _mm512_add_epi32, _mm512_castsi512_si128, _mm512_cmpeq_epi8_mask,
    _mm512_cmplt_epu8_mask, _mm512_cvtepu8_epi32, _mm512_extracti32x4_epi32, _mm512_loadu_si512,
    _mm512_mask_loadu_epi8, _mm512_maskz_compress_epi8, _mm512_or_si512, _mm512_set1_epi32,
    _mm512_set1_epi8, _mm512_shuffle_epi8, _mm512_storeu_si512, _mm_clmulepi64_si128,
    _mm_cvtsi128_si64, _mm_set1_epi8, _mm_set_epi64x,
};

use super::super::escapes::{Blocks, ESCAPABLE};

/// Whether this CPU runs [`index`].
pub(super) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vbmi2")
        && std::arch::is_x86_feature_detected!("pclmulqdq")
        && std::arch::is_x86_feature_detected!("popcnt")
}

/// What stage 1 found in a buffer that passed it.
pub(super) struct Passed {
    /// Every escape is well formed, and `backslashes` holds a bit per backslash.
    pub(super) escapes_valid: bool,
}

/// Runs stage 1 over `input`, writing its structural indexes to `idx` and its backslashes (a
/// bit per byte, 64 bytes a word) to `backslashes`. `None` when the input fails stage 1.
///
/// # Safety
/// The CPU must pass [`available`].
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi2,pclmulqdq,popcnt")]
pub(super) unsafe fn index(
    input: &[u8],
    idx: &mut Vec<u32>,
    backslashes: &mut Vec<u64>,
) -> Option<Passed> {
    let len = input.len();
    let blocks = len.div_ceil(64);
    idx.clear();
    backslashes.clear();
    backslashes.reserve(blocks);
    // About one structural in eight bytes (room for one in six); more is made as blocks go.
    idx.reserve(len / 6 + 64);
    let mut written = 0usize;

    let mut escapes = Blocks::default();
    let mut escapes_valid = true;
    let mut inside_before = 0u64;
    let mut pseudo_pred_before = 1u64;
    let mut control_inside = 0u64;
    let mut utf8_valid = true;
    // The start of the current run of blocks that hold non-ASCII bytes.
    let mut non_ascii_from = None;

    let spaces = _mm512_set1_epi8(b' ' as i8);
    // Whitespace by its low nibble: a byte is whitespace if it equals its own entry.
    #[rustfmt::skip]
    let whitespace_table = each_lane([
        b' ', 0, 0, 0, 0, 0, 0, 0, 0, b'\t', b'\n', 0, 0, b'\r', 0, 0,
    ]);
    let block_offsets = {
        let mut offsets = [0u8; 64];
        offsets.iter_mut().enumerate().for_each(|(i, o)| *o = i as u8);
        // SAFETY: 64 bytes are read from a 64-byte array.
        unsafe { _mm512_loadu_si512(offsets.as_ptr().cast()) }
    };

    for block in 0..blocks {
        let start = block * 64;
        // SAFETY: a full block is inside `input`; the last, partial one is read masked to its
        // bytes (masked-off bytes are not touched), the rest taken as spaces.
        let v: __m512i = unsafe {
            let at = input.as_ptr().add(start);
            if start + 64 <= len {
                _mm512_loadu_si512(at.cast())
            } else {
                _mm512_mask_loadu_epi8(spaces, !0u64 >> (64 - (len - start)), at.cast())
            }
        };
        let eq = |c: u8| _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(c as i8));

        if _mm512_cmplt_epu8_mask(v, _mm512_set1_epi8(-128)) != !0 {
            non_ascii_from.get_or_insert(start);
        } else if let Some(from) = non_ascii_from.take() {
            utf8_valid &= simdutf8::basic::from_utf8(&input[from..start]).is_ok();
        }

        let backslash = eq(b'\\');
        backslashes.push(backslash);
        let escaped = escapes.escaped(backslash);
        if escaped != 0 && escapes_valid {
            // The last block's padding is spaces, refused: so is a trailing odd backslash run.
            let refused = !ESCAPABLE.iter().fold(0, |m, &c| m | eq(c));
            escapes_valid = escapes.check(input, start, escaped, refused, eq(b'u'));
        }

        let quotes = eq(b'"') & !escaped;
        let inside = prefix_xor(quotes) ^ inside_before;
        inside_before = ((inside as i64) >> 63) as u64;
        control_inside |= inside & _mm512_cmplt_epu8_mask(v, _mm512_set1_epi8(0x20));

        let whitespace = _mm512_cmpeq_epi8_mask(_mm512_shuffle_epi8(whitespace_table, v), v);
        // `[` and `{`, `]` and `}` differ only in bit 5.
        let folded = _mm512_or_si512(v, _mm512_set1_epi8(0x20));
        let operators = _mm512_cmpeq_epi8_mask(folded, _mm512_set1_epi8(b'{' as i8))
            | _mm512_cmpeq_epi8_mask(folded, _mm512_set1_epi8(b'}' as i8))
            | eq(b':')
            | eq(b',');

        // simd-json's `finalize_structurals`: operators outside strings, every quote, then the
        // first byte of each scalar (after whitespace or a structural, outside strings), and
        // finally no closing quotes.
        let mut structurals = (operators & !inside) | quotes;
        let pseudo_pred = structurals | whitespace;
        let after_pred = (pseudo_pred << 1) | pseudo_pred_before;
        pseudo_pred_before = pseudo_pred >> 63;
        structurals |= after_pred & !whitespace & !inside;
        structurals &= !(quotes & !inside);

        if idx.capacity() - written < 64 {
            // SAFETY: the first `written` entries were written below.
            unsafe { idx.set_len(written) };
            idx.reserve(64.max(len - start));
        }
        // The structurals' offsets in the block, packed to the front, then widened to `u32`
        // 16 at a time: one block rarely has more than 16.
        let offsets = _mm512_maskz_compress_epi8(structurals, block_offsets);
        let base = _mm512_set1_epi32(start as i32);
        let count = structurals.count_ones() as usize;
        let mut quarter = |n: usize, bytes: __m128i| {
            // SAFETY: at least 64 entries are free past `written` (made room for above).
            unsafe {
                _mm512_storeu_si512(
                    idx.as_mut_ptr().add(written + 16 * n).cast(),
                    _mm512_add_epi32(_mm512_cvtepu8_epi32(bytes), base),
                );
            }
        };
        quarter(0, _mm512_castsi512_si128(offsets));
        if count > 16 {
            quarter(1, _mm512_extracti32x4_epi32::<1>(offsets));
            if count > 32 {
                quarter(2, _mm512_extracti32x4_epi32::<2>(offsets));
                quarter(3, _mm512_extracti32x4_epi32::<3>(offsets));
            }
        }
        written += count;
    }
    // SAFETY: the first `written` entries were written above.
    unsafe { idx.set_len(written) };
    if let Some(from) = non_ascii_from {
        utf8_valid &= simdutf8::basic::from_utf8(&input[from..]).is_ok();
    }
    if !utf8_valid || control_inside != 0 || inside_before != 0 || written == 0 {
        return None;
    }
    Some(Passed { escapes_valid: escapes_valid && escapes.done() })
}

/// Bit i of the result is the parity of bits 0..=i of `bits`: set inside a quote pair.
#[target_feature(enable = "pclmulqdq")]
fn prefix_xor(bits: u64) -> u64 {
    _mm_cvtsi128_si64(_mm_clmulepi64_si128::<0>(_mm_set_epi64x(0, bits as i64), _mm_set1_epi8(-1)))
        as u64
}

/// A 16-byte table repeated in each 128-bit lane, for `vpshufb`.
#[target_feature(enable = "avx512f")]
fn each_lane(table: [u8; 16]) -> __m512i {
    let mut bytes = [0u8; 64];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = table[i % 16];
    }
    // SAFETY: 64 bytes are read from a 64-byte array.
    unsafe { _mm512_loadu_si512(bytes.as_ptr().cast()) }
}
