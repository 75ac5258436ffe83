//! Errors of a pull.

use std::path::PathBuf;

use oci_client::errors::OciDistributionError;

use crate::{snapshot, ErrorKind};

/// An error behind another, of whichever type.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while pulling.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The registry (or every mirror) does not have the image.
    #[error("image {reference} not found at {endpoint}: {source}")]
    NotFound {
        /// The reference pulled.
        reference: String,
        /// The endpoint asked last.
        endpoint: String,
        /// What the registry said.
        #[source]
        source: Box<OciDistributionError>,
    },
    /// The registry refused our credentials (or wanted some).
    #[error("pulling {reference} from {endpoint}: access denied: {source}")]
    Unauthorized {
        /// The reference pulled.
        reference: String,
        /// The endpoint.
        endpoint: String,
        /// What the registry said.
        #[source]
        source: Box<OciDistributionError>,
    },
    /// The registry could not be reached or failed.
    #[error("pulling {reference} from {endpoint}: {source}")]
    Registry {
        /// The reference pulled.
        reference: String,
        /// The endpoint.
        endpoint: String,
        /// The transport or server error.
        #[source]
        source: Box<OciDistributionError>,
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
    #[error("downloading layer {layer}: {source}")]
    Download {
        /// The layer digest.
        layer: String,
        /// Why (the registry's or the connection's error).
        #[source]
        source: Cause,
    },
    /// The credentials given cannot be used.
    #[error("invalid registry credentials: {reason}")]
    BadCredentials {
        /// Why.
        reason: String,
    },
    /// The configured auth file cannot be read or decoded.
    #[error("registry auth file {path}: {source}")]
    AuthFile {
        /// The file.
        path: PathBuf,
        /// Why (an I/O or a JSON error).
        #[source]
        source: Cause,
    },
    /// A configured CA file cannot be read.
    #[error("registry CA file {path}: {source}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The manifest or index is not one we can use.
    #[error("bad manifest for {reference}: {reason}")]
    BadManifest {
        /// The reference.
        reference: String,
        /// Why.
        reason: String,
    },
    /// The manifest or index does not decode, or names a bad digest.
    #[error("bad manifest for {reference}: {source}")]
    ManifestUnreadable {
        /// The reference.
        reference: String,
        /// The decoder's (or digest parser's) error.
        #[source]
        source: Cause,
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
    /// The image config does not decode, or names a bad digest.
    #[error("bad image config for {reference}: {source}")]
    ConfigUnreadable {
        /// The reference.
        reference: String,
        /// The decoder's (or digest parser's) error.
        #[source]
        source: Cause,
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
    #[error("{what}: {source}")]
    Task {
        /// What it was doing.
        what: String,
        /// Why it failed.
        #[source]
        source: tokio::task::JoinError,
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
            | Error::ManifestUnreadable { .. }
            | Error::BadConfig { .. }
            | Error::ConfigUnreadable { .. }
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
    pub fn from_registry(reference: &str, endpoint: &str, e: OciDistributionError) -> Error {
        use oci_client::errors::{OciDistributionError as E, OciErrorCode as C};
        let (reference, endpoint) = (reference.to_string(), endpoint.to_string());
        let codes = |envelope: &oci_client::errors::OciEnvelope, wanted: &[C]| {
            envelope.errors.iter().any(|x| wanted.contains(&x.code))
        };
        #[derive(PartialEq)]
        enum Class {
            NotFound,
            Denied,
            Other,
        }
        let class = match &e {
            E::ImageManifestNotFoundError(_) | E::ServerError { code: 404, .. } => Class::NotFound,
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
                Class::NotFound
            }
            E::UnauthorizedError { .. }
            | E::AuthenticationFailure(_)
            | E::ServerError {
                code: 401 | 403, ..
            } => Class::Denied,
            E::RegistryError { envelope, .. } if codes(envelope, &[C::Unauthorized, C::Denied]) => {
                Class::Denied
            }
            _ => Class::Other,
        };
        let source = Box::new(e);
        match class {
            Class::NotFound => Error::NotFound {
                reference,
                endpoint,
                source,
            },
            Class::Denied => Error::Unauthorized {
                reference,
                endpoint,
                source,
            },
            Class::Other => Error::Registry {
                reference,
                endpoint,
                source,
            },
        }
    }

    /// Whether this is a transport failure (no HTTP answer at all), after
    /// which a loopback registry is retried over plain HTTP.
    pub fn is_transport(&self) -> bool {
        matches!(self, Error::Registry { .. })
    }
}
