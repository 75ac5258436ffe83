//! What CreateContainer knows of the pod a container goes into: the one
//! place the container RPCs look a pod up.

use corten_runtime::sandbox::PodContext;
use k8s_cri::v1::PodSandboxConfig;
use tonic::Status;

use crate::service::Cri;

/// The context of pod `pod_id`. Until the pod manager is merged, a pod is
/// not looked up: the container gets namespaces of its own and the log
/// directory the request's sandbox config names.
pub fn pod_context(
    _cri: &Cri,
    pod_id: &str,
    sandbox_config: Option<&PodSandboxConfig>,
) -> Result<PodContext, Status> {
    if pod_id.is_empty() {
        return Err(Status::invalid_argument("pod_sandbox_id is empty"));
    }
    let log_directory = sandbox_config
        .map(|c| c.log_directory.clone())
        .filter(|d| !d.is_empty())
        .map(Into::into);
    Ok(PodContext {
        pod_id: pod_id.to_string(),
        log_directory,
        ..PodContext::default()
    })
}

/// The CRI status of pod `pod_id` for a container event, if known. Until
/// the pod manager is merged there is none.
pub fn pod_status(_cri: &Cri, _pod_id: &str) -> Option<k8s_cri::v1::PodSandboxStatus> {
    None
}
