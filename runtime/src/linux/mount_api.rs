//! The descriptor-based mount calls (Linux 5.2: `open_tree`, `move_mount`;
//! 5.12: `mount_setattr`), for bind mounts made without path lookups.
//!
//! A bind mount is a detached copy of its source (`open_tree` with
//! `OPEN_TREE_CLONE`), moved onto a target descriptor (`move_mount`), whose
//! flags and propagation are then set through the same descriptor
//! (`mount_setattr`). Against `mount(2)` on `/proc/self/fd/<n>` paths this
//! saves the lookups of the target before each call and the separate
//! propagation call: three to four system calls a mount instead of eight.
//!
//! Every call reports `ENOSYS` as such, so callers fall back to `mount(2)`
//! on kernels without it.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::mount::MsFlags;

/// What `mount_setattr` sets: `MOUNT_ATTR_*` bits to set and to clear, and
/// one propagation type (`MS_PRIVATE`, `MS_SLAVE`, ...; 0 leaves it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Attr {
    /// `MOUNT_ATTR_*` bits to set.
    pub set: u64,
    /// `MOUNT_ATTR_*` bits to clear.
    pub clear: u64,
    /// The propagation type to give, as its `MS_*` flag.
    pub propagation: u64,
}

/// The per-mount flags a bind remount (`MS_BIND|MS_REMOUNT`) replaces.
const SETTABLE: u64 = libc::MOUNT_ATTR_RDONLY
    | libc::MOUNT_ATTR_NOSUID
    | libc::MOUNT_ATTR_NODEV
    | libc::MOUNT_ATTR_NOEXEC
    | libc::MOUNT_ATTR__ATIME
    | libc::MOUNT_ATTR_NODIRATIME
    | libc::MOUNT_ATTR_NOSYMFOLLOW;

impl Attr {
    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        *self == Attr::default()
    }

    /// The flags `mount(2)` with `MS_BIND | MS_REMOUNT | flags` leaves on a
    /// mount: exactly the per-mount flags named (read-only, nosuid, nodev,
    /// noexec, nodiratime), the others cleared, and relatime unless
    /// `MS_NOATIME` or `MS_STRICTATIME` says otherwise (`MS_STRICTATIME`
    /// winning, as in the kernel). Superblock flags (`MS_SYNCHRONOUS`, ...)
    /// do not reach a bind mount either way.
    pub fn remount(flags: MsFlags) -> Attr {
        let mut set = 0;
        for (ms, attr) in [
            (MsFlags::MS_RDONLY, libc::MOUNT_ATTR_RDONLY),
            (MsFlags::MS_NOSUID, libc::MOUNT_ATTR_NOSUID),
            (MsFlags::MS_NODEV, libc::MOUNT_ATTR_NODEV),
            (MsFlags::MS_NOEXEC, libc::MOUNT_ATTR_NOEXEC),
            (MsFlags::MS_NODIRATIME, libc::MOUNT_ATTR_NODIRATIME),
        ] {
            if flags.contains(ms) {
                set |= attr;
            }
        }
        set |= if flags.contains(MsFlags::MS_STRICTATIME) {
            libc::MOUNT_ATTR_STRICTATIME
        } else if flags.contains(MsFlags::MS_NOATIME) {
            libc::MOUNT_ATTR_NOATIME
        } else {
            libc::MOUNT_ATTR_RELATIME
        };
        Attr {
            set,
            clear: SETTABLE,
            propagation: 0,
        }
    }

    /// The propagation part of `MS_PRIVATE | MS_REC`-style flags, and
    /// whether it is recursive (`MS_REC`).
    pub fn propagation(flags: MsFlags) -> (Attr, bool) {
        let kind = flags & !MsFlags::MS_REC;
        let attr = Attr {
            propagation: kind.bits(),
            ..Attr::default()
        };
        (attr, flags.contains(MsFlags::MS_REC))
    }

    /// Read-only on every mount of a tree (`rro`).
    pub fn readonly() -> Attr {
        Attr {
            set: libc::MOUNT_ATTR_RDONLY,
            ..Attr::default()
        }
    }
}

/// A detached copy of the mount at `source` (with the mounts beneath it
/// when `recursive`), as `mount --bind`/`--rbind` would attach it. The
/// descriptor names the copy's root; dropping it unattached frees the copy.
pub(super) fn clone_tree(source: &Path, recursive: bool) -> nix::Result<OwnedFd> {
    let path = CString::new(source.as_os_str().as_encoded_bytes()).map_err(|_| Errno::EINVAL)?;
    let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: open_tree reads the NUL-terminated `path`, live for the call,
    // and returns a new descriptor or -1; it touches no other memory.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    if fd < 0 {
        return Err(Errno::last());
    }
    let fd = i32::try_from(fd).map_err(|_| Errno::EBADF)?;
    // SAFETY: the kernel just returned `fd`, a descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Attaches the detached tree `tree` on the entry `name` of the directory
/// `dir` (never following a symlink there), or on the object `dir` names
/// itself when `name` is empty: as `mount(2)` on the same path would.
pub(super) fn move_tree(tree: &OwnedFd, dir: &OwnedFd, name: &CStr) -> nix::Result<()> {
    let mut flags = libc::MOVE_MOUNT_F_EMPTY_PATH;
    if name.is_empty() {
        flags |= libc::MOVE_MOUNT_T_EMPTY_PATH;
    }
    // SAFETY: move_mount reads two NUL-terminated strings (a static empty
    // one and `name`, live for the call) and uses two open descriptors.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            dir.as_raw_fd(),
            name.as_ptr(),
            flags,
        )
    };
    Errno::result(rc).map(drop)
}

/// Changes the mount `mount` names (its root's descriptor), and with
/// `recursive` every mount beneath it too.
pub(super) fn set_attr(mount: &OwnedFd, recursive: bool, attr: &Attr) -> nix::Result<()> {
    call_setattr(mount.as_raw_fd(), c"", libc::AT_EMPTY_PATH, recursive, attr)
}

/// Makes the detached mount `mount` (and with `recursive` the mounts
/// beneath it) an id-mapped mount with the maps of the user namespace
/// `userns`. The caller is root in the initial user namespace.
pub(super) fn set_idmap(mount: &OwnedFd, recursive: bool, userns: &OwnedFd) -> nix::Result<()> {
    let raw = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: super::userns::raw(userns),
    };
    setattr_raw(mount.as_raw_fd(), c"", libc::AT_EMPTY_PATH, recursive, &raw)
}

/// [`set_attr`] on the mount at `path`.
pub(super) fn set_attr_at(path: &Path, recursive: bool, attr: &Attr) -> nix::Result<()> {
    let cpath = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| Errno::EINVAL)?;
    call_setattr(libc::AT_FDCWD, &cpath, 0, recursive, attr)
}

fn call_setattr(
    dirfd: i32,
    path: &CStr,
    flags: i32,
    recursive: bool,
    attr: &Attr,
) -> nix::Result<()> {
    let raw = libc::mount_attr {
        attr_set: attr.set,
        attr_clr: attr.clear,
        propagation: attr.propagation,
        userns_fd: 0,
    };
    setattr_raw(dirfd, path, flags, recursive, &raw)
}

fn setattr_raw(
    dirfd: i32,
    path: &CStr,
    flags: i32,
    recursive: bool,
    raw: &libc::mount_attr,
) -> nix::Result<()> {
    let mut flags = flags as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: mount_setattr reads the NUL-terminated `path` and `size`
    // bytes of `raw`, both live for the call; it writes nothing back.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags,
            raw as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    Errno::result(rc).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remount_flags_become_exact_attributes() {
        let ro = Attr::remount(MsFlags::MS_RDONLY);
        assert_eq!(ro.set, libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_RELATIME);
        assert_eq!(ro.clear, SETTABLE, "the rest is cleared, as a remount does");
        assert_eq!(ro.propagation, 0);

        let all = Attr::remount(
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        );
        assert_eq!(
            all.set,
            libc::MOUNT_ATTR_RDONLY
                | libc::MOUNT_ATTR_NOSUID
                | libc::MOUNT_ATTR_NODEV
                | libc::MOUNT_ATTR_NOEXEC
        );
        assert_eq!(
            Attr::remount(MsFlags::MS_NOATIME | MsFlags::MS_NODIRATIME).set,
            libc::MOUNT_ATTR_NOATIME | libc::MOUNT_ATTR_NODIRATIME
        );
        // strictatime clears noatime in the kernel's reading too.
        assert_eq!(
            Attr::remount(MsFlags::MS_NOATIME | MsFlags::MS_STRICTATIME).set,
            libc::MOUNT_ATTR_STRICTATIME
        );
        // Superblock-only flags leave a plain relatime mount.
        assert_eq!(
            Attr::remount(MsFlags::MS_SYNCHRONOUS).set,
            libc::MOUNT_ATTR_RELATIME
        );
    }

    #[test]
    fn propagation_and_recursion() {
        let (a, rec) = Attr::propagation(MsFlags::MS_PRIVATE | MsFlags::MS_REC);
        assert!(rec);
        assert_eq!(a.propagation, MsFlags::MS_PRIVATE.bits());
        assert_eq!((a.set, a.clear), (0, 0));
        let (a, rec) = Attr::propagation(MsFlags::MS_SLAVE);
        assert!(!rec);
        assert_eq!(a.propagation, MsFlags::MS_SLAVE.bits());
        assert!(Attr::propagation(MsFlags::empty()).0.is_empty());
    }
}
