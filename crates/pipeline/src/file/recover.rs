//! Crash recovery of a sink's directory at start-up: every `.ndjson.open` file an earlier
//! process left is completed (renamed to `.ndjson`) after cutting a partial last line (a write
//! that was never acknowledged) and after setting aside every line that is not a valid record.
//!
//! Why validate: after a power loss a file system may keep a file's new length but not its new
//! data (a run of zero bytes), or keep only some of the pages of an unsynced write; such bytes
//! were never acknowledged, but they can end in a newline and look like lines. Every line of a
//! recovered file must be a JSON object; the others are written, as dead letters with the reason
//! `recovered_invalid`, to `recovered-invalid-<file>.ndjson` in the dead-letter directory
//! ([`FileSinkConfig::invalid_dir`]). That file is complete and durable before the records file
//! loses them, and every step can be redone: a crash during recovery leaves the `.open` file in
//! place and the next start-up does it all again (replacing, not duplicating, its outputs).
//! The records sink writes there itself, at its own start-up, rather than handing the lines to
//! the dead-letter sink: recovery runs before any sink starts, and a file written whole under a
//! name of its own needs no coordination with the dead-letter sink's files or lock.
//!
//! Trace drains' `.binpb.open` files hold frames, not lines: `frames` recovers them.

use std::io::{self, IoSlice};
use std::ops::Range;
use std::path::Path;

use super::encode::encode_recovered;
use super::frames::recover_frames;
use super::rotation::{done_path, millis_now, DONE_SUFFIX, FRAMES_OPEN, OPEN_SUFFIX};
use super::FileSinkConfig;
use crate::storage::{Storage, StoredFile};

/// The name prefix of the dead-letter files of lines set aside at recovery.
pub const RECOVERED_INVALID_PREFIX: &str = "recovered-invalid-";
/// Files being written by recovery; a crash may leave them, the next recovery replaces them.
const CLEAN_SUFFIX: &str = ".ndjson.clean";
pub(super) const PART_SUFFIX: &str = ".ndjson.part";
/// Files are read back in pieces this large.
const CHUNK: usize = 1 << 20;

/// Completes the `.open` files of `prefix` in `config.dir`, lines or frames as their names say
/// (`frames`); returns how many were kept.
pub(super) fn recover(
    storage: &dyn Storage,
    config: &FileSinkConfig,
    prefix: &str,
) -> io::Result<usize> {
    let mut names = storage.list(&config.dir)?;
    names.sort();
    let mut recovered = 0;
    for name in names.iter().filter(|n| n.starts_with(prefix)) {
        if name.ends_with(CLEAN_SUFFIX) {
            storage.remove(&config.dir.join(name))?;
        } else if (name.ends_with(OPEN_SUFFIX) && recover_file(storage, config, name)?)
            || (name.ends_with(FRAMES_OPEN) && recover_frames(storage, config, name)?)
        {
            recovered += 1;
        }
    }
    storage.sync_dir(&config.dir)?;
    Ok(recovered)
}

/// Recovers one `.open` file; returns whether a completed file remains.
fn recover_file(storage: &dyn Storage, config: &FileSinkConfig, name: &str) -> io::Result<bool> {
    let path = config.dir.join(name);
    let file = storage.open(&path)?;
    let len = file.size()?;
    let keep = end_of_last_line(&*file, len)?;
    let invalid = invalid_lines(&*file, keep)?;
    if !invalid.is_empty() {
        return set_aside(storage, config, name, &*file, keep, &invalid);
    }
    complete_recovered(storage, &path, file, keep, len)
}

/// Completes the recovered `.open` file at `path`, cutting it to its first `keep` of `len`
/// bytes (removing it when nothing is kept); returns whether a completed file remains.
pub(super) fn complete_recovered(
    storage: &dyn Storage,
    path: &Path,
    file: Box<dyn StoredFile>,
    keep: u64,
    len: u64,
) -> io::Result<bool> {
    if keep < len {
        file.set_len(keep)?;
    }
    file.sync_all()?;
    drop(file);
    if keep == 0 {
        storage.remove(path)?;
        return Ok(false);
    }
    storage.rename(path, &done_path(path))?;
    Ok(true)
}

/// Whether `line` (without its newline) is a record: one JSON object, nothing else.
pub(super) fn is_record(line: &[u8]) -> bool {
    line.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok()
}

/// Calls `each` with the byte range (newline included) and bytes (without it) of every line of
/// the first `end` bytes of `file`, which end in a newline; reads in bounded chunks.
fn for_each_line(
    file: &dyn StoredFile,
    end: u64,
    mut each: impl FnMut(Range<u64>, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut chunk = vec![0u8; CHUNK];
    let mut line = Vec::new();
    let (mut at, mut line_start) = (0u64, 0u64);
    while at < end {
        let want = CHUNK.min((end - at) as usize);
        let n = file.read_at(&mut chunk[..want], at)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut rest = &chunk[..n];
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            line.extend_from_slice(&rest[..i]);
            let line_end = at + (n - rest.len() + i + 1) as u64;
            each(line_start..line_end, &line)?;
            line.clear();
            line_start = line_end;
            rest = &rest[i + 1..];
        }
        line.extend_from_slice(rest);
        at += n as u64;
    }
    Ok(())
}

/// The byte ranges of the lines that are not records.
fn invalid_lines(file: &dyn StoredFile, end: u64) -> io::Result<Vec<Range<u64>>> {
    let mut invalid = Vec::new();
    for_each_line(file, end, |range, line| {
        if !is_record(line) {
            invalid.push(range);
        }
        Ok(())
    })?;
    Ok(invalid)
}

/// Writes the invalid lines as dead letters and the valid ones to a clean file, each durable
/// before the `.open` file goes; returns whether a records file remains.
fn set_aside(
    storage: &dyn Storage,
    config: &FileSinkConfig,
    name: &str,
    file: &dyn StoredFile,
    end: u64,
    invalid: &[Range<u64>],
) -> io::Result<bool> {
    let stem = name.strip_suffix(OPEN_SUFFIX).unwrap_or(name);
    let dead_dir = config.invalid_dir.as_deref().unwrap_or(&config.dir);
    storage.create_dir_all(dead_dir, config.dir_mode)?;
    let mut letters = Vec::new();
    let now = millis_now();
    for_each_line(file, end, |range, line| {
        if invalid.binary_search_by_key(&range.start, |r| r.start).is_ok() {
            encode_recovered(name, range.start, line, now, false, &mut letters);
        }
        Ok(())
    })?;
    let dead = format!("{RECOVERED_INVALID_PREFIX}{stem}");
    write_whole(storage, config, dead_dir, &dead, PART_SUFFIX, |out| append_all(out, &letters))?;
    let kept: u64 = end - invalid.iter().map(|r| r.end - r.start).sum::<u64>();
    if kept > 0 {
        write_whole(storage, config, &config.dir, stem, CLEAN_SUFFIX, |out| {
            let mut from = 0;
            for gap in invalid.iter().chain(std::iter::once(&(end..end))) {
                copy(file, from..gap.start, out)?;
                from = gap.end;
            }
            Ok(())
        })?;
    }
    let path = config.dir.join(name);
    storage.remove(&path)?;
    storage.sync_dir(&config.dir)?;
    tracing::warn!(
        file = %path.display(),
        lines = invalid.len(),
        to = %dead_dir.join(format!("{dead}{DONE_SUFFIX}")).display(),
        "set aside lines of a crashed file that are not valid records"
    );
    Ok(kept > 0)
}

/// Writes `dir/<stem><temp>` with `fill`, syncs it, renames it to `dir/<stem>.ndjson`
/// (replacing a file an interrupted recovery wrote) and syncs the directory.
pub(super) fn write_whole(
    storage: &dyn Storage,
    config: &FileSinkConfig,
    dir: &Path,
    stem: &str,
    temp: &str,
    fill: impl FnOnce(&dyn StoredFile) -> io::Result<()>,
) -> io::Result<()> {
    let part = dir.join(format!("{stem}{temp}"));
    match storage.remove(&part) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let out = storage.create(&part, config.file_mode)?;
    fill(&*out)?;
    out.sync_all()?;
    drop(out);
    storage.rename(&part, &dir.join(format!("{stem}{DONE_SUFFIX}")))?;
    storage.sync_dir(dir)
}

pub(super) fn append_all(out: &dyn StoredFile, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match out.append(&[IoSlice::new(bytes)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Copies `range` of `from` to the end of `to`, in bounded chunks.
fn copy(from: &dyn StoredFile, range: Range<u64>, to: &dyn StoredFile) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK.min((range.end - range.start) as usize)];
    let mut at = range.start;
    while at < range.end {
        let want = buf.len().min((range.end - at) as usize);
        let n = from.read_at(&mut buf[..want], at)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        append_all(to, &buf[..n])?;
        at += n as u64;
    }
    Ok(())
}

/// Where the last complete line of a file of `len` bytes ends, reading backwards from the end
/// in bounded chunks (files can be large; only their tail matters).
fn end_of_last_line(file: &dyn StoredFile, len: u64) -> io::Result<u64> {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let part = &mut chunk[..(end - start) as usize];
        read_exact_at(file, part, start)?;
        if let Some(i) = part.iter().rposition(|b| *b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

pub(super) fn read_exact_at(
    file: &dyn StoredFile,
    mut buf: &mut [u8],
    mut at: u64,
) -> io::Result<()> {
    while !buf.is_empty() {
        match file.read_at(buf, at)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                at += n as u64;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_json_object_and_nothing_else() {
        for good in [&b"{}"[..], b"{\"id\":\"a\",\"n\":[1,2]}", b"  {\"a\":1}  \r"] {
            assert!(is_record(good), "{:?}", String::from_utf8_lossy(good));
        }
        for bad in [&b""[..], b"\0\0\0\0", b"[1]", b"\"s\"", b"{\"a\":1", b"{} {}", b"{\"a\":\0}"] {
            assert!(!is_record(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
