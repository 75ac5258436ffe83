//! Container description + image config -> OCI runtime spec.
//!
//! [`generate`] gives a container the defaults containerd's CRI plugin
//! gives one (capabilities, masked paths, /dev, /proc, /sys, rlimits,
//! seccomp), then applies what [`ContainerConfig`] asks for. The user is
//! resolved through the image's files, read with a [`RootfsView`].

mod config;
mod defaults;
pub(crate) use defaults::DEVICES as DEFAULT_DEVICES;
mod generate;
mod image;
mod rootfs;
mod user;

#[cfg(test)]
mod tests;

pub use config::{
    ContainerConfig, DeviceConfig, DeviceKind, DeviceNode, HookConfig, ImageMount, MountConfig,
    Namespaces, NsMode, Propagation, Resources, SeccompProfile, Security, UserNamespace,
    HOOK_POINTS,
};
pub use generate::{generate, linux_resources};
pub use image::ImageConfig;
pub use rootfs::{single_layer, LayeredRootfs, RootfsView, MAX_SYMLINKS};

use crate::{seccomp, ErrorKind};

/// Errors of spec generation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A mount is hostile or malformed.
    #[error("invalid mount {path:?}: {reason}")]
    Mount {
        /// The offending path.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// A device is hostile, malformed or missing.
    #[error("invalid device {path:?}: {reason}")]
    Device {
        /// The offending path.
        path: String,
        /// Why.
        reason: String,
    },
    /// The working directory is not absolute.
    #[error("working directory {0:?} is not an absolute path")]
    WorkingDir(String),
    /// The user name is not in the image's /etc/passwd.
    #[error("user {0:?} not found in the image's /etc/passwd")]
    UnknownUser(String),
    /// The group name is not in the image's /etc/group.
    #[error("group {0:?} not found in the image's /etc/group")]
    UnknownGroup(String),
    /// A capability name is not one the kernel has.
    #[error("unknown capability {0:?}")]
    Capability(String),
    /// Neither the container nor the image says what to run.
    #[error("container {0:?} has no command: neither the container nor the image gives one")]
    NoCommand(String),
    /// The image config is malformed.
    #[error("invalid image config: {0}")]
    ImageConfig(String),
    /// The command line and environment are more than exec accepts.
    #[error("{what}: more than the kernel's exec accepts ({limit} bytes)")]
    TooBigForExec {
        /// What is too big, with its size.
        what: String,
        /// The limit.
        limit: usize,
    },
    /// An OCI hook is malformed, or asked of a runtime that runs none.
    #[error("invalid hook {path:?}: {reason}")]
    Hook {
        /// The hook's program.
        path: String,
        /// Why.
        reason: String,
    },
    /// The seccomp profile could not be had.
    #[error(transparent)]
    Seccomp(#[from] seccomp::Error),
    /// A device's host path cannot be inspected.
    #[error("invalid device {path:?}: {source}")]
    DeviceUnreadable {
        /// The offending path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Building a spec part failed (a fault of ours).
    #[error("build OCI spec {part}: {source}")]
    Build {
        /// The part of the spec.
        part: &'static str,
        /// The builder's error.
        #[source]
        source: oci_spec::OciSpecError,
    },
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Mount { .. }
            | Error::Device { .. }
            | Error::DeviceUnreadable { .. }
            | Error::WorkingDir(_)
            | Error::UnknownUser(_)
            | Error::UnknownGroup(_)
            | Error::Capability(_)
            | Error::NoCommand(_)
            | Error::ImageConfig(_)
            | Error::Hook { .. }
            | Error::TooBigForExec { .. } => ErrorKind::InvalidArgument,
            Error::Seccomp(e) => e.kind(),
            Error::Build { .. } => ErrorKind::Internal,
        }
    }
}
