//! Path resolution confined to the unpack root.
//!
//! Every lookup goes through `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`
//! on a descriptor of the root, so `..`, absolute symlinks and symlinks
//! planted by earlier entries all resolve as if the root were `/`: nothing a
//! layer contains can make a lookup leave it. Entries are then made with
//! `*at` calls on the returned parent directory and a single, final name
//! component, which the kernel never follows for creation.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fchmodat, mkdirat, FchmodatFlags, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};

/// Mode of directories created because an entry needs them as parents.
const IMPLIED_DIR_MODE: u32 = 0o755;

/// A layer path split into normal components: no empty, `.` or `..` parts.
pub(super) type Components<'a> = Vec<&'a OsStr>;

/// Splits a layer path into components, dropping empty and `.` parts and
/// applying `..` lexically. A leading `/` is ignored: absolute names are
/// relative to the root. Returns `None` when `..` would climb above the root.
pub(super) fn components(name: &[u8]) -> Option<Components<'_>> {
    let mut out = Vec::new();
    for part in name.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                out.pop()?;
            }
            part => out.push(OsStr::from_bytes(part)),
        }
    }
    Some(out)
}

fn join(components: &[&OsStr]) -> PathBuf {
    if components.is_empty() {
        return PathBuf::from(".");
    }
    components.iter().collect()
}

/// An open descriptor of the unpack root.
pub(super) struct Root {
    fd: OwnedFd,
}

impl Root {
    /// Opens `path`, which must be an existing directory.
    pub(super) fn open(path: &Path) -> nix::Result<Root> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::open(path, flags, Mode::empty())?;
        Ok(Root { fd })
    }

    /// Resolves `path` inside the root with `flags`.
    pub(super) fn resolve(&self, path: &[&OsStr], flags: OFlag) -> nix::Result<OwnedFd> {
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let path = join(path);
        retry_eagain(|| openat2(self.fd.as_fd(), &path, how))
    }

    /// Opens the directory `path` (an `O_PATH` descriptor, good for `*at`
    /// calls). With `create`, missing directories on the way are made, mode
    /// 0755, each through the same confined resolution.
    pub(super) fn dir(&self, path: &[&OsStr], create: bool) -> nix::Result<OwnedFd> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
        match self.resolve(path, flags) {
            Err(Errno::ENOENT) if create => {}
            done => return done,
        }
        let mut dir = self.resolve(&[], flags)?;
        for (i, name) in path.iter().enumerate() {
            let prefix = &path[..=i];
            match self.resolve(prefix, flags) {
                Ok(fd) => {
                    dir = fd;
                    continue;
                }
                Err(Errno::ENOENT) => {}
                Err(e) => return Err(e),
            }
            match mkdirat(
                dir.as_fd(),
                *name,
                Mode::from_bits_truncate(IMPLIED_DIR_MODE),
            ) {
                Ok(()) => fchmodat(
                    dir.as_fd(),
                    *name,
                    Mode::from_bits_truncate(IMPLIED_DIR_MODE),
                    FchmodatFlags::NoFollowSymlink,
                )?,
                // Something is there: a dangling symlink fails the lookup below.
                Err(Errno::EEXIST) => {}
                Err(e) => return Err(e),
            }
            dir = self.resolve(prefix, flags)?;
        }
        Ok(dir)
    }
}

/// Removes whatever `name` in `parent` is, a whole directory tree included.
/// Absent is fine. Never follows a symlink.
pub(super) fn remove_all(parent: BorrowedFd<'_>, name: &OsStr) -> nix::Result<()> {
    match unlinkat(parent, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => return Ok(()),
        Err(Errno::EISDIR) => {}
        Err(e) => return Err(e),
    }
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut dir = Dir::from_fd(openat(parent, name, flags, Mode::empty())?)?;
    let mut children = Vec::new();
    for child in dir.iter() {
        let child = child?;
        let child = child.file_name().to_bytes();
        if child != b"." && child != b".." {
            children.push(child.to_vec());
        }
    }
    for child in children {
        remove_all(dir.as_fd(), OsStr::from_bytes(&child))?;
    }
    unlinkat(parent, name, UnlinkatFlags::RemoveDir)
}

/// openat2 with RESOLVE_IN_ROOT answers EAGAIN when a rename or a mount
/// anywhere on the system raced with the lookup; the lookup is then simply
/// tried again (a bounded number of times).
pub(super) fn retry_eagain<T>(mut f: impl FnMut() -> nix::Result<T>) -> nix::Result<T> {
    let mut tries = 0;
    loop {
        match f() {
            Err(nix::errno::Errno::EAGAIN) if tries < 1000 => tries += 1,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(name: &str) -> Option<Vec<&str>> {
        components(name.as_bytes()).map(|c| c.iter().map(|s| s.to_str().unwrap()).collect())
    }

    #[test]
    fn splits_and_cleans_names() {
        assert_eq!(strs("a/b/c"), Some(vec!["a", "b", "c"]));
        assert_eq!(strs("./a//b/"), Some(vec!["a", "b"]));
        assert_eq!(strs("/abs/path"), Some(vec!["abs", "path"]));
        assert_eq!(strs("a/../b"), Some(vec!["b"]));
        assert_eq!(strs("."), Some(vec![]));
        assert_eq!(strs(""), Some(vec![]));
        assert_eq!(strs("../escape"), None);
        assert_eq!(strs("a/../../b"), None);
        assert_eq!(strs("/.."), None);
    }
}
