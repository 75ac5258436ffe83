//! corten-runtime: the isolated-container core of corten.
//!
//! This crate knows nothing of gRPC or protobuf. It speaks in runtime terms
//! (images, snapshots, sandboxes, containers, networks) and reports failures
//! as [`Error`], whose [`Error::kind`] the CRI layer maps to a gRPC code.

pub mod blocking;
pub mod cgroups;
pub mod container;
pub mod crash;
pub mod error;
pub mod facade;
pub mod ids;
pub mod image;
pub mod layout;
#[allow(unsafe_code)]
pub mod linux;
pub mod locks;
pub mod logs;
pub mod network;
pub mod sandbox;
pub mod seccomp;
pub mod shim;
pub mod snapshot;
pub mod spec;
pub mod store;
#[cfg(test)]
mod testing;

pub use error::{Error, ErrorKind, Result};
pub use facade::{
    ContainerUsage, NetworkStats, PidNamespace, PodFilter, PodMetrics, PodStats, Runtime,
    RuntimeConfig, Seams,
};
pub use ids::{ContainerId, ImageId, SandboxId};
pub use layout::Layout;

/// The crate version, reported by the CRI `Version` RPC.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
