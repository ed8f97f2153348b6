//! `Content-Encoding: gzip` bodies, inflated with a cap on the inflated size that is checked
//! while inflating, so a small bomb never grows past the cap in memory.

use std::io::{Read, Write};

use flate2::read::MultiGzDecoder;

use crate::decode::PaddedBody;
use crate::IngestError;

/// Inflates `raw` (one or more gzip members) into a body of at most `max` bytes.
pub(crate) fn gunzip(raw: &[u8], max: usize) -> Result<PaddedBody, IngestError> {
    let mut body = PaddedBody::with_capacity(raw.len().saturating_mul(4).min(max));
    let mut decoder = MultiGzDecoder::new(raw).take(max as u64 + 1);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut total = 0usize;
    loop {
        let n = decoder.read(&mut chunk).map_err(|_| IngestError::CorruptGzip)?;
        if n == 0 {
            return Ok(body);
        }
        total += n;
        if total > max {
            return Err(IngestError::InflatedTooLarge { limit: max });
        }
        body.writer().write_all(&chunk[..n]).map_err(|_| IngestError::CorruptGzip)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn inflates_within_the_cap() {
        assert_eq!(gunzip(&gz(b"hello"), 5).unwrap().as_slice(), b"hello");
    }

    #[test]
    fn stops_at_the_cap() {
        let bomb = gz(&vec![b' '; 4 << 20]);
        assert!(bomb.len() < 64 << 10);
        assert!(matches!(gunzip(&bomb, 1 << 20), Err(IngestError::InflatedTooLarge { .. })));
    }

    #[test]
    fn corrupt_stream_is_an_error() {
        let mut data = gz(b"hello world");
        let n = data.len();
        data[n / 2] ^= 0xff;
        assert!(matches!(gunzip(&data, 1024), Err(IngestError::CorruptGzip)));
        assert!(matches!(gunzip(b"plain text", 1024), Err(IngestError::CorruptGzip)));
    }

    #[test]
    fn concatenated_members_are_read_whole() {
        let mut data = gz(b"one\n");
        data.extend(gz(b"two\n"));
        assert_eq!(gunzip(&data, 1024).unwrap().as_slice(), b"one\ntwo\n");
    }
}
