//! Errors of the Linux primitives: each names the step and the path.

use std::io;
use std::path::PathBuf;

use nix::errno::Errno;

use crate::ErrorKind;

/// Errors of [`super::mount_rootfs`], [`super::spawn_init`],
/// [`super::Init::start`] and [`super::exec_process`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed; `op` names the step and its paths, e.g.
    /// `mount proc on /x/rootfs/proc`.
    #[error("{op}: {source}")]
    Sys {
        /// The step.
        op: String,
        /// What the kernel said.
        #[source]
        source: Errno,
    },
    /// A file operation failed.
    #[error("{op}: {source}")]
    Io {
        /// The step.
        op: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The spec asks for something malformed or unsupported.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// A mount destination (or other path inside the container) climbs out
    /// of the rootfs.
    #[error("path {path:?} escapes the container rootfs")]
    Escapes {
        /// The path as written in the spec.
        path: PathBuf,
    },
    /// The container's command cannot be executed.
    #[error("exec {arg0:?}: {source}")]
    Exec {
        /// The command (process.args\[0\]).
        arg0: String,
        /// What execve said.
        #[source]
        source: Errno,
    },
    /// The container init reported a failure (its own error, as text).
    #[error("container init: {message}")]
    Init {
        /// The kind of the child's error.
        kind: ErrorKind,
        /// The child's error message.
        message: String,
    },
    /// The container init died without reporting.
    #[error("container init (pid {pid}) {status} before reporting")]
    InitDied {
        /// The init's pid.
        pid: i32,
        /// How it ended.
        status: String,
    },
    /// The container's init is gone: the container has exited.
    #[error("container init (pid {pid}) is gone: the container is not running")]
    NoProcess {
        /// The init's pid.
        pid: i32,
    },
    /// A process exec'd into a container could not be set up or started.
    #[error("{message}")]
    ExecProcess {
        /// The kind of the child's error.
        kind: ErrorKind,
        /// The child's error message.
        message: String,
        /// The exit code to report: 127 (not found), 126 (not executable)
        /// or 125 (setup failed).
        code: i32,
    },
    /// A pod sysctl that is malformed, not namespaced, or needs a namespace
    /// the pod does not get.
    #[error("sysctl {name:?}: {reason}")]
    Sysctl {
        /// The sysctl as given.
        name: String,
        /// Why it is refused.
        reason: String,
    },
    /// A pod hostname the kernel would refuse.
    #[error("hostname {name:?}: {reason}")]
    Hostname {
        /// The hostname as given.
        name: String,
        /// Why it is refused.
        reason: String,
    },
    /// A helper child (the maker of a pod's user namespace, of a pid
    /// namespace inside one) reported a failure.
    #[error("{message}")]
    Helper {
        /// The kind of the child's error.
        kind: ErrorKind,
        /// The child's error message.
        message: String,
    },
    /// A namespace file to pin exists already.
    #[error("{}: a namespace is pinned there already", path.display())]
    AlreadyPinned {
        /// The namespace file.
        path: PathBuf,
    },
}

impl Error {
    /// The kind of this error: a hostile or malformed spec is
    /// `InvalidArgument`, the host's failures are `Internal`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidSpec(_)
            | Error::Escapes { .. }
            | Error::Sysctl { .. }
            | Error::Hostname { .. } => ErrorKind::InvalidArgument,
            Error::AlreadyPinned { .. } => ErrorKind::AlreadyExists,
            Error::Exec { source, .. } => match source {
                Errno::ENOENT | Errno::ENOTDIR | Errno::EACCES | Errno::ENOEXEC => {
                    ErrorKind::InvalidArgument
                }
                _ => ErrorKind::Internal,
            },
            Error::Init { kind, .. }
            | Error::ExecProcess { kind, .. }
            | Error::Helper { kind, .. } => *kind,
            Error::NoProcess { .. } => ErrorKind::FailedPrecondition,
            Error::Sys { .. } | Error::Io { .. } | Error::InitDied { .. } => ErrorKind::Internal,
        }
    }

    /// A one-byte code for [`Error::kind`], for the sync pipe.
    pub(super) fn kind_code(&self) -> u8 {
        match self.kind() {
            ErrorKind::InvalidArgument => b'A',
            _ => b'I',
        }
    }

    /// The kind a [`Error::kind_code`] byte stands for.
    pub(super) fn kind_from_code(code: u8) -> ErrorKind {
        match code {
            b'A' => ErrorKind::InvalidArgument,
            _ => ErrorKind::Internal,
        }
    }
}

/// Result with the Linux module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds the step to a failed system call.
pub(super) trait Context<T> {
    /// Maps the error to [`Error::Sys`] with `op()` as its step.
    fn ctx<S: Into<String>>(self, op: impl FnOnce() -> S) -> Result<T>;
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx<S: Into<String>>(self, op: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|source| Error::Sys {
            op: op().into(),
            source,
        })
    }
}

impl<T> Context<T> for io::Result<T> {
    fn ctx<S: Into<String>>(self, op: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|source| Error::Io {
            op: op().into(),
            source,
        })
    }
}
