//! Start, stop, remove, the exit watcher, and restart reconciliation.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::manager::{now_ns, Containers, EventKind, Inner};
use super::record::{stop_signal, ContainerFilter, ContainerState};
use super::Error;
use crate::ids::ContainerId;
use crate::shim::{ExitStatus, State, Status};

/// How long a SIGKILLed container gets to be reported gone.
const KILL_WAIT: Duration = Duration::from_secs(30);
/// How long a container whose start failed gets to report its end.
const START_FAILURE_WAIT: Duration = Duration::from_secs(5);
/// The exit code recorded when a container's end cannot be known.
const UNKNOWN_EXIT: i32 = 255;

impl Containers {
    /// Lets a created container run, and starts watching for its exit.
    pub async fn start(&self, id_or_prefix: &str) -> Result<(), crate::Error> {
        let id = self.resolve(id_or_prefix)?;
        let _lock = self.inner.locks.lock(&id).await;
        let record = self.status(&id)?;
        if record.state != ContainerState::Created {
            return Err(Error::Refused {
                id: id.to_string(),
                message: format!(
                    "cannot start a container that is {}",
                    state_word(record.state)
                ),
            }
            .into());
        }
        let started = self.inner.backend.start(&id).await;
        if let Err(e) = started {
            // Its process died before it could run (a command that cannot
            // be executed): keep its end, which follows at once.
            let end = tokio::time::timeout(START_FAILURE_WAIT, self.inner.backend.wait(&id)).await;
            if let Ok(Ok(State {
                exit: Some(exit), ..
            })) = &end
            {
                record_exit(&self.inner, &id, exit).await;
                let message = e.to_string();
                let noted = self
                    .inner
                    .update(&id, move |r| {
                        r.message = message;
                        true
                    })
                    .await;
                if let Err(e) = noted {
                    tracing::warn!(container = %id, error = %e, "cannot record why the start failed");
                }
            }
            return Err(e.into());
        }
        crate::crash::point("container.start.after_shim_start");
        // It runs now, whatever the state call below says: recorded
        // Running and watched either way, so its end is never missed.
        let (pid, started_at_ns) = match self.inner.backend.state(&id).await {
            Ok(state) => (state.pid, state.started_at_ns),
            Err(e) => {
                tracing::warn!(container = %id, error = %e, "started, but its state cannot be read");
                (0, 0)
            }
        };
        let saved = self
            .inner
            .update(&id, move |r| {
                r.state = ContainerState::Running;
                r.started_at_ns = if started_at_ns > 0 {
                    started_at_ns
                } else {
                    now_ns()
                };
                r.pid = pid;
                true
            })
            .await;
        watch(self.inner.clone(), id.to_string());
        if let Some(r) = saved? {
            tracing::info!(container = %id, pid, "container started");
            self.inner.emit(EventKind::Started, &r);
        }
        Ok(())
    }

    /// Stops a running container: its image's stop signal (SIGTERM by
    /// default), then SIGKILL to all of it once `timeout` has passed;
    /// `timeout` 0 kills at once. Returns once its exit is recorded.
    pub async fn stop(&self, id_or_prefix: &str, timeout: Duration) -> Result<(), crate::Error> {
        let id = match self.resolve(id_or_prefix) {
            Ok(id) => id,
            // api.proto, StopContainer: "If the container has already been
            // stopped, the call must not return an error" — and one that is
            // gone altogether (kubelet retries after RemoveContainer) is stopped.
            Err(e) if e.kind() == crate::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let _lock = self.inner.locks.lock(&id).await;
        stop_locked(&self.inner, &id, timeout).await
    }

    /// Removes a container, stopping it first (kill at once) if it runs.
    /// Removing an unknown container succeeds (api.proto: "If the
    /// container has already been removed, the call must not return an
    /// error").
    pub async fn remove(&self, id_or_prefix: &str) -> Result<(), crate::Error> {
        let id = match self.resolve(id_or_prefix) {
            Ok(id) => id,
            Err(e) if e.kind() == crate::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let _lock = self.inner.locks.lock(&id).await;
        let Ok(record) = self.status(&id) else {
            return Ok(());
        };
        stop_locked(&self.inner, &id, Duration::ZERO).await?;
        crate::crash::point("container.remove.after_stop");
        self.inner.backend.delete(&id).await?;
        crate::crash::point("container.remove.after_delete");
        self.inner.forget(&id).await?;
        self.inner.holds.release(&id);
        tracing::info!(container = %id, "container removed");
        self.inner.emit(EventKind::Deleted, &record);
        Ok(())
    }

    /// Stops every container of pod `pod_id` (each with `timeout`).
    pub async fn stop_all_of_pod(
        &self,
        pod_id: &str,
        timeout: Duration,
    ) -> Result<(), crate::Error> {
        let ids = self.ids_of_pod(pod_id);
        let stops = ids.iter().map(|id| self.stop(id, timeout));
        for result in futures_util::future::join_all(stops).await {
            result?;
        }
        Ok(())
    }

    /// Removes every container of pod `pod_id`.
    pub async fn remove_all_of_pod(&self, pod_id: &str) -> Result<(), crate::Error> {
        for id in self.ids_of_pod(pod_id) {
            self.remove(&id).await?;
        }
        Ok(())
    }

    fn ids_of_pod(&self, pod_id: &str) -> Vec<ContainerId> {
        self.inner
            .records
            .filtered(|r| r.pod_id == pod_id)
            .into_iter()
            .map(|r| r.id)
            .collect()
    }

    /// After a daemon restart: asks each recorded container's shim where it
    /// is. Running ones stay running (and are watched again), exited ones
    /// get their real exit status from the file their shim left, ones with
    /// neither are `Unknown`-ly exited; bundles and layers on disk without a
    /// record (a creation cut short) are removed.
    pub async fn recover(&self) -> Result<(), crate::Error> {
        let inner = &self.inner;
        let records = self.list(&ContainerFilter::default());
        for r in &records {
            if matches!(r.state, ContainerState::Exited) {
                continue;
            }
            match inner.backend.state(&r.id).await {
                Ok(State {
                    exit: Some(exit), ..
                }) => record_exit(inner, &r.id, &exit).await,
                Ok(State {
                    status: Status::Running,
                    pid,
                    started_at_ns,
                    ..
                }) => {
                    if r.state != ContainerState::Running {
                        inner
                            .update(&r.id, move |rec| {
                                rec.state = ContainerState::Running;
                                rec.pid = pid;
                                rec.started_at_ns = started_at_ns;
                                true
                            })
                            .await?;
                    }
                    watch(inner.clone(), r.id.to_string());
                }
                Ok(_) => {} // Created, still waiting for its start.
                Err(e) => {
                    tracing::warn!(container = %r.id, error = %e, "container lost");
                    record_unknown_exit(inner, &r.id, &e.to_string()).await;
                }
            }
        }
        let known: std::collections::HashSet<&str> =
            records.iter().map(|r| r.id.as_str()).collect();
        for id in inner.backend.ids_on_disk() {
            if !known.contains(id.as_str()) {
                tracing::info!(container = %id, "removing a half-made container");
                if let Err(e) = inner.backend.delete(&id).await {
                    tracing::warn!(container = %id, error = %e, "cannot remove a half-made container");
                }
            }
        }
        Ok(())
    }
}

/// Stops container `id`, whose lock the caller holds.
async fn stop_locked(inner: &Inner, id: &str, timeout: Duration) -> Result<(), crate::Error> {
    let Some(record) = inner.records.get(id) else {
        return Ok(());
    };
    if !matches!(
        record.state,
        ContainerState::Running | ContainerState::Unknown
    ) {
        return Ok(());
    }
    let backend = &*inner.backend;
    if !timeout.is_zero() {
        let signal = stop_signal(record.stop_signal_in_effect())?;
        tracing::info!(container = %id, signal, timeout_s = timeout.as_secs_f64(), "stopping container");
        if let Err(e) = backend.kill(id, signal, false).await {
            tracing::debug!(container = %id, error = %e, "stop signal not delivered");
        }
        if let Ok(Ok(state)) = tokio::time::timeout(timeout, backend.wait(id)).await {
            if let Some(exit) = &state.exit {
                record_exit(inner, id, exit).await;
                return Ok(());
            }
        }
    }
    tracing::info!(container = %id, "killing container");
    if let Err(e) = backend.kill(id, Signal::SIGKILL as i32, true).await {
        tracing::debug!(container = %id, error = %e, "SIGKILL not delivered");
    }
    crate::crash::point("container.stop.after_kill");
    match tokio::time::timeout(KILL_WAIT, backend.wait(id)).await {
        Ok(Ok(State {
            exit: Some(exit), ..
        })) => {
            record_exit(inner, id, &exit).await;
            Ok(())
        }
        Ok(Ok(_)) => Err(Error::Shim {
            id: id.to_string(),
            reason: "the shim reported no exit after SIGKILL".into(),
        }
        .into()),
        Ok(Err(e)) if e.kind() == crate::ErrorKind::Internal => {
            // The shim is gone and left nothing: nothing runs any more.
            record_unknown_exit(inner, id, &e.to_string()).await;
            Ok(())
        }
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(Error::Shim {
            id: id.to_string(),
            reason: format!("still running {KILL_WAIT:?} after SIGKILL"),
        }
        .into()),
    }
}

/// Waits (in the background) for container `id` to exit and records it.
fn watch(inner: std::sync::Arc<Inner>, id: String) {
    tokio::spawn(async move {
        match inner.backend.wait(&id).await {
            Ok(State {
                exit: Some(exit), ..
            }) => record_exit(&inner, &id, &exit).await,
            Ok(_) => tracing::warn!(container = %id, "the shim answered wait without an exit"),
            Err(e) if e.kind() == crate::ErrorKind::NotFound => {} // removed meanwhile
            Err(e) => {
                tracing::warn!(container = %id, error = %e, "waiting for the container failed");
                // The shim may have left its exit file all the same.
                match inner.backend.state(&id).await {
                    Ok(State {
                        exit: Some(exit), ..
                    }) => record_exit(&inner, &id, &exit).await,
                    _ => record_unknown_exit(&inner, &id, &e.to_string()).await,
                }
            }
        }
    });
}

/// Records the exit of `id` once, and announces it.
pub(super) async fn record_exit(inner: &Inner, id: &str, exit: &ExitStatus) {
    let ended = exit.clone();
    match inner.update(id, move |r| r.set_exited(&ended)).await {
        Ok(Some(r)) => {
            tracing::info!(container = %id, code = exit.code, oom = exit.oom_killed, "container exited");
            inner.emit(EventKind::Stopped, &r);
        }
        Ok(None) => {}
        Err(e) => tracing::error!(container = %id, error = %e, "cannot record the exit"),
    }
}

async fn record_unknown_exit(inner: &Inner, id: &str, why: &str) {
    tracing::warn!(container = %id, reason = why, "container ended unseen; exit code unknown");
    let exit = ExitStatus {
        code: UNKNOWN_EXIT,
        signal: None,
        oom_killed: false,
        finished_at_ns: now_ns(),
        shim_lost: None,
        not_created: None,
    };
    let why = why.to_string();
    let marked = inner
        .update(id, move |r| {
            let changed = r.set_exited(&exit);
            if changed {
                r.reason = "Unknown".into();
                r.message = why;
            }
            changed
        })
        .await;
    match marked {
        Ok(Some(r)) => inner.emit(EventKind::Stopped, &r),
        Ok(None) => {}
        Err(e) => tracing::error!(container = %id, error = %e, "cannot record the exit"),
    }
}

pub(super) fn state_word(state: ContainerState) -> &'static str {
    match state {
        ContainerState::Created => "created (not started)",
        ContainerState::Running => "running",
        ContainerState::Exited => "exited",
        ContainerState::Unknown => "in an unknown state",
    }
}
