//! Entry metadata from tar headers.

use std::io::{self, Read};

use nix::sys::stat::Mode;
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};

use super::Error;

/// Ownership, mode and mtime from an entry header.
#[derive(Debug, Clone, Copy)]
pub(super) struct Meta {
    pub(super) mode: Mode,
    pub(super) uid: Uid,
    pub(super) gid: Gid,
    pub(super) mtime: TimeSpec,
}

/// The link target of a symlink or hard link entry, which must not be empty.
pub(super) fn link_name<R: Read>(entry: &tar::Entry<'_, R>, name: &str) -> Result<Vec<u8>, Error> {
    match entry.link_name_bytes() {
        Some(target) if !target.is_empty() => Ok(target.into_owned()),
        _ => Err(Error::BadHeader {
            entry: name.to_string(),
            field: "linkname",
            source: io::Error::new(io::ErrorKind::InvalidData, "empty link target"),
        }),
    }
}

/// Mode (permission and set-id bits), owner and mtime of an entry.
pub(super) fn meta(header: &tar::Header, name: &str) -> Result<Meta, Error> {
    let bad = |field: &'static str| {
        move |source| Error::BadHeader {
            entry: name.to_string(),
            field,
            source,
        }
    };
    let id = |v: u64, field| {
        u32::try_from(v).map_err(|_| {
            bad(field)(io::Error::new(
                io::ErrorKind::InvalidData,
                "id above 2^32-1",
            ))
        })
    };
    let mode = header.mode().map_err(bad("mode"))?;
    let uid = id(header.uid().map_err(bad("uid"))?, "uid")?;
    let gid = id(header.gid().map_err(bad("gid"))?, "gid")?;
    let mtime = header.mtime().map_err(bad("mtime"))?;
    let mtime = i64::try_from(mtime).map_err(|_| {
        bad("mtime")(io::Error::new(
            io::ErrorKind::InvalidData,
            "mtime out of range",
        ))
    })?;
    Ok(Meta {
        mode: Mode::from_bits_truncate(mode & 0o7777),
        uid: Uid::from_raw(uid),
        gid: Gid::from_raw(gid),
        mtime: TimeSpec::new(mtime, 0),
    })
}
