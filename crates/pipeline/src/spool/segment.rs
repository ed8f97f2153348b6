//! The spool's segment files: `<20-digit number>.seg`, append-only sequences of frames, numbered
//! in the order they were started; reading one frame at an offset and finding where the valid
//! frames of a file end (the rest is a torn write, cut at recovery).

use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::frame::{self, HEADER_BYTES, MAX_PAYLOAD_BYTES};
use crate::storage::{Storage, StoredFile};

const SUFFIX: &str = ".seg";

/// The file of segment `number` in `dir`.
pub(crate) fn path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}{SUFFIX}"))
}

/// The segment numbers in `dir`, oldest first.
pub(crate) fn list(storage: &dyn Storage, dir: &Path) -> io::Result<Vec<u64>> {
    let mut numbers = Vec::new();
    for name in storage.list(dir)? {
        let Some(number) = name.strip_suffix(SUFFIX) else { continue };
        if let Ok(number) = number.parse::<u64>() {
            numbers.push(number);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// What is at an offset of a segment.
#[derive(Debug)]
pub(crate) enum At {
    /// A whole, checked frame's payload, and the offset right after it.
    Frame(Bytes, u64),
    /// The end of the segment's valid data.
    End,
    /// Bytes that are not a valid frame.
    Damaged,
}

/// Reads the frame at `offset` of `file`, whose valid data ends at `len`.
pub(crate) fn read_at(file: &dyn StoredFile, offset: u64, len: u64) -> io::Result<At> {
    if offset >= len {
        return Ok(At::End);
    }
    if len - offset < HEADER_BYTES as u64 {
        return Ok(At::Damaged);
    }
    let mut head = [0u8; HEADER_BYTES];
    read_exact_at(file, &mut head, offset)?;
    let (payload_len, check) = frame::header(&head);
    let end = offset + (HEADER_BYTES + payload_len) as u64;
    if payload_len > MAX_PAYLOAD_BYTES || end > len {
        return Ok(At::Damaged);
    }
    let mut payload = vec![0u8; payload_len];
    read_exact_at(file, &mut payload, offset + HEADER_BYTES as u64)?;
    if !frame::checks(&payload, check) {
        return Ok(At::Damaged);
    }
    Ok(At::Frame(Bytes::from(payload), end))
}

/// Where the valid frames of `file` that start at `from` end, and how many there are.
pub(crate) fn valid_end(file: &dyn StoredFile, from: u64) -> io::Result<(u64, usize)> {
    let len = file.size()?;
    let (mut at, mut frames) = (from, 0);
    while let At::Frame(_, next) = read_at(file, at, len)? {
        at = next;
        frames += 1;
    }
    Ok((at, frames))
}

/// Fills `buf` from `offset` of `file` (`read_at` may return less than asked).
pub(crate) fn read_exact_at(
    file: &dyn StoredFile,
    mut buf: &mut [u8],
    mut offset: u64,
) -> io::Result<()> {
    while !buf.is_empty() {
        match file.read_at(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use super::*;
    use crate::storage::Disk;

    #[test]
    fn segments_are_listed_in_order_and_other_files_ignored() {
        let dir = tempfile::tempdir().unwrap();
        for n in [3, 1, 20] {
            File::create(path(dir.path(), n)).unwrap();
        }
        File::create(dir.path().join("cursor")).unwrap();
        File::create(dir.path().join("x.seg")).unwrap();
        assert_eq!(list(&Disk, dir.path()).unwrap(), vec![1, 3, 20]);
    }
}
