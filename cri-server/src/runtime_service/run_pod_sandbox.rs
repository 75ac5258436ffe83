//! `RunPodSandbox`: pinned namespaces, cgroup, /dev/shm, CNI, pod files.
//! On any failure nothing of the pod is left (the runtime undoes it).

use corten_cri_api::v1::{RunPodSandboxRequest, RunPodSandboxResponse};
use tonic::Status;

use crate::convert::pod::pod_config;
use crate::error::CriError;
use crate::service::Cri;

pub async fn run_pod_sandbox(
    cri: &Cri,
    req: RunPodSandboxRequest,
) -> Result<RunPodSandboxResponse, Status> {
    let config = req
        .config
        .as_ref()
        .ok_or_else(|| Status::invalid_argument("RunPodSandboxRequest.config is required"))?;
    let Some(handler) = cri.handler(&req.runtime_handler) else {
        let known: Vec<String> = cri
            .handlers
            .iter()
            .map(|h| format!("{:?}", h.name))
            .collect();
        return Err(Status::invalid_argument(format!(
            "runtime handler {:?} is not configured (configured: {})",
            req.runtime_handler,
            known.join(", ")
        )));
    };
    let config = pod_config(config, &req.runtime_handler)?;
    if config.userns.is_some() && !handler.features.user_namespaces {
        return Err(Status::invalid_argument(format!(
            "runtime handler {:?} does not support user namespaces (userns_options mode POD)",
            req.runtime_handler
        )));
    }
    let pod = cri.runtime.pods().run(config).await.map_err(CriError)?;
    Ok(RunPodSandboxResponse {
        pod_sandbox_id: pod.id.to_string(),
    })
}
