//! The exit files of containers whose shim is gone or never answered: the
//! one a shim left, the one the daemon writes when a shim died first, and
//! the one for a container its shim could not create. Every later look at
//! the container reads the same file, so they all agree.

use super::runtime::write_atomic;
use super::{ContainerRuntime, Error};
use crate::shim::protocol::files;
use crate::shim::State;

/// The exit code of a container its shim could not create (containerd's
/// for a start that failed).
const NOT_CREATED_EXIT: i32 = 128;

impl ContainerRuntime {
    /// Leaves the end of a container its shim could not create in the
    /// bundle, as the exit file a shim writes: every look at it agrees that
    /// it has exited, and why.
    pub(super) async fn note_failed_creation(&self, id: &str, e: &Error) {
        let state = State {
            status: crate::shim::Status::Exited,
            pid: 0,
            started_at_ns: 0,
            exit: Some(crate::shim::ExitStatus {
                code: NOT_CREATED_EXIT,
                signal: None,
                oom_killed: false,
                finished_at_ns: super::manager::now_ns(),
                shim_lost: None,
                not_created: Some(e.to_string()),
            }),
        };
        if let Err(e) = crate::blocking::run(|| self.write_exit(id, &state)) {
            tracing::warn!(container = id, error = %e, "cannot record a failed creation");
        }
    }

    /// The state of a container whose shim no longer answers: the exit file
    /// the shim wrote before it went, or, when there is none (the shim was
    /// killed or crashed first), the end the daemon gives the container
    /// itself: every process of its cgroup is killed (they would run on,
    /// reparented, holding the cgroup and the pod), the cgroup removed, and
    /// an exit file written that says so, so that every later look agrees.
    pub(super) async fn state_without_shim(&self, id: &str) -> Result<State, Error> {
        let this = self.clone();
        let owned = id.to_string();
        tokio::task::spawn_blocking(move || match this.state_from_files(&owned)? {
            Some(state) => Ok(state),
            None => this.end_orphan(&owned),
        })
        .await
        .map_err(|source| Error::Task {
            id: id.to_string(),
            what: "reading its exit",
            source,
        })?
    }

    /// The exit file, if the shim left one.
    fn state_from_files(&self, id: &str) -> Result<Option<State>, Error> {
        let exit = self.bundle(id).join(files::EXIT);
        let text = match std::fs::read(&exit) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::Io {
                    id: id.to_string(),
                    path: exit,
                    source,
                })
            }
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|source| Error::Json {
                id: id.to_string(),
                path: exit,
                source,
            })
    }

    /// Ends container `id`, whose shim is gone without an exit file (runs
    /// on a blocking thread: cgroup writes and waits).
    fn end_orphan(&self, id: &str) -> Result<State, Error> {
        let bundle = self.bundle(id);
        let shim_gone = |reason: String| Error::Shim {
            id: id.to_string(),
            reason,
        };
        let started: Option<State> = std::fs::read(bundle.join(files::STATE))
            .ok()
            .and_then(|t| serde_json::from_slice(&t).ok());
        let cgroup_path = self.spec_json(id).and_then(|spec| {
            spec.pointer("/linux/cgroupsPath")
                .and_then(|p| p.as_str())
                .map(str::to_string)
        });
        let Some(cgroup_path) = cgroup_path else {
            return Err(shim_gone(
                "the shim is gone, left no exit status, and the container has no cgroup to end it through"
                    .into(),
            ));
        };
        let cgroup_failed = |action: String| {
            move |source| Error::Cgroup {
                id: id.to_string(),
                action,
                source,
            }
        };
        let hierarchy = crate::cgroups::detect().map_err(cgroup_failed(
            "the shim is gone; finding the cgroup hierarchy to end its container".into(),
        ))?;
        let mut oom_killed = false;
        let mut killed = 0;
        match crate::cgroups::Cgroup::open(&hierarchy, &cgroup_path) {
            Ok(cgroup) => {
                oom_killed = cgroup.oom_killed().unwrap_or(false);
                killed = cgroup.pids().map(|p| p.len()).unwrap_or(0);
                cgroup
                    .kill_all()
                    .and_then(|()| cgroup.destroy())
                    .map_err(cgroup_failed(format!(
                        "the shim is gone; ending its container through cgroup {cgroup_path}"
                    )))?;
            }
            // Already removed: nothing of the container runs any more.
            Err(e) if e.kind() == crate::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(cgroup_failed(format!(
                    "the shim is gone; opening cgroup {cgroup_path} to end its container"
                ))(e))
            }
        }
        let how = format!(
            "the shim of container {id} died before the container; the daemon killed its {killed} remaining process(es) through cgroup {cgroup_path}"
        );
        tracing::warn!(container = id, cgroup = %cgroup_path, killed, "shim gone: container ended through its cgroup");
        let state = State {
            status: crate::shim::Status::Exited,
            pid: started.as_ref().map_or(0, |s| s.pid),
            started_at_ns: started.as_ref().map_or(0, |s| s.started_at_ns),
            exit: Some(crate::shim::ExitStatus {
                code: 128 + nix::sys::signal::Signal::SIGKILL as i32,
                signal: Some(nix::sys::signal::Signal::SIGKILL as i32),
                oom_killed,
                finished_at_ns: super::manager::now_ns(),
                shim_lost: Some(how),
                not_created: None,
            }),
        };
        self.write_exit(id, &state)?;
        Ok(state)
    }

    /// Writes `state` as the exit file of `id`, atomically, as a shim does.
    fn write_exit(&self, id: &str, state: &State) -> Result<(), Error> {
        let exit = self.bundle(id).join(files::EXIT);
        let bytes = serde_json::to_vec(state).map_err(|source| Error::Json {
            id: id.to_string(),
            path: exit.clone(),
            source,
        })?;
        write_atomic(&exit, &bytes).map_err(|source| Error::Io {
            id: id.to_string(),
            path: exit,
            source,
        })
    }
}
