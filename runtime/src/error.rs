//! The runtime's error type: one enum per module, folded together here.

use crate::image::pull;
use crate::{
    blocking, cgroups, container, facade, ids, image, linux, logs, network, sandbox, seccomp,
    snapshot, spec, store,
};

/// What kind of failure an [`Error`] is, independent of any wire protocol.
///
/// The CRI server maps each kind to one gRPC status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The named object does not exist.
    NotFound,
    /// An object with that name or id exists already.
    AlreadyExists,
    /// The request itself is malformed.
    InvalidArgument,
    /// A registry (or other service) refused our credentials.
    Unauthenticated,
    /// The request is valid but the object is not in a state that allows it.
    FailedPrecondition,
    /// A dependency (registry, plugin, shim) cannot be reached right now.
    Unavailable,
    /// The operation ran out of time.
    DeadlineExceeded,
    /// A disk (root or state directory) is full, or a quota reached.
    ResourceExhausted,
    /// A fault of ours or of the host.
    Internal,
}

/// Every error the runtime crate returns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image reference, digest, or image content problem.
    #[error(transparent)]
    Image(#[from] image::Error),
    /// A container lifecycle problem.
    #[error(transparent)]
    Container(#[from] container::Error),
    /// A container log problem.
    #[error(transparent)]
    Logs(#[from] logs::Error),
    /// A Linux container primitive (mounts, namespaces, init) failed.
    #[error(transparent)]
    Linux(#[from] linux::Error),
    /// A CNI network configuration or plugin problem.
    #[error(transparent)]
    Network(#[from] network::Error),
    /// Pulling an image failed.
    #[error(transparent)]
    Pull(#[from] pull::Error),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A pod sandbox problem (pinned namespaces).
    #[error(transparent)]
    Sandbox(#[from] sandbox::Error),
    /// A seccomp profile problem.
    #[error(transparent)]
    Seccomp(#[from] seccomp::Error),
    /// A container spec problem.
    #[error(transparent)]
    Spec(#[from] spec::Error),
    /// A layer unpacking or snapshot problem.
    #[error(transparent)]
    Snapshot(#[from] snapshot::Error),
    /// A cgroup could not be created, limited, read or removed.
    #[error(transparent)]
    Cgroups(#[from] cgroups::Error),
    /// An id that cannot be one, or no randomness for a new one.
    #[error(transparent)]
    Id(#[from] ids::Error),
    /// The runtime could not lay out its directories or finish a task.
    #[error(transparent)]
    Runtime(#[from] facade::Error),
    /// A thread doing blocking work for the daemon failed.
    #[error(transparent)]
    Blocking(#[from] blocking::Error),
}

impl Error {
    /// The kind of this error. A full disk anywhere in its causes is
    /// ResourceExhausted, whatever the module would call it.
    pub fn kind(&self) -> ErrorKind {
        if self.out_of_space() {
            return ErrorKind::ResourceExhausted;
        }
        self.module_kind()
    }

    /// Whether a cause of this error is a full disk (or quota).
    pub fn out_of_space(&self) -> bool {
        caused_by_full_disk(self)
    }

    fn module_kind(&self) -> ErrorKind {
        match self {
            Error::Image(e) => e.kind(),
            Error::Container(e) => e.kind(),
            Error::Logs(e) => e.kind(),
            Error::Linux(e) => e.kind(),
            Error::Network(e) => e.kind(),
            Error::Pull(e) => e.kind(),
            Error::Store(e) => e.kind(),
            Error::Sandbox(e) => e.kind(),
            Error::Seccomp(e) => e.kind(),
            Error::Spec(e) => e.kind(),
            Error::Snapshot(e) => e.kind(),
            Error::Cgroups(e) => e.kind(),
            Error::Runtime(e) => e.kind(),
            Error::Id(e) => e.kind(),
            Error::Blocking(e) => e.kind(),
        }
    }
}

/// Whether `e` or one of its sources is a full disk (or quota).
pub fn caused_by_full_disk(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if is_out_of_space(io) {
                return true;
            }
        }
        if let Some(redb::Error::Io(io)) = e.downcast_ref::<redb::Error>() {
            if is_out_of_space(io) {
                return true;
            }
        }
        if let Some(errno) = e.downcast_ref::<nix::errno::Errno>() {
            if matches!(errno, nix::errno::Errno::ENOSPC | nix::errno::Errno::EDQUOT) {
                return true;
            }
        }
        cause = e.source();
    }
    false
}

/// Whether `e` says the disk is full (ENOSPC) or a quota is reached (EDQUOT).
pub fn is_out_of_space(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == nix::errno::Errno::ENOSPC as i32 || code == nix::errno::Errno::EDQUOT as i32
    ) || e.kind() == std::io::ErrorKind::StorageFull
}

/// Result with the runtime's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
