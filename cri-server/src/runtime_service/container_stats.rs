//! `ContainerStats` and `ListContainerStats`: cgroup counters and the
//! writable layer's size.

use corten_cri_api::v1::{
    ContainerStatsRequest, ContainerStatsResponse, ListContainerStatsRequest,
    ListContainerStatsResponse,
};
use corten_runtime::container::ContainerFilter;
use tonic::Status;

use crate::convert::stats::container_stats as convert;
use crate::error::CriError;
use crate::service::Cri;

pub async fn container_stats(
    cri: &Cri,
    req: ContainerStatsRequest,
) -> Result<ContainerStatsResponse, Status> {
    let usage = cri
        .runtime
        .container_stats(&req.container_id)
        .await
        .map_err(CriError)?;
    Ok(ContainerStatsResponse {
        stats: Some(convert(&usage, &cri.runtime.layout().writable_layers())),
    })
}

pub async fn list_container_stats(
    cri: &Cri,
    req: ListContainerStatsRequest,
) -> Result<ListContainerStatsResponse, Status> {
    let filter = match req.filter {
        None => ContainerFilter::default(),
        Some(f) => ContainerFilter {
            id: Some(f.id).filter(|s| !s.is_empty()),
            pod_id: Some(f.pod_sandbox_id).filter(|s| !s.is_empty()),
            labels: f.label_selector.into_iter().collect(),
            state: None,
        },
    };
    let usage = cri
        .runtime
        .list_container_stats(&filter)
        .await
        .map_err(CriError)?;
    let layers = cri.runtime.layout().writable_layers();
    Ok(ListContainerStatsResponse {
        stats: corten_runtime::blocking::run(|| {
            usage.iter().map(|u| convert(u, &layers)).collect()
        }),
    })
}
