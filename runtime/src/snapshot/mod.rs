//! Layer snapshots: unpacking one layer tar into a directory, confined to it
//! whatever the layer contains, and the store of committed snapshots by
//! chain id.

mod compression;
mod confined;
mod header;
mod store;
mod stream;
mod unpack;
mod whiteout;

pub use compression::Compression;
pub use store::{chain_ids, disk_usage, Discarded, Snapshotter, TempSnapshot, Usage};
pub use unpack::{unpack_layer, Unpacked};

use std::io;
use std::path::PathBuf;

use crate::ErrorKind;

/// Errors of the snapshot module.
///
/// `entry` fields hold the entry's name as written in the layer tar.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The destination directory cannot be opened.
    #[error("cannot open unpack destination {path}: {source}")]
    Dest {
        /// The destination.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The layer stream is not a valid (compressed) tar archive, or ends early.
    #[error("corrupt layer stream: {source}")]
    Corrupt {
        /// What the decompressor or tar reader reported.
        #[source]
        source: io::Error,
    },
    /// Reading the layer stream failed for a reason other than its content.
    #[error("cannot read layer stream: {source}")]
    Read {
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A regular file's data ends before the size its header announces.
    #[error("layer entry {entry:?}: data ends after {got} of {want} bytes")]
    Truncated {
        /// The entry.
        entry: String,
        /// Bytes read.
        got: u64,
        /// Bytes announced.
        want: u64,
    },
    /// An entry whose name is empty or names the root as something other
    /// than a directory.
    #[error("layer entry {entry:?}: empty name, or names the root as a non-directory")]
    EmptyName {
        /// The entry.
        entry: String,
    },
    /// An entry whose name climbs above the root with `..`.
    #[error("layer entry {entry:?}: path climbs out of the layer root")]
    PathEscapes {
        /// The entry.
        entry: String,
    },
    /// A hard link that cannot be made inside the layer.
    #[error("layer entry {entry:?}: hard link to {target:?}: {reason}")]
    BadHardlink {
        /// The entry.
        entry: String,
        /// The link target as written in the layer.
        target: String,
        /// Why it cannot be made.
        reason: &'static str,
    },
    /// A `.wh.` entry that does not name anything (`.wh.`, `.wh..`).
    #[error("layer entry {entry:?}: whiteout names nothing")]
    BadWhiteout {
        /// The entry.
        entry: String,
    },
    /// An entry type this unpacker does not handle.
    #[error("layer entry {entry:?}: unsupported tar entry type {type_byte:?}")]
    UnsupportedType {
        /// The entry.
        entry: String,
        /// The type flag byte.
        type_byte: char,
    },
    /// A header field (mode, uid, gid, mtime, device numbers, link name) that
    /// does not parse.
    #[error("layer entry {entry:?}: bad header field {field}: {source}")]
    BadHeader {
        /// The entry.
        entry: String,
        /// The field.
        field: &'static str,
        /// What the tar reader reported.
        #[source]
        source: io::Error,
    },
    /// A file system operation on an entry failed.
    #[error("layer entry {entry:?}: {op}: {source}")]
    Fs {
        /// The entry.
        entry: String,
        /// The operation, e.g. "create parent directory".
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file system operation of the snapshot store failed.
    #[error("snapshot store: {op} {path}: {source}")]
    Io {
        /// The operation, e.g. "commit snapshot".
        op: &'static str,
        /// The path it failed on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The kind of this error: the layer's fault is `InvalidArgument`, the
    /// host's is `Internal`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Dest { .. } | Error::Read { .. } | Error::Io { .. } => ErrorKind::Internal,
            Error::Corrupt { .. }
            | Error::Truncated { .. }
            | Error::EmptyName { .. }
            | Error::PathEscapes { .. }
            | Error::BadHardlink { .. }
            | Error::BadWhiteout { .. }
            | Error::UnsupportedType { .. }
            | Error::BadHeader { .. } => ErrorKind::InvalidArgument,
            Error::Fs { source, .. } => fs_error_kind(source),
        }
    }
}

/// File system errors that a layer can provoke by its shape (a file where a
/// directory is needed, a symlink loop, a name too long) are the layer's
/// fault; resource and permission failures are the host's.
fn fs_error_kind(source: &io::Error) -> ErrorKind {
    use nix::errno::Errno;
    let host = [
        Errno::ENOSPC,
        Errno::EDQUOT,
        Errno::EIO,
        Errno::ENOMEM,
        Errno::EMFILE,
        Errno::ENFILE,
        Errno::EROFS,
        Errno::EACCES,
        Errno::EPERM,
        Errno::EBADF,
        Errno::EFAULT,
        Errno::ENOSYS,
        Errno::EOPNOTSUPP,
    ];
    match source.raw_os_error() {
        Some(code) if !host.contains(&Errno::from_raw(code)) => ErrorKind::InvalidArgument,
        _ => ErrorKind::Internal,
    }
}
