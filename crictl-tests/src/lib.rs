//! The end-to-end harness of corten: a cortend of its own on temporary
//! directories and socket, driven by the real `crictl`; a real OCI registry
//! per test (Debian's `docker-registry`) and real OCI images built from
//! Debian's `busybox-static`, pushed to it over the Registry HTTP API v2.
//!
//! Everything a test starts is owned by a guard that stops it and removes
//! its files when dropped, so a failing test leaves nothing behind.
//! Certificates and htpasswd files are generated in-process.

pub mod cgroups;
pub mod client;
pub mod cluster;
pub mod cri;
pub mod critest;
pub mod daemon;
pub mod full_disk;
pub mod guard;
pub mod images;
pub mod index;
pub mod kubelet;
pub mod layers;
pub mod network;
pub mod node_e2e;
pub mod oci;
pub mod peer;
pub mod proxy;
pub mod registry;
mod registry_setup;
pub mod tools;
pub mod wait;

pub use client::RegistryClient;
pub use cluster::Cluster;
pub use daemon::{Daemon, DaemonBuilder};
pub use images::{Image, ImageBuilder};
pub use index::ImageIndex;
pub use kubelet::{Kubelet, KubeletBuilder};
pub use layers::{HostileLayer, LayerBuilder};
pub use network::TestNetwork;
pub use oci::{sha256_digest, Blob, Compression, ManifestFormat};
pub use registry::{Registry, RegistryOptions};
