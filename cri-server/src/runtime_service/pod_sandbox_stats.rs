//! `PodSandboxStats` and `ListPodSandboxStats`: the pod cgroup's counters
//! and the stats of each of its containers.

use corten_cri_api::v1::{
    ListPodSandboxStatsRequest, ListPodSandboxStatsResponse, PodSandboxStatsRequest,
    PodSandboxStatsResponse,
};
use corten_runtime::PodFilter;
use tonic::Status;

use crate::convert::stats::pod_stats;
use crate::error::CriError;
use crate::service::Cri;

pub async fn pod_sandbox_stats(
    cri: &Cri,
    req: PodSandboxStatsRequest,
) -> Result<PodSandboxStatsResponse, Status> {
    let stats = cri
        .runtime
        .pod_stats(&req.pod_sandbox_id)
        .await
        .map_err(CriError)?;
    Ok(PodSandboxStatsResponse {
        stats: Some(pod_stats(&stats, &cri.runtime.layout().writable_layers())),
    })
}

pub async fn list_pod_sandbox_stats(
    cri: &Cri,
    req: ListPodSandboxStatsRequest,
) -> Result<ListPodSandboxStatsResponse, Status> {
    let f = req.filter.unwrap_or_default();
    let filter = PodFilter {
        id: Some(f.id).filter(|s| !s.is_empty()),
        labels: f.label_selector.into_iter().collect(),
    };
    let stats = cri
        .runtime
        .list_pod_stats(&filter)
        .await
        .map_err(CriError)?;
    let layers = cri.runtime.layout().writable_layers();
    Ok(ListPodSandboxStatsResponse {
        stats: corten_runtime::blocking::run(|| {
            stats.iter().map(|s| pod_stats(s, &layers)).collect()
        }),
    })
}
