//! [`ShimBackend`]: the seam between the container manager and the shims.
//! Everything [`super::Containers`] asks of a container's shim, its bundle
//! or its cgroup goes through it; [`ContainerRuntime`] is the real one, and
//! unit tests inject a fake by constructor.

use async_trait::async_trait;

use super::{
    ContainerMetrics, ContainerRuntime, ContainerStats, CreateRequest, Error, ExecOutput,
    ExecRequest,
};
use crate::shim::State;

/// What the container manager needs from the shims of its containers.
#[async_trait]
pub trait ShimBackend: Send + Sync + std::fmt::Debug {
    /// Writes the bundle and has a shim create the container, waiting for
    /// [`Self::start`]. Leaves nothing behind on a failure it returns
    /// (except when the container exists already); the real backend
    /// returns before the shim has answered (see [`Self::settle`]).
    async fn create(&self, req: CreateRequest) -> Result<(), Error>;
    /// Waits until a creation still under way has been answered by its
    /// shim, so that the container's cgroup and files are its shim's; every
    /// other call does this itself.
    async fn settle(&self, _id: &str) {}
    /// Lets the container's process run.
    async fn start(&self, id: &str) -> Result<(), Error>;
    /// Sends `signal` to the container's init (with `all`, to all of it).
    async fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), Error>;
    /// The container's state, from its shim or the files it left.
    async fn state(&self, id: &str) -> Result<State, Error>;
    /// Waits until the container has exited; its final state.
    async fn wait(&self, id: &str) -> Result<State, Error>;
    /// Kills what still runs and removes the container's files; an unknown
    /// container is deleted already.
    async fn delete(&self, id: &str) -> Result<(), Error>;
    /// Runs a command in the running container and collects its output.
    async fn exec_sync(&self, id: &str, req: ExecRequest) -> Result<ExecOutput, Error>;
    /// Has the shim reopen the log file.
    async fn reopen_log(&self, id: &str) -> Result<(), Error>;
    /// The container's resource usage (cgroup counters, writable layer).
    async fn stats(&self, id: &str) -> Result<ContainerStats, crate::Error>;
    /// The container's metrics (cgroup, processes, writable layer).
    async fn metrics(&self, id: &str) -> Result<ContainerMetrics, crate::Error>;
    /// The ids of the containers with files on disk, recorded or not.
    fn ids_on_disk(&self) -> Vec<String>;
    /// The bundle directory of container `id` (where its shim mounts its
    /// image volumes).
    fn bundle_dir(&self, id: &str) -> std::path::PathBuf;
    /// The OCI spec the container was created with, as JSON.
    fn spec_json(&self, id: &str) -> Option<serde_json::Value>;
}

#[async_trait]
impl ShimBackend for ContainerRuntime {
    async fn create(&self, req: CreateRequest) -> Result<(), Error> {
        ContainerRuntime::create(self, req).await
    }

    async fn settle(&self, id: &str) {
        ContainerRuntime::settle(self, id).await;
    }

    async fn start(&self, id: &str) -> Result<(), Error> {
        ContainerRuntime::start(self, id).await
    }

    async fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), Error> {
        ContainerRuntime::kill(self, id, signal, all).await
    }

    async fn state(&self, id: &str) -> Result<State, Error> {
        ContainerRuntime::state(self, id).await
    }

    async fn wait(&self, id: &str) -> Result<State, Error> {
        ContainerRuntime::wait(self, id).await
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        ContainerRuntime::delete(self, id).await
    }

    async fn exec_sync(&self, id: &str, req: ExecRequest) -> Result<ExecOutput, Error> {
        ContainerRuntime::exec_sync(self, id, req).await
    }

    async fn reopen_log(&self, id: &str) -> Result<(), Error> {
        ContainerRuntime::reopen_log(self, id).await
    }

    async fn stats(&self, id: &str) -> Result<ContainerStats, crate::Error> {
        ContainerRuntime::settle(self, id).await;
        // Cgroup reads and a walk of the writable layer: blocking work.
        let (runtime, owned) = (self.clone(), id.to_string());
        tokio::task::spawn_blocking(move || ContainerRuntime::stats(&runtime, &owned))
            .await
            .map_err(|source| Error::Task {
                id: id.to_string(),
                what: "reading its stats",
                source,
            })?
    }

    async fn metrics(&self, id: &str) -> Result<ContainerMetrics, crate::Error> {
        ContainerRuntime::settle(self, id).await;
        // cgroupfs, /proc and a walk of the writable layer: blocking work.
        let (runtime, owned) = (self.clone(), id.to_string());
        tokio::task::spawn_blocking(move || ContainerRuntime::metrics(&runtime, &owned))
            .await
            .map_err(|source| Error::Task {
                id: id.to_string(),
                what: "reading its metrics",
                source,
            })?
    }

    fn ids_on_disk(&self) -> Vec<String> {
        ContainerRuntime::ids_on_disk(self)
    }

    fn bundle_dir(&self, id: &str) -> std::path::PathBuf {
        ContainerRuntime::bundle(self, id)
    }

    fn spec_json(&self, id: &str) -> Option<serde_json::Value> {
        ContainerRuntime::spec_json(self, id)
    }
}
