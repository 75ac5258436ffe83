//! Process settings of the init: signals, stdio, oom score, rlimits, user,
//! and the final exec.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, open, FcntlArg, OFlag};
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::stat::Mode;
use nix::unistd::{
    dup2_stderr, dup2_stdin, dup2_stdout, execve, setgroups, setresgid, setresuid, Gid, Uid,
};
use oci_spec::runtime::{PosixRlimit, PosixRlimitType, User};

use super::error::{Context, Error, Result};
use super::init::Stdio;

/// PATH when the container's environment has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Undoes what the shim may have set for itself: blocked signals and
/// ignored ones (Rust ignores SIGPIPE), which an exec would pass on.
pub(super) fn reset_signals() -> Result<()> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .ctx(|| "clear the signal mask")?;
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no handler code, so no handler can
        // observe inconsistent state; this process has one thread.
        unsafe { sigaction(sig, &default) }.ctx(|| format!("reset {sig}"))?;
    }
    Ok(())
}

/// Puts the container's streams on 0, 1 and 2 (stdin `/dev/null` when
/// absent). The new descriptors are first moved above 2, so a stream that
/// happens to be fd 0..2 is not overwritten before it is used.
pub(super) fn install_stdio(stdio: Stdio) -> Result<()> {
    let stdin = match stdio.stdin {
        Some(fd) => fd,
        None => open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
            .ctx(|| "open /dev/null for stdin")?,
    };
    let high = |fd: &OwnedFd| -> Result<OwnedFd> {
        let raw = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(3)).ctx(|| "duplicate a stdio descriptor")?;
        // SAFETY: F_DUPFD_CLOEXEC just returned this new descriptor, owned by
        // nobody else.
        Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) })
    };
    let (i, o, e) = (high(&stdin)?, high(&stdio.stdout)?, high(&stdio.stderr)?);
    drop((stdin, stdio.stdout, stdio.stderr));
    dup2_stdin(i.as_fd()).ctx(|| "dup2 stdin")?;
    dup2_stdout(o.as_fd()).ctx(|| "dup2 stdout")?;
    dup2_stderr(e.as_fd()).ctx(|| "dup2 stderr")?;
    Ok(())
}

/// Marks every descriptor above 2 close-on-exec, so nothing the shim held
/// leaks into the container.
pub(super) fn cloexec_above_stdio() -> Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on
    // descriptors; it touches no memory.
    let rc = unsafe {
        libc::close_range(
            3,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_int,
        )
    };
    Errno::result(rc)
        .map(drop)
        .ctx(|| "mark inherited descriptors close-on-exec")
}

/// Writes `wanted` to /proc/self/oom_score_adj, never below the current
/// value (lowering it needs CAP_SYS_RESOURCE, which these hosts lack: the
/// same clamp as containerd's `restrict_oom_score_adj`). Never fails.
pub(super) fn set_oom_score_adj(wanted: Option<i32>) {
    let Some(wanted) = wanted else { return };
    const PATH: &str = "/proc/self/oom_score_adj";
    let current = std::fs::read_to_string(PATH)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    let value = match current {
        Some(current) => wanted.max(current),
        None => wanted,
    };
    let _ = std::fs::write(PATH, value.to_string());
}

fn resource(t: PosixRlimitType) -> Resource {
    match t {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

/// Applies the spec's rlimits. Without CAP_SYS_RESOURCE (these machines
/// lack it) a hard limit cannot be raised above the shim's own: such a
/// limit is clamped to the current hard limit instead of failing the
/// container, as the oom_score_adj is.
pub(super) fn set_rlimits(limits: &[PosixRlimit]) -> Result<()> {
    for l in limits {
        let res = resource(l.typ());
        match setrlimit(res, l.soft(), l.hard()) {
            Err(Errno::EPERM) => {
                let (_, current_hard) =
                    nix::sys::resource::getrlimit(res).ctx(|| format!("getrlimit {}", l.typ()))?;
                let hard = l.hard().min(current_hard);
                setrlimit(res, l.soft().min(hard), hard).ctx(|| {
                    format!(
                        "setrlimit {} soft {} hard {} (clamped)",
                        l.typ(),
                        l.soft(),
                        hard
                    )
                })?;
            }
            other => other
                .ctx(|| format!("setrlimit {} soft {} hard {}", l.typ(), l.soft(), l.hard()))?,
        }
    }
    Ok(())
}

/// Switches to the spec's user (groups, gid, uid), keeping the permitted
/// capabilities across the uid change so they can be set afterwards.
pub(super) fn set_user(user: &User) -> Result<()> {
    let groups: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    nix::sys::prctl::set_keepcaps(true).ctx(|| "prctl PR_SET_KEEPCAPS")?;
    setgroups(&groups).ctx(|| format!("setgroups {:?}", user.additional_gids()))?;
    let gid = Gid::from_raw(user.gid());
    setresgid(gid, gid, gid).ctx(|| format!("setgid {gid}"))?;
    let uid = Uid::from_raw(user.uid());
    setresuid(uid, uid, uid).ctx(|| format!("setuid {uid}"))?;
    nix::sys::prctl::set_keepcaps(false).ctx(|| "prctl PR_SET_KEEPCAPS off")?;
    if let Some(mask) = user.umask() {
        nix::sys::stat::umask(Mode::from_bits_truncate(mask));
    }
    Ok(())
}

/// The command to exec, prepared before the fork.
#[derive(Debug, Clone)]
pub(super) struct Command {
    arg0: String,
    argv: Vec<CString>,
    envp: Vec<CString>,
    path: String,
}

impl Command {
    pub(super) fn new(args: &[String], env: &[String]) -> Result<Command> {
        let arg0 = args
            .first()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| Error::InvalidSpec("process.args is empty".into()))?
            .clone();
        let c = |s: &String| {
            CString::new(s.as_bytes())
                .map_err(|_| Error::InvalidSpec(format!("{s:?} contains a NUL byte")))
        };
        let path = env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
            .to_owned();
        Ok(Command {
            arg0,
            argv: args.iter().map(c).collect::<Result<_>>()?,
            envp: env.iter().map(c).collect::<Result<_>>()?,
            path,
        })
    }

    /// The candidate files, in order: `arg0` itself when it has a `/`,
    /// otherwise `arg0` in each PATH entry (an empty entry is the cwd).
    fn candidates(&self) -> Vec<String> {
        if self.arg0.contains('/') {
            return vec![self.arg0.clone()];
        }
        self.path
            .split(':')
            .map(|dir| {
                let dir = if dir.is_empty() { "." } else { dir };
                format!("{}/{}", dir.trim_end_matches('/'), self.arg0)
            })
            .collect()
    }

    /// Execs the command, searching PATH (inside the container) as execvpe
    /// does. Returns only on failure.
    pub(super) fn exec(&self) -> Error {
        let mut failure = Errno::ENOENT;
        for file in self.candidates() {
            let Ok(file) = CString::new(file) else {
                continue;
            };
            match execve(&file, &self.argv, &self.envp) {
                Err(Errno::ENOENT | Errno::ENOTDIR) => {}
                Err(Errno::EACCES) => failure = Errno::EACCES,
                Err(e) => {
                    failure = e;
                    break;
                }
                Ok(never) => match never {},
            }
        }
        Error::Exec {
            arg0: self.arg0.clone(),
            source: failure,
        }
    }
}

/// Installs the seccomp filter, if there is one (init and exec alike).
pub(super) fn apply_seccomp(filter: Option<&seccompiler::BpfProgram>) -> Result<()> {
    match filter {
        Some(f) => seccompiler::apply_filter(f).map_err(|e| Error::Io {
            op: "install seccomp filter".into(),
            source: std::io::Error::other(e),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_search() {
        let env = vec!["A=1".to_owned(), "PATH=/bin::/usr/bin/".to_owned()];
        let c = Command::new(&["ls".to_owned()], &env).unwrap();
        assert_eq!(c.candidates(), ["/bin/ls", "./ls", "/usr/bin/ls"]);
        let c = Command::new(&["./x".to_owned()], &[]).unwrap();
        assert_eq!(c.candidates(), ["./x"]);
        assert!(Command::new(&[], &env).is_err());
    }
}
