//! Mount targets made one after another inside the rootfs, cheaply.
//!
//! The directory of the last target stays open, so that a run of siblings
//! (`/m/0`, `/m/1`, ... `/m/9999`) costs one `mkdirat` each (or one lookup
//! when the entry exists) instead of a confined walk of every path and its
//! parents. The last component is made, or opened without following a
//! symlink, beneath that directory: the target is then a plain entry of it,
//! and a mount on the target leaves the directory itself as it was, the one
//! a fresh confined lookup of its path would give. Anything else (a symlink,
//! the rootfs itself) goes through [`Root::ensure`], and the directory is
//! forgotten once a mount may have been made there, since it may cover it.

use std::ffi::{CStr, CString};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{mkdirat, Mode};

use super::confined::{relative, Kind, Root};
use super::error::{Error, Result};

/// Where a mount goes.
pub(super) enum Target<'t> {
    /// An open (`O_PATH`) descriptor of the target.
    Open(OwnedFd),
    /// The entry `name` of the open directory `dir`, just made here: a
    /// plain directory or file, no symlink.
    Made {
        /// The directory.
        dir: &'t OwnedFd,
        /// The entry's name, one component.
        name: CString,
    },
}

impl Target<'_> {
    /// An open descriptor of the target.
    pub(super) fn into_fd(self) -> nix::Result<OwnedFd> {
        match self {
            Target::Open(fd) => Ok(fd),
            Target::Made { dir, name } => open_plain(dir, name.as_c_str()),
        }
    }
}

/// The mount targets of one rootfs.
pub(super) struct Targets<'r> {
    root: &'r Root,
    /// The parent of the last target (relative to the rootfs) and its
    /// descriptor.
    dir: Option<(PathBuf, OwnedFd)>,
    /// The last target was a plain entry of `dir`.
    plain: bool,
}

impl<'r> Targets<'r> {
    pub(super) fn new(root: &'r Root) -> Targets<'r> {
        Targets {
            root,
            dir: None,
            plain: true,
        }
    }

    /// The root the targets are in.
    pub(super) fn root(&self) -> &'r Root {
        self.root
    }

    /// The target at `dest`, created (with missing parents) as
    /// [`Root::ensure`] does. A mount may be made on it before the next call.
    pub(super) fn ensure(&mut self, dest: &Path, kind: Kind) -> Result<Target<'_>> {
        if !self.plain {
            self.dir = None;
        }
        self.plain = false;
        let rel = relative(dest)?;
        let (Some(name), Some(parent)) = (rel.file_name(), rel.parent()) else {
            return self.root.ensure(dest, kind).map(Target::Open);
        };
        let cached = matches!(&self.dir, Some((p, _)) if p.as_path() == parent);
        if !cached {
            let fd = self.root.ensure(&Path::new("/").join(parent), Kind::Dir)?;
            self.dir = Some((parent.to_path_buf(), fd));
        }
        let Some((_, dir)) = &self.dir else {
            return self.root.ensure(dest, kind).map(Target::Open);
        };
        let failed = |e| Error::Sys {
            op: format!("make mount target {}", self.root.show(dest)),
            source: e,
        };
        let cname = CString::new(name.as_encoded_bytes()).map_err(|_| {
            Error::InvalidSpec(format!("mount destination {} has a NUL", dest.display()))
        })?;
        match make(dir, &cname, kind) {
            Ok(()) => {
                self.plain = true;
                return Ok(Target::Made { dir, name: cname });
            }
            // Something is there already (mkdir and O_EXCL never follow a
            // symlink): opened as a plain entry unless it is a symlink.
            Err(Errno::EEXIST) => {}
            Err(e) => return Err(failed(e)),
        }
        match open_plain(dir, &cname) {
            Ok(fd) => {
                self.plain = true;
                Ok(Target::Open(fd))
            }
            // A symlink: the full, confined resolution follows it inside
            // the rootfs (and refuses a dangling one).
            Err(Errno::ELOOP) => self.root.ensure(dest, kind).map(Target::Open),
            Err(e) => Err(failed(e)),
        }
    }
}

/// Creates the entry `name` of `dir` as `kind`.
fn make(dir: &OwnedFd, name: &CStr, kind: Kind) -> nix::Result<()> {
    match kind {
        Kind::File => openat(
            dir,
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .map(drop),
        Kind::Dir => mkdirat(dir, name, Mode::from_bits_truncate(0o755)),
    }
}

/// Opens (`O_PATH`) the entry `name` of `dir`, never through a symlink
/// (`ELOOP` then).
fn open_plain(dir: &OwnedFd, name: &CStr) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
    // EAGAIN: a rename or mount somewhere raced with the lookup; retry.
    let mut tries = 0;
    loop {
        match openat2(dir, name, how) {
            Err(Errno::EAGAIN) if tries < 1000 => tries += 1,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn fixture() -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        (dir, root)
    }

    #[test]
    fn siblings_are_made_in_the_open_directory() {
        let (dir, root) = fixture();
        let mut targets = Targets::new(&root);
        for i in 0..3 {
            let t = targets
                .ensure(Path::new(&format!("/m/{i}")), Kind::Dir)
                .unwrap();
            assert!(matches!(t, Target::Made { .. }));
        }
        let t = targets.ensure(Path::new("/m/f"), Kind::File).unwrap();
        assert!(matches!(t, Target::Made { .. }));
        assert!(dir.path().join("m/2").is_dir());
        assert!(dir.path().join("m/f").is_file());
        // An existing entry is opened, not made again.
        let t = targets.ensure(Path::new("/m/1"), Kind::Dir).unwrap();
        assert!(matches!(t, Target::Open(_)));
        assert!(t.into_fd().is_ok());
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let (dir, root) = fixture();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        // Absolute and climbing links both land inside the rootfs.
        symlink("/etc", dir.path().join("data")).unwrap();
        symlink("../../../../etc/target", dir.path().join("etc/link")).unwrap();
        let mut targets = Targets::new(&root);
        let t = targets.ensure(Path::new("/data/x"), Kind::Dir).unwrap();
        assert!(
            matches!(t, Target::Made { .. }),
            "made in the resolved parent"
        );
        assert!(dir.path().join("etc/x").is_dir());
        // The last component a symlink: resolved confined, not made here.
        std::fs::create_dir_all(dir.path().join("etc/target")).unwrap();
        let t = targets.ensure(Path::new("/etc/link"), Kind::Dir).unwrap();
        assert!(matches!(t, Target::Open(_)));
        assert!(!targets.plain, "a mount there may cover the directory");
        let t = targets.ensure(Path::new("/etc/y"), Kind::Dir).unwrap();
        assert!(matches!(t, Target::Made { .. }));
        assert!(dir.path().join("etc/y").is_dir());
    }

    #[test]
    fn dangling_symlinks_are_not_created_through() {
        let (dir, root) = fixture();
        symlink("/nowhere/file", dir.path().join("file")).unwrap();
        let mut targets = Targets::new(&root);
        let err = targets
            .ensure(Path::new("/file"), Kind::File)
            .err()
            .unwrap();
        assert!(matches!(err, Error::InvalidSpec(_)), "{err}");
        assert!(!dir.path().join("nowhere").exists());
    }

    #[test]
    fn the_root_itself_is_a_target() {
        let (_dir, root) = fixture();
        let mut targets = Targets::new(&root);
        let t = targets.ensure(Path::new("/"), Kind::Dir).unwrap();
        assert!(matches!(t, Target::Open(_)));
        assert!(matches!(
            targets.ensure(Path::new("/../x"), Kind::Dir),
            Err(Error::Escapes { .. })
        ));
    }
}
