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

/// Refuses what this runtime does not do (user and time namespaces).
pub(super) fn validate(spec: &Spec) -> Result<()> {
    for ns in list(spec) {
        if matches!(
            ns.typ(),
            LinuxNamespaceType::User | LinuxNamespaceType::Time
        ) {
            return Err(Error::InvalidSpec(format!(
                "{} namespaces are not supported",
                ns.typ()
            )));
        }
    }
    Ok(())
}

/// Joins the namespaces the spec names by path, then creates the others:
/// uts, ipc, net, a fresh mount namespace (always, so the container's mounts
/// never touch the shim's), and the cgroup namespace last, after the parent
/// has put the process in its cgroup.
pub(super) fn enter(spec: &Spec) -> Result<()> {
    let nss = list(spec);
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

/// Whether the container has a UTS namespace of its own (new or joined).
pub(super) fn has(spec: &Spec, typ: LinuxNamespaceType) -> bool {
    list(spec).iter().any(|n| n.typ() == typ)
}
