//! Images: references, digests; pull, content store and records come next.

mod digest;
mod reference;

pub use digest::{Algorithm, Digest};
pub use reference::{Reference, DEFAULT_REGISTRY, DEFAULT_TAG, NAME_MAX, TAG_MAX};

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
    /// A digest that does not parse or validate.
    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest {
        /// The digest as given.
        digest: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidReference { .. } | Error::InvalidDigest { .. } => {
                ErrorKind::InvalidArgument
            }
        }
    }
}
