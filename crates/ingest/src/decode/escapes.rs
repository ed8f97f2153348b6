//! Backslash escapes: the grammar of one (`\"`, `\n`, `\u00e9`, a surrogate pair), checked per
//! string or over a whole chunk at once.
//!
//! Stage 1 leaves escapes unchecked. The walk used to check them string by string, scanning each
//! gap between two escapes on its own; on log messages with an escape every few words that was a
//! fifth of the decode. [`all_valid`] checks every backslash of a chunk in one scan instead: the
//! walk then needs only to know whether a string holds one.

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

/// Whether every escape in `bytes` is well formed, reading them left to right from the first
/// backslash as a JSON reader would.
///
/// Inside strings this is exactly each string's own check: a string's opening quote is never
/// part of an escape (stage 1 would not have taken it for one), so the scan is at an escape's
/// start wherever a string's first escape is. A backslash outside any string makes its record
/// invalid whatever this says, and `false` only sends the caller back to the per-string check.
///
/// On x86-64 the bytes go 64 at a time through SSE2 (every x86-64 has it): the escaped
/// characters are found from the runs of backslashes as simdjson does, and all must be one of
/// `"\/bfnrtu`; only a `\u` escape is then read on its own.
pub(crate) fn all_valid(bytes: &[u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        blocks::all_valid(bytes)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        memchr::memchr(b'\\', bytes).is_none_or(|first| validate(bytes, first).is_ok())
    }
}

#[cfg(target_arch = "x86_64")]
mod blocks {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8, _mm_set_epi64x,
    };

    use super::escape_len;

    /// Bit i set where the byte at i follows an odd run of backslashes: the escaped characters.
    /// `prev` carries a run that ends a block into the next (simdjson's `find_escaped`).
    fn escaped(backslashes: u64, prev: &mut u64) -> u64 {
        const EVEN_BITS: u64 = 0x5555_5555_5555_5555;
        let backslashes = backslashes & !*prev;
        let follows_escape = (backslashes << 1) | *prev;
        let odd_starts = backslashes & !EVEN_BITS & !follows_escape;
        let (even_starts, overflow) = odd_starts.overflowing_add(backslashes);
        *prev = u64::from(overflow);
        (EVEN_BITS ^ (even_starts << 1)) & follows_escape
    }

    // SAFETY (each `unsafe` below): these intrinsics need only SSE2, which every x86-64 has; they
    // take values, not pointers.

    fn lane(bytes: &[u8]) -> __m128i {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[i..i + 8]);
            i64::from_le_bytes(w)
        };
        unsafe { _mm_set_epi64x(word(8), word(0)) }
    }

    fn eq(lane: __m128i, c: u8) -> __m128i {
        unsafe { _mm_cmpeq_epi8(lane, _mm_set1_epi8(c as i8)) }
    }

    fn any_of(lane: __m128i, cs: &[u8]) -> __m128i {
        cs.iter().fold(eq(lane, cs[0]), |m, &c| unsafe { _mm_or_si128(m, eq(lane, c)) })
    }

    /// Whether any byte of the four lanes is set.
    fn any(lanes: &[__m128i; 4]) -> bool {
        let all = unsafe {
            _mm_or_si128(_mm_or_si128(lanes[0], lanes[1]), _mm_or_si128(lanes[2], lanes[3]))
        };
        unsafe { _mm_movemask_epi8(all) != 0 }
    }

    fn mask(lanes: &[__m128i; 4], test: impl Fn(__m128i) -> __m128i) -> u64 {
        lanes.iter().enumerate().fold(0, |m, (i, &lane)| {
            let bits = unsafe { _mm_movemask_epi8(test(lane)) } as u16;
            m | (u64::from(bits) << (16 * i))
        })
    }

    pub(super) fn all_valid(bytes: &[u8]) -> bool {
        let (mut prev, mut free_from) = (0u64, 0usize);
        let mut tail = [b' '; 64];
        for start in (0..bytes.len()).step_by(64) {
            let block = match bytes.get(start..start + 64) {
                Some(block) => block,
                None => {
                    tail[..bytes.len() - start].copy_from_slice(&bytes[start..]);
                    &tail[..]
                }
            };
            let lanes =
                [lane(&block[0..]), lane(&block[16..]), lane(&block[32..]), lane(&block[48..])];
            let is_backslash = lanes.map(|lane| eq(lane, b'\\'));
            if prev == 0 && !any(&is_backslash) {
                continue;
            }
            let backslashes = mask(&is_backslash, |eq| eq);
            let escaped = escaped(backslashes, &mut prev);
            let allowed = mask(&lanes, |lane| any_of(lane, b"\"\\/bfnrtu"));
            if escaped & !allowed != 0 {
                return false;
            }
            // A `\u` needs its four hex digits (and a surrogate its pair): read on its own.
            let mut units = escaped & mask(&lanes, |lane| eq(lane, b'u'));
            while units != 0 {
                let backslash = start + units.trailing_zeros() as usize - 1;
                units &= units - 1;
                if backslash < free_from {
                    // The low half of a surrogate pair already read.
                    continue;
                }
                match escape_len(bytes, backslash) {
                    Ok(len) => free_from = backslash + len,
                    Err(_) => return false,
                }
            }
        }
        // A run of backslashes that ends the bytes escapes nothing.
        prev == 0
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
