//! [`Containers`]: the container manager the CRI server calls. It keeps a
//! record per container in the metadata store, creates containers from an
//! image and a pod's context, and watches each running container so its
//! exit is recorded (and announced) the moment it happens.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::broadcast;

use super::pod::{apply_pod, create_missing_sources, own_oom_score_adj};
use super::record::{stop_signal, ContainerFilter, ContainerRecord, ContainerState, ProcessUser};
use super::{CreateRequest, Error, ShimBackend};
use crate::blocking::SerialThread;
use crate::cgroups::CpuRates;
use crate::ids::{ContainerId, SandboxId};
use crate::image::{Images, LayerHolds};
use crate::locks::KeyedLocks;
use crate::sandbox::PodContext;
use crate::shim::setup::BundleImageVolume;
use crate::spec::{self, ContainerConfig, ImageConfig, LayeredRootfs, NsMode};
use crate::store::{Lookup, MetaStore, Record, Records, Table};

/// How many events a slow subscriber may fall behind before it loses some.
const EVENT_BACKLOG: usize = 1024;

/// What happened to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// It was created.
    Created,
    /// It was started.
    Started,
    /// Its process exited.
    Stopped,
    /// It was removed.
    Deleted,
}

/// One container lifecycle event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// What happened.
    pub kind: EventKind,
    /// The container.
    pub container_id: ContainerId,
    /// Its pod.
    pub pod_id: SandboxId,
    /// When, Unix nanoseconds.
    pub at_ns: i64,
}

/// What a new container is made of, besides its pod.
#[derive(Debug, Clone, Default)]
pub struct NewContainer {
    /// CRI metadata name (unique in the pod with the attempt).
    pub name: String,
    /// CRI metadata attempt.
    pub attempt: u32,
    /// The image: id, id prefix, tag or digest reference.
    pub image: String,
    /// The image as the user named it, when the client resolved that name
    /// to `image` itself (kubelet sends the id and the name it came from).
    pub user_specified_image: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// The log path, relative to the pod's log directory.
    pub log_path: String,
    /// The container's configuration; id, namespaces, hostname, cgroup path
    /// and the pod's mounts are filled in from the pod.
    pub config: ContainerConfig,
    /// The container's own PID namespace choice, instead of the pod's.
    pub pid: Option<NsMode>,
}

/// The containers of this daemon.
#[derive(Debug, Clone)]
pub struct Containers {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) backend: Arc<dyn ShimBackend>,
    pub(super) holds: Arc<LayerHolds>,
    /// The records: readers never wait for another container's commit.
    pub(super) records: Arc<Records<ContainerRecord>>,
    /// Where record writes run: each waits for the writer lock, which the
    /// commit (an fsync) before it holds, so they are serialised anyway;
    /// on a thread of their own no async worker waits for one, and the
    /// reads queued on the workers do not wait behind them.
    writes: SerialThread,
    /// Names being created (`pod/name/attempt`), not yet recorded.
    reserved: Mutex<HashSet<String>>,
    pub(super) locks: KeyedLocks,
    pub(super) events: broadcast::Sender<ContainerEvent>,
    /// The CPU rate baseline of each container asked for.
    pub(super) cpu_rates: CpuRates,
    /// The runtime handlers pods may name (RuntimeClass).
    pub(super) handlers: super::Handlers,
}

impl Inner {
    /// Writes `record` through and keeps it.
    pub(super) async fn save(&self, record: ContainerRecord) -> Result<(), crate::Error> {
        let records = self.records.clone();
        Ok(self.writes.run(move || records.put(record)).await??)
    }

    /// Changes the record of `id` with `edit` and writes it through; the
    /// edit says whether anything changed. Returns the record as saved.
    pub(super) async fn update(
        &self,
        id: &str,
        edit: impl FnOnce(&mut ContainerRecord) -> bool + Send + 'static,
    ) -> Result<Option<ContainerRecord>, crate::Error> {
        let (records, id) = (self.records.clone(), id.to_string());
        Ok(self.writes.run(move || records.update(&id, edit)).await??)
    }

    pub(super) async fn forget(&self, id: &str) -> Result<(), crate::Error> {
        let (records, gone) = (self.records.clone(), id.to_string());
        self.writes.run(move || records.delete(&gone)).await??;
        self.cpu_rates.forget(id);
        Ok(())
    }

    pub(super) fn emit(&self, kind: EventKind, record: &ContainerRecord) {
        // No subscriber is fine.
        let _ = self.events.send(ContainerEvent {
            kind,
            container_id: record.id.clone(),
            pod_id: record.pod_id.clone(),
            at_ns: now_ns(),
        });
    }
}

/// Releases a name reservation (and, unless disarmed, the layer hold) of
/// a creation that did not finish.
struct Reservation<'a> {
    inner: &'a Inner,
    name: String,
    holder: Option<String>,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.inner
            .reserved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.name);
        if let Some(holder) = &self.holder {
            self.inner.holds.release(holder);
        }
    }
}

impl Containers {
    /// Loads the records from `store` and holds their layers (so a garbage
    /// collection before [`Self::recover`] keeps them). `holds` are the
    /// image index's ([`Images::holds`]); `backend` runs the shims (a
    /// [`super::ContainerRuntime`]).
    pub fn open(
        store: Arc<MetaStore>,
        backend: Arc<dyn ShimBackend>,
        holds: Arc<LayerHolds>,
    ) -> Result<Containers, crate::Error> {
        Containers::open_with_handlers(store, backend, holds, super::Handlers::new())
    }

    /// [`Self::open`], with the external runtimes of the handlers pods may name.
    pub fn open_with_handlers(
        store: Arc<MetaStore>,
        backend: Arc<dyn ShimBackend>,
        holds: Arc<LayerHolds>,
        handlers: super::Handlers,
    ) -> Result<Containers, crate::Error> {
        let records = Arc::new(Records::<ContainerRecord>::load(store.clone())?);
        for r in records.filtered(|_| true) {
            let volumes = r.config.mounts.iter().filter_map(|m| m.image.as_ref());
            let chain_ids = r.chain_ids.iter().chain(volumes.flat_map(|i| &i.chain_ids));
            holds.hold(&r.id, chain_ids.cloned().collect());
        }
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        Ok(Containers {
            inner: Arc::new(Inner {
                backend,
                holds,
                records,
                writes: SerialThread::start("ctr-records")?,
                reserved: Mutex::new(HashSet::new()),
                locks: KeyedLocks::default(),
                events,
                cpu_rates: CpuRates::default(),
                handlers,
            }),
        })
    }

    /// Refuses (FailedPrecondition) unless container `id` is running, as
    /// its shim says (for a streaming exec or attach).
    pub async fn ensure_running(&self, id: &str) -> Result<(), crate::Error> {
        let state = self.inner.backend.state(id).await?;
        Ok(super::exec::running_or_refused(id, &state)?)
    }

    /// Lifecycle events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ContainerEvent> {
        self.inner.events.subscribe()
    }

    /// The full id of the container `id_or_prefix` names.
    pub fn resolve(&self, id_or_prefix: &str) -> Result<ContainerId, crate::Error> {
        let invalid = |reason: &str| Error::InvalidId {
            id: id_or_prefix.to_string(),
            reason: reason.to_string(),
        };
        match self.inner.records.resolve(id_or_prefix) {
            Lookup::Found(id) => Ok(ContainerId::recorded(id)),
            Lookup::NotFound => Err(Error::NotFound {
                id: id_or_prefix.to_string(),
            }
            .into()),
            Lookup::Ambiguous => Err(invalid("the prefix matches more than one container").into()),
            Lookup::Empty => Err(invalid("the container id is empty").into()),
        }
    }

    /// The record of container `id_or_prefix`.
    pub fn status(&self, id_or_prefix: &str) -> Result<ContainerRecord, crate::Error> {
        let id = self.resolve(id_or_prefix)?;
        self.inner
            .records
            .get(&id)
            .ok_or_else(|| Error::NotFound { id: id.to_string() }.into())
    }

    /// `f` of each container `filter` lets through, oldest first, read in
    /// place: a list of hundreds copies no record (ListContainers).
    pub fn list_mapped<T>(
        &self,
        filter: &ContainerFilter,
        f: impl Fn(&ContainerRecord) -> T,
    ) -> Vec<T> {
        let mut out = self.inner.records.map_filtered(
            |r| filter.matches(r),
            |r| ((r.created_at_ns, r.id.clone()), f(r)),
        );
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.into_iter().map(|(_, t)| t).collect()
    }

    /// The containers `filter` lets through, oldest first.
    pub fn list(&self, filter: &ContainerFilter) -> Vec<ContainerRecord> {
        let mut out = self.inner.records.filtered(|r| filter.matches(r));
        out.sort_by(|a, b| (a.created_at_ns, &a.id).cmp(&(b.created_at_ns, &b.id)));
        out
    }

    /// Creates a container of `pod` from `req`: resolves and holds its
    /// image, builds its spec and has a shim create it (waiting for start).
    pub async fn create(
        &self,
        images: &Images,
        pod: &PodContext,
        req: NewContainer,
    ) -> Result<ContainerId, crate::Error> {
        let inner = &*self.inner;
        let name_key = format!("{}/{}/{}", pod.pod_id, req.name, req.attempt);
        {
            // Reservations first: a creation holds its name until its
            // record is in, so no name can slip between the two looks.
            let mut reserved = inner
                .reserved
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let taken = inner.records.filtered(|r| {
                r.pod_id == pod.pod_id && r.name == req.name && r.attempt == req.attempt
            });
            if let Some(other) = taken.first() {
                return Err(Error::NameInUse {
                    name: name_key,
                    by: other.id.to_string(),
                }
                .into());
            }
            if !reserved.insert(name_key.clone()) {
                return Err(Error::NameInUse {
                    name: name_key,
                    by: "a container being created".into(),
                }
                .into());
            }
        }
        let id = ContainerId::random()?;
        let mut reservation = Reservation {
            inner,
            name: name_key,
            holder: Some(id.to_string()),
        };
        let image = images
            .hold(&id, &req.image)
            .await?
            .ok_or_else(|| Error::ImageNotFound {
                image: req.image.clone(),
            })?;
        let image_config = ImageConfig::from_oci_json(&image.config)?;
        let layers: Vec<PathBuf> = image
            .layers
            .iter()
            .rev()
            .map(|l| images.snapshot_path(&l.chain_id))
            .collect();

        let handler = match pod.runtime_handler.as_str() {
            "" => None,
            name => Some(
                self.inner
                    .handlers
                    .get(name)
                    .ok_or_else(|| Error::UnknownHandler {
                        id: id.to_string(),
                        handler: name.to_string(),
                    })?,
            ),
        };
        let mut config = req.config;
        if let (None, Some(h)) = (handler, config.hooks.first()) {
            return Err(crate::spec::Error::Hook {
                path: h.path.clone(),
                reason: "corten's built-in core runs no OCI hooks: run the pod with a runtime \
                         handler (runc, crun) that does"
                    .into(),
            }
            .into());
        }
        // A stop signal that could never be sent is refused now, not at stop.
        stop_signal(config.stop_signal.as_deref())?;
        let image_volumes = resolve_image_volumes(
            images,
            &id,
            &inner.backend.bundle_dir(&id),
            &mut config.mounts,
        )
        .await?;
        let requested_mounts = config.mounts.clone();
        config.id = id.to_string();
        apply_pod(&mut config, pod);
        if let Some(h) = handler {
            for (key, value) in h.passed_annotations(&pod.annotations) {
                config
                    .annotations
                    .entry(key.clone())
                    .or_insert_with(|| value.clone());
            }
        }
        if let Some(pid) = req.pid {
            config.namespaces.pid = pid;
        }
        config.oom_score_adj_cap = own_oom_score_adj();
        let view = LayeredRootfs {
            layers: layers.clone(),
        };
        // Generating the spec is CPU work that grows with the request (a
        // request may carry 100,000 variables or 10,000 mounts), and the
        // mount sources are made on disk: neither belongs on an async worker.
        let (config, image_config, spec) = tokio::task::spawn_blocking(move || {
            let spec = spec::generate(&config, &image_config, &view)?;
            create_missing_sources(&config.id, &config.mounts)?;
            Ok::<_, crate::Error>((config, image_config, spec))
        })
        .await
        .map_err(|source| Error::Task {
            id: id.to_string(),
            what: "generating the spec",
            source,
        })??;
        let user = spec
            .process()
            .as_ref()
            .map(|p| ProcessUser {
                uid: p.user().uid(),
                gid: p.user().gid(),
                additional_gids: p.user().additional_gids().clone().unwrap_or_default(),
            })
            .unwrap_or_default();

        let log_file = match (&pod.log_directory, req.log_path.is_empty()) {
            (Some(dir), false) => Some(dir.join(&req.log_path)),
            _ => None,
        };
        let created_at_ns = now_ns();
        let create = CreateRequest {
            id: id.to_string(),
            spec,
            layers,
            // Mounted writable so mount points can be made; the spec's
            // `root.readonly` remounts it read-only once they are (as runc).
            readonly_rootfs: false,
            log_path: log_file
                .clone()
                .unwrap_or_else(|| PathBuf::from("/dev/null")),
            runtime: handler.map(|h| h.binary.clone()),
            runtime_root: handler.and_then(|h| h.root.clone()),
            image_volumes,
            stdin: config.stdin,
            stdin_once: config.stdin_once,
        };
        let image_ref = image
            .repo_digests
            .first()
            .cloned()
            .unwrap_or_else(|| image.id.to_string());
        let record = ContainerRecord {
            id: id.clone(),
            pod_id: pod.pod_id.clone(),
            name: req.name,
            attempt: req.attempt,
            image: shown_image(&req.image, req.user_specified_image.as_deref(), &image),
            image_id: image.id.clone(),
            image_ref,
            chain_ids: image.layers.iter().map(|l| l.chain_id.clone()).collect(),
            stop_signal: image_config.stop_signal.clone(),
            labels: req.labels,
            annotations: req.annotations,
            log_path: req.log_path,
            log_file,
            state: ContainerState::Created,
            created_at_ns,
            started_at_ns: 0,
            finished_at_ns: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            pid: 0,
            mounts: requested_mounts,
            user,
            pod: pod.clone(),
            config,
        };
        // The record carries no pid until the start, so its commit does
        // not wait for the shim: both run at once, and a failure of either
        // undoes the other. A crash in between leaves a record without a
        // shim (recovered as an exited container, which removal clears) or
        // a shim without a record (removed at restart as half-made).
        let (created, saved) =
            tokio::join!(inner.backend.create(create), inner.save(record.clone()));
        match (created, saved) {
            (Ok(_), Ok(())) => {}
            (Ok(_), Err(e)) => {
                if let Err(d) = inner.backend.delete(&id).await {
                    tracing::warn!(container = %id, error = %d, "cannot undo a container creation");
                }
                return Err(e);
            }
            (Err(e), Ok(())) => {
                if let Err(f) = inner.forget(&id).await {
                    tracing::warn!(container = %id, error = %f, "cannot undo a container's record");
                }
                return Err(e.into());
            }
            (Err(e), Err(_)) => return Err(e.into()),
        }
        crate::crash::point("container.create.after_shim");
        reservation.holder = None;
        drop(reservation);
        tracing::info!(container = %id, pod = %record.pod_id, name = %record.name, "container created");
        inner.emit(EventKind::Created, &record);
        Ok(id)
    }
}

/// Resolves the image volumes among `mounts` (those with an image): holds
/// each one's image for `holder` (besides what it holds), checks its sub
/// path (a plain directory of the image, reached without a symlink), and
/// points the mount's source at where the shim will mount the image under
/// `bundle`. Returns what the shim mounts.
async fn resolve_image_volumes(
    images: &Images,
    holder: &str,
    bundle: &std::path::Path,
    mounts: &mut [crate::spec::MountConfig],
) -> Result<Vec<BundleImageVolume>, crate::Error> {
    let mut volumes = Vec::new();
    for m in mounts.iter_mut() {
        let Some(volume) = m.image.as_mut() else {
            continue;
        };
        let image = images
            .hold_also(holder, &volume.image)
            .await?
            .ok_or_else(|| Error::ImageVolumeNotFound {
                image: volume.image.clone(),
                path: m.container_path.clone(),
            })?;
        let lower: Vec<PathBuf> = image
            .layers
            .iter()
            .rev()
            .map(|l| images.snapshot_path(&l.chain_id))
            .collect();
        if !volume.sub_path.is_empty() {
            // Looks at the layers' files: blocking work.
            let view = LayeredRootfs {
                layers: lower.clone(),
            };
            let sub = volume.sub_path.clone();
            let checked = tokio::task::spawn_blocking(move || view.plain_directory(&sub))
                .await
                .map_err(|source| Error::Task {
                    id: holder.to_string(),
                    what: "checking an image volume's sub path",
                    source,
                })?;
            if let Err(reason) = checked {
                return Err(Error::ImageSubPath {
                    image: volume.image.clone(),
                    path: m.container_path.clone(),
                    sub_path: volume.sub_path.clone(),
                    reason,
                }
                .into());
            }
        }
        // `<bundle>/image-volumes/<n>`, mounted in the shim's own mount
        // namespace (never the host's).
        let target = bundle
            .join(crate::shim::protocol::files::IMAGE_VOLUMES_DIR)
            .join(volumes.len().to_string());
        m.host_path = if volume.sub_path.is_empty() {
            target.clone()
        } else {
            target.join(volume.sub_path.trim_matches('/'))
        };
        m.readonly = true;
        // As the shim mounts it (a user namespace cannot clear these).
        for word in ["nosuid", "nodev"] {
            if !m.options.iter().any(|o| o == word) {
                m.options.push(word.into());
            }
        }
        volume.image_id = image.id.to_string();
        volume.chain_ids = image.layers.iter().map(|l| l.chain_id.clone()).collect();
        volumes.push(BundleImageVolume { lower, target });
    }
    Ok(volumes)
}

/// The image a container's status shows: the name the user asked for, as
/// CRI-O answers; when the request named the image only by its id (as
/// kubelet does without `user_specified_image`), the image's first repo tag,
/// as containerd answers.
pub(super) fn shown_image(
    requested: &str,
    user_specified: Option<&str>,
    image: &crate::image::ImageRecord,
) -> String {
    if let Some(name) = user_specified.filter(|n| !n.is_empty()) {
        return name.to_string();
    }
    let id = image.id.to_string();
    let hex = id.strip_prefix("sha256:").unwrap_or(&id);
    let by_id = id.starts_with(requested) || hex.starts_with(requested);
    match image.repo_tags.first() {
        Some(tag) if by_id => tag.clone(),
        _ => requested.to_string(),
    }
}

/// Now, Unix nanoseconds.
pub(super) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
#[cfg(test)]
mod tests;

impl Record for ContainerRecord {
    const TABLE: Table = Table::Containers;
    fn id(&self) -> &str {
        &self.id
    }
}
