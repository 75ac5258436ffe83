//! corten-linux-probe: a test driver for `corten_runtime::linux`.
//!
//! It plays the single-threaded shim for the root integration tests
//! (`runtime/tests/linux_init.rs`): mounts the rootfs, spawns the init from
//! an OCI spec, starts it, reaps it, and prints one status line on stderr:
//! `probe: exit N`, `probe: signal SIG`, `probe: start error: ... (exit N)`
//! or `probe: spawn error: ...`. The container's stdout and stderr are the
//! probe's.
//!
//! Usage: corten-linux-probe SPEC.json ROOTFS UPPER WORK LOWER...
//! (UPPER and WORK may be `-` for a read-only rootfs of the lower layers).
//! With `CORTEN_PROBE_DENY_MKDIR=1` a seccomp filter makes mkdir(at) fail
//! with EPERM. With `CORTEN_PROBE_OLD_KERNEL=1` the probe itself (and so
//! the container setup) runs under a filter that answers ENOSYS to the
//! descriptor-based mount calls, as a kernel before 5.2 would.
//! With `CORTEN_PROBE_CGROUP=PATH` the probe creates that cgroup and the
//! init is born in it (the probe removes it at the end);
//! `CORTEN_PROBE_CGROUP_GONE=memory` (or `unified`) also removes the
//! cgroup's directory in that hierarchy after opening it, as a cleaner racing the shim would.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

use corten_runtime::cgroups::{self, Cgroup, Controller};
use corten_runtime::linux::{mount_rootfs, spawn_init, CgroupBirth, RootfsLayers, Stdio};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{dup, Pid};
use oci_spec::runtime::Spec;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match run(&args) {
        Ok(line) => {
            eprintln!("probe: {line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("probe: {e}");
            ExitCode::from(2)
        }
    }
}

fn path_or_empty(s: &str) -> PathBuf {
    if s == "-" {
        PathBuf::new()
    } else {
        PathBuf::from(s)
    }
}

fn run(args: &[String]) -> Result<String, String> {
    let [_, spec, rootfs, upper, work, lower @ ..] = args else {
        return Err("usage: corten-linux-probe SPEC.json ROOTFS UPPER WORK LOWER...".into());
    };
    let spec = Spec::load(spec).map_err(|e| format!("error: load spec: {e}"))?;
    let rootfs = PathBuf::from(rootfs);
    let layers = RootfsLayers {
        idmap: None,
        lower: lower.iter().map(PathBuf::from).collect(),
        upper: path_or_empty(upper),
        work: path_or_empty(work),
        readonly: false,
    };
    mount_rootfs(&layers, &rootfs).map_err(|e| format!("error: mount rootfs: {e}"))?;
    let stdio = Stdio {
        stdin: None,
        stdout: dup(std::io::stdout().as_fd()).map_err(|e| format!("error: dup: {e}"))?,
        stderr: dup(std::io::stderr().as_fd()).map_err(|e| format!("error: dup: {e}"))?,
    };
    let seccomp = match std::env::var_os("CORTEN_PROBE_DENY_MKDIR") {
        Some(_) => Some(deny_mkdir()?),
        None => None,
    };
    if std::env::var_os("CORTEN_PROBE_OLD_KERNEL").is_some() {
        let filter = errno_filter(
            &[
                libc::SYS_open_tree,
                libc::SYS_move_mount,
                libc::SYS_mount_setattr,
            ],
            libc::ENOSYS,
        )?;
        seccompiler::apply_filter(&filter).map_err(|e| format!("error: seccomp apply: {e}"))?;
    }
    let cgroup = match std::env::var("CORTEN_PROBE_CGROUP") {
        Ok(path) => Some(ProbeCgroup::create(&path)?),
        Err(_) => None,
    };
    let init = spawn_init(
        &spec,
        &rootfs,
        stdio,
        seccomp,
        cgroup.as_ref().map(|c| &c.birth),
    )
    .map_err(|e| format!("spawn error: {e} [{:?}]", e.kind()))?;
    let pid = Pid::from_raw(init.pid());
    let started = init.start();
    let status = loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => break format!("exit {code}"),
            Ok(WaitStatus::Signaled(_, sig, _)) => break format!("signal {sig}"),
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(format!("error: waitpid: {e}")),
        }
    };
    match started {
        Ok(()) => Ok(status),
        Err(e) => Ok(format!("start error: {e} [{:?}] ({status})", e.kind())),
    }
}

/// The cgroup `CORTEN_PROBE_CGROUP` names, removed when dropped.
struct ProbeCgroup {
    cgroup: Cgroup,
    birth: CgroupBirth,
}

impl ProbeCgroup {
    fn create(path: &str) -> Result<ProbeCgroup, String> {
        let hierarchy = cgroups::detect().map_err(|e| format!("error: cgroups: {e}"))?;
        let cgroup = Cgroup::create(&hierarchy, path).map_err(|e| format!("error: cgroup: {e}"))?;
        let birth = CgroupBirth::open(cgroup.v1_dirs(), cgroup.unified_dir())
            .map_err(|e| format!("error: open cgroup: {e}"))?;
        if let Ok(name) = std::env::var("CORTEN_PROBE_CGROUP_GONE") {
            let dir = match name.as_str() {
                "unified" => cgroup.unified_dir(),
                _ => Controller::ALL
                    .into_iter()
                    .find(|c| c.name() == name)
                    .and_then(|c| cgroup.v1_dir(c)),
            }
            .ok_or_else(|| format!("error: no hierarchy {name}"))?;
            std::fs::remove_dir(dir).map_err(|e| format!("error: rmdir {}: {e}", dir.display()))?;
        }
        Ok(ProbeCgroup { cgroup, birth })
    }
}

impl Drop for ProbeCgroup {
    fn drop(&mut self) {
        if let Err(e) = self.cgroup.destroy() {
            eprintln!("probe: cannot remove cgroup {}: {e}", self.cgroup.path());
        }
    }
}

/// A filter that fails mkdir and mkdirat with EPERM and allows the rest.
fn deny_mkdir() -> Result<seccompiler::BpfProgram, String> {
    #[cfg(target_arch = "x86_64")]
    let calls = [libc::SYS_mkdirat, libc::SYS_mkdir];
    #[cfg(not(target_arch = "x86_64"))]
    let calls = [libc::SYS_mkdirat];
    errno_filter(&calls, libc::EPERM)
}

/// A filter that fails `calls` with `errno` and allows the rest.
fn errno_filter(calls: &[libc::c_long], errno: i32) -> Result<seccompiler::BpfProgram, String> {
    use seccompiler::{SeccompAction, SeccompFilter};
    let rules = calls.iter().map(|c| (*c, vec![])).collect();
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("error: seccomp arch: {e}"))?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        arch,
    )
    .map_err(|e| format!("error: seccomp filter: {e}"))?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| format!("error: seccomp compile: {e}"))
}
