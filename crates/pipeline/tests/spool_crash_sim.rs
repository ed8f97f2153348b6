//! Crash consistency of the Kafka sink's disk spool, in the style of deterministic simulation:
//! the spool runs on the simulated disk (`sim`) and is driven as `kafka/spooled.rs` drives it:
//! groups of frames appended and synced (an `Ok` is the client's acknowledgement), frames read
//! and "produced", the broker's acknowledgements committed in order, the cursor persisted (which
//! deletes and recycles segments), replay rewound now and then. Under short writes and, for some
//! seeds, random `EIO`s, the power goes at a seeded operation (sometimes again during recovery);
//! the spool is opened again on what survived and read from its cursor to its end.
//!
//! The checks: every acknowledged frame not yet committed is there, in order, byte for byte;
//! committed frames may come back (at least once: duplicates are allowed, gaps are not); a frame
//! never acknowledged appears only after every acknowledged one, and only if it was being
//! appended when its append failed; a frame appended after recovery follows all of them.
//!
//! `a_missing_sync_is_caught` runs the same seeds on a disk that pretends to sync: the checks
//! must see the loss. `SPILLWAY_CRASH_SEED=<n>` replays one seed (a failing seed prints the
//! command); `SPILLWAY_CRASH_SEEDS=<n>` runs more seeds than the default.

mod sim;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pipeline::spool::{push_frame, Pos, Read, Spool, SpoolConfig};
use sim::{Op, Rng, SimDisk};

const DIR: &str = "/sim/data/kafka-spool";
/// Seeds per run unless `SPILLWAY_CRASH_SEEDS` says otherwise.
const SEEDS: u64 = 200;
/// The run stops starting new seeds after this long (it is far less on a quiet machine).
const TIME_BOUND: Duration = Duration::from_secs(60);

/// What a seed did.
#[derive(Debug, Default, PartialEq)]
struct Outcome {
    acknowledged: usize,
    committed: usize,
    /// Committed frames found again after recovery.
    duplicates: usize,
    /// Never acknowledged frames found (after every acknowledged one).
    unacknowledged: usize,
    damaged: usize,
    segments_deleted: usize,
}

/// What the test knows of the spool's content, as the Kafka sink would.
#[derive(Debug, Default)]
struct Model {
    /// Payloads of acknowledged frames, in the order appended.
    acked: Vec<Vec<u8>>,
    /// Payloads whose append failed since the last one that succeeded (they may survive whole).
    failed_tail: Vec<Vec<u8>>,
    /// How many of `acked` the broker acknowledged and were committed (in memory).
    committed: usize,
    /// Frames made so far (each has its own number).
    made: usize,
    /// Segments deleted once committed.
    deleted: usize,
}

/// Replay's progress, as in `kafka/spooled.rs`: the next frame to produce, and the end of each
/// produced frame not yet committed (the frame `committed + i` of the model).
struct Replay {
    read: Pos,
    in_flight: VecDeque<Pos>,
}

fn config(rng: &mut Rng) -> SpoolConfig {
    // 64 to 128 KiB segments: a few thousand operations start and delete several.
    SpoolConfig { max_bytes: (512 + rng.below(512)) << 10, ..SpoolConfig::new(DIR) }
}

/// The payload of frame `n` of `seed`: its name, then bytes that depend on both.
fn payload(seed: u64, n: usize, rng: &mut Rng) -> Vec<u8> {
    let mut out = format!("s{seed}-f{n}|").into_bytes();
    let len = if rng.one_in(4) { rng.below(9000) } else { rng.below(600) };
    out.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(n as u8)));
    out
}

fn name(payload: &[u8]) -> String {
    let end = payload.iter().position(|b| *b == b'|').unwrap_or(payload.len()).min(40);
    String::from_utf8_lossy(&payload[..end]).into_owned()
}

/// Appends a group of 1 to 4 frames with one sync, as the sink appends a group of jobs; the
/// frames that do not fit are refused (`spool_full`) and never written.
fn append_group(spool: &mut Spool, m: &mut Model, seed: u64, rng: &mut Rng) {
    let (mut buf, mut group) = (Vec::new(), Vec::new());
    for _ in 0..1 + rng.below(4) {
        let p = payload(seed, m.made, rng);
        m.made += 1;
        let before = buf.len();
        push_frame(&mut buf, &p);
        if buf.len() as u64 > spool.room() {
            buf.truncate(before);
            break;
        }
        group.push(p);
    }
    if group.is_empty() {
        return;
    }
    match spool.append(&buf) {
        Ok(()) => {
            m.acked.append(&mut group);
            m.failed_tail.clear();
        }
        Err(_) => m.failed_tail.append(&mut group),
    }
}

/// Reads (produces) up to `n` frames; each must be the acknowledged frame expected there.
fn produce(spool: &mut Spool, m: &Model, r: &mut Replay, n: u64) -> Result<(), String> {
    for _ in 0..n {
        match spool.read(r.read) {
            Ok(Read::Frame(p, next)) => {
                let at = m.committed + r.in_flight.len();
                if m.acked.get(at) != Some(&p.to_vec()) {
                    return Err(format!("before the power loss, frame #{at} read as {}", name(&p)));
                }
                r.in_flight.push_back(next);
                r.read = next;
            }
            Ok(Read::End) | Err(_) => break,
            Ok(Read::Damaged(_)) => return Err("a damaged frame before the power loss".into()),
        }
    }
    Ok(())
}

/// Persists the cursor (errors are only logged by the sink), counting the segments deleted.
fn persist(spool: &mut Spool, disk: &SimDisk, m: &mut Model) {
    let segments =
        |disk: &SimDisk| disk.names(Path::new(DIR)).iter().filter(|n| n.ends_with(".seg")).count();
    let before = segments(disk);
    let _ = spool.persist();
    m.deleted += before.saturating_sub(segments(disk));
}

/// Drives the spool until the power goes; returns what was acknowledged and committed.
fn load(disk: &SimDisk, config: &SpoolConfig, seed: u64, rng: &mut Rng) -> Result<Model, String> {
    let (mut spool, _) = Spool::open_on(Arc::new(disk.clone()), config)
        .map_err(|e| format!("a new spool does not open: {e}"))?;
    let faults = if rng.one_in(3) { 30 } else { 0 };
    disk.knobs(|k| (k.short_write_one_in, k.fault_one_in) = (6, faults));
    disk.crash_after(1 + rng.below(2500));
    let mut m = Model::default();
    let mut r = Replay { read: spool.committed(), in_flight: VecDeque::new() };
    for _ in 0..20_000 {
        if disk.crashed() {
            return Ok(m);
        }
        match rng.below(12) {
            0..=3 => append_group(&mut spool, &mut m, seed, rng),
            4..=6 => produce(&mut spool, &m, &mut r, 1 + rng.below(8))?,
            7..=9 => {
                // The broker acknowledged the oldest frames produced: committed in order.
                for _ in 0..1 + rng.below(6) {
                    let Some(end) = r.in_flight.pop_front() else { break };
                    spool.commit(end);
                    m.committed += 1;
                }
            }
            10 => persist(&mut spool, disk, &mut m),
            _ => {
                // A frame failed at the broker: produce again from the last committed one.
                r.in_flight.clear();
                r.read = spool.committed();
            }
        }
        if spool.drained() {
            persist(&mut spool, disk, &mut m);
        }
    }
    Err("the power never went".into())
}

/// Every frame from the cursor on (payloads), and how many damaged frames were skipped.
fn read_all(spool: &mut Spool) -> Result<(Vec<Vec<u8>>, usize), String> {
    let (mut pos, mut found, mut damaged) = (spool.committed(), Vec::new(), 0);
    loop {
        match spool.read(pos).map_err(|e| format!("reading the recovered spool: {e}"))? {
            Read::Frame(p, next) => {
                found.push(p.to_vec());
                pos = next;
            }
            Read::Damaged(next) => {
                damaged += 1;
                pos = next;
            }
            Read::End => return Ok((found, damaged)),
        }
    }
}

/// The checks on what recovery found; returns (duplicates, never acknowledged frames).
fn check(found: &[Vec<u8>], m: &Model) -> Result<(usize, usize), String> {
    // Where in the acknowledged sequence the recovered spool starts.
    let first = found.first().and_then(|f| m.acked.iter().position(|a| a == f));
    let start = first.unwrap_or(m.acked.len());
    if start > m.committed {
        let lost = &m.acked[m.committed];
        return Err(format!(
            "acknowledged, uncommitted frame #{} ({}) lost",
            m.committed,
            name(lost)
        ));
    }
    for (i, want) in m.acked.iter().enumerate().skip(start) {
        match found.get(i - start) {
            Some(got) if got == want => {}
            Some(got) => {
                let (want, got) = (name(want), name(got));
                return Err(format!("frame #{i} ({want}) missing: {got} is in its place"));
            }
            None => {
                let left = m.acked.len() - i;
                return Err(format!("{left} acknowledged frames lost from #{i} ({})", name(want)));
            }
        }
    }
    let extra = &found[m.acked.len() - start..];
    for (i, got) in extra.iter().enumerate() {
        if !m.failed_tail.contains(got) || extra[..i].contains(got) {
            return Err(format!(
                "frame {} was never acknowledged: found after the last",
                name(got)
            ));
        }
    }
    Ok((m.committed - start, extra.len()))
}

/// One seed: load, power loss, (maybe another power loss during recovery,) recovery, checks,
/// then one more frame appended, and everything read again after a clean restart.
fn run_seed(seed: u64, skip: &[Op]) -> Result<Outcome, String> {
    let disk = SimDisk::new(seed);
    disk.knobs(|k| k.skip = skip.iter().copied().collect());
    let mut rng = Rng::new(seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let config = config(&mut rng);
    let m = load(&disk, &config, seed, &mut rng)?;
    let mut disk = disk.reboot();
    if rng.one_in(3) {
        disk.crash_after(1 + rng.below(30));
        drop(Spool::open_on(Arc::new(disk.clone()), &config));
        disk = disk.reboot();
    }
    let open = |disk: &SimDisk| {
        Spool::open_on(Arc::new(disk.clone()), &config).map_err(|e| format!("recovery: {e}"))
    };
    let (mut spool, _) = open(&disk)?;
    let (found, damaged) = read_all(&mut spool)?;
    let (duplicates, unacknowledged) = check(&found, &m)?;
    let last = payload(seed, usize::MAX, &mut rng);
    let mut frame = Vec::new();
    push_frame(&mut frame, &last);
    spool.append(&frame).map_err(|e| format!("appending after recovery: {e}"))?;
    drop(spool);
    let (again, _) = read_all(&mut open(&disk)?.0)?;
    if again.split_last() != Some((&last, &found[..])) {
        return Err("a frame appended after recovery does not follow the recovered ones".into());
    }
    let (acknowledged, committed) = (m.acked.len(), m.committed);
    let segments_deleted = m.deleted;
    Ok(Outcome { acknowledged, committed, duplicates, unacknowledged, damaged, segments_deleted })
}

/// Runs `seeds` (within the time bound); returns the failures and what the others did.
fn run(seeds: impl Iterator<Item = u64>, skip: &[Op]) -> (Vec<(u64, String)>, Vec<Outcome>) {
    sim::run_seeds(seeds, TIME_BOUND, |seed| run_seed(seed, skip))
}

#[test]
fn spooled_batches_survive_power_loss_at_any_point() {
    let started = Instant::now();
    let seeds = sim::seeds(SEEDS);
    let (failures, outcomes) = run(seeds.iter().copied(), &[]);
    for (seed, e) in &failures {
        eprintln!("seed {seed} failed: {e}\n  replay: SPILLWAY_CRASH_SEED={seed} cargo test -p pipeline --test spool_crash_sim");
    }
    let sum = |f: fn(&Outcome) -> usize| outcomes.iter().map(f).sum::<usize>();
    eprintln!(
        "spool crash simulation: {} seeds in {:.1} s, {} frames acknowledged, {} committed, {} committed found again, {} never acknowledged found at the end, {} damaged skipped, {} segments deleted",
        outcomes.len() + failures.len(),
        started.elapsed().as_secs_f64(),
        sum(|o| o.acknowledged),
        sum(|o| o.committed),
        sum(|o| o.duplicates),
        sum(|o| o.unacknowledged),
        sum(|o| o.damaged),
        sum(|o| o.segments_deleted),
    );
    assert!(failures.is_empty(), "{} seeds failed, first: {:?}", failures.len(), failures[0]);
    assert!(outcomes.len() >= seeds.len().min(50), "only {} seeds ran in time", outcomes.len());
    assert!(sum(|o| o.acknowledged) > 0, "nothing was acknowledged: the load never built up");
    if seeds.len() > 1 {
        assert!(sum(|o| o.segments_deleted) > 0, "no segment was ever deleted");
    }
}

#[test]
fn a_missing_sync_is_caught() {
    // The same seeds on a disk that pretends to sync: the checks must see the loss. (A cursor
    // whose rename is lost only brings committed frames back, rightly not a failure; a segment
    // whose directory entry is lost loses what was acknowledged in it.)
    for skip in [Op::SyncData, Op::SyncDir] {
        let (failures, _) = run(0..SEEDS, &[skip]);
        assert!(!failures.is_empty(), "no seed caught a spool that skips {skip:?}");
        eprintln!(
            "skipping {skip:?}: {} of {SEEDS} seeds failed, e.g. {:?}",
            failures.len(),
            failures[0]
        );
    }
}

#[test]
fn a_seed_replays_exactly() {
    for seed in [3, 17, 42] {
        assert_eq!(run_seed(seed, &[]), run_seed(seed, &[]), "seed {seed}");
    }
}

#[test]
fn a_failed_append_whose_cut_failed_leaves_nothing_before_the_next() {
    // The sync of frame "lost" fails, then so does cutting it off the file: its bytes stay at the
    // file's end. Appends land at the end, so the next append must cut them first, or "lost"
    // (never acknowledged) would be produced before "kept" (acknowledged), before and after a
    // restart.
    let disk = SimDisk::new(1);
    let config = SpoolConfig::new(DIR);
    let (mut spool, _) = Spool::open_on(Arc::new(disk.clone()), &config).unwrap();
    let (mut lost, mut kept) = (Vec::new(), Vec::new());
    push_frame(&mut lost, b"lost|never acknowledged");
    push_frame(&mut kept, b"kept|acknowledged");
    disk.knobs(|k| k.fail_next = [("sync_data", 1), ("set_len", 1)].into_iter().collect());
    assert!(spool.append(&lost).is_err());
    spool.append(&kept).unwrap();
    let names = |found: Vec<Vec<u8>>| found.iter().map(|p| name(p)).collect::<Vec<_>>();
    assert_eq!(names(read_all(&mut spool).unwrap().0), ["kept"]);
    drop(spool);
    let disk = disk.reboot();
    let (mut spool, _) = Spool::open_on(Arc::new(disk.clone()), &config).unwrap();
    assert_eq!(names(read_all(&mut spool).unwrap().0), ["kept"]);
}

#[test]
fn a_segment_left_without_its_directory_sync_is_made_durable_at_open() {
    // A roll creates the next segment, and its directory sync fails (or the process stops right
    // there): the file is in the directory, not durably. Opened again, the spool appends to it,
    // so its entry must be made durable before any frame in it is acknowledged.
    let config = SpoolConfig { max_bytes: 512 << 10, ..SpoolConfig::new(DIR) };
    let frame = |n: usize| {
        let mut out = Vec::new();
        push_frame(&mut out, format!("f{n}|{}", "x".repeat(2000)).as_bytes());
        out
    };
    let segments =
        |disk: &SimDisk| disk.names(Path::new(DIR)).iter().filter(|n| n.ends_with(".seg")).count();
    for seed in 0..16 {
        let disk = SimDisk::new(seed);
        let (mut spool, _) = Spool::open_on(Arc::new(disk.clone()), &config).unwrap();
        disk.knobs(|k| k.fail_next = [("sync_dir", 1)].into_iter().collect());
        let mut n = 0;
        while segments(&disk) < 2 {
            spool.append(&frame(n)).unwrap();
            n += 1;
        }
        drop(spool);
        let (mut spool, _) = Spool::open_on(Arc::new(disk.clone()), &config).unwrap();
        let acknowledged: Vec<String> = (n..n + 3)
            .map(|i| {
                spool.append(&frame(i)).unwrap();
                format!("f{i}")
            })
            .collect();
        drop(spool);
        let disk = disk.reboot();
        let (mut spool, _) = Spool::open_on(Arc::new(disk.clone()), &config).unwrap();
        let found: Vec<String> = read_all(&mut spool).unwrap().0.iter().map(|p| name(p)).collect();
        for frame in &acknowledged {
            assert!(found.contains(frame), "seed {seed}: {frame} acknowledged and lost");
        }
    }
}
