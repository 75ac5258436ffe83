//! Running the real kubectl against a test cluster: one-shot commands
//! ([`Kubectl`]), and long-running ones whose output is read while they
//! run ([`Streamed`]: `logs -f`, `port-forward`, a terminal session).

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use crate::wait;

/// What one kubectl invocation did.
pub struct Kubectl {
    pub(crate) args: Vec<String>,
    /// The process output.
    pub output: Output,
}

impl Kubectl {
    /// Standard output as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// Standard error as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Whether kubectl exited 0.
    pub fn success(&self) -> bool {
        self.output.status.success()
    }

    /// Standard output, after checking kubectl succeeded.
    pub fn ok(&self) -> String {
        assert!(
            self.success(),
            "kubectl {:?} failed ({}):\nstdout: {}\nstderr: {}",
            self.args,
            self.output.status,
            self.stdout(),
            self.stderr()
        );
        self.stdout()
    }

    /// Standard error, after checking kubectl failed.
    pub fn fails(&self) -> String {
        assert!(
            !self.success(),
            "kubectl {:?} should have failed:\nstdout: {}",
            self.args,
            self.stdout()
        );
        self.stderr()
    }

    /// Standard output parsed as JSON, after checking kubectl succeeded.
    pub fn json(&self) -> Value {
        let out = self.ok();
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("kubectl {:?}: not JSON ({e}): {out}", self.args))
    }
}

/// A kubectl (or a command wrapping it) still running, its output read
/// by threads of its own; killed when dropped.
pub struct Streamed {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Streamed {
    /// Starts `cmd` with piped stdio.
    pub fn spawn(mut cmd: Command, what: &str) -> Streamed {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        let stdin = child.stdin.take();
        let (out_reader, stdout) = collect(child.stdout.take());
        let (err_reader, stderr) = collect(child.stderr.take());
        Streamed {
            what: what.to_string(),
            child,
            stdin,
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
        }
    }

    /// What it wrote to stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// Waits until stdout holds `cond`; panics after `limit` with what it
    /// wrote.
    pub fn wait_stdout(&mut self, what: &str, limit: Duration, mut cond: impl FnMut(&str) -> bool) {
        let held = wait::within(limit, || cond(&self.stdout()));
        assert!(
            held,
            "{}: timed out after {limit:?} waiting for {what}\nstdout: {:?}\nstderr: {:?}\nexited: {:?}",
            self.what,
            self.stdout(),
            self.stderr(),
            self.child.try_wait()
        );
    }

    /// Writes `text` to its stdin.
    pub fn write(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin
            .write_all(text.as_bytes())
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("{}: write stdin: {e}", self.what));
    }

    /// Closes its stdin.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits up to `limit` for it to exit; its status, `None` if it runs on.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait::within(limit, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Streamed {
    fn drop(&mut self) {
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

/// Reads `pipe` to its end on a thread of its own; what it read so far.
fn collect(pipe: Option<impl Read + Send + 'static>) -> (JoinHandle<()>, Arc<Mutex<Vec<u8>>>) {
    let sink = Arc::new(Mutex::new(Vec::new()));
    let kept = sink.clone();
    let reader = std::thread::spawn(move || {
        let Some(mut pipe) = pipe else { return };
        let mut buf = [0u8; 8192];
        while let Ok(n @ 1..) = pipe.read(&mut buf) {
            kept.lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(&buf[..n]);
        }
    });
    (reader, sink)
}
