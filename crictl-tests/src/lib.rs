//! End-to-end test support for cortend: a real OCI registry per test run
//! (Debian's `docker-registry`) and real OCI images built from Debian's
//! `busybox-static`, pushed to it over the Registry HTTP API v2.
//!
//! Debian packages needed at run time: `docker-registry` (the registry) and
//! `busybox-static` (`/bin/busybox`, the image content). Certificates and
//! htpasswd files are generated in-process.

pub mod client;
pub mod images;
pub mod index;
pub mod layers;
pub mod oci;
pub mod registry;
mod registry_setup;

pub use client::RegistryClient;
pub use images::{Image, ImageBuilder};
pub use index::ImageIndex;
pub use layers::{HostileLayer, LayerBuilder};
pub use oci::{sha256_digest, Blob, Compression, ManifestFormat};
pub use registry::{Registry, RegistryOptions};
