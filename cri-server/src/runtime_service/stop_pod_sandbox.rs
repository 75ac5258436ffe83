//! `StopPodSandbox`: stops the pod's containers, then detaches its network
//! and releases its namespaces; the record stays. Idempotent; an unknown
//! pod is not an error (kubelet stops pods it may have lost track of).

use corten_runtime::ErrorKind;
use k8s_cri::v1::{StopPodSandboxRequest, StopPodSandboxResponse};
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
    // The pod's containers first, killed at once as containerd does
    // (kubelet has stopped them with their grace period already).
    if let Ok(pod) = cri.pods.get(&req.pod_sandbox_id) {
        cri.containers
            .stop_all_of_pod(&pod.id, std::time::Duration::ZERO)
            .await
            .map_err(CriError)?;
        corten_runtime::crash::point("pod.stop.after_containers");
    }
    match cri.pods.stop(&req.pod_sandbox_id).await {
        Ok(_) => Ok(StopPodSandboxResponse {}),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(StopPodSandboxResponse {}),
        Err(e) => Err(CriError(e).into()),
    }
}
