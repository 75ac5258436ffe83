//! Errors of a pull.

use std::path::PathBuf;

use crate::{snapshot, ErrorKind};

/// Everything that can go wrong while pulling.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The registry (or every mirror) does not have the image.
    #[error("image {reference} not found at {endpoint}: {detail}")]
    NotFound {
        /// The reference pulled.
        reference: String,
        /// The endpoint asked last.
        endpoint: String,
        /// What the registry said.
        detail: String,
    },
    /// The registry refused our credentials (or wanted some).
    #[error("pulling {reference} from {endpoint}: access denied: {detail}")]
    Unauthorized {
        /// The reference pulled.
        reference: String,
        /// The endpoint.
        endpoint: String,
        /// What the registry said.
        detail: String,
    },
    /// The registry could not be reached or failed.
    #[error("pulling {reference} from {endpoint}: {detail}")]
    Registry {
        /// The reference pulled.
        reference: String,
        /// The endpoint.
        endpoint: String,
        /// The transport or server error.
        detail: String,
    },
    /// The registry's mirrors are final and it has none.
    #[error(
        "pulling {reference}: registry {registry} is only reached through its mirrors \
         (registry.mirrors_final) and it has none"
    )]
    NoEndpoint {
        /// The reference pulled.
        reference: String,
        /// Its registry.
        registry: String,
    },
    /// A layer download broke off.
    #[error("downloading layer {layer}: {reason}")]
    Download {
        /// The layer digest.
        layer: String,
        /// Why.
        reason: String,
    },
    /// The credentials given cannot be used.
    #[error("invalid registry credentials: {reason}")]
    BadCredentials {
        /// Why.
        reason: String,
    },
    /// The configured auth file cannot be read.
    #[error("registry auth file {path}: {reason}")]
    AuthFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A configured CA file cannot be read.
    #[error("registry CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The manifest or index is not one we can use.
    #[error("bad manifest for {reference}: {reason}")]
    BadManifest {
        /// The reference.
        reference: String,
        /// Why.
        reason: String,
    },
    /// The index has no entry for this node.
    #[error("{reference}: no image for platform {platform} (available: {available})")]
    NoMatchingPlatform {
        /// The reference.
        reference: String,
        /// The node platform.
        platform: String,
        /// The platforms the index offers.
        available: String,
    },
    /// The image config is not usable.
    #[error("bad image config for {reference}: {reason}")]
    BadConfig {
        /// The reference.
        reference: String,
        /// Why.
        reason: String,
    },
    /// Content did not match its digest.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was checked.
        what: String,
        /// The digest it should have.
        expected: String,
        /// The digest it has.
        actual: String,
    },
    /// A layer unpacked to content other than its config says.
    #[error("layer {layer}: uncompressed digest {actual} does not match diff_id {expected}")]
    DiffIdMismatch {
        /// The layer digest.
        layer: String,
        /// The config's diff_id.
        expected: String,
        /// What the content hashed to.
        actual: String,
    },
    /// A layer media type we do not unpack.
    #[error("layer {digest}: unsupported media type {media_type:?}")]
    UnsupportedLayer {
        /// The layer digest.
        digest: String,
        /// Its media type.
        media_type: String,
    },
    /// Unpacking a layer failed.
    #[error("unpacking layer {layer}: {source}")]
    Unpack {
        /// The layer digest.
        layer: String,
        /// The unpacker's error.
        #[source]
        source: snapshot::Error,
    },
    /// A background task failed.
    #[error("{what}: {reason}")]
    Task {
        /// What it was doing.
        what: String,
        /// Why it failed.
        reason: String,
    },
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } | Error::NoMatchingPlatform { .. } => ErrorKind::NotFound,
            Error::Unauthorized { .. } => ErrorKind::Unauthenticated,
            Error::NoEndpoint { .. } => ErrorKind::FailedPrecondition,
            Error::Registry { .. } | Error::Download { .. } => ErrorKind::Unavailable,
            Error::BadCredentials { .. }
            | Error::BadManifest { .. }
            | Error::BadConfig { .. }
            | Error::DigestMismatch { .. }
            | Error::DiffIdMismatch { .. }
            | Error::UnsupportedLayer { .. } => ErrorKind::InvalidArgument,
            Error::Unpack { source, .. } => source.kind(),
            Error::AuthFile { .. } | Error::CaFile { .. } | Error::Task { .. } => {
                ErrorKind::Internal
            }
        }
    }

    /// Whether the next endpoint (the registry after a mirror) is worth a try.
    pub fn try_next_endpoint(&self) -> bool {
        matches!(
            self,
            Error::NotFound { .. } | Error::Unauthorized { .. } | Error::Registry { .. }
        )
    }

    /// Classifies an oci-client error from `endpoint`.
    pub fn from_registry(
        reference: &str,
        endpoint: &str,
        e: oci_client::errors::OciDistributionError,
    ) -> Error {
        use oci_client::errors::{OciDistributionError as E, OciErrorCode as C};
        let detail = e.to_string();
        let (reference, endpoint) = (reference.to_string(), endpoint.to_string());
        let codes = |envelope: &oci_client::errors::OciEnvelope, wanted: &[C]| {
            envelope.errors.iter().any(|x| wanted.contains(&x.code))
        };
        match &e {
            E::ImageManifestNotFoundError(_) | E::ServerError { code: 404, .. } => {
                Error::NotFound {
                    reference,
                    endpoint,
                    detail,
                }
            }
            E::RegistryError { envelope, .. }
                if codes(
                    envelope,
                    &[
                        C::ManifestUnknown,
                        C::NameUnknown,
                        C::BlobUnknown,
                        C::NotFound,
                    ],
                ) =>
            {
                Error::NotFound {
                    reference,
                    endpoint,
                    detail,
                }
            }
            E::UnauthorizedError { .. }
            | E::AuthenticationFailure(_)
            | E::ServerError {
                code: 401 | 403, ..
            } => Error::Unauthorized {
                reference,
                endpoint,
                detail,
            },
            E::RegistryError { envelope, .. } if codes(envelope, &[C::Unauthorized, C::Denied]) => {
                Error::Unauthorized {
                    reference,
                    endpoint,
                    detail,
                }
            }
            _ => Error::Registry {
                reference,
                endpoint,
                detail,
            },
        }
    }

    /// Whether this is a transport failure (no HTTP answer at all), after
    /// which a loopback registry is retried over plain HTTP.
    pub fn is_transport(&self) -> bool {
        matches!(self, Error::Registry { .. })
    }
}
