//! Backslash escapes: the grammar of one (`\"`, `\n`, `\u00e9`, a surrogate pair), checked per
//! string or over a whole chunk at once.
//!
//! simd-json's stage 1 leaves escapes unchecked. The walk used to check them string by string,
//! scanning each gap between two escapes on its own; on log messages with an escape every few
//! words that was a fifth of the decode. [`scan`] checks every backslash of a chunk in one pass
//! instead and keeps where they are: the walk then needs only to know whether a string holds one.
//! The AVX-512 stage 1 does the same check with [`Blocks`] in its own pass, and [`scan`] then
//! runs only when it found a bad escape (or on other CPUs).

use super::walk::Invalid;

/// The length of the escape whose backslash is `bytes[at]`: 2, 6 (`\uXXXX`) or 12 (a surrogate
/// pair); `Invalid` for anything JSON does not allow.
#[inline]
fn escape_len(bytes: &[u8], at: usize) -> Result<usize, Invalid> {
    match *bytes.get(at + 1).ok_or(Invalid)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(2),
        b'u' => {
            let unit = hex4(bytes, at + 2)?;
            if (0xD800..0xDC00).contains(&unit) {
                if bytes.get(at + 6) != Some(&b'\\') || bytes.get(at + 7) != Some(&b'u') {
                    return Err(Invalid);
                }
                if !(0xDC00..0xE000).contains(&hex4(bytes, at + 8)?) {
                    return Err(Invalid);
                }
                Ok(12)
            } else if (0xDC00..0xE000).contains(&unit) {
                Err(Invalid)
            } else {
                Ok(6)
            }
        }
        _ => Err(Invalid),
    }
}

/// Finds every backslash of `bytes` (bit `i % 64` of `bits[i / 64]` for byte `i`) and checks
/// every escape, reading them left to right from the first backslash as a JSON reader would.
/// Returns whether all are well formed; only then is `bits` complete.
///
/// Inside strings this is exactly each string's own check: a string's opening quote is never
/// part of an escape (stage 1 would not have taken it for one), so the scan is at an escape's
/// start wherever a string's first escape is. A backslash outside any string makes its record
/// invalid whatever this says, and `false` only sends the caller back to the per-string check.
///
/// The bytes go 64 at a time: their backslashes are one mask (two AVX2 compares where the CPU
/// has AVX2), the escaped characters are found from the runs of backslashes as simdjson does,
/// and each is looked up; a `\u` escape is then read on its own. The walk finds a string's
/// first backslash in `bits` instead of scanning the string again.
pub(crate) fn scan(bytes: &[u8], bits: &mut Vec<u64>) -> bool {
    bits.clear();
    bits.reserve(bytes.len().div_ceil(64));
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return unsafe { avx2::scan(bytes, bits) };
    }
    scan_portable(bytes, bits)
}

/// [`scan`] without SIMD, one byte at a time (and the reference the SIMD one is tested against).
fn scan_portable(bytes: &[u8], bits: &mut Vec<u64>) -> bool {
    let mut state = Blocks::default();
    for (n, block) in bytes.chunks(64).enumerate() {
        let mask_of = |test: &dyn Fn(u8) -> bool| {
            block.iter().enumerate().fold(0u64, |m, (i, &b)| m | (u64::from(test(b)) << i))
        };
        let mask = mask_of(&|b| b == b'\\');
        bits.push(mask);
        let escaped = state.escaped(mask);
        if escaped == 0 {
            continue;
        }
        // Past the bytes' end nothing is escaped: a trailing odd run of backslashes is refused.
        let past_end = if block.len() == 64 { 0 } else { !0u64 << block.len() };
        let refused = mask_of(&|b| !ESCAPABLE.contains(&b)) | past_end;
        if !state.check(bytes, n * 64, escaped, refused, mask_of(&|b| b == b'u')) {
            return false;
        }
    }
    state.done()
}

/// The characters a backslash may escape.
pub(super) const ESCAPABLE: &[u8] = b"\"\\/bfnrtu";

/// The escape check carried from one 64-byte block to the next.
#[derive(Default)]
pub(super) struct Blocks {
    /// 1 when the previous block ended in an odd run of backslashes.
    prev: u64,
    /// Bytes before this were read as part of a `\u` escape (a surrogate pair's low half).
    free_from: usize,
}

impl Blocks {
    /// The escaped characters of a block whose backslashes are `mask` (bit i set where the byte
    /// at i follows an odd run of backslashes), carrying a run that ends the block into the
    /// next: simdjson's `find_escaped`.
    #[inline(always)]
    pub(super) fn escaped(&mut self, mask: u64) -> u64 {
        const EVEN_BITS: u64 = 0x5555_5555_5555_5555;
        if self.prev == 0 && mask == 0 {
            return 0;
        }
        let backslashes = mask & !self.prev;
        let follows_escape = (backslashes << 1) | self.prev;
        let odd_starts = backslashes & !EVEN_BITS & !follows_escape;
        let (even_starts, overflow) = odd_starts.overflowing_add(backslashes);
        self.prev = u64::from(overflow);
        (EVEN_BITS ^ (even_starts << 1)) & follows_escape
    }

    /// Checks the escaped characters of the block at `start`: none may be `refused`, and each
    /// `\u` (in `units`) is read with its four hex digits (and a surrogate's pair).
    #[inline(always)]
    pub(super) fn check(
        &mut self,
        bytes: &[u8],
        start: usize,
        escaped: u64,
        refused: u64,
        units: u64,
    ) -> bool {
        if escaped & refused != 0 {
            return false;
        }
        let mut units = escaped & units;
        while units != 0 {
            let backslash = start + units.trailing_zeros() as usize - 1;
            units &= units - 1;
            if backslash < self.free_from {
                // The low half of a surrogate pair, already read with its high half.
                continue;
            }
            match escape_len(bytes, backslash) {
                Ok(len) => self.free_from = backslash + len,
                Err(_) => return false,
            }
        }
        true
    }

    /// Whether the bytes ended outside an escape.
    pub(super) fn done(&self) -> bool {
        self.prev == 0
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _mm256_and_si256, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8,
        _mm256_set1_epi8, _mm256_setr_epi8, _mm256_setzero_si256, _mm256_shuffle_epi8,
        _mm256_srli_epi16,
    };

    use super::Blocks;

    /// [`super::scan`] with AVX2.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn scan(bytes: &[u8], bits: &mut Vec<u64>) -> bool {
        let mut state = Blocks::default();
        let mut tail = [b' '; 64];
        for start in (0..bytes.len()).step_by(64) {
            let block = match bytes.get(start..start + 64) {
                Some(block) => block,
                None => {
                    tail[..bytes.len() - start].copy_from_slice(&bytes[start..]);
                    &tail[..]
                }
            };
            // SAFETY: `block` holds 64 bytes; each unaligned load reads 32 of them.
            let halves = unsafe {
                [
                    _mm256_loadu_si256(block.as_ptr().cast::<__m256i>()),
                    _mm256_loadu_si256(block.as_ptr().add(32).cast::<__m256i>()),
                ]
            };
            let backslashes = mask(halves, b'\\');
            bits.push(backslashes);
            let escaped = state.escaped(backslashes);
            if escaped == 0 {
                continue;
            }
            // The tail's padding is spaces, refused: so is a trailing odd run of backslashes.
            let refused = movemask(refused(halves[0]), refused(halves[1]));
            if !state.check(bytes, start, escaped, refused, mask(halves, b'u')) {
                return false;
            }
        }
        state.done()
    }

    /// The bytes of a block's two halves equal to `c`, a bit each.
    #[target_feature(enable = "avx2")]
    fn mask(halves: [__m256i; 2], c: u8) -> u64 {
        let c = _mm256_set1_epi8(c as i8);
        movemask(_mm256_cmpeq_epi8(halves[0], c), _mm256_cmpeq_epi8(halves[1], c))
    }

    /// The top bits of the bytes of two halves, as 64 bits.
    #[target_feature(enable = "avx2")]
    fn movemask(low: __m256i, high: __m256i) -> u64 {
        let low = _mm256_movemask_epi8(low) as u32;
        let high = _mm256_movemask_epi8(high) as u32;
        u64::from(low) | (u64::from(high) << 32)
    }

    /// 0xff where a byte is not one of `"\/bfnrtu`: a lookup by each nibble (a bit per high
    /// nibble 2, 5, 6, 7, set in the low nibble's entry when that pair is one of them).
    #[target_feature(enable = "avx2")]
    fn refused(v: __m256i) -> __m256i {
        #[rustfmt::skip]
        let by_low = _mm256_setr_epi8(
            0, 0, 0b1101, 0, 0b1000, 0b1000, 0b0100, 0, 0, 0, 0, 0, 0b0010, 0, 0b0100, 0b0001,
            0, 0, 0b1101, 0, 0b1000, 0b1000, 0b0100, 0, 0, 0, 0, 0, 0b0010, 0, 0b0100, 0b0001,
        );
        #[rustfmt::skip]
        let by_high = _mm256_setr_epi8(
            0, 0, 0b0001, 0, 0, 0b0010, 0b0100, 0b1000, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0b0001, 0, 0, 0b0010, 0b0100, 0b1000, 0, 0, 0, 0, 0, 0, 0, 0,
        );
        let nibbles = _mm256_set1_epi8(0x0f);
        let low = _mm256_shuffle_epi8(by_low, _mm256_and_si256(v, nibbles));
        let high =
            _mm256_shuffle_epi8(by_high, _mm256_and_si256(_mm256_srli_epi16::<4>(v), nibbles));
        _mm256_cmpeq_epi8(_mm256_and_si256(low, high), _mm256_setzero_si256())
    }
}

/// The first backslash at or after `from` and before `to`, from the bits of [`scan`].
#[inline(always)]
pub(crate) fn first_in(bits: &[u64], from: usize, to: usize) -> Option<usize> {
    let mut word = from / 64;
    let mut mask = bits.get(word)? & (!0u64 << (from % 64));
    loop {
        if mask != 0 {
            let at = word * 64 + mask.trailing_zeros() as usize;
            return (at < to).then_some(at);
        }
        word += 1;
        if word * 64 >= to {
            return None;
        }
        mask = *bits.get(word)?;
    }
}

/// Validates the escapes of one string's raw contents, the first of which starts at `at`.
pub(crate) fn validate(content: &[u8], mut at: usize) -> Result<(), Invalid> {
    loop {
        at += escape_len(content, at)?;
        match next_backslash(content, at) {
            Some(next) => at = next,
            None => return Ok(()),
        }
    }
}

/// The first backslash in `content[from..]`.
///
/// Escapes come close together in the strings that hold them (JSON text inside a `message` has
/// one before every quote), so the next bytes are looked at first, eight at a time in a word
/// (no branch per byte to mispredict); only a longer gap is left to `memchr`, whose call would
/// otherwise cost more than the scan.
#[inline]
fn next_backslash(content: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const BACKSLASHES: u64 = u64::from_ne_bytes([b'\\'; 8]);
    // Past this many bytes `memchr`'s wider scan pays for its call.
    const NEAR_BYTES: usize = 64;
    let mut at = from;
    while at < from + NEAR_BYTES {
        let Some(word) = content.get(at..at + 8) else { break };
        let word = u64::from_le_bytes(word.try_into().unwrap_or_default()) ^ BACKSLASHES;
        // The lowest set high bit marks the first zero byte, i.e. the first backslash (the
        // trick's false positives only ever sit above a true one).
        let zeros = word.wrapping_sub(ONES) & !word & HIGHS;
        if zeros != 0 {
            return Some(at + zeros.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    memchr::memchr(b'\\', &content[at..]).map(|i| at + i)
}

fn hex4(content: &[u8], at: usize) -> Result<u32, Invalid> {
    let digits = content.get(at..at + 4).ok_or(Invalid)?;
    let mut value = 0u32;
    for &d in digits {
        value = value * 16 + (d as char).to_digit(16).ok_or(Invalid)?;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: [&str; 5] = [r"plain", r"a\nb", r#"\"\\\/\b\f\n\r\t"#, r"\u00e9", r"\ud83d\ude80"];
    const BAD: [&str; 7] = [r"\x", r"\", r"\u12", r"\u12g4", r"\ud83d", r"\ud83d\u0041", r"\ude80"];

    #[test]
    fn escape_grammar() {
        let check = |s: &str| {
            let b = s.as_bytes();
            match memchr::memchr(b'\\', b) {
                None => Ok(()),
                Some(at) => validate(b, at),
            }
        };
        for ok in GOOD {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for bad in BAD {
            assert_eq!(check(bad), Err(Invalid), "{bad}");
        }
    }

    /// [`scan`] of `bytes`, checked against the portable scan: same answer, and when valid the
    /// same bits, one per backslash.
    fn all_valid(bytes: &[u8]) -> bool {
        let (mut bits, mut reference) = (Vec::new(), Vec::new());
        let valid = scan(bytes, &mut bits);
        assert_eq!(scan_portable(bytes, &mut reference), valid);
        if valid {
            assert_eq!(bits, reference);
            let backslashes: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] == b'\\').collect();
            let from_bits: Vec<usize> =
                (0..bytes.len()).filter(|&i| bits[i / 64] >> (i % 64) & 1 == 1).collect();
            assert_eq!(from_bits, backslashes);
        }
        valid
    }

    #[test]
    fn first_in_finds_the_first_backslash_of_a_range() {
        let mut bytes = vec![b'a'; 300];
        for at in [0, 63, 64, 65, 130, 299] {
            bytes[at] = b'\\';
        }
        let mut bits = Vec::new();
        assert!(!scan(&bytes, &mut bits), "a backslash that ends the bytes escapes nothing");
        bits = bytes
            .chunks(64)
            .map(|c| c.iter().enumerate().fold(0, |m, (i, &b)| m | (u64::from(b == b'\\') << i)))
            .collect();
        for from in 0..=300 {
            for to in from..=300 {
                let expect = (from..to).find(|&i| bytes[i] == b'\\');
                assert_eq!(first_in(&bits, from, to), expect, "{from}..{to}");
            }
        }
    }

    /// Every byte after a backslash, at every offset in a block: only `"\/bfnrtu` pass.
    #[test]
    fn each_escaped_byte_is_looked_up_right() {
        for c in 0..=255u8 {
            for pad in 0..66 {
                let mut bytes = vec![b' '; pad];
                bytes.extend_from_slice(&[b'\\', c]);
                if c == b'u' {
                    bytes.extend_from_slice(b"00e9");
                }
                bytes.extend_from_slice(&[b' '; 70]);
                assert_eq!(all_valid(&bytes), ESCAPABLE.contains(&c), "{c:#x} at {pad}");
            }
        }
    }

    #[test]
    fn a_chunk_is_valid_exactly_when_each_of_its_strings_is() {
        for ok in GOOD {
            let chunk = format!("{{\"a\":\"{ok}\",\"b\":\"x\\\\\"}}\n{{\"c\":\"\\\\{ok}\"}}");
            assert!(all_valid(chunk.as_bytes()), "{chunk}");
        }
        // (A lone `\` would escape the closing quote: stage 1 reports that string unclosed.)
        for bad in BAD.into_iter().filter(|bad| *bad != r"\") {
            let chunk = format!("{{\"a\":\"ok\\n\"}}\n{{\"b\":\"{bad}\"}}");
            assert!(!all_valid(chunk.as_bytes()), "{chunk}");
        }
        // An escaped backslash before the closing quote does not escape the quote.
        assert!(all_valid(br#"{"a":"\\","b":"\""}"#));
    }

    proptest::proptest! {
        /// The whole-chunk check agrees with reading each escape in turn, on bytes dense in
        /// backslashes, escape letters, hex digits and surrogate halves, at every length
        /// around the 64-byte blocks.
        #[test]
        fn the_chunk_check_agrees_with_the_escape_by_escape_one(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "\\", "\"", "u", "n", "x", "a", " ", "0", "D8", "3d", "DC", "DE80",
                    "\\u", "\\ud83d", "\\ude80", "\\\\", "\\\"", "\\n", "\\u00e9",
                    "\\R", "\\B", "\\N", "\\U", "\\\u{e9}", "\\/", "\\t", "\\r", "\\b", "\\f",
                ]),
                0..60,
            ),
            pad in 0usize..70,
        ) {
            let bytes = [" ".repeat(pad), parts.concat()].concat().into_bytes();
            let one_by_one = memchr::memchr(b'\\', &bytes).is_none_or(|at| validate(&bytes, at).is_ok());
            proptest::prop_assert_eq!(all_valid(&bytes), one_by_one, "{:?}", String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn next_backslash_finds_the_first_at_any_offset() {
        for len in 0..80 {
            for at in 0..=len {
                let mut content = vec![b'a'; len];
                if at < len {
                    content[at] = b'\\';
                    // Bytes that could fool a word trick: just above and below a backslash.
                    content.iter_mut().skip(at + 1).step_by(3).for_each(|b| *b = b'\\' + 1);
                }
                for from in 0..=at.min(len) {
                    let expect = (at < len).then_some(at);
                    assert_eq!(next_backslash(&content, from), expect, "{len} {at} {from}");
                }
            }
        }
    }
}
