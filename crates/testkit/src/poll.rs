//! Bounded polling of an observable condition: try, and if it does not hold yet, pause briefly
//! and try again, until a deadline. Never a bare sleep standing in for synchronisation.

use std::time::{Duration, Instant};

/// The first pause between two tries; each later pause doubles, up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(5);
/// The longest pause between two tries.
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// Calls `attempt` until `done` holds for what it returned or `within` has passed, and returns
/// the last result either way: the caller asserts on it, so a failure shows what was last seen.
/// `attempt` runs at least once; the pauses between tries start at 5 ms and grow to 100 ms.
pub fn poll_until<T>(
    within: Duration,
    mut attempt: impl FnMut() -> T,
    mut done: impl FnMut(&T) -> bool,
) -> T {
    let deadline = Instant::now() + within;
    let mut pause = FIRST_PAUSE;
    loop {
        let result = attempt();
        let now = Instant::now();
        if done(&result) || now >= deadline {
            return result;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Polls `condition` until it holds or `within` has passed, as [`poll_until`] does; returns
/// whether it held at the last try.
pub fn wait_until(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    poll_until(within, &mut condition, |held| *held)
}

/// Polls `attempt` until it returns `Some`, as [`poll_until`] does, and returns what it held.
///
/// # Panics
///
/// When `within` passes first, with a message naming `what` was awaited.
pub fn eventually<T>(within: Duration, what: &str, mut attempt: impl FnMut() -> Option<T>) -> T {
    poll_until(within, &mut attempt, Option::is_some)
        .unwrap_or_else(|| panic!("gave up waiting for {what} after {within:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_that_comes_true_is_seen_and_its_value_returned() {
        let mut tries = 0;
        let found = eventually(Duration::from_secs(5), "the third try", || {
            tries += 1;
            (tries == 3).then_some(tries)
        });
        assert_eq!(found, 3);
    }

    #[test]
    fn a_condition_that_never_holds_returns_the_last_result_after_the_deadline() {
        let started = Instant::now();
        let mut tries = 0;
        let last = poll_until(
            Duration::from_millis(50),
            || {
                tries += 1;
                tries
            },
            |_| false,
        );
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(last >= 2, "tried {last} times");
        assert!(!wait_until(Duration::ZERO, || false), "a zero budget still tries once");
    }

    #[test]
    #[should_panic(expected = "gave up waiting for nothing after")]
    fn eventually_panics_naming_what_it_waited_for() {
        eventually(Duration::from_millis(20), "nothing", || None::<()>);
    }
}
