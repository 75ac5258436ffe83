//! The shim's side of the container init: fork, hook, sync, start.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{pipe2, Pid};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::birth::{fork_into, CgroupBirth, Forked};

use super::child;
use super::error::{Context, Error, Result};
use super::sync::{self, Report};

/// The container's standard streams. For a tty, the pty slave on all three.
#[derive(Debug)]
pub struct Stdio {
    /// Standard input; `None` reads `/dev/null`.
    pub stdin: Option<OwnedFd>,
    /// Standard output.
    pub stdout: OwnedFd,
    /// Standard error.
    pub stderr: OwnedFd,
}

/// A forked container init, set up and blocked before its exec.
///
/// Dropping it without [`Init::start`] makes the child exit (it reads
/// end-of-file where it waits for "start"); the caller still reaps it.
#[derive(Debug)]
pub struct Init {
    pid: Pid,
    to_child: OwnedFd,
    from_child: OwnedFd,
}

impl Init {
    /// The init's pid, as the shim sees it.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// Lets the init install seccomp and exec the command. Returns once the
    /// exec has happened, or with the reason it could not (the child then
    /// exits with status 127; the caller reaps it).
    pub fn start(self) -> Result<()> {
        let pid = self.pid.as_raw();
        sync::write_all(&self.to_child, &[sync::START])
            .ctx(|| format!("signal start to container init {pid}"))?;
        match sync::read_report(&self.from_child)
            .ctx(|| format!("read exec result of container init {pid}"))?
        {
            Report::Eof => Ok(()),
            Report::Failed { kind, message } => Err(Error::Init { kind, message }),
            Report::Ready => Err(Error::Init {
                kind: crate::ErrorKind::Internal,
                message: "init reported ready twice".into(),
            }),
        }
    }
}

/// Forks the container init from the single-threaded shim.
///
/// With `cgroup`, the child is born in it (see [`CgroupBirth`]): it is
/// there before it does anything else, so a cgroup namespace it makes has
/// the container's cgroup as its root. The child joins or creates its
/// namespaces, sets up the mounts, pivots into `rootfs` and applies the
/// process settings of `spec`, and blocks before exec. Returns once the
/// child is blocked, or with the child's error (the child is then reaped).
/// The command runs on [`Init::start`].
pub fn spawn_init(
    spec: &Spec,
    rootfs: &Path,
    stdio: Stdio,
    seccomp: Option<seccompiler::BpfProgram>,
    cgroup: Option<&CgroupBirth>,
) -> Result<Init> {
    let plan = child::Plan::new(spec, rootfs)?;
    let (go_read, go_write) = pipe2(OFlag::O_CLOEXEC).ctx(|| "create sync pipe")?;
    let (report_read, report_write) = pipe2(OFlag::O_CLOEXEC).ctx(|| "create sync pipe")?;
    // With a user namespace, a new pid namespace must be made inside it:
    // the child does that (see `child::reborn`), the shim stays root here.
    let saved_pid_ns = if plan.reborn() {
        None
    } else {
        enter_pid_namespace(spec)?
    };

    // SAFETY: the shim calling this is single-threaded (see DESIGN.md,
    // process model), so the child is a complete copy of the only thread and
    // may run any code, allocation included.
    let forked = unsafe { fork_into(cgroup) };
    match forked {
        Ok(Forked::Child { born_in_unified }) => {
            drop(go_write);
            drop(report_read);
            let joined = cgroup.map_or(Ok(()), |c| c.join_self(born_in_unified));
            child::run(plan, joined, stdio, seccomp, go_read, report_write)
        }
        Ok(Forked::Parent(child)) => {
            restore_pid_namespace(saved_pid_ns)?;
            drop(go_read);
            drop(report_write);
            drop(stdio);
            parent(child, go_write, report_read)
        }
        Err(e) => {
            restore_pid_namespace(saved_pid_ns)?;
            Err(e)
        }
    }
}

fn parent(mut pid: Pid, to_child: OwnedFd, from_child: OwnedFd) -> Result<Init> {
    let report = match sync::read_pid_or_report(&from_child) {
        Ok(Ok(init)) => {
            // The child forked the init (see `child::reborn`) and exits:
            // the init, reparented to this subreaper shim once the child is
            // reaped, is the container; it goes on when told so.
            reap(pid);
            pid = Pid::from_raw(init);
            sync::write_all(&to_child, &[sync::ADOPTED])
                .and_then(|()| sync::read_report(&from_child))
        }
        Ok(Err(report)) => Ok(report),
        Err(e) => Err(e),
    };
    match report {
        Ok(Report::Ready) => Ok(Init {
            pid,
            to_child,
            from_child,
        }),
        Ok(Report::Failed { kind, message }) => {
            reap(pid);
            Err(Error::Init { kind, message })
        }
        Ok(Report::Eof) => Err(Error::InitDied {
            pid: pid.as_raw(),
            status: reap(pid),
        }),
        Err(source) => {
            reap_killed(pid);
            Err(Error::Sys {
                op: format!("read report of container init {pid}"),
                source,
            })
        }
    }
}

/// Waits for `pid` and describes how it ended.
fn reap(pid: Pid) -> String {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return format!("exited with status {code}"),
            Ok(WaitStatus::Signaled(_, sig, _)) => return format!("was killed by {sig}"),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return format!("could not be reaped ({e})"),
        }
    }
}

fn reap_killed(pid: Pid) {
    let _ = kill(pid, Signal::SIGKILL);
    reap(pid);
}

/// Points the shim's `pid_for_children` at the container's pid namespace:
/// a new one (`unshare`), so the forked child is its pid 1, or the one at
/// the spec's path. Returns the shim's own pid namespace to restore after
/// the fork, so later children of the shim stay in it.
fn enter_pid_namespace(spec: &Spec) -> Result<Option<OwnedFd>> {
    let Some(ns) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|nss| nss.iter().find(|n| n.typ() == LinuxNamespaceType::Pid))
    else {
        return Ok(None);
    };
    let own = open(
        "/proc/self/ns/pid",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open /proc/self/ns/pid")?;
    match ns.path() {
        Some(path) => {
            let fd = open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                .ctx(|| format!("open pid namespace {}", path.display()))?;
            setns(&fd, CloneFlags::CLONE_NEWPID)
                .ctx(|| format!("join pid namespace {}", path.display()))?;
        }
        None => unshare(CloneFlags::CLONE_NEWPID).ctx(|| "unshare pid namespace")?,
    }
    Ok(Some(own))
}

fn restore_pid_namespace(saved: Option<OwnedFd>) -> Result<()> {
    if let Some(fd) = saved {
        setns(&fd, CloneFlags::CLONE_NEWPID)
            .ctx(|| format!("restore the shim's pid namespace (fd {})", fd.as_raw_fd()))?;
    }
    Ok(())
}
