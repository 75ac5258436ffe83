//! Unpacking one layer tar stream into a directory, in a single pass.

use std::cell::Cell;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{
    fchmod, fchmodat, fstatat, futimens, makedev, mkdirat, mknodat, utimensat, FchmodatFlags, Mode,
    SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat};
use sha2::Digest as _;
use tar::EntryType;

use super::confined::{self, Components, Root};
use super::header::{link_name, meta, Meta};
use super::stream::{classify_stream_error, HashingReader, SourceReader};
use super::whiteout;
use super::{Compression, Error};
use crate::image::Digest;

/// The result of unpacking a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// SHA-256 of the uncompressed tar stream, every byte up to EOF: the
    /// layer's `diff_id`, to compare with the image config's `rootfs.diff_ids`.
    pub diff_id: Digest,
    /// Length of the uncompressed tar stream.
    pub uncompressed_size: u64,
}

/// Unpacks the layer read from `compressed` into `dest`, an existing
/// directory, and returns its diff id.
///
/// The stream is read once, as it arrives, and drained to EOF after the tar
/// end so the diff id covers all of it. Whiteouts become overlayfs whiteouts.
/// Every path is resolved inside `dest` as if it were `/`: no entry can
/// create or change anything outside it. Names climbing above the root with
/// `..` are refused ([`Error::PathEscapes`]).
///
/// Not applied yet: extended attributes from PAX `SCHILY.xattr.*` records
/// (security.capability among them), and sub-second PAX mtimes.
///
/// On error, `dest` holds a partial tree; the caller unpacks into a
/// temporary directory and removes it.
pub fn unpack_layer<R: Read>(
    compressed: R,
    compression: Compression,
    dest: &Path,
) -> Result<Unpacked, Error> {
    let root = Root::open(dest).map_err(|e| Error::Dest {
        path: dest.to_path_buf(),
        source: e.into(),
    })?;
    let source_failed = Rc::new(Cell::new(false));
    let source = SourceReader {
        inner: compressed,
        failed: Rc::clone(&source_failed),
    };
    let decoder = compression
        .decoder(source)
        .map_err(|e| classify_stream_error(e, source_failed.get()))?;
    let mut reader = HashingReader {
        inner: decoder,
        hasher: sha2::Sha256::new(),
        len: 0,
    };

    let mut unpacker = Unpacker {
        root,
        dir_times: Vec::new(),
        buf: vec![0; 128 * 1024],
    };
    {
        let mut archive = tar::Archive::new(&mut reader);
        let stream_error = |e: io::Error| classify_stream_error(e, source_failed.get());
        for entry in archive.entries().map_err(stream_error)? {
            let mut entry = entry.map_err(stream_error)?;
            unpacker.entry(&mut entry).map_err(|e| match e {
                Error::Corrupt { source } => stream_error(source),
                e => e,
            })?;
        }
    }
    io::copy(&mut reader, &mut io::sink())
        .map_err(|e| classify_stream_error(e, source_failed.get()))?;
    unpacker.finish()?;

    Ok(Unpacked {
        diff_id: Digest::from_sha256(reader.hasher.finalize().into()),
        uncompressed_size: reader.len,
    })
}

struct Unpacker {
    root: Root,
    /// Directory mtimes, applied at the end: writing children changes them.
    dir_times: Vec<(Vec<u8>, TimeSpec)>,
    buf: Vec<u8>,
}

impl Unpacker {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), Error> {
        let name_bytes = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&name_bytes).into_owned();
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        if name_bytes.is_empty() {
            return Err(Error::EmptyName { entry: name });
        }
        let path = confined::components(&name_bytes).ok_or_else(|| Error::PathEscapes {
            entry: name.clone(),
        })?;
        let Some((last, parent)) = path.split_last() else {
            if kind.is_dir() {
                let meta = meta(entry.header(), &name)?;
                return self.dir(&path, meta, &name);
            }
            return Err(Error::EmptyName { entry: name });
        };
        if let Some(whiteout) = whiteout::classify(last) {
            let whiteout = whiteout.map_err(|()| Error::BadWhiteout {
                entry: name.clone(),
            })?;
            return whiteout::apply(&self.root, parent, whiteout, &name);
        }
        let meta = meta(entry.header(), &name)?;
        match kind {
            EntryType::Directory => self.dir(&path, meta, &name),
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.file(entry, &path, meta, &name)
            }
            EntryType::Symlink => {
                let target = link_name(entry, &name)?;
                self.symlink(&path, &target, meta, &name)
            }
            EntryType::Link => {
                let target = link_name(entry, &name)?;
                self.hardlink(&path, &target, &name)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                self.node(entry.header(), kind, &path, meta, &name)
            }
            other => Err(Error::UnsupportedType {
                entry: name,
                type_byte: char::from(other.as_byte()),
            }),
        }
    }

    /// Opens the parent of `path` (creating it) and clears the final name
    /// for a new non-directory entry.
    fn prepare<'p>(
        &self,
        path: &'p [&'p OsStr],
        entry: &str,
    ) -> Result<(OwnedFd, &'p OsStr), Error> {
        let (last, parent) = path.split_last().ok_or_else(|| Error::EmptyName {
            entry: entry.to_string(),
        })?;
        let dir = self
            .root
            .dir(parent, true)
            .map_err(fs(entry, "open or create parent directory"))?;
        confined::remove_all(dir.as_fd(), last).map_err(fs(entry, "remove existing entry"))?;
        Ok((dir, last))
    }

    fn dir(&mut self, path: &Components<'_>, meta: Meta, entry: &str) -> Result<(), Error> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match path.split_last() {
            None => self
                .root
                .resolve(&[], flags)
                .map_err(fs(entry, "open root"))?,
            Some((last, parent)) => {
                let dir = self
                    .root
                    .dir(parent, true)
                    .map_err(fs(entry, "open or create parent directory"))?;
                match fstatat(dir.as_fd(), *last, AtFlags::AT_SYMLINK_NOFOLLOW) {
                    Ok(st)
                        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT
                            == SFlag::S_IFDIR => {}
                    Ok(_) => {
                        confined::remove_all(dir.as_fd(), last)
                            .map_err(fs(entry, "remove existing entry"))?;
                        mkdirat(dir.as_fd(), *last, Mode::S_IRWXU).map_err(fs(entry, "mkdir"))?;
                    }
                    Err(Errno::ENOENT) => {
                        mkdirat(dir.as_fd(), *last, Mode::S_IRWXU).map_err(fs(entry, "mkdir"))?;
                    }
                    Err(e) => return Err(fs(entry, "stat existing entry")(e)),
                }
                openat(dir.as_fd(), *last, flags, Mode::empty())
                    .map_err(fs(entry, "open directory"))?
            }
        };
        fchown(&fd, Some(meta.uid), Some(meta.gid)).map_err(fs(entry, "chown"))?;
        fchmod(&fd, meta.mode).map_err(fs(entry, "chmod"))?;
        let joined = path
            .iter()
            .map(|c| c.as_bytes())
            .collect::<Vec<_>>()
            .join(&b'/');
        self.dir_times.push((joined, meta.mtime));
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &Components<'_>,
        meta: Meta,
        name: &str,
    ) -> Result<(), Error> {
        let (dir, last) = self.prepare(path, name)?;
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(dir.as_fd(), last, flags, Mode::S_IRUSR | Mode::S_IWUSR)
            .map_err(fs(name, "create file"))?;
        let mut file = File::from(fd);
        let want = entry.size();
        let mut got = 0u64;
        loop {
            let n = entry
                .read(&mut self.buf)
                .map_err(|source| Error::Corrupt { source })?;
            if n == 0 {
                break;
            }
            let chunk = self.buf.get(..n).unwrap_or_default();
            file.write_all(chunk).map_err(|source| Error::Fs {
                entry: name.to_string(),
                op: "write file data",
                source,
            })?;
            got += n as u64;
        }
        if got != want {
            return Err(Error::Truncated {
                entry: name.to_string(),
                got,
                want,
            });
        }
        // chown before chmod: chown clears set-id bits.
        fchown(&file, Some(meta.uid), Some(meta.gid)).map_err(fs(name, "chown"))?;
        fchmod(&file, meta.mode).map_err(fs(name, "chmod"))?;
        futimens(&file, &meta.mtime, &meta.mtime).map_err(fs(name, "set mtime"))
    }

    fn symlink(
        &mut self,
        path: &Components<'_>,
        target: &[u8],
        meta: Meta,
        name: &str,
    ) -> Result<(), Error> {
        let (dir, last) = self.prepare(path, name)?;
        symlinkat(OsStr::from_bytes(target), dir.as_fd(), last).map_err(fs(name, "symlink"))?;
        self.finish_at(&dir, last, meta, false, name)
    }

    fn hardlink(&mut self, path: &Components<'_>, target: &[u8], name: &str) -> Result<(), Error> {
        let bad = |reason| Error::BadHardlink {
            entry: name.to_string(),
            target: String::from_utf8_lossy(target).into_owned(),
            reason,
        };
        let target_path = confined::components(target)
            .ok_or_else(|| bad("target climbs out of the layer root"))?;
        let Some((target_last, target_parent)) = target_path.split_last() else {
            return Err(bad("target is the layer root"));
        };
        let target_dir = match self.root.dir(target_parent, false) {
            Ok(dir) => dir,
            Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => {
                return Err(bad("target is not in the layer"))
            }
            Err(e) => return Err(fs(name, "open hard link target directory")(e)),
        };
        match fstatat(
            target_dir.as_fd(),
            *target_last,
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR => {
                return Err(bad("target is a directory"))
            }
            Ok(_) => {}
            Err(Errno::ENOENT) => return Err(bad("target is not in the layer")),
            Err(e) => return Err(fs(name, "stat hard link target")(e)),
        }
        let (dir, last) = self.prepare(path, name)?;
        match linkat(
            target_dir.as_fd(),
            *target_last,
            dir.as_fd(),
            last,
            AtFlags::empty(),
        ) {
            Ok(()) => Ok(()),
            // The entry named its own target, which `prepare` just removed.
            Err(Errno::ENOENT) => Err(bad("target is not in the layer")),
            Err(e) => Err(fs(name, "link")(e)),
        }
    }

    fn node(
        &mut self,
        header: &tar::Header,
        kind: EntryType,
        path: &Components<'_>,
        meta: Meta,
        name: &str,
    ) -> Result<(), Error> {
        let field = |field: &'static str| {
            move |source| Error::BadHeader {
                entry: name.to_string(),
                field,
                source,
            }
        };
        let (sflag, dev) = match kind {
            EntryType::Fifo => (SFlag::S_IFIFO, 0),
            _ => {
                let major = header
                    .device_major()
                    .map_err(field("devmajor"))?
                    .unwrap_or(0);
                let minor = header
                    .device_minor()
                    .map_err(field("devminor"))?
                    .unwrap_or(0);
                let sflag = if kind == EntryType::Char {
                    SFlag::S_IFCHR
                } else {
                    SFlag::S_IFBLK
                };
                (sflag, makedev(major.into(), minor.into()))
            }
        };
        let (dir, last) = self.prepare(path, name)?;
        mknodat(dir.as_fd(), last, sflag, Mode::empty(), dev).map_err(fs(name, "mknod"))?;
        self.finish_at(&dir, last, meta, true, name)
    }

    /// Owner, then mode (unless a symlink), then mtime of `last` in `dir`,
    /// never following a symlink.
    fn finish_at(
        &self,
        dir: &OwnedFd,
        last: &OsStr,
        meta: Meta,
        chmod: bool,
        name: &str,
    ) -> Result<(), Error> {
        fchownat(
            dir.as_fd(),
            last,
            Some(meta.uid),
            Some(meta.gid),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(fs(name, "chown"))?;
        if chmod {
            fchmodat(dir.as_fd(), last, meta.mode, FchmodatFlags::NoFollowSymlink)
                .map_err(fs(name, "chmod"))?;
        }
        utimensat(
            dir.as_fd(),
            last,
            &meta.mtime,
            &meta.mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(fs(name, "set mtime"))
    }

    /// Sets directory mtimes, now that nothing more is written into them.
    fn finish(self) -> Result<(), Error> {
        for (path, mtime) in self.dir_times.iter().rev() {
            let name = String::from_utf8_lossy(path);
            let components = confined::components(path).unwrap_or_default();
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
            // Resolved again: a later entry may have replaced the directory.
            match self.root.resolve(&components, flags) {
                Ok(fd) => futimens(&fd, mtime, mtime).map_err(fs(&name, "set mtime"))?,
                Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => {}
                Err(e) => return Err(fs(&name, "open directory")(e)),
            }
        }
        Ok(())
    }
}

fn fs(entry: &str, op: &'static str) -> impl FnOnce(Errno) -> Error {
    let entry = entry.to_string();
    move |e| Error::Fs {
        entry,
        op,
        source: e.into(),
    }
}

#[cfg(test)]
mod tests;
