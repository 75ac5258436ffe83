//! What can be done to a running container besides its lifecycle: exec,
//! log reopening, live resource updates, stats.

use super::lifecycle::state_word;
use super::manager::Containers;
use super::record::{ContainerRecord, ContainerState};
use super::{ContainerMetrics, ContainerStats, Error, ExecOutput, ExecRequest};
use crate::cgroups::{self, Cgroup};
use crate::ids::ContainerId;
use crate::spec::{linux_resources, Resources};

impl Containers {
    /// The record of `id_or_prefix` if it runs; FailedPrecondition naming
    /// its state otherwise.
    fn running(&self, id_or_prefix: &str, what: &str) -> Result<ContainerRecord, crate::Error> {
        let record = self.status(id_or_prefix)?;
        if record.state != ContainerState::Running {
            return Err(Error::Refused {
                id: record.id.to_string(),
                message: format!(
                    "cannot {what}: the container is {}",
                    state_word(record.state)
                ),
            }
            .into());
        }
        Ok(record)
    }

    /// Runs a command in a running container and collects its output.
    pub async fn exec_sync(
        &self,
        id_or_prefix: &str,
        req: ExecRequest,
    ) -> Result<ExecOutput, crate::Error> {
        let record = self.running(id_or_prefix, "exec")?;
        Ok(self.inner.backend.exec_sync(&record.id, req).await?)
    }

    /// Checks that `id_or_prefix` runs and gives its full id, for a
    /// streaming exec or attach.
    pub fn running_id(&self, id_or_prefix: &str, what: &str) -> Result<ContainerId, crate::Error> {
        Ok(self.running(id_or_prefix, what)?.id)
    }

    /// Has the shim reopen the log file (kubelet rotated it).
    pub async fn reopen_log(&self, id_or_prefix: &str) -> Result<(), crate::Error> {
        let record = self.running(id_or_prefix, "reopen the log")?;
        Ok(self.inner.backend.reopen_log(&record.id).await?)
    }

    /// Changes the container's cgroup limits; live when it runs, and kept
    /// in its record either way.
    pub async fn update_resources(
        &self,
        id_or_prefix: &str,
        resources: Resources,
    ) -> Result<(), crate::Error> {
        let id = self.resolve(id_or_prefix)?;
        let _lock = self.inner.locks.lock(&id).await;
        self.inner.backend.settle(&id).await;
        let record = self.status(&id)?;
        if matches!(
            record.state,
            ContainerState::Running | ContainerState::Created
        ) {
            // cgroupfs reads and writes: off the async workers.
            crate::blocking::run(|| {
                let hierarchy = cgroups::detect()?;
                let cgroup = Cgroup::open(&hierarchy, &record.config.cgroup_path)?;
                cgroup.apply(&linux_resources(&resources))
            })?;
        } else {
            return Err(Error::Refused {
                id: id.to_string(),
                message: format!(
                    "cannot update the resources of a container that is {}",
                    state_word(record.state)
                ),
            }
            .into());
        }
        self.inner
            .update(&id, move |r| {
                r.config.resources = resources;
                true
            })
            .await?;
        tracing::info!(container = %id, "container resources updated");
        Ok(())
    }

    /// The container's record and resource usage, with its CPU rate since
    /// the previous call for it (nano cores; `None` on the first).
    pub async fn stats(
        &self,
        id_or_prefix: &str,
    ) -> Result<(ContainerRecord, ContainerStats, Option<u64>), crate::Error> {
        let record = self.status(id_or_prefix)?;
        let stats = self.inner.backend.stats(&record.id).await?;
        let rate = stats.cgroup.as_ref().and_then(|c| {
            self.inner
                .cpu_rates
                .rate(&record.id, c.timestamp_ns, c.cpu_usage_ns)
        });
        Ok((record, stats, rate))
    }

    /// The container's record and metrics.
    pub async fn metrics(
        &self,
        id_or_prefix: &str,
    ) -> Result<(ContainerRecord, ContainerMetrics), crate::Error> {
        let record = self.status(id_or_prefix)?;
        let metrics = self.inner.backend.metrics(&record.id).await?;
        Ok((record, metrics))
    }

    /// The OCI spec the container was created with, as JSON.
    pub fn spec_json(&self, id: &str) -> Option<serde_json::Value> {
        self.inner.backend.spec_json(id)
    }
}
