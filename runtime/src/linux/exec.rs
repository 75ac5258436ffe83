//! Exec into a running container, from a fresh single-threaded helper
//! (`corten-shim exec`): join the init's namespaces, fork into its pid
//! namespace and cgroup, apply the container's process settings, exec.
//!
//! The helper's own stdin, stdout and stderr are the process's stdio; with
//! `tty`, the helper opens a pty in the container's devpts, gives the slave
//! to the process and relays between its own stdio and the master.
//!
//! Sync: the child reports a setup or exec failure on a close-on-exec pipe
//! (an error record, then exit 125, or 127/126 when the exec itself failed);
//! a successful exec closes the pipe.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::fcntl::{open, OFlag};
use nix::sched::{setns, CloneFlags};
use nix::sys::stat::{fstat, Mode};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{pipe2, Pid};
use oci_spec::runtime::Spec;

use super::birth::{fork_into, CgroupBirth, Forked};
use super::caps::Sets;
use super::error::{Context, Error, Result};
use super::process::Command;
use super::sync::{self, Report};
use super::{exec_child, relay};

/// Exit status of a process that could not be set up (the helper's own
/// failures use it too).
pub const EXIT_SETUP_FAILED: i32 = 125;
/// Exit status when the command exists but cannot be executed.
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
/// Exit status when the command is not found.
pub const EXIT_NOT_FOUND: i32 = 127;

/// What to run in the container and how.
#[derive(Debug)]
pub struct ExecOptions<'a> {
    /// The container's init, as the host sees it.
    pub init_pid: i32,
    /// The container's spec: user, capabilities, no_new_privs, rlimits,
    /// env and cwd of its process.
    pub spec: &'a Spec,
    /// The command; empty means the spec's `process.args`.
    pub args: Vec<String>,
    /// `K=V` entries added to (or replacing those of) the spec's env.
    pub env: Vec<String>,
    /// The working directory; `None` means the spec's `process.cwd`.
    pub cwd: Option<PathBuf>,
    /// Run the process on a new pty, relayed to the helper's stdio.
    pub tty: bool,
    /// The container's compiled seccomp filter, if it has one.
    pub seccomp: Option<seccompiler::BpfProgram>,
    /// With `tty`: a FIFO (opened non-blocking, before any namespace is
    /// joined) carrying lines `WIDTH HEIGHT` to resize the pty with.
    pub resize: Option<std::os::fd::OwnedFd>,
}

/// What the child does, checked before anything is joined.
pub(super) struct ExecPlan {
    pub(super) command: Command,
    pub(super) cwd: PathBuf,
    pub(super) caps: Option<Sets>,
    pub(super) no_new_privs: bool,
    pub(super) user: oci_spec::runtime::User,
    pub(super) rlimits: Vec<oci_spec::runtime::PosixRlimit>,
    pub(super) oom_score_adj: Option<i32>,
    pub(super) seccomp: Option<seccompiler::BpfProgram>,
}

/// The spec's env with `extra` applied: a key already there is replaced.
fn merge_env(base: &[String], extra: &[String]) -> Result<Vec<String>> {
    let mut env = base.to_vec();
    for e in extra {
        let Some((key, _)) = e.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(Error::InvalidSpec(format!(
                "env entry {e:?} is not KEY=VALUE"
            )));
        };
        let prefix = format!("{key}=");
        match env.iter_mut().find(|old| old.starts_with(&prefix)) {
            Some(old) => old.clone_from(e),
            None => env.push(e.clone()),
        }
    }
    Ok(env)
}

impl ExecPlan {
    fn new(opts: &mut ExecOptions<'_>) -> Result<ExecPlan> {
        let proc = opts
            .spec
            .process()
            .as_ref()
            .ok_or_else(|| Error::InvalidSpec("no process".into()))?;
        let args = if opts.args.is_empty() {
            proc.args().clone().unwrap_or_default()
        } else {
            opts.args.clone()
        };
        let env = merge_env(proc.env().as_deref().unwrap_or_default(), &opts.env)?;
        let cwd = opts.cwd.clone().unwrap_or_else(|| proc.cwd().clone());
        if !cwd.is_absolute() {
            return Err(Error::InvalidSpec(format!(
                "working directory {} is not absolute",
                cwd.display()
            )));
        }
        Ok(ExecPlan {
            command: Command::new(&args, &env)?,
            cwd,
            caps: proc.capabilities().as_ref().map(Sets::new).transpose()?,
            no_new_privs: proc.no_new_privileges().unwrap_or(false),
            user: proc.user().clone(),
            rlimits: proc.rlimits().clone().unwrap_or_default(),
            oom_score_adj: proc.oom_score_adj(),
            seccomp: opts.seccomp.take(),
        })
    }
}

/// The namespaces joined, in order: the user namespace (a pod's) first,
/// since it owns the others; the mount namespace last, so the others are
/// opened through the host's /proc and the cwd is set after it. The helper
/// stays host uid 0 after joining the user namespace (unmapped there, with
/// all capabilities in it): the child is born in the container's cgroup,
/// which only the host's root may write, and takes the container's user
/// after the fork.
const NAMESPACES: [(&str, CloneFlags); 7] = [
    ("user", CloneFlags::CLONE_NEWUSER),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// Opens the init's namespaces that differ from the helper's own (a
/// container on a host namespace shares it).
fn open_namespaces(pid: i32) -> Result<Vec<(OwnedFd, CloneFlags, String)>> {
    let mut out = Vec::new();
    for (name, flag) in NAMESPACES {
        let path = format!("/proc/{pid}/ns/{name}");
        let theirs = match open(
            path.as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ESRCH) => {
                return Err(Error::NoProcess { pid })
            }
            Err(source) => {
                return Err(Error::Sys {
                    op: format!("open {path}"),
                    source,
                })
            }
        };
        let own_path = format!("/proc/self/ns/{name}");
        let own = nix::sys::stat::stat(own_path.as_str()).ctx(|| format!("stat {own_path}"))?;
        let st = fstat(&theirs).ctx(|| format!("stat {path}"))?;
        if (st.st_dev, st.st_ino) != (own.st_dev, own.st_ino) {
            out.push((theirs, flag, path));
        }
    }
    Ok(out)
}

/// Runs a command in the running container whose init is
/// `opts.init_pid`, and returns its exit code (128 + signal when killed).
///
/// `check()` runs once the namespace files are open and before they are
/// joined, and may refuse (e.g. the container has exited). The process is
/// born in `cgroup` (the container's, opened by the caller in the host's
/// namespaces; see [`CgroupBirth`]); the helper itself joins no cgroup.
/// Must be called from a single-threaded process: it forks.
///
/// A command that is not found or not executable is
/// [`Error::ExecProcess`] with exit code 127 or 126.
pub fn exec_process(
    mut opts: ExecOptions<'_>,
    check: &mut dyn FnMut() -> std::result::Result<(), String>,
    cgroup: Option<&CgroupBirth>,
) -> Result<i32> {
    let plan = ExecPlan::new(&mut opts)?;
    let resize = opts.resize.take().filter(|_| opts.tty);
    let pid = opts.init_pid;
    let namespaces = open_namespaces(pid)?;
    check().map_err(|message| Error::ExecProcess {
        kind: crate::ErrorKind::FailedPrecondition,
        message,
        code: EXIT_SETUP_FAILED,
    })?;
    for (fd, flag, path) in &namespaces {
        setns(fd, *flag).ctx(|| format!("join {path}"))?;
    }
    drop(namespaces);

    // Opened in the container's mount namespace: the pty is one of its own.
    let pty = if opts.tty {
        Some(super::open_pty()?)
    } else {
        None
    };
    let (report_read, report_write) = pipe2(OFlag::O_CLOEXEC).ctx(|| "create sync pipe")?;
    let (alive_read, alive_write) = pipe2(OFlag::O_CLOEXEC).ctx(|| "create sync pipe")?;
    let sigchld = if opts.tty {
        Some(relay::sigchld_fd()?)
    } else {
        None
    };

    // SAFETY: the helper calling this is single-threaded (see DESIGN.md,
    // process model), so the child is a complete copy of the only thread and
    // may run any code, allocation included.
    let forked = unsafe { fork_into(cgroup) };
    match forked {
        Ok(Forked::Child { born_in_unified }) => {
            drop((report_read, alive_write));
            let (master, slave) = pty.unzip();
            drop(master);
            let joined = cgroup.map_or(Ok(()), |c| c.join_self(born_in_unified));
            exec_child::run(&plan, joined, slave, alive_read, report_write)
        }
        Ok(Forked::Parent(child)) => {
            drop((report_write, alive_read));
            let (master, slave) = pty.unzip();
            drop(slave);
            let report =
                sync::read_report(&report_read).ctx(|| format!("read the report of exec {child}"));
            let result = match report {
                Ok(Report::Eof) => match (master, sigchld) {
                    (Some(m), Some(s)) => relay::run(child, &m, s, resize.as_ref()),
                    _ => wait(child),
                },
                Ok(Report::Failed { kind, message }) => {
                    let code = wait(child).unwrap_or(EXIT_SETUP_FAILED);
                    Err(Error::ExecProcess {
                        kind,
                        message,
                        code,
                    })
                }
                Ok(Report::Ready) => Err(Error::ExecProcess {
                    kind: crate::ErrorKind::Internal,
                    message: "unexpected ready report".into(),
                    code: wait(child).unwrap_or(EXIT_SETUP_FAILED),
                }),
                Err(e) => {
                    let _ = nix::sys::signal::kill(child, nix::sys::signal::SIGKILL);
                    let _ = wait(child);
                    Err(e)
                }
            };
            drop(alive_write);
            result
        }
        Err(e) => Err(e),
    }
}

/// The exit code of a process's status: its code, or 128 + signal.
pub(super) fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Waits for `pid` to end; its exit code.
pub(super) fn wait(pid: Pid) -> Result<i32> {
    loop {
        match waitpid(pid, None) {
            Ok(status) => {
                if let Some(code) = exit_code(status) {
                    return Ok(code);
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(source) => {
                return Err(Error::Sys {
                    op: format!("wait for exec process {pid}"),
                    source,
                })
            }
        }
    }
}

/// Whether the write end of `alive` is still open somewhere (the helper
/// has not died).
pub(super) fn parent_alive(alive: &OwnedFd) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(alive.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(0) => true,
        Ok(_) => !fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_replace_or_append() {
        let base = vec!["PATH=/bin".to_owned(), "A=1".to_owned()];
        let got = merge_env(&base, &["A=2".to_owned(), "B=x=y".to_owned()]).unwrap();
        assert_eq!(got, ["PATH=/bin", "A=2", "B=x=y"]);
        assert!(merge_env(&base, &["noequals".to_owned()]).is_err());
        assert!(merge_env(&base, &["=v".to_owned()]).is_err());
    }
}
