//! Exec into a running container, daemon side: `corten-shim exec` is
//! spawned (the daemon never forks), its output captured up to a cap, and
//! killed when its time is up.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _};

use super::runtime::check_id;
use super::{ContainerRuntime, Error};
use crate::shim::{State, Status};

/// How long the output pipes may stay open after the helper has exited
/// (a background process of the command may hold them).
const IO_GRACE: Duration = Duration::from_millis(500);

/// A command to run in a container.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// The command and its arguments.
    pub args: Vec<String>,
    /// `KEY=VALUE` entries added to (or replacing those of) the container's env.
    pub env: Vec<String>,
    /// The working directory; `None` is the container's.
    pub cwd: Option<PathBuf>,
    /// Run on a pty (stdout and stderr then come merged on stdout).
    pub tty: bool,
    /// With `tty`: a FIFO the caller writes `WIDTH HEIGHT` lines to.
    pub resize_fifo: Option<PathBuf>,
    /// Kill the command after this long.
    pub timeout: Option<Duration>,
    /// Keep at most this many bytes of stdout, and of stderr (the rest is
    /// read and counted, not kept).
    pub output_cap: usize,
}

/// How a synchronous exec ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// The exit code (128 + signal when killed); meaningless when `timed_out`.
    pub exit_code: i32,
    /// Standard output, up to the cap.
    pub stdout: Vec<u8>,
    /// Standard error, up to the cap.
    pub stderr: Vec<u8>,
    /// The timeout expired and the command was killed.
    pub timed_out: bool,
    /// Bytes the command wrote to stdout, kept or not: more than
    /// `stdout.len()` when output past the cap was dropped.
    pub stdout_written: u64,
    /// Bytes the command wrote to stderr, kept or not.
    pub stderr_written: u64,
}

impl ExecOutput {
    /// Output past the cap was dropped (stdout or stderr).
    pub fn truncated(&self) -> bool {
        self.stdout_written > self.stdout.len() as u64
            || self.stderr_written > self.stderr.len() as u64
    }
}

impl ContainerRuntime {
    /// Refuses (FailedPrecondition) unless container `id` is running.
    pub async fn ensure_running(&self, id: &str) -> Result<(), Error> {
        running_or_refused(id, &self.state(id).await?)
    }

    /// The `corten-shim exec` command for `req` in container `id`, stdio
    /// not set: the streaming server attaches its pipes (or, with `tty`,
    /// the helper relays a pty of its own to them). Call
    /// [`Self::ensure_running`] first for a precise error; the helper
    /// refuses anyway (exit 125) when the container is not running.
    pub fn exec_command(
        &self,
        id: &str,
        req: &ExecRequest,
    ) -> Result<tokio::process::Command, Error> {
        check_id(id)?;
        let invalid = |reason: String| Error::InvalidExec {
            id: id.to_string(),
            reason,
        };
        if req.args.first().is_none_or(String::is_empty) {
            return Err(invalid("the command is empty".into()));
        }
        for e in &req.env {
            if e.split_once('=').is_none_or(|(k, _)| k.is_empty()) {
                return Err(invalid(format!("env entry {e:?} is not KEY=VALUE")));
            }
        }
        if let Some(cwd) = &req.cwd {
            if !cwd.is_absolute() {
                return Err(invalid(format!(
                    "working directory {} is not absolute",
                    cwd.display()
                )));
            }
        }
        if req.args.iter().chain(&req.env).any(|s| s.contains('\0')) {
            return Err(invalid("the command or env contains a NUL byte".into()));
        }
        let bundle = self.bundle(id);
        if !bundle.is_dir() {
            return Err(Error::NotFound { id: id.to_string() });
        }
        let mut cmd = tokio::process::Command::new(self.shim_binary());
        cmd.arg("exec").arg("--bundle").arg(&bundle);
        if req.tty {
            cmd.arg("--tty");
            if let Some(fifo) = &req.resize_fifo {
                cmd.arg("--resize-fifo").arg(fifo);
            }
        }
        if let Some(cwd) = &req.cwd {
            cmd.arg("--cwd").arg(cwd);
        }
        for e in &req.env {
            cmd.arg("--env").arg(e);
        }
        cmd.arg("--").args(&req.args);
        Ok(cmd)
    }

    /// Runs `req` in container `id` and collects its output. A timeout is
    /// not an error: the command's process group and the helper are killed
    /// (SIGKILL; the command also has PDEATHSIG set) and `timed_out` is set.
    pub async fn exec_sync(&self, id: &str, req: ExecRequest) -> Result<ExecOutput, Error> {
        let mut cmd = self.exec_command(id, &req)?;
        self.ensure_running(id).await?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = crate::blocking::spawn(&mut cmd).map_err(|source| Error::Spawn {
            id: id.to_string(),
            action: format!("cannot start {} exec", self.shim_binary().display()),
            source,
        })?;
        let cap = req.output_cap;
        let stdout = child.stdout.take().map(|s| tokio::spawn(capture(s, cap)));
        let stderr = child.stderr.take().map(|s| tokio::spawn(capture(s, cap)));

        let (status, timed_out) = match req.timeout {
            Some(limit) => match tokio::time::timeout(limit, child.wait()).await {
                Ok(status) => (status, false),
                Err(_) => (stop_exec(&mut child).await, true),
            },
            None => (child.wait().await, false),
        };
        let status = status.map_err(|source| Error::Spawn {
            id: id.to_string(),
            action: "waiting for the exec helper".into(),
            source,
        })?;
        let mut out = ExecOutput {
            exit_code: exit_code(status),
            timed_out,
            ..ExecOutput::default()
        };
        let streams = [
            (stdout, &mut out.stdout, &mut out.stdout_written),
            (stderr, &mut out.stderr, &mut out.stderr_written),
        ];
        for (task, buf, written) in streams {
            let Some(mut task) = task else { continue };
            match tokio::time::timeout(IO_GRACE, &mut task).await {
                Ok(Ok((bytes, total))) => {
                    *buf = bytes;
                    *written = total;
                }
                Ok(Err(_)) => {}
                Err(_) => {
                    // Something the command left behind holds the pipe.
                    task.abort();
                    tracing::debug!(container = id, "exec output still open after exit");
                }
            }
        }
        tracing::debug!(container = id, code = out.exit_code, timed_out, "exec done");
        Ok(out)
    }
}

/// Refuses (FailedPrecondition) unless `state`, container `id`'s, is running.
pub(super) fn running_or_refused(id: &str, state: &State) -> Result<(), Error> {
    if state.status == Status::Running && state.exit.is_none() {
        return Ok(());
    }
    let what = match state.status {
        Status::Created => "has not been started",
        Status::Running | Status::Exited => "has exited",
    };
    Err(Error::Refused {
        id: id.to_string(),
        message: format!("{what}: cannot exec in a container that is not running"),
    })
}

/// Ends an exec helper and its command: SIGKILL to the command's process
/// group first, so the helper reaps it (a command whose helper died first
/// would be reparented to the container's init, which may never reap it,
/// and linger as a zombie); the helper itself is killed only if it has not
/// exited within a second.
pub async fn stop_exec(
    child: &mut tokio::process::Child,
) -> std::io::Result<std::process::ExitStatus> {
    if let Some(pid) = child.id() {
        kill_exec_group(pid);
    }
    match tokio::time::timeout(Duration::from_secs(1), child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            let _ = child.start_kill();
            child.wait().await
        }
    }
}

/// SIGKILLs the process group of the helper's child (the exec'd command,
/// a session leader, and what it forked), so a timed-out `sh -c` takes its
/// children along. The child cannot be reaped (so its pid not reused)
/// while the helper, not yet killed, lives.
fn kill_exec_group(helper: u32) {
    let path = format!("/proc/{helper}/task/{helper}/children");
    let children = std::fs::read_to_string(path).unwrap_or_default();
    for pid in children
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
    {
        let group = nix::unistd::Pid::from_raw(-pid);
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
    }
}

/// The exit code of the helper: its code, or 128 + the signal that killed it.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => -1,
    }
}

/// Reads `r` to its end, keeping the first `cap` bytes; how many came.
async fn capture(mut r: impl AsyncRead + Unpin, cap: usize) -> (Vec<u8>, u64) {
    let mut kept = Vec::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, total),
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                total = total.saturating_add(n as u64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_when_more_was_written_than_kept() {
        let mut out = ExecOutput {
            stdout: b"abc".to_vec(),
            stdout_written: 3,
            ..ExecOutput::default()
        };
        assert!(!out.truncated());
        out.stderr_written = 1;
        assert!(out.truncated(), "stderr lost a byte");
    }

    #[tokio::test]
    async fn capture_keeps_the_cap_and_reads_on() {
        let data = vec![b'x'; 100_000];
        let (kept, total) = capture(&data[..], 10).await;
        assert_eq!((kept.len(), total), (10, 100_000));
        let (kept, total) = capture(&data[..5], 10).await;
        assert_eq!((kept.len(), total), (5, 5));
    }

    #[test]
    fn refuses_malformed_requests() {
        let rt = ContainerRuntime::new(
            std::path::Path::new("/nonexistent-state"),
            std::path::Path::new("/nonexistent-root"),
            std::path::Path::new("/bin/false"),
        );
        let req = |args: &[&str], env: &[&str]| ExecRequest {
            args: args.iter().map(|s| s.to_string()).collect(),
            env: env.iter().map(|s| s.to_string()).collect(),
            ..ExecRequest::default()
        };
        let kind = |r: Result<tokio::process::Command, Error>| r.err().map(|e| e.kind());
        use crate::ErrorKind::{InvalidArgument, NotFound};
        assert_eq!(
            kind(rt.exec_command("c", &req(&[], &[]))),
            Some(InvalidArgument)
        );
        assert_eq!(
            kind(rt.exec_command("c", &req(&["ls"], &["X"]))),
            Some(InvalidArgument)
        );
        assert_eq!(
            kind(rt.exec_command("../x", &req(&["ls"], &[]))),
            Some(InvalidArgument)
        );
        assert_eq!(
            kind(rt.exec_command("c", &req(&["ls"], &["A=1"]))),
            Some(NotFound)
        );
    }
}
