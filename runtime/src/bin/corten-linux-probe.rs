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
//! with EPERM.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

use corten_runtime::linux::{mount_rootfs, spawn_init, RootfsLayers, Stdio};
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
    let init = spawn_init(&spec, &rootfs, stdio, seccomp, &mut |_pid| Ok(()))
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

/// A filter that fails mkdir and mkdirat with EPERM and allows the rest.
fn deny_mkdir() -> Result<seccompiler::BpfProgram, String> {
    use seccompiler::{SeccompAction, SeccompFilter};
    let mut rules = std::collections::BTreeMap::new();
    rules.insert(libc::SYS_mkdirat, vec![]);
    #[cfg(target_arch = "x86_64")]
    rules.insert(libc::SYS_mkdir, vec![]);
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("error: seccomp arch: {e}"))?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| format!("error: seccomp filter: {e}"))?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| format!("error: seccomp compile: {e}"))
}
