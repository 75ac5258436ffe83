//! Blocking work kept off the async worker threads.
//!
//! cortend serves every RPC from a few tokio workers (one per core). A
//! worker that blocks, in an fsync, in a `rmdir`, waiting for a lock a
//! commit holds, or in the `vfork` of a process spawn (the parent waits
//! until the child has exec'd, which on a loaded machine takes
//! milliseconds), holds up every task queued behind it, reads included.
//! [`run`] and [`spawn`] hand the worker's queue to another thread first.

use std::io;

/// Runs `f`, which may block (file I/O, a lock held across a commit),
/// without holding up the other tasks of the async worker it is called
/// on: on a multi-threaded runtime the worker hands its queue to another
/// thread first (`block_in_place`). Elsewhere (a blocking thread, a
/// current-thread runtime in tests, no runtime) `f` just runs.
pub fn run<T>(f: impl FnOnce() -> T) -> T {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// Starts `command` as [`run`] runs blocking work: the fork (or vfork)
/// and exec wait in the calling thread.
pub fn spawn(command: &mut tokio::process::Command) -> io::Result<tokio::process::Child> {
    run(|| command.spawn())
}

/// Runs `command` to its end and collects its output, started as by
/// [`spawn`] (stdout and stderr piped, as `Command::output` does).
pub async fn output(command: &mut tokio::process::Command) -> io::Result<std::process::Output> {
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    spawn(command)?.wait_with_output().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn blocked_work_does_not_hold_up_the_worker() {
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().expect("gate");
        let waiter = gate.clone();
        let (answer, ()) = crate::testing::while_blocked(
            move || run(|| drop(waiter.lock())),
            || "answered",
            || drop(held),
        );
        assert_eq!(answer, "answered");
    }

    #[test]
    fn runs_inline_without_a_multi_thread_runtime() {
        assert_eq!(run(|| 7), 7);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        assert_eq!(rt.block_on(async { run(|| 8) }), 8);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn output_collects_what_the_command_wrote() {
        let mut sh = tokio::process::Command::new("/bin/sh");
        sh.args(["-c", "echo hi; echo err >&2; exit 3"]);
        let out = output(&mut sh).await.expect("sh runs");
        assert_eq!(out.stdout, b"hi\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(3));
    }
}
