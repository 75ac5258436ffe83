//! Pinning a pod's namespaces (`corten-shim pin`) and unpinning them (the
//! daemon).
//!
//! [`pin`] runs in a fresh single-threaded `corten-shim pin` process: it
//! creates the empty files DIR/net, DIR/ipc, DIR/uts, unshares the chosen
//! namespaces *itself* (net, ipc and uts apply to the caller at once, so no
//! fork is needed), sets the hostname, applies the sysctls (the kernel
//! resolves `/proc/sys/net/*` and the ipc sysctls against the writer's
//! namespaces), brings `lo` up, and bind-mounts `/proc/self/ns/<ns>` onto
//! each file. The helper never leaves the host mount namespace, so the bind
//! mounts are made there and the daemon and CNI plugins can open them; they
//! keep the namespaces alive after the helper exits.
//!
//! Propagation: DIR is deliberately *not* turned into a private mount point.
//! Container shims move into private mount namespaces made as slaves of the
//! host's, so they hold copies of these bind mounts; when the host mount is
//! shared (systemd's default), [`unpin`]'s detach propagates to those copies
//! and the namespace really dies. A private DIR would cut that propagation
//! and leave the namespace pinned until every such shim exits. Nothing here
//! depends on the propagation type, it only decides how soon the kernel
//! frees the namespace.
//!
//! With a user namespace (DIR/user, [`PinOptions::id_mappings`]) the helper
//! cannot make the namespaces itself: it forks a child that unshares the
//! user namespace, waits for the helper to write its maps, becomes its root
//! and makes the others (so that the user namespace owns them); the helper,
//! still root on the host, bind-mounts `/proc/<child>/ns/<ns>`, then lets
//! the child go (see [`super::userns`]).
//!
//! Every failure undoes what was done: mounts detached, files removed, DIR
//! removed if this call created it. Requests that can be judged up front
//! (sysctls, hostname, files already there) are refused before anything is
//! created.

use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::Mode;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, pipe2, ForkResult, Pid};

use super::error::{Context, Error, Result};
use super::sync::{self, Report};
use super::sysctl::{self, Namespace};
use super::userns::{self, IdMappings};

/// What `corten-shim pin` creates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PinOptions {
    /// The namespaces to create and pin (at least one).
    pub namespaces: Vec<Namespace>,
    /// The hostname of the new uts namespace (needs [`Namespace::Uts`]).
    pub hostname: Option<String>,
    /// Sysctls (`name`, `value`) applied in the new namespaces.
    pub sysctls: Vec<(String, String)>,
    /// The maps of the user namespace (exactly when [`Namespace::User`] is
    /// asked for).
    pub id_mappings: Option<IdMappings>,
}

/// [`PinOptions`] checked: namespaces deduplicated, sysctls as paths.
struct Plan {
    namespaces: Vec<Namespace>,
    hostname: Option<String>,
    sysctls: Vec<(String, PathBuf, String)>,
    id_mappings: Option<IdMappings>,
}

/// Checks `opts` without touching anything.
pub fn check_pin_options(opts: &PinOptions) -> Result<()> {
    plan(opts).map(|_| ())
}

fn plan(opts: &PinOptions) -> Result<Plan> {
    let namespaces: Vec<Namespace> = Namespace::ALL
        .into_iter()
        .filter(|ns| opts.namespaces.contains(ns))
        .collect();
    if namespaces.is_empty() {
        return Err(Error::InvalidSpec("no namespace to pin".into()));
    }
    if let Some(name) = &opts.hostname {
        let bad = |reason: &str| Error::Hostname {
            name: name.clone(),
            reason: reason.into(),
        };
        if !namespaces.contains(&Namespace::Uts) {
            return Err(bad("a hostname needs the pod's own uts namespace"));
        }
        if name.is_empty() || name.len() > 64 || name.contains('\0') {
            return Err(bad("must be 1 to 64 bytes without NUL"));
        }
    }
    let wants_user = namespaces.contains(&Namespace::User);
    match &opts.id_mappings {
        Some(maps) if wants_user => maps.check()?,
        None if !wants_user => {}
        Some(_) => {
            return Err(Error::InvalidSpec(
                "id mappings without a user namespace to pin".into(),
            ))
        }
        None => {
            return Err(Error::InvalidSpec(
                "a user namespace needs uid and gid mappings".into(),
            ))
        }
    }
    let mut sysctls = Vec::with_capacity(opts.sysctls.len());
    for (name, value) in &opts.sysctls {
        let path = sysctl::check(name, value, &namespaces)?;
        sysctls.push((name.clone(), path, value.clone()));
    }
    Ok(Plan {
        namespaces,
        hostname: opts.hostname.clone(),
        sysctls,
        id_mappings: opts.id_mappings.clone(),
    })
}

/// What [`pin`] has done so far, undone on drop unless disarmed.
struct Undo<'a> {
    dir: &'a Path,
    created_dir: bool,
    files: Vec<PathBuf>,
    armed: bool,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for file in self.files.iter().rev() {
            let _ = unmount_all(file);
            let _ = std::fs::remove_file(file);
        }
        if self.created_dir {
            let _ = std::fs::remove_dir(self.dir);
        }
    }
}

/// Creates the namespaces of `opts`, configures them and pins them under
/// `dir` (see the module doc). For the single-threaded `corten-shim pin`:
/// it moves the calling process into the new namespaces.
pub fn pin(dir: &Path, opts: &PinOptions) -> Result<()> {
    let plan = plan(opts)?;
    for ns in &plan.namespaces {
        let file = dir.join(ns.name());
        if file.symlink_metadata().is_ok() {
            return Err(Error::AlreadyPinned { path: file });
        }
    }
    let mut undo = Undo {
        dir,
        created_dir: false,
        files: Vec::new(),
        armed: true,
    };
    if !dir.is_dir() {
        std::fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
        undo.created_dir = true;
    }
    let mut flags = CloneFlags::empty();
    for ns in &plan.namespaces {
        let file = dir.join(ns.name());
        let fd = open(
            &file,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o444),
        );
        match fd {
            Err(Errno::EEXIST) => return Err(Error::AlreadyPinned { path: file }),
            other => drop(other.ctx(|| format!("create {}", file.display()))?),
        }
        undo.files.push(file);
        flags |= match ns {
            Namespace::User => CloneFlags::empty(),
            Namespace::Net => CloneFlags::CLONE_NEWNET,
            Namespace::Ipc => CloneFlags::CLONE_NEWIPC,
            Namespace::Uts => CloneFlags::CLONE_NEWUTS,
        };
    }
    let maker = match &plan.id_mappings {
        None => {
            unshare(flags).ctx(|| "unshare the pod's namespaces")?;
            configure(&plan)?;
            None
        }
        Some(maps) => Some(Maker::start(flags, &plan, maps)?),
    };
    let proc_dir = match &maker {
        Some(m) => format!("/proc/{}", m.pid),
        None => "/proc/self".to_string(),
    };
    for ns in &plan.namespaces {
        let source = format!("{proc_dir}/ns/{}", ns.name());
        let target = dir.join(ns.name());
        mount(
            Some(source.as_str()),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx(|| format!("bind mount {source} on {}", target.display()))?;
    }
    if let Some(m) = maker {
        m.finish();
    }
    undo.armed = false;
    Ok(())
}

/// Hostname, sysctls and `lo` of the namespaces the caller is in.
fn configure(plan: &Plan) -> Result<()> {
    if let Some(name) = &plan.hostname {
        nix::unistd::sethostname(name).ctx(|| format!("set hostname {name:?}"))?;
    }
    for (name, path, value) in &plan.sysctls {
        write_sysctl(name, path, value)?;
    }
    if plan.namespaces.contains(&Namespace::Net) {
        loopback_up()?;
    }
    Ok(())
}

/// The child that makes a user namespace and the namespaces it owns; it
/// lives until [`Maker::finish`] (or is killed on drop) so that its
/// namespaces can be bind-mounted from `/proc/<pid>/ns`.
struct Maker {
    pid: Pid,
    to_child: Option<OwnedFd>,
}

impl Maker {
    fn start(flags: CloneFlags, plan: &Plan, maps: &IdMappings) -> Result<Maker> {
        let (go_read, go_write) = pipe2(OFlag::O_CLOEXEC).ctx(|| "create sync pipe")?;
        let (report_read, report_write) = pipe2(OFlag::O_CLOEXEC).ctx(|| "create sync pipe")?;
        // SAFETY: `corten-shim pin` is single-threaded; the child makes
        // system calls and plain Rust, and leaves with _exit.
        match unsafe { fork() }.ctx(|| "fork the namespace maker")? {
            ForkResult::Child => {
                drop(go_write);
                drop(report_read);
                let made = Self::child(flags, plan, &go_read, &report_write);
                let code = match made {
                    Ok(()) => 0,
                    Err(e) => {
                        sync::send_error(&report_write, &e);
                        1
                    }
                };
                // SAFETY: _exit takes no pointers and never returns.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => {
                drop(go_read);
                drop(report_write);
                let mut maker = Maker {
                    pid: child,
                    to_child: Some(go_write),
                };
                maker.expect_ready(&report_read, "unshare the user namespace")?;
                userns::write_maps(child, maps)?;
                if let Some(fd) = &maker.to_child {
                    sync::write_all(fd, &[sync::START]).ctx(|| "signal the namespace maker")?;
                }
                maker.expect_ready(&report_read, "make the pod's namespaces")?;
                Ok(maker)
            }
        }
    }

    fn child(flags: CloneFlags, plan: &Plan, go: &OwnedFd, report: &OwnedFd) -> Result<()> {
        unshare(CloneFlags::CLONE_NEWUSER).ctx(|| "unshare the user namespace")?;
        sync::write_all(report, &[sync::READY]).ctx(|| "report")?;
        match sync::read_byte(go) {
            Ok(Some(sync::START)) => {}
            _ => return Ok(()),
        }
        userns::become_root()?;
        unshare(flags).ctx(|| "unshare the pod's namespaces")?;
        configure(plan)?;
        sync::write_all(report, &[sync::READY]).ctx(|| "report")?;
        // Held until the parent has pinned the namespaces (end of file).
        let _ = sync::read_byte(go);
        Ok(())
    }

    fn expect_ready(&mut self, report: &OwnedFd, step: &str) -> Result<()> {
        match sync::read_report(report) {
            Ok(Report::Ready) => Ok(()),
            Ok(Report::Failed { kind, message }) => Err(Error::Helper { kind, message }),
            Ok(Report::Eof) => Err(Error::Sys {
                op: format!("{step}: the namespace maker ended"),
                source: Errno::ECHILD,
            }),
            Err(source) => Err(Error::Sys {
                op: format!("{step}: read the namespace maker's report"),
                source,
            }),
        }
    }

    /// Lets the child exit and reaps it.
    fn finish(mut self) {
        self.to_child = None;
        reap(self.pid);
        self.pid = Pid::from_raw(0);
    }
}

impl Drop for Maker {
    fn drop(&mut self) {
        if self.pid.as_raw() > 0 {
            let _ = kill(self.pid, Signal::SIGKILL);
            reap(self.pid);
        }
    }
}

fn reap(pid: Pid) {
    while let Err(Errno::EINTR) = waitpid(pid, None) {}
}

fn write_sysctl(name: &str, path: &Path, value: &str) -> Result<()> {
    use std::io::Write as _;
    let refused = |reason: String| Error::Sysctl {
        name: name.to_owned(),
        reason,
    };
    let mut file = match std::fs::OpenOptions::new().write(true).open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(refused("no such sysctl on this kernel".into()))
        }
        other => other.ctx(|| format!("open {}", path.display()))?,
    };
    match file.write_all(value.as_bytes()) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            Err(refused(format!("value {value:?} refused by the kernel")))
        }
        other => other.ctx(|| format!("write {value:?} to {}", path.display())),
    }
}

/// Sets IFF_UP on `lo` of the caller's network namespace.
fn loopback_up() -> Result<()> {
    // SAFETY: socket() takes no pointers; the result is checked below.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(Errno::last()).ctx(|| "socket to configure lo");
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data, for which all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads ifr_name and writes ifr_flags of `req`,
    // which outlives the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) };
    Errno::result(rc).ctx(|| "read the flags of lo")?;
    // SAFETY: the kernel has just written ifr_flags, the active union field.
    let current = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = current | libc::IFF_UP as libc::c_short;
    // SAFETY: SIOCSIFFLAGS only reads `req`, which outlives the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) };
    Errno::result(rc).ctx(|| "bring lo up")?;
    Ok(())
}

/// Detaches every mount stacked on `path`; a path that is not a mount point
/// (or does not exist) is fine.
pub(super) fn unmount_all(path: &Path) -> Result<()> {
    for _ in 0..32 {
        match umount2(path, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) => {}
            Err(Errno::EINVAL | Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(e).ctx(|| format!("unmount {}", path.display())),
        }
    }
    Ok(())
}

/// Unpins the namespaces of a pod: detaches and removes DIR/net, DIR/ipc and
/// DIR/uts. Idempotent (absent files are fine); leaves DIR itself. Only
/// umount2 and unlink, so safe in the threaded daemon.
pub fn unpin(dir: &Path) -> Result<()> {
    for ns in Namespace::ALL {
        let file = dir.join(ns.name());
        unmount_all(&file)?;
        match std::fs::remove_file(&file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => other.ctx(|| format!("remove {}", file.display()))?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn opts(nss: &[Namespace]) -> PinOptions {
        PinOptions {
            namespaces: nss.to_vec(),
            ..PinOptions::default()
        }
    }

    #[test]
    fn up_front_checks() {
        assert!(check_pin_options(&opts(&[])).is_err());
        let mut o = opts(&[Namespace::Net]);
        o.hostname = Some("pod".into());
        let e = check_pin_options(&o).err();
        assert!(matches!(&e, Some(e) if e.to_string().contains("uts namespace")));
        o.namespaces.push(Namespace::Uts);
        assert!(check_pin_options(&o).is_ok());
        o.hostname = Some("x".repeat(65));
        assert!(check_pin_options(&o).is_err());
        o.hostname = None;
        o.sysctls = vec![("vm.swappiness".into(), "1".into())];
        let e = check_pin_options(&o).err();
        assert!(matches!(&e, Some(e) if e.kind() == ErrorKind::InvalidArgument));
    }

    #[test]
    fn unpin_of_nothing_is_fine() {
        let dir = tempfile::tempdir().expect("tempdir");
        unpin(dir.path()).expect("unpin empty");
        unpin(&dir.path().join("absent")).expect("unpin absent");
        std::fs::write(dir.path().join("net"), b"").expect("write");
        unpin(dir.path()).expect("unpin plain file");
        assert!(!dir.path().join("net").exists());
    }
}
