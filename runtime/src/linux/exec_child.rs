//! The exec'd process between fork and exec, already inside the
//! container's namespaces and cgroup.

use std::convert::Infallible;
use std::os::fd::OwnedFd;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::{chdir, setsid};

use super::error::{Context, Error, Result};
use super::exec::{parent_alive, ExecPlan, EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, EXIT_SETUP_FAILED};
use super::init::Stdio;
use super::process::{self, apply_seccomp};
use super::sync;

/// Ends the child at once: no destructors, no atexit handlers, no flush of
/// stdio buffers copied from the helper.
fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes no pointers and never returns; skipping Rust
    // destructors in a forked child is exactly what is wanted here.
    unsafe { libc::_exit(code) }
}

/// The child's whole life. Any error goes to the helper through `report`,
/// then the child exits: 127 (not found) or 126 (not executable) when the
/// exec failed, 125 when the setup did.
pub(super) fn run(
    plan: &ExecPlan,
    joined: Result<()>,
    tty: Option<OwnedFd>,
    alive: OwnedFd,
    report: OwnedFd,
) -> ! {
    let err = match joined.and_then(|()| setup_and_exec(plan, tty, &alive)) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    sync::send_error(&report, &err);
    exit_now(match err {
        Error::Exec {
            source: Errno::ENOENT | Errno::ENOTDIR,
            ..
        } => EXIT_NOT_FOUND,
        Error::Exec { .. } => EXIT_NOT_EXECUTABLE,
        _ => EXIT_SETUP_FAILED,
    })
}

fn setup_and_exec(plan: &ExecPlan, tty: Option<OwnedFd>, alive: &OwnedFd) -> Result<Infallible> {
    process::reset_signals()?;
    setsid().ctx(|| "setsid")?;
    if let Some(slave) = tty {
        let dup = |fd: &OwnedFd| fd.try_clone().ctx(|| "duplicate the pty slave");
        process::install_stdio(Stdio {
            stdin: Some(dup(&slave)?),
            stdout: dup(&slave)?,
            stderr: slave,
        })?;
        // SAFETY: TIOCSCTTY takes an integer argument, no memory.
        let rc = unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
        Errno::result(rc).ctx(|| "make the pty the controlling terminal")?;
    }
    process::cloexec_above_stdio()?;
    process::set_oom_score_adj(plan.oom_score_adj);
    process::set_rlimits(&plan.rlimits)?;
    if !plan.no_new_privs {
        // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN,
        // which the user switch below may drop: install it now.
        apply_seccomp(plan.seccomp.as_ref())?;
    }
    if let Some(caps) = &plan.caps {
        caps.drop_bounding()?;
    }
    process::set_user(&plan.user)?;
    if let Some(caps) = &plan.caps {
        caps.apply()?;
    }
    if plan.no_new_privs {
        nix::sys::prctl::set_no_new_privs().ctx(|| "prctl PR_SET_NO_NEW_PRIVS")?;
    }
    chdir(&plan.cwd).ctx(|| format!("chdir {} in the container", plan.cwd.display()))?;
    // After the user switch, which clears it. The process dies with the
    // helper (killed on an ExecSync timeout); if the helper is already
    // gone, nothing runs at all.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).ctx(|| "prctl PR_SET_PDEATHSIG")?;
    if !parent_alive(alive) {
        exit_now(EXIT_SETUP_FAILED);
    }
    if plan.no_new_privs {
        apply_seccomp(plan.seccomp.as_ref())?;
    }
    Err(plan.command.exec())
}
