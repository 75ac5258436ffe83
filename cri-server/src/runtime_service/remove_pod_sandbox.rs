//! `RemovePodSandbox`: removes the pod's containers, then the pod (network,
//! namespaces, /dev/shm, cgroup, files, record). Idempotent.

use corten_cri_api::v1::{RemovePodSandboxRequest, RemovePodSandboxResponse};
use tonic::Status;

use crate::error::CriError;
use crate::service::Cri;

pub async fn remove_pod_sandbox(
    cri: &Cri,
    req: RemovePodSandboxRequest,
) -> Result<RemovePodSandboxResponse, Status> {
    if req.pod_sandbox_id.is_empty() {
        return Err(Status::invalid_argument("pod_sandbox_id is required"));
    }
    cri.runtime
        .remove_pod(&req.pod_sandbox_id)
        .await
        .map_err(CriError)?;
    Ok(RemovePodSandboxResponse {})
}
