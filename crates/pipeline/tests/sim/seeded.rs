//! The seeded parts of the simulations: a generator, the seeds a run covers, and a runner that
//! collects each seed's outcome.

use std::time::{Duration, Instant};

/// A small, seeded generator (SplitMix64): deterministic, no dependency.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True once in `n`.
    pub(crate) fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

/// The seeds a run covers: `SPILLWAY_CRASH_SEED` alone when set (to replay one), else
/// `SPILLWAY_CRASH_SEEDS` of them (or `default`) from 0.
pub(crate) fn seeds(default: u64) -> Vec<u64> {
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|v| v.trim().parse::<u64>().unwrap_or_else(|_| panic!("{name}: {v:?}")))
    };
    match env("SPILLWAY_CRASH_SEED") {
        Some(seed) => vec![seed],
        None => (0..env("SPILLWAY_CRASH_SEEDS").unwrap_or(default)).collect(),
    }
}

/// Runs `one` for each of `seeds` until `bound` has passed; returns the failing seeds with what
/// failed (a panic counts), and what the others returned.
pub(crate) fn run_seeds<O>(
    seeds: impl Iterator<Item = u64>,
    bound: Duration,
    one: impl Fn(u64) -> Result<O, String>,
) -> (Vec<(u64, String)>, Vec<O>) {
    let started = Instant::now();
    let (mut failures, mut outcomes) = (Vec::new(), Vec::new());
    for seed in seeds {
        if started.elapsed() > bound {
            break;
        }
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| one(seed))) {
            Ok(Ok(outcome)) => outcomes.push(outcome),
            Ok(Err(e)) => failures.push((seed, e)),
            Err(_) => failures.push((seed, "panicked (see above)".to_owned())),
        }
    }
    (failures, outcomes)
}
