//! Resource usage of containers and pods: a pod's is its cgroup's counters
//! and the usage of each of its containers.

use std::collections::{BTreeMap, HashMap};

use futures_util::StreamExt as _;

use super::{Error, Runtime};
use crate::cgroups::CgroupStats;
use crate::container::{
    ContainerFilter, ContainerMetrics, ContainerRecord, ContainerState, ContainerStats,
};
use crate::linux::InterfaceCounters;
use crate::sandbox::{Namespace, Pod, PodPlumbing, PodState};
use crate::ErrorKind;

/// How many containers' stats are read at a time.
const STATS_AT_ONCE: usize = 8;

/// What one container uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerUsage {
    /// The container.
    pub record: ContainerRecord,
    /// Its cgroup's counters and its writable layer's size.
    pub stats: ContainerStats,
    /// CPU rate since the previous sample of it, in nano cores (`None` on
    /// the first).
    pub nano_cores: Option<u64>,
}

/// What one pod uses.
#[derive(Debug, Clone, PartialEq)]
pub struct PodStats {
    /// The pod.
    pub pod: Pod,
    /// Its cgroup's counters; `None` when it has no cgroup (or it is gone).
    pub cgroup: Option<CgroupStats>,
    /// Its cgroup's CPU rate in nano cores, over a second or more (`None`
    /// until two samples a second apart were taken).
    pub nano_cores: Option<u64>,
    /// Its network namespace's traffic; `None` when it has none of its own
    /// (host network) or it is not running.
    pub network: Option<NetworkStats>,
    /// Its containers', oldest first.
    pub containers: Vec<ContainerUsage>,
}

/// The traffic of a pod's network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkStats {
    /// When the counters were read, Unix nanoseconds.
    pub timestamp_ns: u64,
    /// Each interface but loopback, by name.
    pub interfaces: Vec<InterfaceCounters>,
}

/// The metrics of one ready pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodMetrics {
    /// The pod.
    pub pod: Pod,
    /// Its network namespace's traffic, as for [`PodStats`].
    pub network: Option<NetworkStats>,
    /// Its running containers' metrics, oldest first.
    pub containers: Vec<(ContainerRecord, ContainerMetrics)>,
}

/// Which pods to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodFilter {
    /// An id or id prefix; `None` for any.
    pub id: Option<String>,
    /// Labels every listed pod has.
    pub labels: BTreeMap<String, String>,
}

impl PodFilter {
    /// Whether `pod` passes.
    pub fn matches(&self, pod: &Pod) -> bool {
        self.id.as_ref().is_none_or(|id| pod.id.starts_with(id))
            && self
                .labels
                .iter()
                .all(|(k, v)| pod.config.labels.get(k) == Some(v))
    }
}

impl Runtime {
    /// The usage of container `id_or_prefix`.
    pub async fn container_stats(
        &self,
        id_or_prefix: &str,
    ) -> Result<ContainerUsage, crate::Error> {
        let (record, stats, nano_cores) = self.containers.stats(id_or_prefix).await?;
        Ok(ContainerUsage {
            record,
            stats,
            nano_cores,
        })
    }

    /// The usage of the containers `filter` lets through, oldest first
    /// (one removed meanwhile is left out).
    pub async fn list_container_stats(
        &self,
        filter: &ContainerFilter,
    ) -> Result<Vec<ContainerUsage>, crate::Error> {
        let records = crate::blocking::run(|| self.containers.list(filter));
        self.usage_of(records).await
    }

    /// The usage of each of `records`, in their order (one removed
    /// meanwhile is left out). Each container's reads are blocking work on
    /// a thread of their own; [`STATS_AT_ONCE`] of them go on at a time, so
    /// that a node of thousands of containers is not read one by one.
    async fn usage_of(
        &self,
        records: Vec<ContainerRecord>,
    ) -> Result<Vec<ContainerUsage>, crate::Error> {
        let read = futures_util::stream::iter(records)
            .map(|r| async move { self.container_stats(&r.id).await })
            .buffered(STATS_AT_ONCE);
        futures_util::pin_mut!(read);
        let mut out = Vec::new();
        while let Some(usage) = read.next().await {
            match usage {
                Ok(usage) => out.push(usage),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The usage of pod `id_or_prefix` and its containers.
    pub async fn pod_stats(&self, id_or_prefix: &str) -> Result<PodStats, crate::Error> {
        let pod = self.pods.get(id_or_prefix)?;
        self.stats_of(pod).await
    }

    /// The usage of the pods `filter` lets through, by id.
    pub async fn list_pod_stats(&self, filter: &PodFilter) -> Result<Vec<PodStats>, crate::Error> {
        let mut pods: Vec<Pod> = self
            .pods
            .list()
            .into_iter()
            .filter(|p| filter.matches(p))
            .collect();
        pods.sort_by(|a, b| a.id.cmp(&b.id));
        // Every container once, by pod (not a scan of them all per pod).
        let mut by_pod: HashMap<String, Vec<ContainerRecord>> = HashMap::new();
        for r in crate::blocking::run(|| self.containers.list(&ContainerFilter::default())) {
            by_pod.entry(r.pod_id.to_string()).or_default().push(r);
        }
        let mut out = Vec::with_capacity(pods.len());
        for pod in pods {
            let records = by_pod.remove(pod.id.as_str()).unwrap_or_default();
            out.push(self.stats_with(pod, records).await?);
        }
        Ok(out)
    }

    /// The metrics of every ready pod and its running containers, by pod
    /// id (what kubelet's /metrics/cadvisor shows, through the CRI). A
    /// container or pod removed meanwhile is left out.
    pub async fn list_pod_metrics(&self) -> Result<Vec<PodMetrics>, crate::Error> {
        let mut pods: Vec<Pod> = self
            .pods
            .list()
            .into_iter()
            .filter(|p| p.state == PodState::Ready)
            .collect();
        pods.sort_by(|a, b| a.id.cmp(&b.id));
        // The running containers once, by pod (not a scan of all per pod).
        let running = ContainerFilter {
            state: Some(ContainerState::Running),
            ..ContainerFilter::default()
        };
        let mut by_pod: HashMap<String, Vec<ContainerRecord>> = HashMap::new();
        for r in crate::blocking::run(|| self.containers.list(&running)) {
            by_pod.entry(r.pod_id.to_string()).or_default().push(r);
        }
        let mut out = Vec::with_capacity(pods.len());
        for pod in pods {
            let plumbing = self.plumbing.clone();
            let netns = pod.namespace_path(Namespace::Net);
            let network = tokio::task::spawn_blocking(move || {
                netns.and_then(|netns| read_network(&*plumbing, &netns))
            })
            .await
            .map_err(|source| Error::Task {
                what: "reading a pod's network counters",
                source,
            })?;
            let mut containers = Vec::new();
            for r in by_pod.remove(pod.id.as_str()).unwrap_or_default() {
                match self.containers.metrics(&r.id).await {
                    Ok(m) => containers.push(m),
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            out.push(PodMetrics {
                pod,
                network,
                containers,
            });
        }
        Ok(out)
    }

    async fn stats_of(&self, pod: Pod) -> Result<PodStats, crate::Error> {
        let filter = ContainerFilter {
            pod_id: Some(pod.id.to_string()),
            ..ContainerFilter::default()
        };
        let records = crate::blocking::run(|| self.containers.list(&filter));
        self.stats_with(pod, records).await
    }

    /// The usage of `pod` and of `records`, its containers oldest first.
    async fn stats_with(
        &self,
        pod: Pod,
        records: Vec<ContainerRecord>,
    ) -> Result<PodStats, crate::Error> {
        // Reads of cgroupfs and of the pod's netns: off the async threads.
        let plumbing = self.plumbing.clone();
        let cgroup_path = pod.cgroup.clone();
        let netns = pod
            .namespace_path(Namespace::Net)
            .filter(|_| pod.state == PodState::Ready);
        let (cgroup, network) = tokio::task::spawn_blocking(move || {
            let cgroup = match &cgroup_path {
                Some(path) => plumbing.cgroup_stats(path)?,
                None => None,
            };
            let network = netns.and_then(|netns| read_network(&*plumbing, &netns));
            Ok::<_, crate::Error>((cgroup, network))
        })
        .await
        .map_err(|source| Error::Task {
            what: "reading a pod's cgroup and network counters",
            source,
        })??;
        let containers = self.usage_of(records).await?;
        let nano_cores = cgroup
            .as_ref()
            .and_then(|c| self.pod_cpu.rate(&pod.id, c.timestamp_ns, c.cpu_usage_ns));
        Ok(PodStats {
            pod,
            cgroup,
            nano_cores,
            network,
            containers,
        })
    }
}

/// The traffic of the network namespace pinned at `netns`; `None` when it
/// is gone meanwhile (the pod stopped): no traffic to report.
fn read_network(plumbing: &dyn PodPlumbing, netns: &std::path::Path) -> Option<NetworkStats> {
    match plumbing.interfaces(netns) {
        Ok(interfaces) => Some(NetworkStats {
            timestamp_ns: crate::cgroups::now_ns(),
            interfaces,
        }),
        Err(e) => {
            tracing::debug!(netns = %netns.display(), error = %e, "pod network stats");
            None
        }
    }
}
