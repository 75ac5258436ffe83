//! Creating, starting, signalling, inspecting and deleting containers
//! through their shims.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use oci_spec::runtime::Spec;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use super::creations::Creations;
use super::{trash, Error};
use crate::layout::Layout;
use crate::shim::protocol::files;
use crate::shim::setup::BundleRootfs;
use crate::shim::{Request, ShimClient, State};

/// How long a shim gets to create a container.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a shim gets to finish after its container's exit (an external
/// runtime's `delete`, the cgroup) before its files are removed anyway.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);

/// What is needed to create a container.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// The container id (a directory name).
    pub id: String,
    /// The OCI runtime spec (root path `rootfs`, relative to the bundle).
    pub spec: Spec,
    /// The image's layer snapshots, top first.
    pub layers: Vec<PathBuf>,
    /// Mount the root filesystem read-only.
    pub readonly_rootfs: bool,
    /// The CRI log file.
    pub log_path: PathBuf,
    /// An external OCI runtime binary (runc, crun) to create the container
    /// with; `None` is the built-in core.
    pub runtime: Option<PathBuf>,
    /// That runtime's state directory (`--root`); `None`: inside the bundle.
    pub runtime_root: Option<PathBuf>,
    /// Image volumes, for the shim to mount (in its mount namespace) where
    /// the spec's bind mounts take them from.
    pub image_volumes: Vec<crate::shim::setup::BundleImageVolume>,
    /// Keep the container's stdin open for attach.
    pub stdin: bool,
    /// Close stdin when the first attached client detaches.
    pub stdin_once: bool,
}

/// Runs containers under shims.
#[derive(Debug, Clone)]
pub struct ContainerRuntime {
    /// Creations whose shim has not answered yet (or failed): every call
    /// for such a container waits for the answer first.
    creations: Creations,
    bundles: PathBuf,
    layers: PathBuf,
    /// Where a removal moves a bundle and a writable layer, for the
    /// deleting thread (same file systems as `bundles` and `layers`).
    bundles_trash: PathBuf,
    layers_trash: PathBuf,
    shim: PathBuf,
}

impl ContainerRuntime {
    /// Bundles and writable layers where [`Layout`] puts them under
    /// `state_dir` and `root_dir`, shims started from the `shim` binary.
    pub fn new(state_dir: &Path, root_dir: &Path, shim: &Path) -> ContainerRuntime {
        let layout = Layout::new(root_dir, state_dir);
        ContainerRuntime {
            creations: Creations::default(),
            bundles: layout.bundles(),
            layers: layout.writable_layers(),
            bundles_trash: layout.bundles_trash(),
            layers_trash: layout.writable_layers_trash(),
            shim: shim.to_path_buf(),
        }
    }

    /// Deletes, in the background, what removals moved aside and did
    /// not delete before the last stop (a crash, a shutdown).
    pub fn clear_trash(&self) {
        trash::clear(&[&self.bundles_trash, &self.layers_trash]);
    }

    /// The bundle directory of `id`.
    pub fn bundle(&self, id: &str) -> PathBuf {
        self.bundles.join(id)
    }

    /// The ids of the bundles and writable layers on disk (with or without
    /// a record: restart reconciliation removes those without).
    pub fn ids_on_disk(&self) -> Vec<String> {
        let mut ids: Vec<String> = [&self.bundles, &self.layers]
            .into_iter()
            .flat_map(|dir| std::fs::read_dir(dir).into_iter().flatten().flatten())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|id| check_id(id).is_ok())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// The OCI spec container `id` was created with, as JSON (read and
    /// parsed off the async workers: it grows with the request).
    pub fn spec_json(&self, id: &str) -> Option<serde_json::Value> {
        crate::blocking::run(|| {
            let text = std::fs::read(self.bundle(id).join(files::SPEC)).ok()?;
            serde_json::from_slice(&text).ok()
        })
    }

    /// The `corten-shim` binary this runtime starts.
    pub fn shim_binary(&self) -> &Path {
        &self.shim
    }

    /// The writable layer directory of `id` (holding `upper/` and `work/`).
    pub fn writable_layer(&self, id: &str) -> PathBuf {
        self.layers.join(id)
    }

    /// Writes the bundle and starts a shim that creates the container, and
    /// returns without waiting for the shim's answer (as containerd leaves
    /// the runtime's create to the start): every later call for the
    /// container waits for it first ([`Self::settle`]). A creation that
    /// fails leaves the container exited, with the reason, until it is
    /// deleted; [`Self::start`] returns the shim's error.
    pub async fn create(&self, req: CreateRequest) -> Result<(), Error> {
        check_id(&req.id)?;
        let id = req.id.clone();
        let bundle = self.bundle(&id);
        // Directories, the spec (which grows with the request): blocking
        // work, off the async workers.
        let this = self.clone();
        let (req, shim_log) = tokio::task::spawn_blocking(move || {
            let log = this.write_bundle(&req);
            (req, log)
        })
        .await
        .map_err(|source| Error::Task {
            id: id.clone(),
            what: "writing the bundle",
            source,
        })?;
        let log = match shim_log {
            Ok(log) => log,
            Err(e) => {
                if !matches!(e, Error::AlreadyExists { .. }) {
                    // Nothing half-made stays behind.
                    self.remove_files(&id);
                }
                return Err(e);
            }
        };
        crate::crash::point("container.create.after_bundle");
        let answer = self.creations.begin(&id);
        let this = self.clone();
        tokio::spawn(async move {
            match this.create_in(&req, &bundle, log).await {
                Ok(_) => answer.send(Ok(())),
                Err(e) => {
                    tracing::warn!(container = %req.id, error = %e, "the shim could not create the container");
                    this.note_failed_creation(&req.id, &e).await;
                    answer.send(Err(&e));
                }
            }
        });
        Ok(())
    }

    /// Waits until the shim of a creation still under way has answered;
    /// returns its error if it could not create the container.
    pub async fn settle(&self, id: &str) -> Option<Error> {
        self.creations.settle(id).await
    }

    /// Makes the bundle directory and the writable layer, writes the spec
    /// and the rootfs description; returns the shim's log file.
    fn write_bundle(&self, req: &CreateRequest) -> Result<std::fs::File, Error> {
        let id = &req.id;
        let bundle = self.bundle(id);
        let io = |path: &Path| {
            let (id, path) = (id.clone(), path.to_path_buf());
            move |source| Error::Io { id, path, source }
        };
        match std::fs::create_dir(&bundle) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists { id: id.clone() })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.bundles).map_err(io(&self.bundles))?;
                std::fs::create_dir(&bundle).map_err(io(&bundle))?;
            }
            Err(e) => return Err(io(&bundle)(e)),
        }
        let layer = self.writable_layer(id);
        let (upper, work) = (layer.join("upper"), layer.join("work"));
        for dir in [&upper, &work] {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let rootfs = BundleRootfs {
            lower: req.layers.clone(),
            upper,
            work,
            readonly: req.readonly_rootfs,
            image_volumes: req.image_volumes.clone(),
        };
        let json = |path: &Path| {
            let (id, path) = (id.clone(), path.to_path_buf());
            move |source| Error::Json { id, path, source }
        };
        let spec_path = bundle.join(files::SPEC);
        let spec_json = serde_json::to_vec(&req.spec).map_err(json(&spec_path))?;
        write_atomic(&spec_path, &spec_json).map_err(io(&spec_path))?;
        if let Some(binary) = &req.runtime {
            let record = crate::shim::external::RuntimeRecord {
                binary: binary.clone(),
                root: req.runtime_root.clone(),
            };
            let path = bundle.join(files::RUNTIME);
            let bytes = serde_json::to_vec(&record).map_err(json(&path))?;
            write_atomic(&path, &bytes).map_err(io(&path))?;
        }
        let rootfs_path = bundle.join(files::ROOTFS);
        let rootfs_json = serde_json::to_vec(&rootfs).map_err(json(&rootfs_path))?;
        write_atomic(&rootfs_path, &rootfs_json).map_err(io(&rootfs_path))?;
        let shim_log = bundle.join(files::SHIM_LOG);
        std::fs::File::create(&shim_log).map_err(io(&shim_log))
    }

    async fn create_in(
        &self,
        req: &CreateRequest,
        bundle: &Path,
        log_file: std::fs::File,
    ) -> Result<i32, Error> {
        let id = &req.id;
        let shim_log = bundle.join(files::SHIM_LOG);
        let mut command = tokio::process::Command::new(&self.shim);
        command
            .arg("run")
            .arg("--bundle")
            .arg(bundle)
            .arg("--id")
            .arg(id)
            .arg("--log")
            .arg(&req.log_path);
        if let Some(runtime) = &req.runtime {
            command.arg("--runtime").arg(runtime);
        }
        if let Some(root) = &req.runtime_root {
            command.arg("--runtime-root").arg(root);
        }
        if req.stdin {
            command.arg("--stdin");
        }
        if req.stdin_once {
            command.arg("--stdin-once");
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .kill_on_drop(false);
        let mut child = crate::blocking::spawn(&mut command).map_err(|source| Error::Spawn {
            id: id.clone(),
            action: format!("creating it: cannot start {}", self.shim.display()),
            source,
        })?;
        let stdout = child.stdout.take();
        // The shim forks away at once; its first process exits and is reaped here.
        let _ = child.wait().await;
        let mut line = String::new();
        if let Some(out) = stdout {
            let mut reader = BufReader::new(out);
            let read = reader.read_line(&mut line);
            if tokio::time::timeout(CREATE_TIMEOUT, read).await.is_err() {
                return Err(Error::Create {
                    id: id.clone(),
                    reason: format!("the shim did not report within {CREATE_TIMEOUT:?}"),
                });
            }
        }
        let line = line.trim();
        if let Some(pid) = line.strip_prefix("ok ") {
            return pid.parse().map_err(|_| Error::Create {
                id: id.clone(),
                reason: format!("the shim said {line:?}"),
            });
        }
        match line.strip_prefix("error ") {
            // The kind the shim gave crosses with the message.
            Some(rest) => {
                let (kind, why) = crate::shim::setup::parse_error_line(rest);
                Err(Error::said(
                    id,
                    kind,
                    format!("creating the container: {why}"),
                ))
            }
            None => {
                let log =
                    crate::blocking::run(|| std::fs::read_to_string(&shim_log)).unwrap_or_default();
                Err(Error::Create {
                    id: id.clone(),
                    reason: format!("the shim exited without a word: {}", log.trim()),
                })
            }
        }
    }

    /// Lets the container's process run.
    pub async fn start(&self, id: &str) -> Result<(), Error> {
        if let Some(failed) = self.settle(id).await {
            return Err(failed);
        }
        match self.client(id).await?.call(&Request::Start).await? {
            Some(_) => Ok(()),
            None => Err(Error::Refused {
                id: id.to_string(),
                message: "the container has exited".into(),
            }),
        }
    }

    /// Sends `signal` to the container's init (with `all`, SIGKILL to all of it).
    pub async fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), Error> {
        self.client(id)
            .await?
            .call(&Request::Kill { signal, all })
            .await?;
        Ok(())
    }

    /// Attaches to the container's stdio: the returned connection carries
    /// frames ([`crate::shim::protocol::frame`]) until the container exits.
    pub async fn attach(&self, id: &str, stdin: bool) -> Result<tokio::net::UnixStream, Error> {
        self.client(id).await?.attach(stdin).await
    }

    /// Resizes the terminal of a tty container.
    pub async fn resize(&self, id: &str, width: u16, height: u16) -> Result<(), Error> {
        self.client(id)
            .await?
            .call(&Request::Resize { width, height })
            .await?;
        Ok(())
    }

    /// Asks the shim to reopen the log file.
    pub async fn reopen_log(&self, id: &str) -> Result<(), Error> {
        self.client(id).await?.call(&Request::ReopenLog).await?;
        Ok(())
    }

    /// The container's state, from its shim or, once the shim is gone, from
    /// the exit file it left (see [`Self::state_without_shim`]).
    pub async fn state(&self, id: &str) -> Result<State, Error> {
        match self.client(id).await?.call(&Request::State).await? {
            Some(Some(state)) => Ok(state),
            Some(None) => Err(Error::Shim {
                id: id.to_string(),
                reason: "the shim answered State without a state".into(),
            }),
            None => self.state_without_shim(id).await,
        }
    }

    /// Waits until the container has exited; returns its final state.
    pub async fn wait(&self, id: &str) -> Result<State, Error> {
        match self.client(id).await?.call(&Request::Wait).await? {
            Some(Some(state)) => Ok(state),
            Some(None) => Err(Error::Shim {
                id: id.to_string(),
                reason: "the shim answered Wait without a state".into(),
            }),
            None => self.state_without_shim(id).await,
        }
    }

    /// Kills what still runs and removes the container's files. Deleting an
    /// unknown container succeeds (CRI removal is idempotent).
    pub async fn delete(&self, id: &str) -> Result<(), Error> {
        check_id(id)?;
        self.settle(id).await;
        self.creations.forget(id);
        let on_disk =
            crate::blocking::run(|| self.bundle(id).exists() || self.writable_layer(id).exists());
        if !on_disk {
            return Ok(());
        }
        if let Ok(state) = self.state(id).await {
            if state.exit.is_none() {
                self.kill(id, nix::sys::signal::Signal::SIGKILL as i32, true)
                    .await?;
                let _ = tokio::time::timeout(Duration::from_secs(10), self.wait(id)).await;
            }
        }
        self.shim_finished(id).await;
        crate::blocking::run(|| self.delete_runtime_leftover(id));
        self.remove_files(id);
        Ok(())
    }

    /// An external runtime's state of `id` that its shim did not delete
    /// (the shim was killed): `<runtime> delete --force`, which also kills
    /// what is left and removes the runtime's cgroup. Failures are logged:
    /// the removal goes on (the bundle's own copy of the state goes with it).
    fn delete_runtime_leftover(&self, id: &str) {
        let bundle = self.bundle(id);
        let Ok(bytes) = std::fs::read(bundle.join(files::RUNTIME)) else {
            return;
        };
        let Ok(record) = serde_json::from_slice::<crate::shim::external::RuntimeRecord>(&bytes)
        else {
            tracing::warn!(container = id, "unreadable {}", files::RUNTIME);
            return;
        };
        if let Err(e) = record.delete_leftover(&bundle, id) {
            tracing::warn!(container = id, error = %e, "cannot delete the runtime's state of it");
        }
    }

    /// Waits (bounded) until the shim of an exited container has finished:
    /// it removes its socket last, after `runc delete` needed the bundle.
    /// A connection to it ends (end-of-file) when the shim process does, so
    /// the wait is that read, not a poll of the socket file.
    async fn shim_finished(&self, id: &str) {
        let socket = self.bundle(id).join(files::SOCKET);
        let connected = crate::blocking::run(|| {
            crate::shim::protocol::socket_address(&socket)
                .and_then(|(_dir, addr)| std::os::unix::net::UnixStream::connect(addr))
                .and_then(|s| s.set_nonblocking(true).map(|()| s))
        });
        // No socket, or a socket file with no shim behind it: finished.
        let Ok(stream) = connected.and_then(tokio::net::UnixStream::from_std) else {
            return;
        };
        let mut stream = stream;
        let mut buf = [0u8; 64];
        let ended = async {
            use tokio::io::AsyncReadExt as _;
            // The shim sends nothing unasked: the read ends at its exit.
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
        };
        if tokio::time::timeout(FINISH_TIMEOUT, ended).await.is_err() {
            tracing::warn!(
                container = id,
                "the shim did not finish within {FINISH_TIMEOUT:?}"
            );
        }
    }

    /// Removes the bundle and the writable layer through their trash
    /// directories ([`trash::discard`]): a removal does not wait for a
    /// tree of files to go.
    pub(super) fn remove_files(&self, id: &str) {
        crate::blocking::run(|| {
            trash::discard(&self.bundle(id), &self.bundles_trash, id);
            trash::discard(&self.writable_layer(id), &self.layers_trash, id);
        });
    }

    /// A client of the shim of `id`, once its creation has been answered.
    async fn client(&self, id: &str) -> Result<ShimClient, Error> {
        check_id(id)?;
        self.settle(id).await;
        let bundle = self.bundle(id);
        if !bundle.is_dir() {
            return Err(Error::NotFound { id: id.to_string() });
        }
        Ok(ShimClient::new(id, &bundle))
    }
}

/// An id must be one plain path component.
pub(super) fn check_id(id: &str) -> Result<(), Error> {
    let bad = |reason: &str| Error::InvalidId {
        id: id.to_string(),
        reason: reason.to_string(),
    };
    if id.is_empty() || id.len() > 128 {
        return Err(bad("must have 1 to 128 characters"));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || id.starts_with('.')
    {
        return Err(bad(
            "only letters, digits, '-', '_' and '.' (not leading) are allowed",
        ));
    }
    Ok(())
}

pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    // No fsync: the rename keeps a killed daemon from leaving half a file,
    // and what a power loss could cut short is needed by nothing after
    // it (the shim has read it; the container did not survive the
    // reboot, and its removal does not read it). As containerd and runc
    // write a bundle.
    std::fs::rename(&tmp, path)
}
