//! `UpdatePodSandboxResources`: the pod's new resources (the sum of its
//! containers') and overhead, recorded and, when corten made the pod's
//! cgroup, written to it as their sum (see
//! `corten_runtime::sandbox::pod_cgroup_resources`). A pod living in
//! kubelet's cgroup (its `cgroup_parent` existed) keeps that cgroup as
//! kubelet set it, as containerd and CRI-O do: kubelet resizes the pod
//! cgroup before it calls. Unknown pod: NotFound; NotReady pod:
//! FailedPrecondition; bad values: InvalidArgument; nothing changed on
//! any error.

use corten_cri_api::v1::{UpdatePodSandboxResourcesRequest, UpdatePodSandboxResourcesResponse};
use tonic::Status;

use crate::convert::pod::pod_resources;
use crate::error::CriError;
use crate::service::Cri;

pub async fn update_pod_sandbox_resources(
    cri: &Cri,
    req: UpdatePodSandboxResourcesRequest,
) -> Result<UpdatePodSandboxResourcesResponse, Status> {
    if req.pod_sandbox_id.is_empty() {
        return Err(Status::invalid_argument("pod_sandbox_id is empty"));
    }
    let resources = pod_resources("resources", req.resources.as_ref())?;
    let overhead = pod_resources("overhead", req.overhead.as_ref())?;
    cri.runtime
        .pods()
        .update_resources(&req.pod_sandbox_id, resources, overhead)
        .await
        .map_err(CriError)?;
    Ok(UpdatePodSandboxResourcesResponse {})
}
