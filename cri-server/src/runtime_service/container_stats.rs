//! `ContainerStats` and `ListContainerStats`: cgroup counters and the
//! writable layer's size.

use corten_runtime::container::ContainerFilter;
use k8s_cri::v1::{
    ContainerStats, ContainerStatsRequest, ContainerStatsResponse, ListContainerStatsRequest,
    ListContainerStatsResponse,
};
use tonic::Status;

use crate::convert::stats::container_stats as convert;
use crate::error::CriError;
use crate::service::Cri;

pub async fn container_stats(
    cri: &Cri,
    req: ContainerStatsRequest,
) -> Result<ContainerStatsResponse, Status> {
    Ok(ContainerStatsResponse {
        stats: Some(one(cri, &req.container_id).await?),
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
    let mut stats = Vec::new();
    for r in cri.containers.list(&filter) {
        match one(cri, &r.id).await {
            Ok(s) => stats.push(s),
            // Removed meanwhile.
            Err(e) if e.code() == tonic::Code::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(ListContainerStatsResponse { stats })
}

/// The stats of one container.
pub async fn one(cri: &Cri, id: &str) -> Result<ContainerStats, Status> {
    let (record, stats, rate) = cri.containers.stats(id).await.map_err(CriError)?;
    let layers = cri.config.root_dir.join("containers");
    Ok(convert(
        &record,
        &stats,
        rate,
        &layers.display().to_string(),
    ))
}
