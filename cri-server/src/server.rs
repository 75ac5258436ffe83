//! The daemon's life: take the state-dir lock, bind the socket, serve CRI,
//! and on SIGTERM/SIGINT drain and leave (containers keep running).

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use corten_cri_api::v1::image_service_server::ImageServiceServer;
use corten_cri_api::v1::runtime_service_server::RuntimeServiceServer;
use nix::fcntl::{Flock, FlockArg};
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio_stream::wrappers::UnixListenerStream;

use crate::config::Config;
use crate::rpc_log::RpcLogLayer;
use crate::service::{Cri, CriService};

/// The socket's mode: root and the socket's group only.
const SOCKET_MODE: u32 = 0o660;
/// The lock file, in the state dir, that makes one daemon per state dir.
const LOCK_FILE: &str = "cortend.lock";

/// Runs the daemon until a shutdown signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    for dir in [&config.root_dir, &config.state_dir] {
        create_dir(dir)?;
    }
    let _lock = lock_state_dir(&config.state_dir)?;
    let mut shutdown = ShutdownSignal::new()?;
    let socket = config.listen.clone();
    let grace = Duration::from_secs(config.shutdown_grace_seconds);
    let listener = bind_socket(&socket)?;
    let bound_inode = std::fs::metadata(&socket).map(|m| m.ino()).ok();

    let cri = Cri::open(config).await?;
    // Start-up code (config, stores, recovery) is cold from here on: hand
    // its pages back; what serving runs faults back in as it is used.
    if let Err(e) = corten_runtime::linux::shed_code_pages() {
        tracing::debug!(error = %e, "code pages kept");
    }
    let service = CriService::new(cri);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .layer(RpcLogLayer)
        .add_service(RuntimeServiceServer::new(service.clone()))
        .add_service(ImageServiceServer::new(service))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
            let _ = stop_rx.await;
        });
    tokio::pin!(server);
    tracing::info!(socket = %socket.display(), version = corten_runtime::VERSION, "cortend ready");

    let served = tokio::select! {
        result = &mut server => result.context("CRI server failed"),
        name = shutdown.recv() => {
            tracing::info!(signal = name, grace_seconds = grace.as_secs(), "shutting down: draining in-flight calls");
            let _ = stop_tx.send(());
            match tokio::time::timeout(grace, &mut server).await {
                Ok(result) => result.context("CRI server failed while draining"),
                Err(_) => {
                    tracing::warn!("calls still running after the grace period; leaving them");
                    Ok(())
                }
            }
        }
    };
    remove_socket_if_ours(&socket, bound_inode);
    tracing::info!("cortend stopped");
    served
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Takes the exclusive lock of the state dir, or says who holds it.
fn lock_state_dir(state_dir: &Path) -> anyhow::Result<Flock<File>> {
    let path = state_dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open lock file {}", path.display()))?;
    let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            bail!(
                "another cortend (pid {}) is running on state dir {} (lock {})",
                holder.trim(),
                state_dir.display(),
                path.display()
            );
        }
        Err((_, errno)) => bail!("cannot lock {}: {errno}", path.display()),
    };
    lock.set_len(0)
        .and_then(|_| lock.rewind())
        .and_then(|_| writeln!(lock, "{}", std::process::id()))
        .with_context(|| format!("cannot write lock file {}", path.display()))?;
    Ok(lock)
}

/// Binds the CRI socket. A socket file left by a crashed daemon is replaced;
/// one that still answers belongs to a live daemon and is left alone.
fn bind_socket(path: &PathBuf) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create socket directory {}", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                bail!("socket {} is in use by another process", path.display());
            }
            tracing::info!(socket = %path.display(), "replacing stale socket");
            std::fs::remove_file(path)
                .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
        }
        Ok(_) => bail!(
            "{} exists and is not a socket; refusing to replace it",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    Ok(listener)
}

/// Removes the socket unless another daemon has replaced it meanwhile.
fn remove_socket_if_ours(path: &Path, bound_inode: Option<u64>) {
    let current = std::fs::symlink_metadata(path).map(|m| m.ino()).ok();
    if current.is_some() && current == bound_inode {
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!(socket = %path.display(), error = %e, "cannot remove socket");
        }
    }
}

/// SIGTERM or SIGINT, whichever comes first.
struct ShutdownSignal {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    fn new() -> anyhow::Result<Self> {
        Ok(ShutdownSignal {
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
