//! Forking a child straight into a cgroup, without the global lock of a
//! cgroup move.
//!
//! Writing a pid to `cgroup.procs` takes the kernel's threadgroup lock for
//! writing, which waits for an RCU grace period: 6 to 13 ms each time on the
//! machines we measured, the largest single part of a container's creation.
//! Two ways in skip that lock:
//!
//! * `clone3(CLONE_INTO_CGROUP)` makes the child in the cgroup2 directory it
//!   is given (kernel 5.7): the unified hierarchy, the only one on a pure v2
//!   host and the controller-less one of a hybrid host;
//! * on cgroup v1, a thread writing `0` to a `tasks` file moves only itself,
//!   and the kernel takes no global lock for that. The child is
//!   single-threaded (a fork of the single-threaded shim), so moving its one
//!   thread moves the process.
//!
//! So the parent forks with `clone3` into the unified directory, and the
//! child, first thing, writes `0` to each v1 hierarchy's `tasks`, through
//! descriptors the parent opened in the host's namespaces. Where `clone3`
//! or its cgroup flag is missing (older kernels), the parent falls back to
//! `fork` and the child also writes `0` to the unified `cgroup.procs`: the
//! slow move, still made before the child does anything else.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{fork, ForkResult, Pid};

use super::error::{Context, Error, Result};

/// The cgroup a child is to be born in, opened by the parent.
#[derive(Debug)]
pub struct CgroupBirth {
    /// Each v1 hierarchy's `tasks` file, open for writing.
    v1_tasks: Vec<(OwnedFd, PathBuf)>,
    /// The unified directory and its `cgroup.procs` (for the fallback).
    unified: Option<Unified>,
}

#[derive(Debug)]
struct Unified {
    dir: OwnedFd,
    procs: OwnedFd,
    procs_path: PathBuf,
}

/// Which process `fork_into` returned in.
pub(super) enum Forked {
    /// The parent, with the child's pid.
    Parent(Pid),
    /// The child; `born_in_unified` says whether `clone3` put it in the
    /// unified directory already.
    Child { born_in_unified: bool },
}

impl CgroupBirth {
    /// Opens the cgroup's files: `v1_dirs` are its directories in the v1
    /// hierarchies, `unified` its cgroup2 directory, if any. Paths are the
    /// host's; call this before joining any namespace.
    pub fn open<'a>(
        v1_dirs: impl IntoIterator<Item = &'a Path>,
        unified: Option<&Path>,
    ) -> Result<CgroupBirth> {
        let write = |path: &Path| {
            open(path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())
                .ctx(|| format!("open {}", path.display()))
        };
        let mut v1_tasks = Vec::new();
        for dir in v1_dirs {
            let path = dir.join("tasks");
            v1_tasks.push((write(&path)?, path));
        }
        let unified = match unified {
            Some(dir) => {
                let procs_path = dir.join("cgroup.procs");
                Some(Unified {
                    dir: open(
                        dir,
                        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                        Mode::empty(),
                    )
                    .ctx(|| format!("open {}", dir.display()))?,
                    procs: write(&procs_path)?,
                    procs_path,
                })
            }
            None => None,
        };
        Ok(CgroupBirth { v1_tasks, unified })
    }

    /// In the child, before anything else: moves the calling (only) thread
    /// into every v1 hierarchy, and into the unified one unless it was born
    /// there. Then closes the child's copies of the descriptors.
    pub(super) fn join_self(&self, born_in_unified: bool) -> Result<()> {
        let joined = self.join_each(born_in_unified);
        for fd in self.fds() {
            // SAFETY: closes this process's copy of a descriptor it owns;
            // the parent's copy is unaffected and nothing here uses it again.
            unsafe { libc::close(fd) };
        }
        joined
    }

    fn join_each(&self, born_in_unified: bool) -> Result<()> {
        let write_zero = |fd: &OwnedFd, path: &Path| {
            nix::unistd::write(fd, b"0")
                .map(drop)
                .ctx(|| format!("move into cgroup: write 0 to {}", path.display()))
        };
        for (fd, path) in &self.v1_tasks {
            write_zero(fd, path)?;
        }
        match &self.unified {
            Some(u) if !born_in_unified => write_zero(&u.procs, &u.procs_path),
            _ => Ok(()),
        }
    }

    fn fds(&self) -> impl Iterator<Item = i32> + '_ {
        let unified = self
            .unified
            .iter()
            .flat_map(|u| [u.dir.as_raw_fd(), u.procs.as_raw_fd()]);
        self.v1_tasks
            .iter()
            .map(|(fd, _)| fd.as_raw_fd())
            .chain(unified)
    }
}

/// Forks; with a cgroup, the child is born in its unified directory when
/// the kernel can, and must call [`CgroupBirth::join_self`] first thing.
///
/// # Safety
/// As `fork`: the caller is single-threaded, so the child is a whole copy of
/// the only thread and may run any code.
pub(super) unsafe fn fork_into(birth: Option<&CgroupBirth>) -> Result<Forked> {
    if let Some(u) = birth.and_then(|b| b.unified.as_ref()) {
        // SAFETY: clone3 without CLONE_VM or a stack is a fork (the child
        // runs on a copy of this stack), which the caller's contract allows.
        // It skips glibc's fork bookkeeping, which matters only for other
        // threads (there are none) and for glibc's cached thread id, which
        // nothing in the child reads (Rust's locks and ids are its own).
        match unsafe { clone3_into(&u.dir) } {
            Ok(0) => {
                return Ok(Forked::Child {
                    born_in_unified: true,
                })
            }
            Ok(pid) => return Ok(Forked::Parent(Pid::from_raw(pid))),
            // No clone3, or no CLONE_INTO_CGROUP (before 5.7), or a cgroup
            // it refuses (ENOENT: a caller inside a cgroup namespace under
            // `nsdelegate`, as an exec helper is): a plain fork, and the
            // child moves itself through the descriptors opened outside.
            Err(
                Errno::ENOSYS
                | Errno::E2BIG
                | Errno::EINVAL
                | Errno::EOPNOTSUPP
                | Errno::EBUSY
                | Errno::ENOENT,
            ) => {}
            Err(source) => {
                return Err(Error::Sys {
                    op: "clone3 into the container's cgroup".into(),
                    source,
                })
            }
        }
    }
    // SAFETY: forwarded from the caller's contract.
    match unsafe { fork() }.ctx(|| "fork")? {
        ForkResult::Parent { child } => Ok(Forked::Parent(child)),
        ForkResult::Child => Ok(Forked::Child {
            born_in_unified: false,
        }),
    }
}

/// The clone3 flag (libc's constant is an overflowing `c_int`).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `clone3(CLONE_INTO_CGROUP)`: the child's return is 0, the parent's the
/// child's pid.
///
/// # Safety
/// As `fork`.
unsafe fn clone3_into(dir: &OwnedFd) -> std::result::Result<i32, Errno> {
    // SAFETY: clone_args is plain data; all-zero is its "nothing asked" value.
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.flags = CLONE_INTO_CGROUP;
    args.exit_signal = libc::SIGCHLD as u64;
    args.cgroup = dir.as_raw_fd() as u64;
    // SAFETY: see the function's contract; the kernel reads `args` only.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const libc::clone_args,
            std::mem::size_of::<libc::clone_args>(),
        )
    };
    Errno::result(rc).map(|pid| pid as i32)
}
