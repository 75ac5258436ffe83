//! StopPodSandbox and RemovePodSandbox: [`Pods::stop`], [`Pods::remove`],
//! and the undoing both share (also used by run's rollback and by open).

use super::Pods;
use crate::sandbox::record::{Pod, PodState};
use crate::sandbox::{Error, Namespace};

impl Pods {
    /// Stops a pod: detaches its network, ends its init, unpins its
    /// namespaces, unmounts its /dev/shm. Its containers must be stopped
    /// first (the CRI layer does that). Idempotent.
    pub async fn stop(&self, id: &str) -> Result<Pod, crate::Error> {
        let id = self.get(id)?.id;
        let _lock = self.locks.lock(&id).await;
        // Read under the lock: a concurrent stop or remove may have run.
        let mut pod = self.get(&id)?;
        let result = self.teardown(&mut pod, false).await;
        pod.state = PodState::NotReady;
        crate::crash::point("pod.stop.before_record");
        self.save(pod.clone())?;
        result?;
        tracing::info!(pod = %pod.id, "pod stopped");
        Ok(pod)
    }

    /// Removes a pod: stops it if needed, then removes its cgroup, files and
    /// record. An unknown id is success (CRI removal is idempotent).
    pub async fn remove(&self, id: &str) -> Result<(), crate::Error> {
        let Ok(pod) = self.get(id) else {
            return Ok(());
        };
        let _lock = self.locks.lock(&pod.id).await;
        let Some(mut pod) = self.records.get(&pod.id) else {
            return Ok(());
        };
        let torn = self.teardown(&mut pod, false).await;
        crate::crash::point("pod.remove.after_teardown");
        if let Err(e) = torn.and_then(|()| self.remove_rest(&pod)) {
            // Keep what is left findable for a retry, recorded as it now
            // is (torn down, or partly).
            pod.state = PodState::NotReady;
            self.save(pod.clone())?;
            return Err(e);
        }
        tracing::info!(pod = %pod.id, "pod removed");
        Ok(())
    }

    /// Removes the cgroup (if ours), the directory and the record.
    pub(super) fn remove_rest(&self, pod: &Pod) -> Result<(), crate::Error> {
        if let (Some(path), true) = (&pod.cgroup, pod.cgroup_created) {
            self.plumbing.remove_cgroup(path)?;
        }
        match crate::blocking::run(|| std::fs::remove_dir_all(&pod.dir)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::Io {
                    path: pod.dir.clone(),
                    source: e,
                }
                .into())
            }
            _ => {}
        }
        crate::crash::point("pod.remove.after_files");
        self.forget(&pod.id)?;
        Ok(())
    }

    /// Undoes everything but the directory, the cgroup and the record.
    /// `force` runs CNI DEL even when no ADD is recorded (a pod whose
    /// record predates a crash).
    pub(super) async fn teardown(&self, pod: &mut Pod, force: bool) -> Result<(), crate::Error> {
        let mut first_error: Option<crate::Error> = None;
        let id = pod.id.clone();
        let mut keep = |r: Result<(), crate::Error>| {
            if let Err(e) = r {
                tracing::warn!(pod = %id, error = %e, "pod teardown step failed");
                first_error.get_or_insert(e);
            }
        };
        if pod.network_attached || (force && !pod.config.host_network) {
            let netns = pod.dir.join(Namespace::Net.name());
            match self.plumbing.cni_del(&pod.id, &netns).await {
                Ok(()) => pod.network_attached = false,
                Err(e) => keep(Err(e)),
            }
            crate::crash::point("pod.stop.after_cni_del");
        }
        if let Some(init) = pod.init {
            self.plumbing.kill_init(init).await;
            pod.init = None;
        }
        keep(
            self.plumbing
                .unpin(&pod.dir)
                .map(|()| pod.namespaces.clear()),
        );
        if pod.shm || force {
            keep(
                self.plumbing
                    .unmount_shm(&pod.shm_path())
                    .map(|()| pod.shm = false),
            );
        }
        pod.ips.clear();
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
