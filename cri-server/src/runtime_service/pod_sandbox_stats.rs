//! `PodSandboxStats` and `ListPodSandboxStats`: the pod cgroup's counters
//! and the stats of each of its containers.

use corten_runtime::cgroups::{self, Cgroup, CgroupStats};
use corten_runtime::container::ContainerFilter;
use corten_runtime::sandbox::Pod;
use corten_runtime::ErrorKind;
use k8s_cri::v1::{
    LinuxPodSandboxStats, ListPodSandboxStatsRequest, ListPodSandboxStatsResponse,
    PodSandboxAttributes, PodSandboxStats, PodSandboxStatsRequest, PodSandboxStatsResponse,
    ProcessUsage, UInt64Value,
};
use tonic::Status;

use super::container_stats::one as container_stats;
use crate::convert::pod::pod_sandbox;
use crate::convert::stats::{cpu, memory};
use crate::error::CriError;
use crate::service::Cri;

pub async fn pod_sandbox_stats(
    cri: &Cri,
    req: PodSandboxStatsRequest,
) -> Result<PodSandboxStatsResponse, Status> {
    let pod = cri
        .pods
        .get(&req.pod_sandbox_id)
        .map_err(|e| CriError(e.into()))?;
    Ok(PodSandboxStatsResponse {
        stats: Some(stats(cri, &pod).await?),
    })
}

pub async fn list_pod_sandbox_stats(
    cri: &Cri,
    req: ListPodSandboxStatsRequest,
) -> Result<ListPodSandboxStatsResponse, Status> {
    let filter = req.filter.unwrap_or_default();
    let mut out = Vec::new();
    for pod in cri.pods.list() {
        if !pod.id.starts_with(&filter.id)
            || !filter
                .label_selector
                .iter()
                .all(|(k, v)| pod.config.labels.get(k) == Some(v))
        {
            continue;
        }
        out.push(stats(cri, &pod).await?);
    }
    out.sort_by(|a, b| {
        let id = |s: &PodSandboxStats| s.attributes.as_ref().map(|a| a.id.clone());
        id(a).cmp(&id(b))
    });
    Ok(ListPodSandboxStatsResponse { stats: out })
}

async fn stats(cri: &Cri, pod: &Pod) -> Result<PodSandboxStats, Status> {
    let summary = pod_sandbox(pod);
    let cgroup = match &pod.cgroup {
        Some(path) => cgroup_stats(path).map_err(CriError)?,
        None => None,
    };
    let mut containers = Vec::new();
    let filter = ContainerFilter {
        pod_id: Some(pod.id.clone()),
        ..ContainerFilter::default()
    };
    for r in cri.containers.list(&filter) {
        match container_stats(cri, &r.id).await {
            Ok(s) => containers.push(s),
            Err(e) if e.code() == tonic::Code::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(PodSandboxStats {
        attributes: Some(PodSandboxAttributes {
            id: pod.id.clone(),
            metadata: summary.metadata,
            labels: summary.labels,
            annotations: summary.annotations,
        }),
        linux: Some(LinuxPodSandboxStats {
            cpu: cgroup.as_ref().map(|c| cpu(c, None)),
            memory: cgroup.as_ref().map(memory),
            network: None,
            process: cgroup.as_ref().map(|c| ProcessUsage {
                timestamp: i64::try_from(c.timestamp_ns).unwrap_or(i64::MAX),
                process_count: Some(UInt64Value {
                    value: c.pids_current,
                }),
            }),
            containers,
        }),
        windows: None,
    })
}

/// The counters of the cgroup at `path`; `None` when it is gone.
fn cgroup_stats(path: &str) -> Result<Option<CgroupStats>, corten_runtime::Error> {
    let hierarchy = cgroups::detect()?;
    match Cgroup::open(&hierarchy, path) {
        Ok(cg) => Ok(Some(cg.stats()?)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}
