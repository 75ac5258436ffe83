//! Waiting for a condition: `cond` is polled until it holds. The limit only
//! exists to fail a test instead of hanging it; it is never a timing
//! assertion (timings belong to the benchmarks), so make it generous.

use std::time::{Duration, Instant};

/// The longest pause between two polls.
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// Polls `cond` until it holds or `limit` has passed; whether it held.
/// For a caller that reports the failure itself (with what it saw last),
/// or must not panic (a `Drop`).
pub fn within(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(5);
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Polls `cond` until it holds; panics naming `what` after `limit`.
pub fn until(what: &str, limit: Duration, cond: impl FnMut() -> bool) {
    assert!(
        within(limit, cond),
        "timed out after {limit:?} waiting for {what}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_until_the_condition_holds() {
        let mut n = 0;
        until("the third poll", Duration::from_secs(30), || {
            n += 1;
            n == 3
        });
        assert_eq!(n, 3);
    }

    #[test]
    fn gives_up_at_the_limit_having_polled_at_least_once_after_it() {
        let mut polls = 0;
        assert!(!within(Duration::ZERO, || {
            polls += 1;
            false
        }));
        assert_eq!(polls, 1);
    }
}
