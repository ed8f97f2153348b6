//! Crash consistency of the file sink, in the style of deterministic simulation: the sink runs
//! on a simulated disk (`sim`) that keeps unsynced writes apart; under a seeded load (with
//! short writes and, for some seeds, random `EIO`s) the power goes at a seeded operation and the
//! disk keeps only what a real one may (see `sim`); sometimes the power goes again during
//! recovery. Then a new sink recovers, and every acknowledged record must be in a completed
//! file, and every completed file must hold only whole JSON objects, one per line.
//!
//! Why: a `SIGKILL` test cannot see a missing `fsync` (the page cache outlives the process);
//! this one does, and `a_missing_sync_is_caught` proves it by running the same seeds on a disk
//! that pretends to sync.
//!
//! With two sync lanes the sink's syncers run on their own threads (`sim::threaded`), and some
//! batches are written while the sync of the one before is held, so that the second lane's files
//! fill too; those runs check the same, but a seed does not replay exactly.
//!
//! `SPILLWAY_CRASH_SEED=<n>` replays one seed (a failing seed prints the command);
//! `SPILLWAY_CRASH_SEEDS=<n>` runs more seeds than the default.

mod sim;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pipeline::file::{FileSink, FileSinkConfig, FsyncPolicy, RECOVERED_INVALID_PREFIX};
use pipeline::storage::Storage;
use pipeline::{Pipeline, PipelineConfig, PipelineMetrics};
use record::{AckWaiter, Dispatch};
use sim::threaded::Threaded;
use sim::{batch, Driven, Op, Rng, SimDisk};
use testkit::block_on;

const LOGS: &str = "/sim/data/logs";
const DEAD: &str = "/sim/data/dead-letter";
/// Seeds per run unless `SPILLWAY_CRASH_SEEDS` says otherwise.
const SEEDS: u64 = 200;
/// The run stops starting new seeds after this long (it is far less on a quiet machine).
const TIME_BOUND: Duration = Duration::from_secs(60);

/// What a seed did.
#[derive(Debug, Default, PartialEq)]
struct Outcome {
    acknowledged: usize,
    /// Lines set aside at recovery, and records found after it.
    set_aside: usize,
    stored: usize,
    /// Records found in the files of lanes other than the first.
    in_other_lanes: usize,
}

fn config(rng: &mut Rng, sync_lanes: usize) -> FileSinkConfig {
    FileSinkConfig {
        max_file_bytes: 200 + rng.below(3000),
        // Files rotate by size only: age would bring the wall clock in.
        max_file_age: Duration::from_secs(3600),
        fsync: FsyncPolicy::Batch,
        drop_synced_pages: rng.one_in(2),
        invalid_dir: Some(DEAD.into()),
        sync_lanes,
        ..FileSinkConfig::new(LOGS)
    }
}

/// Load until the power goes; returns the acknowledged ids.
fn load(disk: &SimDisk, config: &FileSinkConfig, seed: u64, rng: &mut Rng) -> Vec<String> {
    let metrics = PipelineMetrics::register(&mut Default::default());
    // With lanes, the syncers on their threads: inline, every group would find the first lane
    // free and the others would never be written.
    let threaded = (config.sync_lanes > 1).then(|| Threaded::new(disk.clone()));
    let storage: Arc<dyn Storage> = match &threaded {
        Some(threaded) => Arc::new(threaded.clone()),
        None => Arc::new(disk.clone()),
    };
    let inner = FileSink::records_on(storage, config.clone(), &metrics).unwrap();
    let clock_ms = Arc::new(AtomicU64::new(0));
    let driven = Driven::new(inner, Arc::clone(&clock_ms), false);
    let (pipeline, workers) =
        Pipeline::start(PipelineConfig::default(), vec![Box::new(driven)], metrics).unwrap();
    let faults = if rng.one_in(3) { 30 } else { 0 };
    disk.knobs(|k| (k.short_write_one_in, k.fault_one_in) = (6, faults));
    disk.crash_after(1 + rng.below(400));
    let mut acked = Vec::new();
    // Each batch takes at least two operations (write, sync): the power goes well before.
    for b in 0..1000 {
        if disk.crashed() {
            break;
        }
        let ids: Vec<String> =
            (0..1 + rng.below(5)).map(|r| format!("s{seed}-b{b}-r{r}")).collect();
        let long = rng.one_in(3);
        let pads: Vec<usize> =
            ids.iter().map(|_| rng.below(if long { 1500 } else { 300 }) as usize).collect();
        clock_ms.fetch_add(rng.below(1500), Ordering::SeqCst);
        let Ok(waiter) = pipeline.try_submit(batch(&ids, &pads, rng.next() as u128)) else {
            continue;
        };
        match &threaded {
            Some(threaded) if rng.one_in(3) => {
                let next = format!("s{seed}-b{b}-next");
                let second = batch(std::slice::from_ref(&next), &[10], rng.next() as u128);
                let (first, second) = behind_a_held_sync(threaded, waiter, &pipeline, second);
                if first {
                    acked.extend(ids);
                }
                if second {
                    acked.push(next);
                }
            }
            _ => {
                if block_on(waiter.wait()).is_ok() {
                    acked.extend(ids);
                }
            }
        }
    }
    assert!(disk.crashed(), "the power never went");
    drop(pipeline);
    assert!(workers.join(Duration::from_secs(10)).is_empty(), "a worker did not stop");
    acked
}

/// Holds the sync of the batch behind `waiter` (if it gets that far), writes `second` meanwhile
/// (into another lane), then lets the sync go; returns whether each was acknowledged.
fn behind_a_held_sync(
    threaded: &Threaded,
    waiter: AckWaiter,
    pipeline: &Pipeline,
    second: record::Batch,
) -> (bool, bool) {
    threaded.hold_next_sync();
    let (tx, rx) = crossbeam_channel::bounded(1);
    let first = std::thread::spawn(move || tx.send(block_on(waiter.wait()).is_ok()));
    // Until its sync is held, or it is settled without one (a failed write, the power gone).
    let mut settled = None;
    let held = testkit::wait_until(Duration::from_secs(10), || {
        settled = rx.try_recv().ok();
        settled.is_some() || threaded.wait_until_held(Duration::from_millis(1))
    });
    assert!(held, "the first batch neither synced nor settled");
    if settled.is_some() {
        // Settled without reaching the gate: the gate must not catch the second batch's sync.
        threaded.release();
    }
    let second = match pipeline.try_submit(second) {
        Ok(waiter) => block_on(waiter.wait()).is_ok(),
        Err(_) => false,
    };
    threaded.release();
    let first_acked = settled.unwrap_or_else(|| rx.recv().unwrap());
    first.join().unwrap().ok();
    (first_acked, second)
}

/// The checks after recovery: no file left open, every completed file whole lines of JSON
/// objects, every acknowledged id in one. Returns how many lines were set aside and how many
/// records were found.
fn check(disk: &SimDisk, acked: &[String]) -> Result<(usize, usize, usize), String> {
    let (mut found, mut in_other_lanes) = (HashSet::new(), 0);
    for (name, data) in disk.files(Path::new(LOGS)) {
        if !name.ends_with(".ndjson") {
            return Err(format!("{name} is left after recovery"));
        }
        // The first lane's names end in digits only (`records-<ms>-000001.ndjson`).
        if name.rsplit('-').next().is_some_and(|seq| seq.starts_with(|c: char| c.is_alphabetic())) {
            in_other_lanes += data.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
        }
        if !data.is_empty() && data.last() != Some(&b'\n') {
            return Err(format!("{name} ends in a partial line"));
        }
        for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let value: serde_json::Value = serde_json::from_slice(line)
                .map_err(|e| format!("{name}: {e}: {:?}", String::from_utf8_lossy(line)))?;
            let id = value.get("id").and_then(|id| id.as_str());
            found.insert(id.ok_or(format!("{name}: not a record: {value}"))?.to_owned());
        }
    }
    if let Some(lost) = acked.iter().find(|id| !found.contains(*id)) {
        let lost_count = acked.iter().filter(|id| !found.contains(*id)).count();
        return Err(format!(
            "{lost_count} of {} acknowledged records lost, e.g. {lost}",
            acked.len()
        ));
    }
    let mut set_aside = 0;
    for (name, data) in disk.files(Path::new(DEAD)) {
        if !(name.starts_with(RECOVERED_INVALID_PREFIX) && name.ends_with(".ndjson")) {
            return Err(format!("dead letters: {name} is left after recovery"));
        }
        for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let value: serde_json::Value =
                serde_json::from_slice(line).map_err(|e| format!("dead letters: {name}: {e}"))?;
            if value["reason"] != "recovered_invalid" {
                return Err(format!("dead letters: {name}: {value}"));
            }
            set_aside += 1;
        }
    }
    Ok((set_aside, found.len(), in_other_lanes))
}

/// One seed: load, power loss, (maybe another power loss during recovery,) recovery, checks.
fn run_seed(seed: u64, skip: &[Op], sync_lanes: usize) -> Result<Outcome, String> {
    let disk = SimDisk::new(seed);
    disk.knobs(|k| k.skip = skip.iter().copied().collect());
    let mut rng = Rng::new(seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let config = config(&mut rng, sync_lanes);
    let acked = load(&disk, &config, seed, &mut rng);
    let metrics = PipelineMetrics::register(&mut Default::default());
    let mut disk = disk.reboot();
    if rng.one_in(3) {
        disk.crash_after(1 + rng.below(30));
        drop(FileSink::records_on(Arc::new(disk.clone()), config.clone(), &metrics));
        disk = disk.reboot();
    }
    let recovered = FileSink::records_on(Arc::new(disk.clone()), config, &metrics)
        .map_err(|e| format!("recovery failed: {e:?}"))?;
    drop(recovered);
    let (set_aside, stored, in_other_lanes) = check(&disk, &acked)?;
    Ok(Outcome { acknowledged: acked.len(), set_aside, stored, in_other_lanes })
}

/// Runs `seeds` (within the time bound); returns the failures and what the others did.
fn run(seeds: impl Iterator<Item = u64>, skip: &[Op]) -> (Vec<(u64, String)>, Vec<Outcome>) {
    sim::run_seeds(seeds, TIME_BOUND, |seed| run_seed(seed, skip, 1))
}

#[test]
fn acknowledged_records_survive_power_loss_at_any_point() {
    let started = Instant::now();
    let seeds = sim::seeds(SEEDS);
    let (failures, outcomes) = run(seeds.iter().copied(), &[]);
    for (seed, e) in &failures {
        eprintln!("seed {seed} failed: {e}\n  replay: SPILLWAY_CRASH_SEED={seed} cargo test -p pipeline --test crash_sim");
    }
    let acked: usize = outcomes.iter().map(|o| o.acknowledged).sum();
    let set_aside: usize = outcomes.iter().map(|o| o.set_aside).sum();
    eprintln!(
        "crash simulation: {} seeds in {:.1} s, {acked} acknowledged records checked, {set_aside} invalid lines set aside at recovery",
        outcomes.len() + failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{} seeds failed, first: {:?}", failures.len(), failures[0]);
    assert!(outcomes.len() >= seeds.len().min(50), "only {} seeds ran in time", outcomes.len());
    assert!(acked > 0, "nothing was acknowledged: the load never built up");
}

#[test]
fn acknowledged_records_survive_power_loss_with_two_sync_lanes() {
    let seeds = sim::seeds(SEEDS / 2);
    let (failures, outcomes) =
        sim::run_seeds(seeds.iter().copied(), TIME_BOUND, |seed| run_seed(seed, &[], 2));
    for (seed, e) in &failures {
        eprintln!("seed {seed} failed with two lanes: {e}");
    }
    assert!(failures.is_empty(), "{} seeds failed, first: {:?}", failures.len(), failures[0]);
    assert!(outcomes.len() >= seeds.len().min(25), "only {} seeds ran in time", outcomes.len());
    let acked: usize = outcomes.iter().map(|o| o.acknowledged).sum();
    let other: usize = outcomes.iter().map(|o| o.in_other_lanes).sum();
    eprintln!("two lanes: {acked} acknowledged records checked, {other} found in the second lane");
    assert!(other > 0, "the second lane was never written: the run tested one lane");
}

#[test]
fn a_missing_sync_is_caught() {
    // The same seeds on a disk that pretends to sync: the checks must see the loss. (Skipping
    // `fsync` at completion is not caught, rightly: under fsync per batch every group in a file
    // is already durable when it completes.)
    for skip in [Op::SyncData, Op::SyncDir] {
        let (failures, _) = run(0..SEEDS, &[skip]);
        assert!(!failures.is_empty(), "no seed caught a sink that skips {skip:?}");
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
        assert_eq!(run_seed(seed, &[], 1), run_seed(seed, &[], 1), "seed {seed}");
    }
}
