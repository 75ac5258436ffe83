//! Waiting for a condition in a test: `cond` is polled until it holds. The
//! limit only exists to fail a test instead of hanging it; it is never a
//! timing assertion, so make it generous.

use std::time::{Duration, Instant};

/// The longest pause between two polls.
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// Polls `cond` until it holds or `limit` has passed; whether it held.
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

/// [`until`] for async tests: pauses without blocking the runtime.
pub async fn until_async(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(5);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}
