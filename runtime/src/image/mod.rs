//! Images: references, digests, the content store, image records and the
//! image index with its garbage collector.

mod content;
mod digest;
mod gc;
mod holds;
mod images;
mod index;
pub mod pull;
mod record;
mod reference;

pub use content::ContentStore;
pub use digest::{Algorithm, Digest};
pub use gc::GcStats;
pub use holds::LayerHolds;
pub use images::Images;
pub use index::ImageIndex;
pub use pull::{Credentials, RegistryConfig};
pub use record::{ImageRecord, LayerRecord};
pub use reference::{Reference, DEFAULT_REGISTRY, DEFAULT_TAG, NAME_MAX, TAG_MAX};

use std::io;
use std::path::PathBuf;

use crate::ErrorKind;

/// Errors of the image module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image reference that does not parse or validate.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An image reference whose digest does not parse or validate.
    #[error("invalid image reference {reference:?}: {source}")]
    ReferenceDigest {
        /// The reference as given.
        reference: String,
        /// What is wrong with its digest.
        #[source]
        source: Box<Error>,
    },
    /// A digest that does not parse or validate.
    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest {
        /// The digest as given.
        digest: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Content that does not hash to the digest it was announced with.
    #[error("content digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest the content should have.
        expected: Digest,
        /// The digest it has.
        actual: String,
    },
    /// A blob that is not in the content store.
    #[error("blob {digest} not found in the content store")]
    BlobNotFound {
        /// The blob's digest.
        digest: Digest,
    },
    /// A short image id that matches more than one image.
    #[error("image id prefix {prefix:?} is ambiguous")]
    AmbiguousId {
        /// The prefix as given.
        prefix: String,
    },
    /// A file system operation of the content store failed.
    #[error("content store: {op} {path}: {source}")]
    Io {
        /// The operation, e.g. "write blob".
        op: &'static str,
        /// The path it failed on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A blocking background task (garbage collection) did not finish.
    #[error("image {task} did not finish: {source}")]
    Background {
        /// The task.
        task: &'static str,
        /// Why.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidReference { .. }
            | Error::ReferenceDigest { .. }
            | Error::InvalidDigest { .. }
            | Error::DigestMismatch { .. }
            | Error::AmbiguousId { .. } => ErrorKind::InvalidArgument,
            Error::BlobNotFound { .. } => ErrorKind::NotFound,
            Error::Io { .. } | Error::Background { .. } => ErrorKind::Internal,
        }
    }
}
