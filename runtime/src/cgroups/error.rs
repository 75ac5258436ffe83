//! Errors of the cgroups module: each names the file and, for writes, the value.

use std::io;
use std::path::PathBuf;

use crate::ErrorKind;

/// Errors of the cgroups module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No cgroup filesystem (or no usable controller) was found at `at`
    /// (the mount table read, or the hierarchy root looked into).
    #[error("no cgroup hierarchy found at {at}")]
    NoHierarchy {
        /// The mount table or directory consulted.
        at: PathBuf,
    },
    /// The cgroup path given by the caller is not acceptable.
    #[error("invalid cgroup path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A resource value is malformed before it reaches the kernel.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidValue {
        /// Which resource (e.g. "cpuset.cpus").
        what: &'static str,
        /// The value as given.
        value: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The kernel refused a resource value (EINVAL/ERANGE on a limit file).
    #[error("the kernel rejected {value:?} for {path}: {source}")]
    Rejected {
        /// The file written.
        path: PathBuf,
        /// The value written.
        value: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A resource was asked for whose controller is not mounted or enabled.
    #[error("cannot apply {what}: the {controller} controller is not available for {path}")]
    MissingController {
        /// The controller needed.
        controller: &'static str,
        /// The resource asked for.
        what: &'static str,
        /// The cgroup path.
        path: String,
    },
    /// `open` of a cgroup that does not exist.
    #[error("cgroup {path} does not exist")]
    NotFound {
        /// The missing directory.
        path: PathBuf,
    },
    /// A cgroup file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A cgroup file could not be written.
    #[error("cannot write {value:?} to {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The value.
        value: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A cgroup directory could not be created.
    #[error("cannot create cgroup {path}: {source}")]
    Create {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A cgroup directory could not be removed (still busy after waiting).
    #[error("cannot remove cgroup {path}: {source}")]
    Remove {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A cgroup file held something we could not parse.
    #[error("cannot parse {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A process of the cgroup could not be signalled.
    #[error("cannot kill pid {pid}: {source}")]
    Kill {
        /// The process.
        pid: i32,
        /// The underlying error.
        #[source]
        source: nix::Error,
    },
    /// The freezer did not reach the requested state in time.
    #[error("{path} did not become {want} (last state {state:?})")]
    Freeze {
        /// The freezer state file.
        path: PathBuf,
        /// The state asked for.
        want: &'static str,
        /// The state last read.
        state: String,
    },
    /// The eBPF device program of a cgroup2 directory could not be loaded
    /// or attached.
    #[error("cannot install the device rules of {path}: {source}")]
    DeviceProgram {
        /// The cgroup2 directory.
        path: PathBuf,
        /// The failed bpf(2) step (boxed: it is large, and rare).
        #[source]
        source: Box<crate::linux::Error>,
    },
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidPath { .. } | Error::InvalidValue { .. } | Error::Rejected { .. } => {
                ErrorKind::InvalidArgument
            }
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::NoHierarchy { .. }
            | Error::Read { .. }
            | Error::Write { .. }
            | Error::Create { .. }
            | Error::Remove { .. }
            | Error::Parse { .. }
            | Error::Kill { .. }
            | Error::Freeze { .. }
            | Error::DeviceProgram { .. }
            | Error::MissingController { .. } => ErrorKind::Internal,
        }
    }
}

/// Result with the cgroups [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
