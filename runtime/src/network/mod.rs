//! CNI networking: configuration discovery now; plugin execution comes with pods.

mod config;

pub use config::{find_network, NetworkConfig};

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
            Error::NoConfig { .. } => ErrorKind::FailedPrecondition,
            Error::ReadDir { .. } => ErrorKind::Internal,
        }
    }
}
