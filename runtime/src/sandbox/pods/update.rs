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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::sandbox::fake_plumbing::{Call, FakePlumbing, Step};
    use crate::sandbox::PodConfig;
    use crate::store::{MetaStore, Table};
    use crate::ErrorKind;

    const MIB: i64 = 1 << 20;

    fn memory(bytes: i64) -> Resources {
        Resources {
            memory_limit_bytes: Some(bytes),
            ..Resources::default()
        }
    }

    fn config(name: &str) -> PodConfig {
        PodConfig {
            name: name.into(),
            namespace: "default".into(),
            uid: format!("uid-{name}"),
            resources: Resources {
                cpu_shares: Some(256),
                ..memory(64 * MIB)
            },
            overhead: memory(MIB),
            ..PodConfig::default()
        }
    }

    async fn open(tmp: &tempfile::TempDir, fake: &Arc<FakePlumbing>) -> (Arc<MetaStore>, Pods) {
        let store = Arc::new(MetaStore::open(&tmp.path().join("meta.db")).expect("store"));
        let pods = Pods::open(store.clone(), &tmp.path().join("state"), fake.clone())
            .await
            .expect("open");
        (store, pods)
    }

    fn recorded(store: &MetaStore, id: &str) -> Pod {
        let all: Vec<(String, Pod)> = store.load_all(Table::Pods).expect("load");
        all.into_iter()
            .map(|(_, p)| p)
            .find(|p| p.id == id)
            .expect("a record")
    }

    #[tokio::test]
    async fn run_and_update_write_the_sum_to_our_cgroup() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let fake = Arc::new(FakePlumbing::default());
        let (store, pods) = open(&tmp, &fake).await;
        let pod = pods.run(config("web")).await.expect("run");
        let path = pod.cgroup.clone().expect("a cgroup");
        assert!(pod.cgroup_created);
        let limits = &fake.existing().limits[&path];
        assert_eq!(limits.memory_limit_bytes, Some(65 * MIB));
        assert_eq!(limits.cpu_shares, Some(256));

        let new = Resources {
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            ..memory(128 * MIB)
        };
        pods.update_resources(&pod.id, new.clone(), memory(2 * MIB))
            .await
            .expect("update");
        let limits = &fake.existing().limits[&path];
        assert_eq!(limits.memory_limit_bytes, Some(130 * MIB));
        assert_eq!(limits.cpu_quota, Some(50_000));
        assert_eq!(limits.cpu_shares, None);
        let record = recorded(&store, &pod.id);
        assert_eq!(record.config.resources, new);
        assert_eq!(record.config.overhead, memory(2 * MIB));
        // Kept across a restart.
        drop(pods);
        let pods = Pods::open(store, &tmp.path().join("state"), fake.clone())
            .await
            .expect("reopen");
        assert_eq!(pods.get(&pod.id).expect("pod").config.resources, new);
    }

    #[tokio::test]
    async fn kubelets_cgroup_is_recorded_not_written() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let fake = Arc::new(FakePlumbing::default());
        let (store, pods) = open(&tmp, &fake).await;
        fake.alter(|e| {
            e.cgroups.insert("/kubepods/pod1".into());
        });
        let pod = pods
            .run(PodConfig {
                cgroup_parent: "/kubepods/pod1".into(),
                ..config("web")
            })
            .await
            .expect("run");
        assert!(!pod.cgroup_created);
        pods.update_resources(&pod.id, memory(96 * MIB), Resources::default())
            .await
            .expect("update");
        assert!(fake.existing().limits.is_empty());
        assert!(!fake
            .calls()
            .iter()
            .any(|c| matches!(c, Call::SetCgroupResources(..))));
        assert_eq!(recorded(&store, &pod.id).config.resources, memory(96 * MIB));
    }

    #[tokio::test]
    async fn refusals_change_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let fake = Arc::new(FakePlumbing::default());
        let (store, pods) = open(&tmp, &fake).await;
        let e = pods
            .update_resources("nope", memory(MIB), Resources::default())
            .await
            .expect_err("unknown");
        assert_eq!(e.kind(), ErrorKind::NotFound);

        let pod = pods.run(config("web")).await.expect("run");
        let path = pod.cgroup.clone().expect("a cgroup");
        let before = fake.existing().limits[&path].clone();
        // A quota the kernel refuses (under 1 ms).
        let bad = Resources {
            cpu_quota: Some(10),
            ..Resources::default()
        };
        let e = pods
            .update_resources(&pod.id, bad, Resources::default())
            .await
            .expect_err("bad quota");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert_eq!(fake.existing().limits[&path], before);
        assert_eq!(recorded(&store, &pod.id).config, pod.config);

        // The cgroup write fails: the previous limits are put back.
        fake.fail_next(Step::SetCgroupResources);
        pods.update_resources(&pod.id, memory(8 * MIB), Resources::default())
            .await
            .expect_err("injected");
        assert_eq!(fake.existing().limits[&path], before);
        assert_eq!(recorded(&store, &pod.id).config, pod.config);

        pods.stop(&pod.id).await.expect("stop");
        let e = pods
            .update_resources(&pod.id, memory(8 * MIB), Resources::default())
            .await
            .expect_err("not ready");
        assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
        assert!(e.to_string().contains("not ready"), "{e}");
    }

    #[tokio::test]
    async fn a_failed_limit_at_run_undoes_the_pod() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let fake = Arc::new(FakePlumbing::default());
        let (store, pods) = open(&tmp, &fake).await;
        fake.fail_next(Step::SetCgroupResources);
        pods.run(config("web")).await.expect_err("injected");
        assert!(fake.existing().cgroups.is_empty());
        let all: Vec<(String, Pod)> = store.load_all(Table::Pods).expect("load");
        assert!(all.is_empty());
        // No limits asked: the cgroup is left as made.
        fake.clear_calls();
        pods.run(PodConfig {
            resources: Resources::default(),
            overhead: Resources::default(),
            ..config("plain")
        })
        .await
        .expect("run");
        assert!(!fake
            .calls()
            .iter()
            .any(|c| matches!(c, Call::SetCgroupResources(..))));
    }
}
