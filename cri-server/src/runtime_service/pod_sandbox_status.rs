//! `PodSandboxStatus`: state, IPs, namespaces, labels; with `verbose` the
//! pod's record as JSON under `info`.

use std::collections::HashMap;

use k8s_cri::v1::{PodSandboxStatusRequest, PodSandboxStatusResponse};
use tonic::Status;

use crate::convert::pod::pod_status;
use crate::error::CriError;
use crate::service::Cri;

pub async fn pod_sandbox_status(
    cri: &Cri,
    req: PodSandboxStatusRequest,
) -> Result<PodSandboxStatusResponse, Status> {
    let pod = cri
        .pods
        .get(&req.pod_sandbox_id)
        .map_err(|e| CriError(e.into()))?;
    let mut info = HashMap::new();
    if req.verbose {
        let json = serde_json::to_string(&pod)
            .map_err(|e| Status::internal(format!("cannot render pod {}: {e}", pod.id)))?;
        info.insert("info".to_string(), json);
    }
    Ok(PodSandboxStatusResponse {
        status: Some(pod_status(&pod)),
        info,
        containers_statuses: Vec::new(),
        timestamp: 0,
    })
}
