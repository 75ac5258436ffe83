//! What the container RPCs know of pods: the one place they look a pod up.

use corten_cri_api::v1::PodSandboxStatus;
use corten_runtime::sandbox::{PodContext, PodState};
use tonic::Status;

use crate::convert::pod::pod_status as convert_pod_status;
use crate::error::CriError;
use crate::service::Cri;

/// The context of pod `pod_id` (id or unique prefix) for a new container;
/// the pod must be ready (as containerd requires).
pub fn pod_context(cri: &Cri, pod_id: &str) -> Result<PodContext, Status> {
    if pod_id.is_empty() {
        return Err(Status::invalid_argument("pod_sandbox_id is empty"));
    }
    let pod = cri
        .runtime
        .pods()
        .get(pod_id)
        .map_err(|e| CriError(e.into()))?;
    if pod.state != PodState::Ready {
        return Err(Status::failed_precondition(format!(
            "pod {} is not ready: cannot create a container in it",
            pod.id
        )));
    }
    Ok(pod.context())
}

/// The CRI status of pod `pod_id` for a container event, if it still exists.
pub fn pod_status(cri: &Cri, pod_id: &str) -> Option<PodSandboxStatus> {
    cri.runtime
        .pods()
        .get(pod_id)
        .ok()
        .map(|p| convert_pod_status(&p))
}
