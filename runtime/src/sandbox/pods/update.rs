//! UpdatePodSandboxResources: [`Pods::update_resources`].
//!
//! The pod's cgroup gets [`pod_cgroup_resources`] of the new resources
//! and overhead, and its record keeps both. As with containerd and CRI-O,
//! a cgroup that is not ours (kubelet's pod cgroup, given as the pod's
//! `cgroup_parent`) is left as kubelet made it: kubelet resizes its pod
//! cgroups itself before it calls, and the call only tells the runtime.
//! Only a cgroup corten made (`cgroup_created`) is written.

use super::Pods;
use crate::cgroups::check_resources;
use crate::sandbox::record::{Pod, PodState};
use crate::sandbox::{pod_cgroup_resources, Error};
use crate::spec::{linux_resources, Resources};

impl Pods {
    /// Gives pod `id` new `resources` (the sum of its containers') and
    /// `overhead`. An unknown pod is NotFound; a NotReady one is refused
    /// (FailedPrecondition) with nothing changed: its containers are gone,
    /// and RunPodSandbox of the next attempt brings its own. Values the
    /// cgroup cannot take are InvalidArgument, with nothing changed.
    pub async fn update_resources(
        &self,
        id: &str,
        resources: Resources,
        overhead: Resources,
    ) -> Result<Pod, crate::Error> {
        let id = self.get(id)?.id;
        let _lock = self.locks.lock(&id).await;
        let mut pod = self.get(&id)?;
        if pod.state != PodState::Ready || pod.creating {
            return Err(Error::NotReady {
                id: id.to_string(),
                what: "update its resources",
            }
            .into());
        }
        let limits = pod_cgroup_resources(&resources, &overhead);
        check_resources(&linux_resources(&limits))?;
        check_resources(&linux_resources(&resources))?;
        check_resources(&linux_resources(&overhead))?;
        if let (Some(path), true) = (&pod.cgroup, pod.cgroup_created) {
            if let Err(e) = self.plumbing.set_cgroup_resources(path, &limits) {
                // Part of it may be written (memory below the usage fails
                // after cpu is set): put the previous limits back.
                let before = pod_cgroup_resources(&pod.config.resources, &pod.config.overhead);
                if let Err(undo) = self.plumbing.set_cgroup_resources(path, &before) {
                    tracing::warn!(pod = %id, error = %undo, "restoring the pod's cgroup limits");
                }
                return Err(e);
            }
        }
        pod.config.resources = resources;
        pod.config.overhead = overhead;
        self.save(pod.clone())?;
        tracing::info!(pod = %id, cgroup = ?pod.cgroup, written = pod.cgroup_created, "pod resources updated");
        Ok(pod)
    }
}
