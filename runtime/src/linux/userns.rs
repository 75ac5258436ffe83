//! User namespaces of pods (Kubernetes `hostUsers: false`).
//!
//! A pod's user namespace is made by `corten-shim pin` (see
//! [`super::pin`]): a forked child unshares it, the parent (root in the
//! initial namespace) writes its `uid_map` and `gid_map`, and the pod's
//! net, ipc and uts namespaces are then made by that child, so the user
//! namespace owns them. `setgroups` stays allowed: the maps are written by a
//! privileged process, and containers need `setgroups(2)` for their
//! supplementary groups.
//!
//! Containers join it by path, first of all their namespaces, so that the
//! mount, cgroup and (own) pid namespaces they make are owned by it: only
//! then can they mount proc, sysfs and mqueue. A new pid namespace for a
//! container is made by the forked child once inside the user namespace;
//! its first child is the pid 1 there, the container's init, and the child
//! exits (see `child::reborn`): the shim that forks must stay root in the
//! initial namespace.
//!
//! Files: the root filesystem's image layers and every bind mount are
//! id-mapped mounts made with the pod's user namespace (see
//! [`super::rootfs`] and [`super::mounts`]), so image files owned by host
//! uid 0 appear owned by container uid 0, and a file a container makes on
//! a volume is owned on disk by the uid it has *inside* (as containerd and
//! CRI-O do). The container's writable layer is not id-mapped (overlayfs
//! writes it with its mounter's credentials): its directories are owned by
//! the host ids of container root, and what the container writes there is
//! owned by the mapped host ids.

use std::os::fd::{AsRawFd as _, OwnedFd};
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::error::{Context, Error, Result};

/// One line of a `uid_map` or `gid_map`: `size` ids from `container_id`
/// inside map to as many from `host_id` outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdMapping {
    /// The first id inside the namespace.
    pub container_id: u32,
    /// The first id outside (on the host).
    pub host_id: u32,
    /// How many ids.
    pub size: u32,
}

/// The uid and gid maps of a user namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct IdMappings {
    /// The uid map.
    pub uids: Vec<IdMapping>,
    /// The gid map.
    pub gids: Vec<IdMapping>,
}

impl IdMappings {
    /// Refuses maps the kernel would refuse or a container could not run
    /// with: empty, a range of no ids or past 2^32, more than one line
    /// (what kubelet sends, and what containerd and CRI-O take), or
    /// container id 0 (root) unmapped.
    pub fn check(&self) -> Result<()> {
        for (what, maps) in [("uid", &self.uids), ("gid", &self.gids)] {
            let bad = |why: String| Error::InvalidSpec(format!("user namespace {what} map: {why}"));
            match maps.as_slice() {
                [] => return Err(bad("is empty".into())),
                [m] => {
                    if m.size == 0 {
                        return Err(bad(format!("{} maps no ids (size 0)", line(m))));
                    }
                    for (end, start) in [("host", m.host_id), ("container", m.container_id)] {
                        if u64::from(start) + u64::from(m.size) > 1 << 32 {
                            return Err(bad(format!(
                                "{}: the {end} range ends past 2^32",
                                line(m)
                            )));
                        }
                    }
                    if m.container_id != 0 {
                        return Err(bad(format!(
                            "{}: container id 0 (root) is not mapped",
                            line(m)
                        )));
                    }
                }
                more => {
                    return Err(bad(format!(
                        "has {} ranges; exactly one is supported",
                        more.len()
                    )))
                }
            }
        }
        Ok(())
    }

    /// The host uid and gid of container root (after [`IdMappings::check`]).
    pub fn host_root(&self) -> Option<(u32, u32)> {
        let root = |maps: &[IdMapping]| {
            maps.iter()
                .find(|m| m.container_id == 0 && m.size > 0)
                .map(|m| m.host_id)
        };
        Some((root(&self.uids)?, root(&self.gids)?))
    }

    /// The `uid_map` text.
    pub fn uid_map(&self) -> String {
        map_text(&self.uids)
    }

    /// The `gid_map` text.
    pub fn gid_map(&self) -> String {
        map_text(&self.gids)
    }
}

fn line(m: &IdMapping) -> String {
    format!("{} {} {}", m.container_id, m.host_id, m.size)
}

fn map_text(maps: &[IdMapping]) -> String {
    maps.iter().map(|m| line(m) + "\n").collect()
}

/// Writes the maps of the process `pid` (just after it unshared its user
/// namespace). The caller is root in the parent namespace.
pub(super) fn write_maps(pid: Pid, maps: &IdMappings) -> Result<()> {
    for (file, text) in [("uid_map", maps.uid_map()), ("gid_map", maps.gid_map())] {
        let path = format!("/proc/{pid}/{file}");
        match std::fs::write(&path, text.as_bytes()) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                return Err(Error::InvalidSpec(format!(
                    "the kernel refused {file} {:?}",
                    text.trim_end()
                )))
            }
            other => other.ctx(|| format!("write {path}"))?,
        }
    }
    Ok(())
}

/// Opens the user namespace pinned (or living) at `path`.
pub(super) fn open_userns(path: &Path) -> Result<OwnedFd> {
    open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .ctx(|| format!("open user namespace {}", path.display()))
}

/// In a child that has just joined a user namespace: become its root
/// (container uid and gid 0), so that what it creates before switching to
/// the container's user is owned by container root.
pub(super) fn become_root() -> Result<()> {
    let root_gid = nix::unistd::Gid::from_raw(0);
    let root_uid = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresgid(root_gid, root_gid, root_gid)
        .ctx(|| "setresgid 0 in the user namespace")?;
    nix::unistd::setresuid(root_uid, root_uid, root_uid).ctx(|| "setresuid 0 in the user namespace")
}

/// The raw descriptor of `fd`, for `mount_attr.userns_fd`.
pub(super) fn raw(fd: &OwnedFd) -> u64 {
    fd.as_raw_fd() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(c: u32, h: u32, s: u32) -> Vec<IdMapping> {
        vec![IdMapping {
            container_id: c,
            host_id: h,
            size: s,
        }]
    }

    #[test]
    fn mappings_are_checked() {
        let good = IdMappings {
            uids: one(0, 100_000, 65_536),
            gids: one(0, 200_000, 65_536),
        };
        good.check().expect("valid");
        assert_eq!(good.host_root(), Some((100_000, 200_000)));
        assert_eq!(good.uid_map(), "0 100000 65536\n");
        let refused = |m: IdMappings, says: &str| {
            let e = m.check().expect_err(says).to_string();
            assert!(e.contains(says), "{e}");
        };
        refused(
            IdMappings {
                gids: vec![],
                ..good.clone()
            },
            "gid map: is empty",
        );
        refused(
            IdMappings {
                uids: one(0, 1, 0),
                ..good.clone()
            },
            "size 0",
        );
        refused(
            IdMappings {
                uids: one(0, u32::MAX, 2),
                ..good.clone()
            },
            "host range ends past 2^32",
        );
        refused(
            IdMappings {
                uids: one(1, 1000, 10),
                ..good.clone()
            },
            "container id 0 (root) is not mapped",
        );
        let mut two = good.clone();
        two.uids.extend(one(0, 2000, 10));
        refused(two, "has 2 ranges");
    }
}
