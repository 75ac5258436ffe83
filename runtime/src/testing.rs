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

/// Runs `blocked`, which blocks until `release` is called (a future whose
/// first poll goes straight into the blocking call, as sync code called
/// from an async fn does), in a task of a runtime with one async worker,
/// and then `meanwhile` in another task: `meanwhile` can only run if
/// `blocked` left the worker free. Returns what `meanwhile` answered while
/// `blocked` was blocked, and then what `blocked` returned. Panics, after
/// `release`, if `meanwhile` did not answer (the limit only turns a hang
/// into a failure).
pub(crate) fn while_blocked<T, R>(
    blocked: impl std::future::Future<Output = T> + Send + 'static,
    meanwhile: impl FnOnce() -> R + Send + 'static,
    release: impl FnOnce(),
) -> (R, T)
where
    T: Send + 'static,
    R: Send + 'static,
{
    let limit = Duration::from_secs(30);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime with one worker");
    let (started_tx, started) = std::sync::mpsc::channel();
    let task = rt.spawn(async move {
        let _ = started_tx.send(());
        // Nothing yields between the message and the blocking call.
        blocked.await
    });
    started.recv_timeout(limit).expect("the blocking task ran");
    let (answer_tx, answer) = std::sync::mpsc::channel();
    rt.spawn(async move {
        let _ = answer_tx.send(meanwhile());
    });
    let answered = answer.recv_timeout(limit);
    release();
    let answered = answered.expect("another task ran on the worker while the first one blocked");
    let result = rt.block_on(task).expect("the blocking task finished");
    (answered, result)
}
