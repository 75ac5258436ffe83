//! Helpers of the unit tests.

use std::time::Duration;

/// Polls `cond` until it holds, yielding to the runtime in between (what
/// it waits for may be a task of the same runtime); panics naming `what`
/// after `limit`, which only exists to fail a test instead of hanging it.
pub(crate) async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = Duration::from_millis(1);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}
