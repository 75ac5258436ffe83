//! `ContainerStatus`: the record, and with `verbose` pid and OCI spec.

use std::collections::HashMap;

use corten_cri_api::v1::{ContainerStatusRequest, ContainerStatusResponse};
use tonic::Status;

use crate::convert::container::status;
use crate::error::CriError;
use crate::service::Cri;

pub async fn container_status(
    cri: &Cri,
    req: ContainerStatusRequest,
) -> Result<ContainerStatusResponse, Status> {
    let record = cri
        .runtime
        .containers()
        .status(&req.container_id)
        .map_err(CriError)?;
    let mut info = HashMap::new();
    if req.verbose {
        // The keys containerd gives (`crictl inspect` reads `info`).
        let verbose = serde_json::json!({
            "sandboxID": record.pod_id,
            "pid": record.pid,
            "removing": false,
            "snapshotKey": record.id,
            "snapshotter": "overlayfs",
            "runtimeType": "corten",
            "config": record.config,
            "runtimeSpec": cri.runtime.containers().spec_json(&record.id),
        });
        info.insert("info".to_string(), verbose.to_string());
    }
    Ok(ContainerStatusResponse {
        status: Some(status(&record)),
        info,
    })
}
