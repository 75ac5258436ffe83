//! `PodSandboxStatus`: state, IPs, namespaces, labels; with `verbose` the
//! pod's record as JSON under `info`.

use std::collections::HashMap;

use corten_cri_api::v1::{PodSandboxStatusRequest, PodSandboxStatusResponse};
use corten_runtime::container::ContainerFilter;
use tonic::Status;

use crate::convert::container;
use crate::convert::pod::pod_status;
use crate::error::CriError;
use crate::service::Cri;

pub async fn pod_sandbox_status(
    cri: &Cri,
    req: PodSandboxStatusRequest,
) -> Result<PodSandboxStatusResponse, Status> {
    let pod = cri
        .runtime
        .pods()
        .get(&req.pod_sandbox_id)
        .map_err(|e| CriError(e.into()))?;
    let mut info = HashMap::new();
    if req.verbose {
        let json = serde_json::to_string(&pod)
            .map_err(|e| Status::internal(format!("cannot render pod {}: {e}", pod.id)))?;
        info.insert("info".to_string(), json);
    }
    // The pod's containers too, as the evented PLEG reads them here.
    let filter = ContainerFilter {
        pod_id: Some(pod.id.to_string()),
        ..ContainerFilter::default()
    };
    let containers_statuses = cri
        .runtime
        .containers()
        .list(&filter)
        .iter()
        .map(container::status)
        .collect();
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    Ok(PodSandboxStatusResponse {
        status: Some(pod_status(&pod)),
        info,
        containers_statuses,
        timestamp,
    })
}
