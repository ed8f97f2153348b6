//! When `loadgen`'s batches start: at the maximum rate, each as soon as a connection is free;
//! at a fixed rate (open loop), each at its own time, whether or not a connection is free then,
//! and latency counts from that time, so a slow receiver cannot hide its queueing (no
//! coordinated omission).
//!
//! At a fixed rate the batches are released by a thread of their own ([`Schedule::pace`]),
//! each at its time: the runtime's timer rounds every deadline up to its next millisecond tick,
//! which would count up to a millisecond of the load generator's own lateness as the
//! receiver's latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// A run's batches: how many, how fast, until when.
#[derive(Debug)]
pub struct Schedule {
    started: Instant,
    deadline: Instant,
    limit: Option<u64>,
    rate: f64,
    next: AtomicU64,
    /// At a fixed rate: one place per batch whose time has come.
    released: Option<Semaphore>,
}

impl Schedule {
    /// A run starting now, for `duration` or, with `limit`, for that many batches; at `rate`
    /// batches per second, or at the maximum rate when `rate` is not positive.
    pub fn new(duration: Duration, limit: Option<u64>, rate: f64) -> Arc<Schedule> {
        let started = Instant::now();
        Arc::new(Schedule {
            started,
            deadline: started + duration,
            limit,
            rate,
            next: AtomicU64::new(0),
            released: (rate > 0.0).then(|| Semaphore::new(0)),
        })
    }

    /// When the run started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The next batch's number and the time it is scheduled to start, or `None` when the run
    /// is over. At a fixed rate, waits until [`Schedule::pace`] has released as many batches as
    /// have been taken, so no batch is taken before its time.
    pub async fn next(&self) -> Option<(u64, Instant)> {
        if let Some(released) = &self.released {
            released.acquire().await.ok()?.forget();
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        if self.limit.is_some_and(|l| i >= l)
            || (self.limit.is_none() && Instant::now() >= self.deadline)
        {
            return None;
        }
        if self.released.is_none() {
            return Some((i, Instant::now()));
        }
        self.is_in_run(i).then(|| (i, self.at(i)))
    }

    /// When batch `i` is scheduled to start at the fixed rate.
    fn at(&self, i: u64) -> Instant {
        self.started + Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// At the fixed rate, whether batch `i` is one of the run's: below the limit, or without
    /// one, due before the deadline.
    fn is_in_run(&self, i: u64) -> bool {
        self.limit.map_or_else(|| self.at(i) < self.deadline, |l| i < l)
    }

    /// At a fixed rate, starts the thread that releases each batch at its time and, at the
    /// end, enough for every waiting [`Schedule::next`] to find the run over. Join it after the
    /// connections finish.
    pub fn pace(self: &Arc<Self>) -> Option<std::thread::JoinHandle<()>> {
        self.released.as_ref()?;
        let schedule = Arc::clone(self);
        Some(std::thread::spawn(move || {
            let released = schedule.released.as_ref().expect("checked above");
            // Should this thread panic, the connections waiting for a release end, not hang.
            let _close_on_panic = CloseOnPanic(released);
            for i in (0..).take_while(|&i| schedule.is_in_run(i)) {
                std::thread::sleep(schedule.at(i).saturating_duration_since(Instant::now()));
                released.add_permits(1);
            }
            released.add_permits(Semaphore::MAX_PERMITS / 2);
        }))
    }
}

/// Closes the semaphore when dropped by a panic, so every [`Schedule::next`] waiting on it
/// returns `None`.
struct CloseOnPanic<'a>(&'a Semaphore);

impl Drop for CloseOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes every batch of the schedule `make` makes (once the runtime is up) with `takers`
    /// concurrent tasks; returns the schedule and each taken batch's number, scheduled time and
    /// the time it was taken.
    fn take_all(
        make: impl FnOnce() -> Arc<Schedule>,
        takers: usize,
    ) -> (Arc<Schedule>, Vec<(u64, Instant, Instant)>) {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
        let schedule = &make();
        let pacer = schedule.pace();
        let taken = runtime.block_on(async {
            let tasks: Vec<_> = (0..takers)
                .map(|_| {
                    let schedule = Arc::clone(schedule);
                    tokio::spawn(async move {
                        let mut taken = Vec::new();
                        while let Some((i, at)) = schedule.next().await {
                            taken.push((i, at, Instant::now()));
                        }
                        taken
                    })
                })
                .collect();
            let mut all = Vec::new();
            for task in tasks {
                all.extend(task.await.unwrap());
            }
            all
        });
        if let Some(pacer) = pacer {
            pacer.join().unwrap();
        }
        (Arc::clone(schedule), taken)
    }

    #[test]
    fn a_fixed_rate_releases_every_batch_once_and_none_before_its_time() {
        let (schedule, mut taken) =
            take_all(|| Schedule::new(Duration::from_secs(60), Some(40), 400.0), 4);
        taken.sort_by_key(|t| t.0);
        assert_eq!(taken.iter().map(|t| t.0).collect::<Vec<_>>(), (0..40).collect::<Vec<_>>());
        for (i, at, when) in &taken {
            assert_eq!(*at, schedule.at(*i));
            assert!(when >= at, "batch {i} taken before its time");
        }
    }

    #[test]
    fn a_timed_fixed_rate_run_ends_at_its_deadline() {
        let (schedule, taken) =
            take_all(|| Schedule::new(Duration::from_millis(200), None, 100.0), 3);
        // Batches 0..20 are due before the deadline; none after it is taken, and the run ends.
        assert!(!taken.is_empty());
        let deadline = schedule.started() + Duration::from_millis(200);
        assert!(taken.iter().all(|(i, at, _)| *i < 20 && *at < deadline), "{taken:?}");
    }

    #[test]
    fn the_maximum_rate_takes_batches_at_once_up_to_the_limit() {
        let (schedule, taken) =
            take_all(|| Schedule::new(Duration::from_secs(60), Some(1_000), 0.0), 8);
        assert!(schedule.pace().is_none());
        let mut taken: Vec<u64> = taken.into_iter().map(|t| t.0).collect();
        taken.sort_unstable();
        assert_eq!(taken, (0..1_000).collect::<Vec<_>>());
    }
}
