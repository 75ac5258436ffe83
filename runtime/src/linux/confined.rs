//! Paths inside the container rootfs, resolved confined to it.
//!
//! Lookups go through `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` on a
//! descriptor of the rootfs, so `..` and symlinks in the image (absolute or
//! relative, such as `/data -> /etc`) resolve as if the rootfs were `/`.
//! Missing entries are made with `*at` calls on the resolved parent and a
//! single name, which the kernel never follows. Mounts then target the
//! resolved object through `/proc/self/fd/<n>`, so what was checked is what
//! gets mounted on.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{mkdirat, Mode};

use super::error::{Context, Error, Result};

/// What to create when a path is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A directory (mode 0755).
    Dir,
    /// An empty regular file (mode 0644), e.g. for a file bind mount.
    File,
}

/// An open descriptor of the container rootfs.
pub(super) struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

/// `dest` made relative to the rootfs, `.` and `..` applied lexically.
/// A `..` that climbs above `/` is refused.
pub(super) fn relative(dest: &Path) -> Result<PathBuf> {
    let mut out: Vec<&OsStr> = Vec::new();
    for c in dest.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if out.pop().is_none() {
                    return Err(Error::Escapes {
                        path: dest.to_path_buf(),
                    });
                }
            }
            Component::Normal(n) => out.push(n),
        }
    }
    Ok(out.iter().collect())
}

/// The path through which a mount call reaches the object `fd` names.
pub(super) fn proc_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

impl Root {
    /// Opens the rootfs directory.
    pub(super) fn open(path: &Path) -> Result<Root> {
        let fd = open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("open rootfs {}", path.display()))?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// `dest` as the host would name it, for messages.
    pub(super) fn show(&self, dest: &Path) -> String {
        match relative(dest) {
            Ok(rel) => self.path.join(rel).display().to_string(),
            Err(_) => format!("{} (escaping)", dest.display()),
        }
    }

    fn resolve_rel(&self, rel: &Path) -> nix::Result<OwnedFd> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        // EAGAIN: a rename or mount somewhere raced with the lookup; retry.
        let mut tries = 0;
        loop {
            match openat2(&self.fd, rel, how) {
                Err(nix::errno::Errno::EAGAIN) if tries < 1000 => tries += 1,
                other => return other,
            }
        }
    }

    /// Opens (`O_PATH`) the existing object at `dest`.
    pub(super) fn resolve(&self, dest: &Path) -> Result<OwnedFd> {
        let rel = relative(dest)?;
        self.resolve_rel(&rel)
            .ctx(|| format!("resolve {}", self.show(dest)))
    }

    /// Opens the object at `dest`, creating it (and missing parents as
    /// directories) when absent.
    pub(super) fn ensure(&self, dest: &Path, kind: Kind) -> Result<OwnedFd> {
        let rel = relative(dest)?;
        match self.resolve_rel(&rel) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(e) => {
                return Err(Error::Sys {
                    op: format!("resolve {}", self.show(dest)),
                    source: e,
                })
            }
        }
        let parts: Vec<&OsStr> = rel.iter().collect();
        let mut parent = self.resolve_rel(Path::new("")).ctx(|| "reopen rootfs")?;
        for (i, name) in parts.iter().enumerate() {
            let prefix: PathBuf = parts[..=i].iter().collect();
            match self.resolve_rel(&prefix) {
                Ok(fd) => {
                    parent = fd;
                    continue;
                }
                Err(Errno::ENOENT) => {}
                Err(e) => {
                    return Err(Error::Sys {
                        op: format!("resolve {}", self.show(&prefix)),
                        source: e,
                    })
                }
            }
            let last = i + 1 == parts.len();
            let made = if last && kind == Kind::File {
                openat(
                    &parent,
                    *name,
                    OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o644),
                )
                .map(drop)
            } else {
                mkdirat(&parent, *name, Mode::from_bits_truncate(0o755))
            };
            match made {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => {
                    return Err(Error::Sys {
                        op: format!("create {}", self.show(&prefix)),
                        source: e,
                    })
                }
            }
            // A name that exists but still does not resolve is a dangling
            // symlink: creating through it is refused, never followed.
            parent = match self.resolve_rel(&prefix) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    return Err(Error::InvalidSpec(format!(
                        "{} is a dangling symlink in the image; not creating through it",
                        self.show(&prefix)
                    )))
                }
                Err(e) => {
                    return Err(Error::Sys {
                        op: format!("resolve {} after creating it", self.show(&prefix)),
                        source: e,
                    })
                }
            };
        }
        Ok(parent)
    }

    /// Opens the directory holding `dest` (created if missing) and returns
    /// it with the final name, for `mknodat`/`symlinkat`-style calls.
    pub(super) fn parent_of(&self, dest: &Path) -> Result<(OwnedFd, PathBuf)> {
        let rel = relative(dest)?;
        let name = rel.file_name().map(PathBuf::from).ok_or_else(|| {
            Error::InvalidSpec(format!("{} names the rootfs itself", dest.display()))
        })?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        let fd = self.ensure(&Path::new("/").join(parent), Kind::Dir)?;
        Ok((fd, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(Path::new("/a/./b/../c")).unwrap(),
            Path::new("a/c")
        );
        assert_eq!(relative(Path::new("/")).unwrap(), Path::new(""));
        assert!(matches!(
            relative(Path::new("/a/../../etc")),
            Err(Error::Escapes { .. })
        ));
    }
}
