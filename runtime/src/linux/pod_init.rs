//! The tiny init of a pod that shares one pid namespace among its
//! containers (`corten-shim pod-init`).
//!
//! [`spawn_pod_init`] unshares a new pid namespace and forks: the child is
//! pid 1 there. It detaches (new session, cwd `/`, stdio on `/dev/null`, so
//! a parent reading the helper's stdout sees end-of-file when the helper
//! exits) and reaps whatever exits in the namespace, forever. Signals
//! without a handler never reach a pid 1 from inside its namespace; SIGKILL
//! from the host ends it and with it every process of the namespace.
//!
//! Containers join it by path: `setns(open("/proc/<pid>/ns/pid"),
//! CLONE_NEWPID)` before forking their init (the spec's pid namespace path),
//! so they become children of nothing in the namespace and orphans are
//! reparented to this init, which reaps them.

use std::io::Read as _;
use std::os::fd::AsRawFd as _;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{pipe2, Pid};

use super::birth::{fork_into, CgroupBirth, Forked};
use super::error::{Context, Result};
use super::userns;

/// Starts the pod's init in a new pid namespace, born in `cgroup` if given
/// (see [`CgroupBirth`]), and returns its pid as the caller sees it. With
/// `userns` (the pod's pinned user namespace) the pid namespace is owned by
/// it, so that the pod's containers can mount its proc. For the
/// single-threaded `corten-shim pod-init`.
pub fn spawn_pod_init(cgroup: Option<&CgroupBirth>, userns: Option<&Path>) -> Result<i32> {
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    if let Some(path) = userns {
        // This helper needs no more of the host's privileges: the init is
        // born in its cgroup by clone3, whose directory the host uid 0 (kept
        // in the user namespace, unmapped there) may write.
        let fd = userns::open_userns(path)?;
        setns(&fd, CloneFlags::CLONE_NEWUSER).ctx(|| "join the pod's user namespace")?;
    }
    unshare(CloneFlags::CLONE_NEWPID).ctx(|| "unshare a pid namespace")?;
    let (report_read, report_write) = pipe2(OFlag::O_CLOEXEC).ctx(|| "create sync pipe")?;
    // SAFETY: the caller is the single-threaded helper; the child only makes
    // system calls through nix and never returns into the caller's code.
    match unsafe { fork_into(cgroup) }? {
        Forked::Parent(child) => {
            drop(report_write);
            // `R`: the child is in its cgroup; `E` and a message: it is not.
            let mut said = Vec::new();
            let read = std::fs::File::from(report_read).read_to_end(&mut said);
            if said.first() == Some(&b'R') {
                return Ok(child.as_raw());
            }
            let _ = waitpid(child, None);
            Err(super::error::Error::Io {
                op: format!("pod init (pid {child})"),
                source: match read {
                    Err(e) => e,
                    Ok(_) => std::io::Error::other(match said.strip_prefix(b"E") {
                        Some(why) => String::from_utf8_lossy(why).into_owned(),
                        None => "ended before joining its cgroup".into(),
                    }),
                },
            })
        }
        Forked::Child { born_in_unified } => {
            drop(report_read);
            if let Some(cg) = cgroup {
                if let Err(e) = cg.join_self(born_in_unified) {
                    let _ = nix::unistd::write(&report_write, format!("E{e}").as_bytes());
                    // SAFETY: _exit takes no pointers and never returns.
                    unsafe { libc::_exit(1) };
                }
            }
            // Dropped unsent if the parent is gone; the child goes on.
            let _ = nix::unistd::write(&report_write, b"R");
            drop(report_write);
            let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&chld), None);
            detach();
            reap_forever(&chld)
        }
    }
}

fn detach() {
    let _ = nix::unistd::setsid();
    let _ = nix::unistd::chdir("/");
    if let Ok(null) = open("/dev/null", OFlag::O_RDWR, Mode::empty()) {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors, which this process
            // owns; `null` stays valid across the calls.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

fn reap_forever(chld: &SigSet) -> ! {
    loop {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => break,
            }
        }
        let _ = chld.wait();
    }
}
