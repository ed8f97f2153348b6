//! The spool's durable cursor: the position before which the broker has acknowledged every record.
//!
//! One small file, `cursor` (segment number, offset, xxh3-64 of both), replaced atomically: written
//! to `cursor.tmp`, synced, renamed over `cursor`, then the directory synced. A missing or damaged
//! cursor means "from the oldest segment": what was acknowledged is produced again (duplicates,
//! never a loss).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use xxhash_rust::xxh3::xxh3_64;

use super::{sync_dir, FILE_MODE};

const NAME: &str = "cursor";
const TEMP: &str = "cursor.tmp";

/// A place in the spool: a segment and a byte offset in it (always at a frame boundary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Pos {
    pub(crate) segment: u64,
    pub(crate) offset: u64,
}

/// The cursor stored in `dir`, if there is a valid one.
pub(crate) fn read(dir: &Path) -> io::Result<Option<Pos>> {
    let mut bytes = Vec::with_capacity(24);
    match File::open(dir.join(NAME)) {
        Ok(file) => file.take(64).read_to_end(&mut bytes)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if bytes.len() != 24 {
        tracing::warn!(sink = "kafka", "spool cursor damaged: replaying from the oldest segment");
        return Ok(None);
    }
    let word =
        |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap_or_default());
    if xxh3_64(&bytes[..16]) != word(2) {
        tracing::warn!(sink = "kafka", "spool cursor damaged: replaying from the oldest segment");
        return Ok(None);
    }
    Ok(Some(Pos { segment: word(0), offset: word(1) }))
}

/// Makes `pos` the durable cursor of `dir`.
pub(crate) fn write(dir: &Path, pos: Pos) -> io::Result<()> {
    let mut bytes = [0u8; 24];
    bytes[..8].copy_from_slice(&pos.segment.to_le_bytes());
    bytes[8..16].copy_from_slice(&pos.offset.to_le_bytes());
    let check = xxh3_64(&bytes[..16]);
    bytes[16..].copy_from_slice(&check.to_le_bytes());
    let temp = dir.join(TEMP);
    let mut file =
        OpenOptions::new().write(true).create(true).truncate(true).mode(FILE_MODE).open(&temp)?;
    file.write_all(&bytes)?;
    file.sync_data()?;
    std::fs::rename(&temp, dir.join(NAME))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_round_trips_and_a_damaged_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let pos = Pos { segment: 7, offset: 4096 };
        write(dir.path(), pos).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(pos));
        let mut bytes = std::fs::read(dir.path().join(NAME)).unwrap();
        bytes[3] ^= 1;
        std::fs::write(dir.path().join(NAME), bytes).unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
    }
}
