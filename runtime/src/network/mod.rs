//! CNI networking: configuration discovery ([`find_network`]) and plugin
//! execution per the CNI spec 1.0/1.1 ([`Cni`]), with a per-pod cache so DEL
//! runs exactly the configuration ADD ran.

mod args;
mod cache;
mod cni;
mod config;
mod result;

pub use cni::{Cni, PodNetwork, PortMapping, DEFAULT_PLUGIN_TIMEOUT};
pub use config::{find_network, NetworkConfig};
pub use result::{CniResult, Dns, Interface, IpConfig, Route};

use std::path::PathBuf;

use crate::ErrorKind;

/// Errors of the network module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable network configuration in the configured directory.
    #[error("no valid CNI network config found in {dir}{}", detail(.skipped))]
    NoConfig {
        /// The directory searched.
        dir: PathBuf,
        /// Files that were considered and why each was passed over.
        skipped: Vec<String>,
    },
    /// The configuration directory could not be read.
    #[error("cannot read CNI config dir {dir}: {source}")]
    ReadDir {
        /// The directory.
        dir: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A pod id that cannot name a cache file (empty, or with a `/`).
    #[error("invalid pod id {0:?} for CNI")]
    InvalidPodId(String),
    /// The configuration names a plugin that is in none of the bin dirs.
    #[error("CNI plugin `{plugin}` of network {network} not found in {dirs:?}")]
    PluginNotFound {
        /// The network name.
        network: String,
        /// The plugin type.
        plugin: String,
        /// The directories searched.
        dirs: Vec<PathBuf>,
    },
    /// A plugin reported an error (the CNI error object on its stdout).
    #[error(
        "CNI plugin `{plugin}` failed on {command} (code {code}): {msg}{}",
        if .details.is_empty() { String::new() } else { format!(": {details}") }
    )]
    Plugin {
        /// The plugin type.
        plugin: String,
        /// ADD, DEL or CHECK.
        command: String,
        /// The CNI error code.
        code: u32,
        /// The error message.
        msg: String,
        /// The error details (may be empty).
        details: String,
    },
    /// A plugin could not be started or waited for.
    #[error("cannot run CNI plugin {path}: {source}")]
    Exec {
        /// The plugin binary.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A plugin did not finish in time (it was killed).
    #[error("CNI plugin `{plugin}` did not finish {command} within {timeout:?}")]
    Timeout {
        /// The plugin type.
        plugin: String,
        /// ADD, DEL or CHECK.
        command: String,
        /// The limit.
        timeout: std::time::Duration,
    },
    /// A plugin succeeded but printed something that is not a CNI result.
    #[error("CNI plugin `{plugin}` returned an invalid result: {reason}")]
    BadResult {
        /// The plugin type.
        plugin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A plugin's config cannot be encoded, or its result decoded.
    #[error("CNI plugin `{plugin}` {what}: {source}")]
    Json {
        /// The plugin type.
        plugin: String,
        /// What was being done.
        what: &'static str,
        /// The codec's error.
        #[source]
        source: serde_json::Error,
    },
    /// CHECK of a pod that ADD never cached.
    #[error("CNI cache: no cached network for pod {pod_id}")]
    NotCached {
        /// The pod.
        pod_id: String,
    },
    /// The per-pod cache could not be read or written.
    #[error("CNI cache {path}: {what}: {source}")]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// Why (an I/O or a JSON error).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

fn detail(skipped: &[String]) -> String {
    if skipped.is_empty() {
        String::new()
    } else {
        format!(" ({})", skipped.join("; "))
    }
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NoConfig { .. } | Error::PluginNotFound { .. } => ErrorKind::FailedPrecondition,
            Error::InvalidPodId(_) => ErrorKind::InvalidArgument,
            // Codes 1 (incompatible version), 2 (unsupported field),
            // 4 (invalid env), 6 (decoding failure), 7 (invalid config).
            Error::Plugin { code, .. } => match code {
                1 | 2 | 4 | 6 | 7 => ErrorKind::InvalidArgument,
                11 => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            },
            Error::Timeout { .. } => ErrorKind::DeadlineExceeded,
            Error::ReadDir { .. }
            | Error::Exec { .. }
            | Error::BadResult { .. }
            | Error::Json { .. }
            | Error::NotCached { .. }
            | Error::Cache { .. } => ErrorKind::Internal,
        }
    }
}
