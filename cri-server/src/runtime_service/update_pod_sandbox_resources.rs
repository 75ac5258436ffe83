//! `UpdatePodSandboxResources`: the pod's cgroup gets the new resources.

use corten_cri_api::v1::{UpdatePodSandboxResourcesRequest, UpdatePodSandboxResourcesResponse};
use tonic::Status;

use crate::service::Cri;

pub async fn update_pod_sandbox_resources(
    _cri: &Cri,
    _req: UpdatePodSandboxResourcesRequest,
) -> Result<UpdatePodSandboxResourcesResponse, Status> {
    Err(crate::error::unimplemented("UpdatePodSandboxResources"))
}
