//! Blocking work kept off the async worker threads.
//!
//! cortend serves every RPC from a few tokio workers (one per core). A
//! worker that blocks, in an fsync, in a `rmdir`, waiting for a lock a
//! commit holds, or in the `vfork` of a process spawn (the parent waits
//! until the child has exec'd, which on a loaded machine takes
//! milliseconds), holds up every task queued behind it, reads included.
//! [`run`] and [`spawn`] hand the worker's queue to another thread first;
//! work that is serialised anyway (one store's commits) goes to a
//! [`SerialThread`] of its own instead, which the task awaits.

use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

use crate::ErrorKind;

/// Errors of the blocking helpers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The thread could not be started.
    #[error("cannot start the {thread} thread: {source}")]
    Start {
        /// The thread's name.
        thread: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The job panicked (the panic message is on stderr), or the thread
    /// is gone.
    #[error("a job of the {thread} thread failed")]
    Failed {
        /// The thread's name.
        thread: &'static str,
    },
}

impl Error {
    /// The kind of this error: ours.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}

/// Runs `f`, which may block (file I/O, a lock held across a commit),
/// without holding up the other tasks of the async worker it is called
/// on: on a multi-threaded runtime the worker hands its queue to another
/// thread first (`block_in_place`). Elsewhere (a blocking thread, a
/// current-thread runtime in tests, no runtime) `f` just runs.
// Not inlined, so that profiles and stacks show what runs this way.
#[inline(never)]
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
#[inline(never)]
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

type Job = Box<dyn FnOnce() + Send>;

/// A thread of its own that runs jobs one after another, in the order
/// they were handed over: for blocking work that is serialised anyway,
/// such as the commits (each an fsync) of one kind of record. The task
/// that hands a job over awaits its result; no async worker waits for
/// the work, for another job, for the blocking pool's lock or for a
/// thread to take its queue over. A job whose caller went away still
/// runs to its end. The thread ends when this handle is dropped.
#[derive(Debug)]
pub struct SerialThread {
    name: &'static str,
    jobs: mpsc::Sender<Job>,
}

impl SerialThread {
    /// Starts the thread `name` (at most 15 bytes show in `ps`).
    pub fn start(name: &'static str) -> Result<SerialThread, Error> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                for job in queue {
                    job();
                }
            })
            .map_err(|source| Error::Start {
                thread: name,
                source,
            })?;
        Ok(SerialThread { name, jobs })
    }

    /// Runs `f` on the thread, after the jobs handed over before it, and
    /// returns what it returned.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let failed = || Error::Failed { thread: self.name };
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // A job that panics fails its caller, not the thread.
            if let Ok(value) = std::panic::catch_unwind(AssertUnwindSafe(f)) {
                let _ = done.send(value);
            }
        });
        self.jobs.send(job).map_err(|_| failed())?;
        result.await.map_err(|_| failed())
    }

    /// Hands `f` to the thread, after the jobs handed over before it,
    /// without waiting for it. If the thread is gone, `f` runs here and now.
    pub fn submit(&self, f: impl FnOnce() + Send + 'static) {
        let job: Job = Box::new(move || {
            let _ = std::panic::catch_unwind(AssertUnwindSafe(f));
        });
        if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
            job();
        }
    }
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
            async move { run(|| drop(waiter.lock())) },
            || "answered",
            || drop(held),
        );
        assert_eq!(answer, "answered");
    }

    #[tokio::test]
    async fn a_serial_thread_runs_jobs_in_order_and_survives_a_panic() {
        let thread = SerialThread::start("test-serial").expect("thread");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let jobs: Vec<_> = (0..10)
            .map(|i| {
                let seen = seen.clone();
                thread.run(move || seen.lock().expect("seen").push(i))
            })
            .collect();
        for job in futures_util::future::join_all(jobs).await {
            job.expect("job");
        }
        assert_eq!(*seen.lock().expect("seen"), (0..10).collect::<Vec<_>>());
        let panicked = thread.run(|| panic!("a failing job")).await;
        assert!(matches!(panicked, Err(Error::Failed { .. })));
        assert_eq!(thread.run(|| 5).await.expect("still running"), 5);
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
