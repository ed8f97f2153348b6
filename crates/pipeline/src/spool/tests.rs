//! The spool's format and life cycle: frames come back in order across restarts, a torn tail is
//! cut, segments go only after the broker's acknowledgement is committed, and a full spool says so.

use std::fs::OpenOptions;
use std::io::Write;

use super::frame::{self, RecordRef};
use super::*;

fn frame_of(n: u32) -> Vec<u8> {
    sized_frame(n, 0)
}

/// A frame whose record is padded by `pad` bytes.
fn sized_frame(n: u32, pad: usize) -> Vec<u8> {
    let value = format!(r#"{{"id":"r{n}"}}{}"#, " ".repeat(pad));
    let record = RecordRef {
        topic: "t",
        key: b"prj",
        source: None,
        level: Some(b"info"),
        value: value.as_bytes(),
    };
    let mut out = Vec::new();
    frame::encode(&mut out, 1_000 + u64::from(n), u128::from(n), "d", [record].into_iter());
    out
}

/// Every frame from the committed position on, as the ids of their records.
fn drain_ids(spool: &mut Spool) -> Vec<String> {
    let mut pos = spool.committed();
    let mut ids = Vec::new();
    while let Read::Frame(payload, next) = spool.read(pos).unwrap() {
        let batch = frame::decode(payload).unwrap();
        let value = String::from_utf8(batch.records[0].value.to_vec()).unwrap();
        ids.push(value[7..].split('"').next().unwrap().to_owned());
        pos = next;
    }
    ids
}

/// Appends frames `from..to`, 100 to a sync (each sync is slow on some disks).
fn append_range(spool: &mut Spool, from: u32, to: u32) {
    let mut group = Vec::new();
    for n in from..to {
        group.extend_from_slice(&frame_of(n));
        if n % 100 == 99 || n + 1 == to {
            spool.append(&group).unwrap();
            group.clear();
        }
    }
}

fn config(dir: &Path, max_bytes: u64) -> SpoolConfig {
    SpoolConfig { max_bytes, ..SpoolConfig::new(dir.join("spool")) }
}

#[test]
fn frames_come_back_in_order_across_restarts_and_segments() {
    let dir = tempfile::tempdir().unwrap();
    // 64 KiB segments: 2000 frames span several.
    let config = config(dir.path(), 512 << 10);
    let (mut spool, recovered) = Spool::open(&config).unwrap();
    assert_eq!(recovered, Recovered::default());
    append_range(&mut spool, 0, 2000);
    assert!(segment::list(&Disk, &config.dir).unwrap().len() > 1);
    drop(spool);
    let (mut spool, recovered) = Spool::open(&config).unwrap();
    assert_eq!(recovered.cut_bytes, 0);
    assert_eq!(recovered.pending_bytes, spool.disk_bytes());
    let expected: Vec<String> = (0..2000).map(|n| format!("r{n}")).collect();
    assert_eq!(drain_ids(&mut spool), expected);
}

#[test]
fn a_torn_last_frame_is_cut_and_later_appends_follow_the_whole_ones() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 1 << 30);
    let (mut spool, _) = Spool::open(&config).unwrap();
    spool.append(&frame_of(1)).unwrap();
    spool.append(&frame_of(2)).unwrap();
    let whole = spool.disk_bytes();
    drop(spool);
    // A crash in the middle of appending frame 3: half of it reached the file.
    let torn = frame_of(3);
    let path = segment::path(&config.dir, segment::list(&Disk, &config.dir).unwrap()[0]);
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&torn[..torn.len() / 2]).unwrap();
    drop(file);
    let (mut spool, recovered) = Spool::open(&config).unwrap();
    assert_eq!(recovered.cut_bytes, (torn.len() / 2) as u64);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
    spool.append(&frame_of(4)).unwrap();
    assert_eq!(drain_ids(&mut spool), ["r1", "r2", "r4"]);
}

#[test]
fn frames_are_removed_only_once_their_acknowledgement_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 512 << 10);
    let (mut spool, _) = Spool::open(&config).unwrap();
    append_range(&mut spool, 0, 2000);
    let segments = segment::list(&Disk, &config.dir).unwrap().len();
    // Read (produce) 1500 frames, but the broker has acknowledged none: nothing goes.
    let mut pos = spool.committed();
    for _ in 0..1500 {
        let Read::Frame(_, next) = spool.read(pos).unwrap() else { panic!("short") };
        pos = next;
    }
    spool.persist().unwrap();
    assert_eq!(segment::list(&Disk, &config.dir).unwrap().len(), segments);
    drop(spool);
    let (mut spool, _) = Spool::open(&config).unwrap();
    assert_eq!(drain_ids(&mut spool).len(), 2000, "unacknowledged frames are replayed");

    // The broker acknowledged the first 1500: committed, persisted, their segments deleted.
    spool.commit(pos);
    spool.persist().unwrap();
    assert!(segment::list(&Disk, &config.dir).unwrap().len() < segments);
    drop(spool);
    let (mut spool, _) = Spool::open(&config).unwrap();
    let ids = drain_ids(&mut spool);
    assert_eq!(ids.first().map(String::as_str), Some("r1500"));
    assert_eq!(ids.len(), 500);
}

#[test]
fn a_drained_spool_frees_its_space_and_a_full_one_has_no_room() {
    let dir = tempfile::tempdir().unwrap();
    let frame = sized_frame(0, 16 << 10);
    let config = config(dir.path(), 2 << 20);
    let (mut spool, _) = Spool::open(&config).unwrap();
    let mut appended = 0;
    while spool.room() >= frame.len() as u64 {
        spool.append(&frame).unwrap();
        appended += 1;
    }
    assert!(spool.disk_bytes() <= config.max_bytes);
    assert!(appended > 100);
    assert!(!spool.drained());
    let end = spool.end();
    spool.commit(end);
    assert!(spool.drained());
    spool.persist().unwrap();
    // 256 KiB segments: what is left is at most a quarter of one (the head is recycled past it).
    assert_eq!(spool.pending_bytes(), 0);
    assert!(spool.disk_bytes() < 64 << 10, "{}", spool.disk_bytes());
    drop(spool);
    let (mut spool, recovered) = Spool::open(&config).unwrap();
    assert_eq!(recovered.pending_bytes, 0);
    assert!(drain_ids(&mut spool).is_empty());
}

#[test]
fn a_reader_at_the_end_of_a_recycled_segment_reads_on_in_the_next() {
    let dir = tempfile::tempdir().unwrap();
    // 64 KiB segments: a drained head of 16 KiB or more is recycled.
    let config = config(dir.path(), 512 << 10);
    let (mut spool, _) = Spool::open(&config).unwrap();
    spool.append(&sized_frame(1, 20 << 10)).unwrap();
    let Read::Frame(_, end) = spool.read(spool.committed()).unwrap() else { panic!("no frame") };
    assert!(matches!(spool.read(end).unwrap(), Read::End));
    spool.commit(end);
    spool.persist().unwrap();
    assert_eq!(
        segment::list(&Disk, &config.dir).unwrap().len(),
        1,
        "the drained segment is deleted"
    );
    spool.append(&frame_of(2)).unwrap();
    assert!(spool.normalise(end) < spool.end());
    let Read::Frame(payload, _) = spool.read(end).unwrap() else { panic!("the new frame is lost") };
    assert_eq!(frame::decode(payload).unwrap().digest, 2);
}

#[test]
fn a_second_process_cannot_open_the_same_spool() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 1 << 20);
    let (_spool, _) = Spool::open(&config).unwrap();
    let err = Spool::open(&config).unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
}

#[test]
fn modes_parse_from_their_names() {
    assert_eq!("outage".parse::<SpoolMode>(), Ok(SpoolMode::Outage));
    assert_eq!("always".parse::<SpoolMode>(), Ok(SpoolMode::Always));
    assert!("sometimes".parse::<SpoolMode>().is_err());
    assert_eq!(SpoolConfig::new("x").mode, SpoolMode::Outage);
}
