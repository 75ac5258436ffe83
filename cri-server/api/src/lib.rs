//! The Container Runtime Interface v1 (cri-api v0.36): the messages as prost
//! types, and the `RuntimeService` and `ImageService` servers and clients as
//! tonic generates them. Compiled from `proto/api.proto` by protox at build
//! time.

/// Package `runtime.v1`.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("runtime.v1");
}

/// The encoded `FileDescriptorSet` of `proto/api.proto`, as compiled.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/cri_descriptor.bin"));
