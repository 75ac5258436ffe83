//! A [`ShimBackend`] for unit tests: containers live in memory, every call
//! is recorded with its arguments, and calls fail on demand.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{
    ContainerMetrics, ContainerStats, CreateRequest, Error, ExecOutput, ExecRequest, ShimBackend,
};
use crate::shim::{ExitStatus, State, Status};
use crate::ErrorKind;

/// The SIGKILL number, as the manager sends it.
const SIGKILL: i32 = 9;

/// One call the manager made, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    Create {
        id: String,
        log_path: PathBuf,
        layers: usize,
        stdin: bool,
    },
    Start {
        id: String,
    },
    Kill {
        id: String,
        signal: i32,
        all: bool,
    },
    State {
        id: String,
    },
    Wait {
        id: String,
    },
    Delete {
        id: String,
    },
    ExecSync {
        id: String,
        args: Vec<String>,
    },
    ReopenLog {
        id: String,
    },
    Stats {
        id: String,
    },
    Metrics {
        id: String,
    },
    IdsOnDisk,
    SpecJson {
        id: String,
    },
}

/// The kinds of [`Call`], to say which ones fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallKind {
    Create,
    Start,
    Kill,
    State,
    Wait,
    Delete,
    ExecSync,
    ReopenLog,
    Stats,
    Metrics,
    IdsOnDisk,
    SpecJson,
}

impl Call {
    pub(crate) fn kind(&self) -> CallKind {
        match self {
            Call::Create { .. } => CallKind::Create,
            Call::Start { .. } => CallKind::Start,
            Call::Kill { .. } => CallKind::Kill,
            Call::State { .. } => CallKind::State,
            Call::Wait { .. } => CallKind::Wait,
            Call::Delete { .. } => CallKind::Delete,
            Call::ExecSync { .. } => CallKind::ExecSync,
            Call::ReopenLog { .. } => CallKind::ReopenLog,
            Call::Stats { .. } => CallKind::Stats,
            Call::Metrics { .. } => CallKind::Metrics,
            Call::IdsOnDisk => CallKind::IdsOnDisk,
            Call::SpecJson { .. } => CallKind::SpecJson,
        }
    }

    fn id(&self) -> Option<&str> {
        match self {
            Call::Create { id, .. }
            | Call::Start { id }
            | Call::Kill { id, .. }
            | Call::State { id }
            | Call::Wait { id }
            | Call::Delete { id }
            | Call::ExecSync { id, .. }
            | Call::ReopenLog { id }
            | Call::Stats { id }
            | Call::Metrics { id }
            | Call::SpecJson { id } => Some(id),
            Call::IdsOnDisk => None,
        }
    }
}

/// Which calls of a kind a failure hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum When {
    /// The nth call of the kind (1 is the first), once.
    Nth(usize),
    /// Every call of the kind for this container.
    ForId(String),
}

#[derive(Debug)]
struct Failure {
    call: CallKind,
    when: When,
    error: ErrorKind,
}

/// A container as the fake shim sees it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FakeContainer {
    pub(crate) status: Status,
    pub(crate) pid: i32,
    pub(crate) started_at_ns: i64,
    pub(crate) exit: Option<ExitStatus>,
    /// Its shim answers; once false, calls see it gone.
    pub(crate) shim_alive: bool,
    /// It ignores signals other than SIGKILL.
    pub(crate) ignores_term: bool,
}

impl FakeContainer {
    /// A container as the shim has just created it.
    pub(crate) fn created(pid: i32) -> FakeContainer {
        FakeContainer {
            status: Status::Created,
            pid,
            started_at_ns: 0,
            exit: None,
            shim_alive: true,
            ignores_term: false,
        }
    }

    /// A container whose process runs.
    pub(crate) fn running(pid: i32) -> FakeContainer {
        FakeContainer {
            status: Status::Running,
            started_at_ns: 1,
            ..FakeContainer::created(pid)
        }
    }

    fn state(&self) -> State {
        State {
            status: self.status,
            pid: self.pid,
            started_at_ns: self.started_at_ns,
            exit: self.exit.clone(),
        }
    }

    fn end(&mut self, exit: ExitStatus) {
        self.status = Status::Exited;
        self.exit = Some(exit);
    }
}

#[derive(Debug, Default)]
struct World {
    containers: BTreeMap<String, FakeContainer>,
    calls: Vec<Call>,
    failures: Vec<Failure>,
    next_pid: i32,
}

/// The fake backend. Containers are "on disk" from their create until
/// their delete.
#[derive(Debug, Default)]
pub(crate) struct FakeShims {
    world: Mutex<World>,
    /// Signalled whenever a container changes, for waiters.
    changed: Notify,
}

impl FakeShims {
    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts `container` on disk as `id` (a shim created before the test).
    pub(crate) fn insert(&self, id: &str, container: FakeContainer) {
        self.world().containers.insert(id.to_string(), container);
        self.changed.notify_waiters();
    }

    /// The container `id`, if it is on disk.
    pub(crate) fn container(&self, id: &str) -> Option<FakeContainer> {
        self.world().containers.get(id).cloned()
    }

    /// Makes calls of kind `call` that `when` names fail with `error`
    /// (NotFound, AlreadyExists, InvalidArgument, FailedPrecondition or
    /// Internal: the kinds a container error has).
    pub(crate) fn fail(&self, call: CallKind, when: When, error: ErrorKind) {
        assert!(
            matches!(
                error,
                ErrorKind::NotFound
                    | ErrorKind::AlreadyExists
                    | ErrorKind::InvalidArgument
                    | ErrorKind::FailedPrecondition
                    | ErrorKind::Internal
            ),
            "a container error has no kind {error:?}"
        );
        self.world().failures.push(Failure { call, when, error });
    }

    /// Kills the shim of `id` (not its container): later calls see it gone.
    pub(crate) fn lose_shim(&self, id: &str) {
        if let Some(c) = self.world().containers.get_mut(id) {
            c.shim_alive = false;
        }
        self.changed.notify_waiters();
    }

    /// Ends the process of `id` with `code`, as if it exited by itself.
    pub(crate) fn exit(&self, id: &str, code: i32) {
        if let Some(c) = self.world().containers.get_mut(id) {
            c.end(exit_status(code, None));
        }
        self.changed.notify_waiters();
    }

    /// Every call so far, in order.
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.world().calls.clone()
    }

    /// The calls of kind `kind` so far.
    pub(crate) fn calls_of(&self, kind: CallKind) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.kind() == kind)
            .collect()
    }

    /// Records `call`; the error it is told to fail with, if any.
    fn record(&self, call: Call) -> Result<(), Error> {
        let mut world = self.world();
        let kind = call.kind();
        let nth = world.calls.iter().filter(|c| c.kind() == kind).count() + 1;
        let id = call.id().unwrap_or_default().to_string();
        world.calls.push(call);
        let hit = world.failures.iter().position(|f| {
            f.call == kind
                && match &f.when {
                    When::Nth(n) => *n == nth,
                    When::ForId(x) => *x == id,
                }
        });
        let Some(hit) = hit else { return Ok(()) };
        let error = world.failures[hit].error;
        if matches!(world.failures[hit].when, When::Nth(_)) {
            world.failures.remove(hit);
        }
        Err(injected(error, &id, kind))
    }

    /// Applies `f` to container `id`, waking waiters if it changed;
    /// NotFound when it is not on disk.
    fn with<T>(&self, id: &str, f: impl FnOnce(&mut FakeContainer) -> T) -> Result<T, Error> {
        let mut world = self.world();
        let c = world
            .containers
            .get_mut(id)
            .ok_or_else(|| Error::NotFound { id: id.to_string() })?;
        let before = c.clone();
        let out = f(c);
        let changed = *c != before;
        drop(world);
        if changed {
            self.changed.notify_waiters();
        }
        Ok(out)
    }
}

/// The state a call gets from `c`: once its shim is gone, the exit it
/// left or, without one, the end the daemon gives an orphan (as
/// [`super::ContainerRuntime`] does through the cgroup).
fn answer(c: &mut FakeContainer) -> State {
    if !c.shim_alive && c.exit.is_none() {
        c.end(exit_status(
            137,
            Some("the shim was gone; the fake ended it"),
        ));
    }
    c.state()
}

fn exit_status(code: i32, shim_lost: Option<&str>) -> ExitStatus {
    ExitStatus {
        code,
        signal: (code > 128).then_some(code - 128),
        oom_killed: false,
        finished_at_ns: 42,
        shim_lost: shim_lost.map(str::to_string),
        not_created: None,
    }
}

fn injected(kind: ErrorKind, id: &str, call: CallKind) -> Error {
    let id = id.to_string();
    let why = format!("injected {call:?} failure");
    match kind {
        ErrorKind::NotFound => Error::NotFound { id },
        ErrorKind::AlreadyExists => Error::AlreadyExists { id },
        ErrorKind::InvalidArgument => Error::InvalidId { id, reason: why },
        ErrorKind::FailedPrecondition => Error::Refused { id, message: why },
        _ => Error::Shim { id, reason: why },
    }
}

#[async_trait]
impl ShimBackend for FakeShims {
    async fn create(&self, req: CreateRequest) -> Result<(), Error> {
        self.record(Call::Create {
            id: req.id.clone(),
            log_path: req.log_path.clone(),
            layers: req.layers.len(),
            stdin: req.stdin,
        })?;
        let mut world = self.world();
        if world.containers.contains_key(&req.id) {
            return Err(Error::AlreadyExists { id: req.id });
        }
        world.next_pid += 1;
        let pid = 1000 + world.next_pid;
        world.containers.insert(req.id, FakeContainer::created(pid));
        Ok(())
    }

    async fn start(&self, id: &str) -> Result<(), Error> {
        self.record(Call::Start { id: id.into() })?;
        self.with(id, |c| {
            if !c.shim_alive || c.status != Status::Created {
                return Err(Error::Refused {
                    id: id.to_string(),
                    message: "the container has exited".into(),
                });
            }
            c.status = Status::Running;
            c.started_at_ns = 7;
            Ok(())
        })?
    }

    async fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), Error> {
        self.record(Call::Kill {
            id: id.into(),
            signal,
            all,
        })?;
        self.with(id, |c| {
            // A gone shim is not asked (the real client sees no socket).
            if c.shim_alive && c.exit.is_none() && (signal == SIGKILL || !c.ignores_term) {
                c.end(exit_status(128 + signal, None));
            }
        })
    }

    async fn state(&self, id: &str) -> Result<State, Error> {
        self.record(Call::State { id: id.into() })?;
        self.with(id, answer)
    }

    async fn wait(&self, id: &str) -> Result<State, Error> {
        self.record(Call::Wait { id: id.into() })?;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let state = self.with(id, answer)?;
            if state.exit.is_some() {
                return Ok(state);
            }
            changed.await;
        }
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        self.record(Call::Delete { id: id.into() })?;
        self.world().containers.remove(id);
        self.changed.notify_waiters();
        Ok(())
    }

    async fn exec_sync(&self, id: &str, req: ExecRequest) -> Result<ExecOutput, Error> {
        self.record(Call::ExecSync {
            id: id.into(),
            args: req.args.clone(),
        })?;
        let state = self.with(id, answer)?;
        super::exec::running_or_refused(id, &state)?;
        let stdout = req.args.join(" ").into_bytes();
        Ok(ExecOutput {
            stdout_written: stdout.len() as u64,
            stdout,
            ..ExecOutput::default()
        })
    }

    async fn reopen_log(&self, id: &str) -> Result<(), Error> {
        self.record(Call::ReopenLog { id: id.into() })?;
        self.with(id, |_| ())
    }

    async fn stats(&self, id: &str) -> Result<ContainerStats, crate::Error> {
        self.record(Call::Stats { id: id.into() })?;
        self.with(id, |_| ContainerStats {
            cgroup: None,
            writable_layer: crate::snapshot::Usage::default(),
        })
        .map_err(Into::into)
    }

    async fn metrics(&self, id: &str) -> Result<ContainerMetrics, crate::Error> {
        self.record(Call::Metrics { id: id.into() })?;
        self.with(id, |_| ContainerMetrics::default())
            .map_err(Into::into)
    }

    fn ids_on_disk(&self) -> Vec<String> {
        // An injected failure cannot be returned here; the call is recorded.
        let _ = self.record(Call::IdsOnDisk);
        self.world().containers.keys().cloned().collect()
    }

    fn bundle_dir(&self, id: &str) -> PathBuf {
        PathBuf::from("/nonexistent/fake-bundles").join(id)
    }

    fn spec_json(&self, id: &str) -> Option<serde_json::Value> {
        self.record(Call::SpecJson { id: id.into() }).ok()?;
        self.container(id).map(|_| serde_json::json!({ "id": id }))
    }
}
