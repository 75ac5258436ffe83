//! Errors of the shim's own work (setting a container up, driving an
//! external OCI runtime), with their causes as sources. They cross to the
//! daemon as the handshake line's kind and message.

use std::path::PathBuf;

use crate::{cgroups, linux, logs, seccomp, ErrorKind};

/// What can go wrong in the shim.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call of the shim's own failed.
    #[error("{op}: {source}")]
    Sys {
        /// The call, e.g. "pipe".
        op: &'static str,
        /// Why.
        #[source]
        source: nix::errno::Errno,
    },
    /// A file of the bundle cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file of the bundle cannot be written.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A directory cannot be made.
    #[error("mkdir {path}: {source}")]
    Mkdir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The control socket cannot be bound.
    #[error("bind {path}: {source}")]
    Bind {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file descriptor cannot be duplicated.
    #[error("dup {what}: {source}")]
    Dup {
        /// What it is, e.g. "pty".
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file of the bundle does not decode (or encode).
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The codec's error.
        #[source]
        source: serde_json::Error,
    },
    /// The bundle's OCI spec cannot be loaded.
    #[error("{path}: {source}")]
    Spec {
        /// The spec file.
        path: PathBuf,
        /// Why.
        #[source]
        source: oci_spec::OciSpecError,
    },
    /// An external runtime binary cannot be run.
    #[error("cannot run {binary}: {source}")]
    Run {
        /// The binary.
        binary: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An external runtime ran and failed; `why` is what its log said.
    #[error("{binary} {op} {id}: {why}")]
    Runtime {
        /// The binary.
        binary: PathBuf,
        /// The operation (create, start, delete).
        op: &'static str,
        /// The container.
        id: String,
        /// Its last logged error, or its exit status.
        why: String,
    },
    /// The pid file an external runtime wrote holds no pid.
    #[error("{path}: not a pid: {text:?}")]
    NotAPid {
        /// The pid file.
        path: PathBuf,
        /// What it holds.
        text: String,
    },
    /// The console socket an external runtime hands a tty's pty over.
    #[error("console socket {path}: cannot {op}: {source}")]
    Console {
        /// The socket.
        path: PathBuf,
        /// What failed.
        op: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A container primitive (mounts, namespaces, the init) failed.
    #[error(transparent)]
    Linux(#[from] linux::Error),
    /// The container's cgroup cannot be made, limited or joined.
    #[error(transparent)]
    Cgroups(#[from] cgroups::Error),
    /// The container's log cannot be opened.
    #[error(transparent)]
    Logs(#[from] logs::Error),
    /// The container's seccomp profile does not compile.
    #[error(transparent)]
    Seccomp(#[from] seccomp::Error),
}

impl Error {
    /// The kind of this error: a full disk anywhere in its causes is
    /// ResourceExhausted, as in the daemon.
    pub fn kind(&self) -> ErrorKind {
        if crate::error::caused_by_full_disk(self) {
            return ErrorKind::ResourceExhausted;
        }
        match self {
            Error::Linux(e) => e.kind(),
            Error::Cgroups(e) => e.kind(),
            Error::Logs(e) => e.kind(),
            Error::Seccomp(e) => e.kind(),
            Error::Sys { .. }
            | Error::Read { .. }
            | Error::Write { .. }
            | Error::Mkdir { .. }
            | Error::Bind { .. }
            | Error::Dup { .. }
            | Error::Json { .. }
            | Error::Spec { .. }
            | Error::Run { .. }
            | Error::Runtime { .. }
            | Error::NotAPid { .. }
            | Error::Console { .. } => ErrorKind::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_sources_and_a_full_disk_is_resource_exhausted() {
        let full = Error::Write {
            path: "/b/spec.json".into(),
            source: std::io::Error::from_raw_os_error(nix::libc::ENOSPC),
        };
        assert_eq!(full.kind(), ErrorKind::ResourceExhausted);
        let source = std::error::Error::source(&full).expect("a source");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
        assert!(full.to_string().starts_with("/b/spec.json: "), "{full}");

        let pipe = Error::Sys {
            op: "pipe",
            source: nix::errno::Errno::EMFILE,
        };
        assert_eq!(pipe.kind(), ErrorKind::Internal);
        assert!(pipe.to_string().starts_with("pipe: "), "{pipe}");
    }
}
