//! Joining and creating the container's namespaces (in the child; the pid
//! namespace was handled by the parent before the fork).

use nix::fcntl::{open, OFlag};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType, Spec};

use super::error::{Context, Error, Result};

/// The clone flag of a namespace type; `None` for types handled elsewhere.
fn flag(typ: LinuxNamespaceType) -> Option<CloneFlags> {
    Some(match typ {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Pid | LinuxNamespaceType::User | LinuxNamespaceType::Time => {
            return None
        }
    })
}

/// The spec's namespaces.
pub(super) fn list(spec: &Spec) -> &[LinuxNamespace] {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_deref())
        .unwrap_or_default()
}

/// Refuses what this runtime does not do: time namespaces, and user
/// namespaces other than one joined by path (a pod's).
pub(super) fn validate(spec: &Spec) -> Result<()> {
    for ns in list(spec) {
        match ns.typ() {
            LinuxNamespaceType::Time => {
                return Err(Error::InvalidSpec(
                    "time namespaces are not supported".into(),
                ))
            }
            LinuxNamespaceType::User if ns.path().is_none() => {
                return Err(Error::InvalidSpec(
                    "a user namespace of the container's own is not supported (only joining one by path)"
                        .into(),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether the spec asks for a new pid namespace (one without a path).
pub(super) fn new_pid(spec: &Spec) -> bool {
    list(spec)
        .iter()
        .find(|n| n.typ() == LinuxNamespaceType::Pid)
        .is_some_and(|ns| ns.path().is_none())
}

/// The user namespace the spec joins, by path.
pub(super) fn user_path(spec: &Spec) -> Option<&std::path::Path> {
    list(spec)
        .iter()
        .find(|n| n.typ() == LinuxNamespaceType::User)
        .and_then(|n| n.path().as_deref())
}

/// Joins the namespaces the spec names by path, then creates the others:
/// uts, ipc, net, a fresh mount namespace (always, so the container's mounts
/// never touch the shim's), and the cgroup namespace last, after the parent
/// has put the process in its cgroup. A user namespace (`userns`, opened
/// from the spec's path) is joined first, and the process becomes its root,
/// so that it owns the namespaces made after it.
pub(super) fn enter(spec: &Spec, userns: Option<&std::os::fd::OwnedFd>) -> Result<()> {
    let nss = list(spec);
    if let Some(fd) = userns {
        join_user(fd)?;
    }
    let join = |typ: LinuxNamespaceType| -> Result<bool> {
        let Some(ns) = nss.iter().find(|n| n.typ() == typ) else {
            return Ok(false);
        };
        let Some(path) = ns.path() else {
            return Ok(false);
        };
        let Some(flag) = flag(typ) else {
            return Ok(false);
        };
        let fd = open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
            .ctx(|| format!("open {typ} namespace {}", path.display()))?;
        setns(&fd, flag).ctx(|| format!("join {typ} namespace {}", path.display()))?;
        Ok(true)
    };
    let mut new = CloneFlags::empty();
    for typ in [
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
    ] {
        let wanted = nss.iter().any(|n| n.typ() == typ);
        if wanted && !join(typ)? {
            new |= flag(typ).unwrap_or_else(CloneFlags::empty);
        }
    }
    if !join(LinuxNamespaceType::Mount)? {
        new |= CloneFlags::CLONE_NEWNS;
    }
    unshare(new).ctx(|| format!("unshare {new:?}"))?;
    let wants_cgroup = nss.iter().any(|n| n.typ() == LinuxNamespaceType::Cgroup);
    if wants_cgroup && !join(LinuxNamespaceType::Cgroup)? {
        unshare(CloneFlags::CLONE_NEWCGROUP).ctx(|| "unshare cgroup namespace")?;
    }
    Ok(())
}

/// Joins the user namespace `fd` and becomes its root.
pub(super) fn join_user(fd: &std::os::fd::OwnedFd) -> Result<()> {
    setns(fd, CloneFlags::CLONE_NEWUSER).ctx(|| "join the pod's user namespace")?;
    super::userns::become_root()
}

/// Whether the container has a UTS namespace of its own (new or joined).
pub(super) fn has(spec: &Spec, typ: LinuxNamespaceType) -> bool {
    list(spec).iter().any(|n| n.typ() == typ)
}
