//! `UpdateRuntimeConfig`: kubelet hands over the node's pod CIDR.
//!
//! corten takes pod addresses from the CNI configuration (host-local IPAM
//! ranges), as CRI-O does, so the CIDR is only logged. Accepting the call
//! matters: kubelet sends it at start-up and on node CIDR changes.

use corten_cri_api::v1::{UpdateRuntimeConfigRequest, UpdateRuntimeConfigResponse};
use tonic::Status;

use crate::service::Cri;

pub fn update_runtime_config(
    _: &Cri,
    req: UpdateRuntimeConfigRequest,
) -> Result<UpdateRuntimeConfigResponse, Status> {
    let cidr = req
        .runtime_config
        .and_then(|c| c.network_config)
        .map(|n| n.pod_cidr)
        .unwrap_or_default();
    tracing::info!(pod_cidr = %cidr, "node pod CIDR received; CNI config decides pod addresses");
    Ok(UpdateRuntimeConfigResponse {})
}
