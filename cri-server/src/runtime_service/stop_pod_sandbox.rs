//! `StopPodSandbox`: stops the pod's containers, then detaches its network
//! and releases its namespaces; the record stays. Idempotent; an unknown
//! pod is not an error (kubelet stops pods it may have lost track of).

use corten_cri_api::v1::{StopPodSandboxRequest, StopPodSandboxResponse};
use tonic::Status;

use crate::error::CriError;
use crate::service::Cri;

pub async fn stop_pod_sandbox(
    cri: &Cri,
    req: StopPodSandboxRequest,
) -> Result<StopPodSandboxResponse, Status> {
    if req.pod_sandbox_id.is_empty() {
        return Err(Status::invalid_argument("pod_sandbox_id is required"));
    }
    cri.runtime
        .stop_pod(&req.pod_sandbox_id)
        .await
        .map_err(CriError)?;
    Ok(StopPodSandboxResponse {})
}
