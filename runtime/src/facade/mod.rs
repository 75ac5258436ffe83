//! [`Runtime`]: the node's pods, containers and images behind one facade,
//! which owns their lifecycle from [`Runtime::open`] (the on-disk layout,
//! the metadata store, the restart reconciliation) to the rules that span
//! objects.
//!
//! A pod's containers are stopped and removed under the pod's lock, taken
//! alone; a container is created or started under the same lock, shared,
//! after checking the pod is ready. So a CreateContainer racing a
//! StopPodSandbox either lands first (and is stopped with the pod) or
//! finds the pod stopped and is refused, and a container of a stopped pod
//! cannot be started.

mod open;
mod stats;
#[cfg(test)]
mod tests;

pub use open::{RuntimeConfig, Seams};
pub use stats::{ContainerUsage, NetworkStats, PodFilter, PodMetrics, PodStats};

use std::sync::Arc;
use std::time::Duration;

use crate::cgroups::CpuRates;
use crate::container::{self, ContainerRuntime, ContainerState, Containers, NewContainer};
use crate::ids::ContainerId;
use crate::image::Images;
use crate::layout::Layout;
use crate::locks::KeyedLocks;
use crate::sandbox::{Pod, PodPlumbing, PodState, Pods};
use crate::spec::NsMode;
use crate::ErrorKind;

/// Errors of the facade itself (its parts report their own).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A directory of the on-disk layout cannot be made.
    #[error("cannot create {path}: {source}")]
    Layout {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Work handed to the blocking thread pool did not finish.
    #[error("{what} did not finish: {source}")]
    Task {
        /// The work.
        what: &'static str,
        /// Why.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Layout { .. } | Error::Task { .. } => ErrorKind::Internal,
        }
    }
}

/// The PID namespace a new container asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidNamespace {
    /// Its pod's (the default).
    Pod,
    /// One of its own.
    Own,
    /// The host's.
    Host,
    /// That of this other running container (id or unique prefix).
    Target(String),
}

/// The node's pods, their containers and the images they run.
#[derive(Debug)]
pub struct Runtime {
    layout: Layout,
    images: Images,
    pods: Pods,
    containers: Containers,
    /// The pods' side effects (here: reading their cgroups).
    plumbing: Arc<dyn PodPlumbing>,
    /// The shims' client as the streaming server needs it.
    shims: ContainerRuntime,
    /// Per pod: shared by container creation and start, alone for the
    /// pod's stop and removal.
    gates: KeyedLocks,
    /// The pods' CPU rates, by pod id.
    pod_cpu: CpuRates,
}

impl Runtime {
    /// Where everything lives on disk.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The images: pull, status, list, remove, disk usage.
    pub fn images(&self) -> &Images {
        &self.images
    }

    /// The pod sandboxes, one by one (rules spanning a pod and its
    /// containers are this facade's methods).
    pub fn pods(&self) -> &Pods {
        &self.pods
    }

    /// The containers, one by one (creation and start, which depend on
    /// their pod, are this facade's methods).
    pub fn containers(&self) -> &Containers {
        &self.containers
    }

    /// The shims' client for streaming exec, attach and resize.
    pub fn shims(&self) -> &ContainerRuntime {
        &self.shims
    }

    /// The pod `id_or_prefix`, which must be Ready.
    fn ready_pod(&self, id_or_prefix: &str, what: &str) -> Result<Pod, crate::Error> {
        let pod = self.pods.get(id_or_prefix)?;
        if pod.state != PodState::Ready {
            return Err(container::Error::Refused {
                id: pod.id.to_string(),
                message: format!("pod {} is not ready: cannot {what}", pod.id),
            }
            .into());
        }
        Ok(pod)
    }

    /// Creates a container in pod `pod_id`, which must be ready.
    pub async fn create_container(
        &self,
        pod_id: &str,
        mut new: NewContainer,
        pid: PidNamespace,
    ) -> Result<ContainerId, crate::Error> {
        let pod_id = self.pods.get(pod_id)?.id;
        let _gate = self.gates.read(&pod_id).await;
        let pod = self.ready_pod(&pod_id, "create a container in it")?;
        new.pid = match pid {
            PidNamespace::Pod => None,
            PidNamespace::Own => Some(NsMode::New),
            PidNamespace::Host => Some(NsMode::Host),
            PidNamespace::Target(target) => {
                let t = self.containers.status(&target)?;
                if t.state != ContainerState::Running || t.pid <= 0 {
                    return Err(container::Error::Refused {
                        id: t.id.to_string(),
                        message: format!(
                            "target container {} is not running: cannot share its pid namespace",
                            t.id
                        ),
                    }
                    .into());
                }
                Some(NsMode::Path(format!("/proc/{}/ns/pid", t.pid).into()))
            }
        };
        self.containers
            .create(&self.images, &pod.context(), new)
            .await
    }

    /// Starts a created container; its pod must still be ready, and a pid
    /// namespace it joins must still be there.
    pub async fn start_container(&self, id_or_prefix: &str) -> Result<(), crate::Error> {
        let record = self.containers.status(id_or_prefix)?;
        let _gate = self.gates.read(&record.pod_id).await;
        match self.ready_pod(&record.pod_id, "start its container") {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(container::Error::Refused {
                    id: record.id.to_string(),
                    message: format!("pod {} is gone: cannot start its container", record.pod_id),
                }
                .into())
            }
            Err(e) => return Err(e),
        }
        if let NsMode::Path(ns) = &record.config.namespaces.pid {
            if !ns.exists() {
                return Err(container::Error::Refused {
                    id: record.id.to_string(),
                    message: format!(
                        "the pid namespace it joins ({}) is gone: its target has exited",
                        ns.display()
                    ),
                }
                .into());
            }
        }
        self.containers.start(&record.id).await
    }

    /// Stops pod `id_or_prefix`: its containers at once (kubelet stopped
    /// them with their grace period already, as containerd assumes), then
    /// the pod. An unknown pod is stopped (CRI: idempotent).
    pub async fn stop_pod(&self, id_or_prefix: &str) -> Result<(), crate::Error> {
        let pod_id = match self.pods.get(id_or_prefix).map_err(crate::Error::from) {
            Ok(pod) => pod.id,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let _gate = self.gates.lock(&pod_id).await;
        self.containers
            .stop_all_of_pod(&pod_id, Duration::ZERO)
            .await?;
        crate::crash::point("pod.stop.after_containers");
        match self.pods.stop(&pod_id).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes pod `id_or_prefix` and its containers. An unknown pod is
    /// removed (CRI: idempotent).
    pub async fn remove_pod(&self, id_or_prefix: &str) -> Result<(), crate::Error> {
        let Ok(pod) = self.pods.get(id_or_prefix) else {
            return Ok(());
        };
        let _gate = self.gates.lock(&pod.id).await;
        self.containers.remove_all_of_pod(&pod.id).await?;
        crate::crash::point("pod.remove.after_containers");
        self.pods.remove(&pod.id).await?;
        self.pod_cpu.forget(&pod.id);
        Ok(())
    }
}
