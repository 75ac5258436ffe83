//! OCI whiteouts (image-spec `layer.md`), turned into their overlayfs form.
//!
//! `.wh.<name>` becomes a character device 0:0 called `<name>`, which
//! overlayfs reads as "deleted in this layer". `.wh..wh..opq` in a directory
//! becomes the xattr `trusted.overlay.opaque=y` on that directory, which
//! hides everything below it in lower layers. Whiteout entries never create
//! a `.wh.*` file of their own.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{makedev, mknodat, Mode, SFlag};

use super::confined::{self, Root};
use super::Error;

/// Prefix marking a whiteout entry.
pub(super) const PREFIX: &[u8] = b".wh.";
/// Name of the opaque-directory marker.
pub(super) const OPAQUE: &[u8] = b".wh..wh..opq";
/// The xattr overlayfs reads to treat a directory as opaque.
pub(super) const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What a whiteout entry asks for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Whiteout<'a> {
    /// Hide `name` of lower layers in this directory.
    Name(&'a OsStr),
    /// Hide all of the lower layers' content of this directory.
    Opaque,
    /// Other `.wh..wh.` names (aufs bookkeeping such as `.wh..wh.plnk`):
    /// nothing to do.
    Ignored,
}

/// Classifies the last component of an entry name; `None` if it is not a
/// whiteout. `Some(Err)` for a whiteout that names nothing.
pub(super) fn classify(last: &OsStr) -> Option<Result<Whiteout<'_>, ()>> {
    let bytes = last.as_bytes();
    if bytes == OPAQUE {
        return Some(Ok(Whiteout::Opaque));
    }
    if bytes.starts_with(b".wh..wh.") {
        return Some(Ok(Whiteout::Ignored));
    }
    let name = bytes.strip_prefix(PREFIX)?;
    match name {
        b"" | b"." | b".." => Some(Err(())),
        name => Some(Ok(Whiteout::Name(OsStr::from_bytes(name)))),
    }
}

/// Applies `whiteout`, found in directory `dir` (components from the root).
pub(super) fn apply(
    root: &Root,
    dir: &[&OsStr],
    whiteout: Whiteout<'_>,
    entry: &str,
) -> Result<(), Error> {
    let fs = |op: &'static str| {
        let entry = entry.to_string();
        move |e: nix::errno::Errno| Error::Fs {
            entry,
            op,
            source: e.into(),
        }
    };
    match whiteout {
        Whiteout::Ignored => Ok(()),
        Whiteout::Name(name) => {
            let parent = root.dir(dir, true).map_err(fs("create parent directory"))?;
            confined::remove_all(parent.as_fd(), name).map_err(fs("remove existing entry"))?;
            mknodat(
                parent.as_fd(),
                name,
                SFlag::S_IFCHR,
                Mode::empty(),
                makedev(0, 0),
            )
            .map_err(fs("create whiteout device"))
        }
        Whiteout::Opaque => {
            let parent = root.dir(dir, true).map_err(fs("create opaque directory"))?;
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
            let fd = openat(parent.as_fd(), ".", flags, Mode::empty())
                .map_err(fs("open opaque directory"))?;
            rustix::fs::fsetxattr(&fd, OPAQUE_XATTR, b"y", rustix::fs::XattrFlags::empty()).map_err(
                |e| Error::Fs {
                    entry: entry.to_string(),
                    op: "set trusted.overlay.opaque",
                    source: e.into(),
                },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_names() {
        fn c(s: &str) -> Option<Result<Whiteout<'_>, ()>> {
            classify(OsStr::new(s))
        }
        assert_eq!(c("file"), None);
        assert_eq!(c("wh.file"), None);
        assert_eq!(c(".wh.file"), Some(Ok(Whiteout::Name(OsStr::new("file")))));
        assert_eq!(
            c(".wh..hidden"),
            Some(Ok(Whiteout::Name(OsStr::new(".hidden"))))
        );
        assert_eq!(c(".wh..wh..opq"), Some(Ok(Whiteout::Opaque)));
        assert_eq!(c(".wh..wh.plnk"), Some(Ok(Whiteout::Ignored)));
        assert_eq!(c(".wh."), Some(Err(())));
        assert_eq!(c(".wh.."), Some(Err(())));
    }
}
