//! Seccomp: the runtime-default profile, profiles from files, and their
//! compilation to a BPF program for x86_64.
//!
//! Profiles are carried as the OCI runtime-spec [`LinuxSeccomp`] so that a
//! generated bundle can also be run by runc or crun. [`compile`] turns one
//! into the classic-BPF program the kernel takes (installed by `linux/`).

mod compile;
mod default_profile;
mod file;
#[cfg(target_arch = "x86_64")]
mod syscalls;
#[cfg(not(target_arch = "x86_64"))]
mod syscalls {
    /// Only x86_64 is supported for now: no syscall is known elsewhere.
    pub(super) fn number(_name: &str) -> Option<u32> {
        None
    }
}

#[cfg(test)]
mod tests;

pub use compile::compile;
pub use default_profile::{normalize_capability, runtime_default};
pub use file::from_file;
pub use oci_spec::runtime::LinuxSeccomp;
pub use seccompiler::BpfProgram;

use std::path::PathBuf;

use crate::ErrorKind;

/// Errors of the seccomp module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A profile file could not be read.
    #[error("read seccomp profile {path}: {source}")]
    Read {
        /// The profile file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A profile file is not a seccomp profile we understand.
    #[error("parse seccomp profile {path}: {reason}")]
    Parse {
        /// The profile file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A profile file does not decode as a seccomp profile.
    #[error("parse seccomp profile {path}: {source}")]
    Json {
        /// The profile file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// The profile asks for something we cannot compile.
    #[error("unsupported seccomp profile: {0}")]
    Unsupported(String),
    /// A syscall argument condition is malformed.
    #[error("invalid seccomp condition on {syscall}: {reason}")]
    Condition {
        /// The syscall the condition belongs to.
        syscall: String,
        /// Why.
        reason: String,
    },
    /// The filter compiler refused a condition or rule.
    #[error("invalid seccomp condition on {syscall}: {source}")]
    Backend {
        /// The syscall the condition belongs to.
        syscall: String,
        /// The compiler's error.
        #[source]
        source: seccompiler::BackendError,
    },
    /// The compiled program is longer than the kernel accepts.
    #[error("seccomp program of {0} instructions exceeds the kernel's limit of 4096")]
    TooLong(usize),
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            // A profile the request names but that is not there is bad input.
            Error::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::InvalidArgument
            }
            Error::Read { .. } => ErrorKind::Internal,
            Error::Parse { .. }
            | Error::Json { .. }
            | Error::Unsupported(_)
            | Error::Condition { .. }
            | Error::Backend { .. }
            | Error::TooLong(_) => ErrorKind::InvalidArgument,
        }
    }
}
