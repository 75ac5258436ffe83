//! Containers as the daemon sees them: a bundle directory per container, a
//! shim supervising it, and the files the shim leaves when it is gone.
//!
//! Layout: `<state_dir>/containers/<id>/` is the bundle (spec, rootfs
//! layers, shim socket, state and exit files); `<root_dir>/containers/<id>/`
//! holds the writable layer (`upper/`, `work/`), which survives reboots.

mod backend;
mod creations;
mod exec;
mod exit_files;
#[cfg(test)]
pub(crate) mod fake;
mod handlers;
mod lifecycle;
mod manager;
mod metrics;
mod ops;
mod pod;
mod record;
mod runtime;
mod stats;
#[cfg(test)]
mod tests;
mod trash;

pub use backend::ShimBackend;
pub use exec::{stop_exec, ExecOutput, ExecRequest};
pub use handlers::{glob_match, Handlers, OciHandler};
pub use manager::{ContainerEvent, Containers, EventKind, NewContainer};
pub use metrics::{BlockDevice, ContainerMetrics, FilesystemSize, ProcessCounts};
pub use record::{
    reason, stop_signal, ContainerFilter, ContainerRecord, ContainerState, ProcessUser,
};
pub use runtime::{ContainerRuntime, CreateRequest};
pub use stats::ContainerStats;

use crate::ErrorKind;

/// Errors of container lifecycle operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such container.
    #[error("container {id} not found")]
    NotFound {
        /// The id.
        id: String,
    },
    /// A container with this id exists.
    #[error("container {id} already exists")]
    AlreadyExists {
        /// The id.
        id: String,
    },
    /// Another container of the pod has this name and attempt.
    #[error("container name {name:?} is already in use by {by}")]
    NameInUse {
        /// `pod/name/attempt`.
        name: String,
        /// The container holding it.
        by: String,
    },
    /// The image to create a container from is not present.
    #[error("image {image:?} not found: pull it first")]
    ImageNotFound {
        /// The image as asked for.
        image: String,
    },
    /// The image of an image volume is not present.
    #[error("image {image:?} of the image volume at {path:?} not found: pull it first")]
    ImageVolumeNotFound {
        /// The image as asked for.
        image: String,
        /// The volume's container path.
        path: String,
    },
    /// An image volume's sub path names no plain directory of its image.
    #[error("image volume at {path:?}: image_sub_path {sub_path:?} of image {image:?}: {reason}")]
    ImageSubPath {
        /// The image as asked for.
        image: String,
        /// The volume's container path.
        path: String,
        /// The sub path.
        sub_path: String,
        /// Why it cannot be mounted.
        reason: String,
    },
    /// A stop signal that names no signal.
    #[error("invalid stop signal {signal:?}")]
    InvalidSignal {
        /// The signal as given.
        signal: String,
    },
    /// The id cannot name a directory.
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId {
        /// The id.
        id: String,
        /// Why.
        reason: String,
    },
    /// The shim did not create the container, and gave no error of its
    /// own (it said something unexpected, or nothing).
    #[error("creating container {id}: {reason}")]
    Create {
        /// The id.
        id: String,
        /// What went wrong.
        reason: String,
    },
    /// A helper process (the shim, the exec helper) cannot be started or
    /// waited for.
    #[error("container {id}: {action}: {source}")]
    Spawn {
        /// The id.
        id: String,
        /// What was tried, naming the binary.
        action: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Work handed to the blocking thread pool did not finish.
    #[error("container {id}: {what} did not finish: {source}")]
    Task {
        /// The id.
        id: String,
        /// The work.
        what: &'static str,
        /// Why.
        #[source]
        source: tokio::task::JoinError,
    },
    /// A JSON file of the container (spec, rootfs, state, exit status)
    /// cannot be encoded or decoded.
    #[error("container {id}: {path}: {source}")]
    Json {
        /// The id.
        id: String,
        /// The file.
        path: std::path::PathBuf,
        /// The codec's error.
        #[source]
        source: serde_json::Error,
    },
    /// The container's OCI spec cannot be loaded.
    #[error("container {id}: {path}: {source}")]
    Spec {
        /// The id.
        id: String,
        /// The spec file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: oci_spec::OciSpecError,
    },
    /// The control socket of the container's shim failed.
    #[error("shim of container {id}: {action}: {source}")]
    Socket {
        /// The id.
        id: String,
        /// What was tried (connect, send, read the answer).
        action: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A message to or from the container's shim does not encode or decode.
    #[error("shim of container {id}: {action}: {source}")]
    Protocol {
        /// The id.
        id: String,
        /// Which message.
        action: &'static str,
        /// The codec's error.
        #[source]
        source: serde_json::Error,
    },
    /// The container's shim is gone and its cgroup cannot end it.
    #[error("container {id}: {action}: {source}")]
    Cgroup {
        /// The id.
        id: String,
        /// What was tried.
        action: String,
        /// Why.
        #[source]
        source: crate::cgroups::Error,
    },
    /// An exec request is malformed.
    #[error("exec in container {id}: {reason}")]
    InvalidExec {
        /// The id.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// The shim answered out of turn or not in time.
    #[error("shim of container {id}: {reason}")]
    Shim {
        /// The id.
        id: String,
        /// What it did.
        reason: String,
    },
    /// The shim refused a request.
    #[error("container {id}: {message}")]
    Refused {
        /// The id.
        id: String,
        /// What the shim said.
        message: String,
    },
    /// The shim refused or failed a request, and said of what kind.
    #[error("container {id}: {message}")]
    ShimSaid {
        /// The id.
        id: String,
        /// What the shim said.
        message: String,
        /// The kind the shim gave.
        kind: ErrorKind,
    },
    /// The pod's runtime handler is not configured (any more).
    #[error(
        "container {id}: its pod was run with runtime handler {handler:?}, which is not configured"
    )]
    UnknownHandler {
        /// The id.
        id: String,
        /// The pod's handler.
        handler: String,
    },
    /// A file of the container cannot be written or read.
    #[error("container {id}: {path}: {source}")]
    Io {
        /// The id.
        id: String,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// What the shim of `id` answered, with its kind.
    pub fn said(id: &str, kind: ErrorKind, message: String) -> Error {
        Error::ShimSaid {
            id: id.to_string(),
            message,
            kind,
        }
    }

    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. }
            | Error::ImageNotFound { .. }
            | Error::ImageVolumeNotFound { .. } => ErrorKind::NotFound,
            Error::AlreadyExists { .. } | Error::NameInUse { .. } => ErrorKind::AlreadyExists,
            Error::InvalidId { .. }
            | Error::InvalidExec { .. }
            | Error::InvalidSignal { .. }
            | Error::ImageSubPath { .. } => ErrorKind::InvalidArgument,
            Error::Refused { .. } | Error::UnknownHandler { .. } => ErrorKind::FailedPrecondition,
            Error::ShimSaid { kind, .. } => *kind,
            Error::Create { .. }
            | Error::Spawn { .. }
            | Error::Task { .. }
            | Error::Json { .. }
            | Error::Spec { .. }
            | Error::Socket { .. }
            | Error::Protocol { .. }
            | Error::Cgroup { .. }
            | Error::Shim { .. }
            | Error::Io { .. } => ErrorKind::Internal,
        }
    }
}
