//! The spool's durable cursor: the position before which the broker has acknowledged every record.
//!
//! One small file, `cursor` (segment number, offset, xxh3-64 of both), replaced atomically: written
//! to `cursor.tmp`, synced, renamed over `cursor`, then the directory synced. A missing or damaged
//! cursor means "from the oldest segment": what was acknowledged is produced again (duplicates,
//! never a loss).

use std::io;
use std::path::Path;

use xxhash_rust::xxh3::xxh3_64;

use super::{write_all, FILE_MODE};
use crate::storage::Storage;

const NAME: &str = "cursor";
const TEMP: &str = "cursor.tmp";

/// A place in the spool: a segment and a byte offset in it (always at a frame boundary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub(crate) segment: u64,
    pub(crate) offset: u64,
}

/// The cursor stored in `dir`, if there is a valid one.
pub(crate) fn read(storage: &dyn Storage, dir: &Path) -> io::Result<Option<Pos>> {
    let file = match storage.open(&dir.join(NAME)) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // A few bytes more than a cursor: enough to see that a longer file is not one.
    let mut bytes = vec![0u8; 64];
    let mut len = 0;
    while len < bytes.len() {
        match file.read_at(&mut bytes[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bytes.truncate(len);
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
pub(crate) fn write(storage: &dyn Storage, dir: &Path, pos: Pos) -> io::Result<()> {
    let mut bytes = [0u8; 24];
    bytes[..8].copy_from_slice(&pos.segment.to_le_bytes());
    bytes[8..16].copy_from_slice(&pos.offset.to_le_bytes());
    let check = xxh3_64(&bytes[..16]);
    bytes[16..].copy_from_slice(&check.to_le_bytes());
    let temp = dir.join(TEMP);
    let file = match storage.create(&temp, FILE_MODE) {
        // A crash left a temporary cursor: it is replaced (creating never replaces).
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            storage.remove(&temp)?;
            storage.create(&temp, FILE_MODE)?
        }
        file => file?,
    };
    write_all(&*file, &bytes)?;
    file.sync_data()?;
    drop(file);
    storage.rename(&temp, &dir.join(NAME))?;
    storage.sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Disk;

    #[test]
    fn the_cursor_round_trips_and_a_damaged_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(&Disk, dir.path()).unwrap(), None);
        let pos = Pos { segment: 7, offset: 4096 };
        write(&Disk, dir.path(), pos).unwrap();
        assert_eq!(read(&Disk, dir.path()).unwrap(), Some(pos));
        let mut bytes = std::fs::read(dir.path().join(NAME)).unwrap();
        bytes[3] ^= 1;
        std::fs::write(dir.path().join(NAME), bytes).unwrap();
        assert_eq!(read(&Disk, dir.path()).unwrap(), None);
    }
}
