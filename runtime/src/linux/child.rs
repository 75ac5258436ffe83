//! The container init between fork and exec.

use std::convert::Infallible;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use nix::unistd::{chdir, sethostname, setsid};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::caps::Sets;
use super::error::{Context, Error, Result};
use super::init::Stdio;
use super::process::{self, apply_seccomp, Command};
use super::sync;
use super::{confined, mounts, namespaces, pivot};

/// What the child will do, checked in the parent before the fork so that a
/// malformed spec fails early with `InvalidArgument`.
pub(super) struct Plan {
    spec: Spec,
    rootfs: PathBuf,
    command: Command,
    cwd: PathBuf,
    caps: Option<Sets>,
    no_new_privs: bool,
    terminal: bool,
    /// The user namespace to join (the spec's path, opened by the parent).
    pub(super) userns: Option<OwnedFd>,
}

impl Plan {
    /// Whether the child forks the init in its place: a new pid namespace
    /// inside a user namespace is made by a process already in the user
    /// namespace, and its first child is its pid 1.
    pub(super) fn reborn(&self) -> bool {
        self.userns.is_some() && namespaces::new_pid(&self.spec)
    }

    pub(super) fn new(spec: &Spec, rootfs: &Path) -> Result<Plan> {
        let proc = spec
            .process()
            .as_ref()
            .ok_or_else(|| Error::InvalidSpec("no process".into()))?;
        namespaces::validate(spec)?;
        if spec.hostname().is_some() && !namespaces::has(spec, LinuxNamespaceType::Uts) {
            return Err(Error::InvalidSpec(
                "a hostname needs a UTS namespace of the container".into(),
            ));
        }
        let cwd = proc.cwd().clone();
        if !cwd.is_absolute() {
            return Err(Error::InvalidSpec(format!(
                "process.cwd {} is not absolute",
                cwd.display()
            )));
        }
        confined::relative(&cwd)?;
        for m in spec.mounts().as_deref().unwrap_or_default() {
            confined::relative(m.destination())?;
        }
        pivot::propagation(spec)?;
        let command = Command::new(
            proc.args().as_deref().unwrap_or_default(),
            proc.env().as_deref().unwrap_or_default(),
        )?;
        let caps = proc.capabilities().as_ref().map(Sets::new).transpose()?;
        let userns = namespaces::user_path(spec)
            .map(super::userns::open_userns)
            .transpose()?;
        Ok(Plan {
            userns,
            spec: spec.clone(),
            rootfs: rootfs.to_path_buf(),
            command,
            cwd,
            caps,
            no_new_privs: proc.no_new_privileges().unwrap_or(false),
            terminal: proc.terminal().unwrap_or(false),
        })
    }
}

/// Ends the child at once: no destructors, no atexit handlers, no flush of
/// stdio buffers copied from the shim.
fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes no pointers and never returns; skipping Rust
    // destructors in a forked child is exactly what is wanted here.
    unsafe { libc::_exit(code) }
}

/// The child's whole life once it is in its cgroup (`joined`, the result
/// of that move): set up, report, wait for start, exec. Any error goes to
/// the parent through `report`; then the child exits (127 when the exec
/// itself failed, 1 otherwise).
pub(super) fn run(
    plan: Plan,
    joined: Result<()>,
    stdio: Stdio,
    seccomp: Option<seccompiler::BpfProgram>,
    go: OwnedFd,
    report: OwnedFd,
) -> ! {
    let err =
        match joined.and_then(|()| setup_and_exec(&plan, stdio, seccomp.as_ref(), &go, &report)) {
            Ok(never) => match never {},
            Err(e) => e,
        };
    sync::send_error(&report, &err);
    exit_now(if matches!(err, Error::Exec { .. }) {
        127
    } else {
        1
    })
}

/// In the child that has joined a user namespace: unshares a pid namespace
/// (owned by it) and forks its pid 1, the container's init, which returns
/// from here; this process reports the init's pid and exits. The init
/// waits until the shim has reaped this process ([`sync::ADOPTED`]): it is
/// then the shim's child (the shim is a subreaper), so that its
/// parent-death signal is tied to the shim.
fn reborn(go: &OwnedFd, report: &OwnedFd) -> Result<()> {
    use nix::unistd::{fork, ForkResult};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID)
        .ctx(|| "unshare a pid namespace in the user namespace")?;
    // SAFETY: this child is single-threaded (a fork of the single-threaded
    // shim), so its child is a whole copy of the only thread.
    match unsafe { fork() }.ctx(|| "fork the container init in its pid namespace")? {
        ForkResult::Parent { child } => {
            let sent = sync::send_pid(report, child.as_raw());
            exit_now(if sent.is_ok() { 0 } else { 1 })
        }
        ForkResult::Child => {
            wait_for(go, sync::ADOPTED);
            Ok(())
        }
    }
}

/// Waits for `want` from the parent; exits quietly if the parent is gone.
fn wait_for(go: &OwnedFd, want: u8) {
    match sync::read_byte(go) {
        Ok(Some(b)) if b == want => {}
        _ => exit_now(1),
    }
}

fn setup_and_exec(
    plan: &Plan,
    stdio: Stdio,
    seccomp: Option<&seccompiler::BpfProgram>,
    go: &OwnedFd,
    report: &OwnedFd,
) -> Result<Infallible> {
    let spec = &plan.spec;
    let proc = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::InvalidSpec("no process".into()))?;
    // Before any user namespace is joined: raising limits needs the host's
    // CAP_SYS_RESOURCE.
    process::set_oom_score_adj(proc.oom_score_adj());
    process::set_rlimits(proc.rlimits().as_deref().unwrap_or_default())?;
    // Id-mapping needs root on the host too: the bind mounts are cloned and
    // mapped now, attached inside the container's mount namespace later.
    let mut mapped = match &plan.userns {
        Some(userns) => {
            // The shim id-mapped the image volumes' layers already (their
            // overlay cannot be id-mapped itself).
            let premapped = plan
                .rootfs
                .with_file_name(crate::shim::protocol::files::IMAGE_VOLUMES_DIR);
            mounts::idmapped_binds(spec, userns, &premapped)?
        }
        None => Vec::new(),
    };
    let joined_user = match &plan.userns {
        Some(userns) if plan.reborn() => {
            namespaces::join_user(userns)?;
            reborn(go, report)?;
            None
        }
        other => other.as_ref(),
    };
    process::reset_signals()?;
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).ctx(|| "prctl PR_SET_PDEATHSIG")?;
    setsid().ctx(|| "setsid")?;
    process::install_stdio(stdio)?;
    if plan.terminal {
        // SAFETY: TIOCSCTTY takes an integer argument, no memory.
        let rc = unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
        nix::errno::Errno::result(rc).ctx(|| "make the terminal the controlling tty")?;
    }
    process::cloexec_above_stdio()?;

    namespaces::enter(spec, joined_user)?;
    if let Some(name) = spec.hostname() {
        sethostname(name).ctx(|| format!("sethostname {name}"))?;
    }
    pivot::enter_rootfs(spec, &plan.rootfs, &plan.cwd, plan.terminal, &mut mapped)?;
    pivot::finish(spec)?;

    if !plan.no_new_privs {
        // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN,
        // which the user switch below may drop: install it now.
        apply_seccomp(seccomp)?;
    }
    if let Some(caps) = &plan.caps {
        caps.drop_bounding()?;
    }
    process::set_user(proc.user())?;
    if let Some(caps) = &plan.caps {
        caps.apply()?;
    }
    if plan.no_new_privs {
        nix::sys::prctl::set_no_new_privs().ctx(|| "prctl PR_SET_NO_NEW_PRIVS")?;
    }
    chdir(&plan.cwd).ctx(|| format!("chdir {}", plan.cwd.display()))?;

    sync::write_all(report, &[sync::READY]).ctx(|| "report ready")?;
    wait_for(go, sync::START);
    if plan.no_new_privs {
        apply_seccomp(seccomp)?;
    }
    nix::sys::prctl::set_pdeathsig(None).ctx(|| "clear PR_SET_PDEATHSIG")?;
    Err(plan.command.exec())
}
