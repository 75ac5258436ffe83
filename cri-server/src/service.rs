//! The state both CRI services share.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use corten_runtime::container::OciHandler;
use corten_runtime::image::RegistryConfig;
use corten_runtime::{Runtime, RuntimeConfig};
use tonic::Status;

use crate::config::Config;
use crate::handlers::Handler;
use crate::streaming::Streaming;

/// What every handler can reach.
#[derive(Debug)]
pub struct Cri {
    /// The effective configuration.
    pub config: Config,
    /// The streaming server (Exec, Attach, PortForward URLs).
    pub streaming: Arc<Streaming>,
    /// Pods, containers and images, and the rules over them together.
    pub runtime: Runtime,
    /// The runtime handlers, the built-in core "" first, with their
    /// features (probed at start).
    pub handlers: Vec<Handler>,
}

impl Cri {
    /// The runtime handler named `name` ("" is the built-in core).
    pub fn handler(&self, name: &str) -> Option<&Handler> {
        self.handlers.iter().find(|h| h.name == name)
    }

    /// Opens the runtime (which reconciles itself with what survived a
    /// restart) and starts the streaming server.
    pub async fn open(config: Config) -> anyhow::Result<Cri> {
        let handlers = crate::handlers::probe_all(&config).await?;
        let runtime = Runtime::open(runtime_config(&config)?)
            .await
            .context("cannot open the runtime")?;
        let s = &config.streaming;
        let streaming = Streaming::start(
            &s.address,
            s.port,
            Duration::from_secs(s.idle_timeout_seconds),
            runtime.shims().clone(),
        )
        .await?;
        Ok(Cri {
            config,
            streaming,
            runtime,
            handlers,
        })
    }
}

/// The runtime's part of the daemon's configuration.
fn runtime_config(config: &Config) -> anyhow::Result<RuntimeConfig> {
    let r = &config.registry;
    Ok(RuntimeConfig {
        root_dir: config.root_dir.clone(),
        state_dir: config.state_dir.clone(),
        shim: shim_binary(config)?,
        registry: RegistryConfig {
            mirrors: r.mirrors.clone(),
            mirrors_final: r.mirrors_final.clone(),
            insecure: r.insecure.clone(),
            ca_files: r.ca_files.clone(),
            auth_file: Some(r.auth_file.clone()).filter(|p| !p.as_os_str().is_empty()),
        },
        cni_conf_dir: config.cni.conf_dir.clone(),
        cni_bin_dirs: config.cni.bin_dirs.clone(),
        handlers: config
            .runtimes
            .iter()
            .map(|(name, h)| {
                let handler = OciHandler {
                    binary: h.path.clone(),
                    root: Some(h.root.clone()).filter(|r| !r.as_os_str().is_empty()),
                    pod_annotations: h.pod_annotations.clone(),
                };
                (name.clone(), handler)
            })
            .collect(),
    })
}

/// The configured shim, or the `corten-shim` beside this executable. A
/// missing binary is reported by the runtime now and again by each pod or
/// container creation, which names it; images work without it.
fn shim_binary(config: &Config) -> anyhow::Result<PathBuf> {
    if !config.shim_path.as_os_str().is_empty() {
        return Ok(config.shim_path.clone());
    }
    Ok(std::env::current_exe()
        .context("cannot find the cortend executable")?
        .with_file_name("corten-shim"))
}

/// The tonic service object: a cheap handle on [`Cri`], one for each of
/// `RuntimeService` and `ImageService`.
#[derive(Debug, Clone)]
pub struct CriService {
    pub(crate) state: Arc<Cri>,
}

impl CriService {
    /// Wraps the shared state.
    pub fn new(cri: Cri) -> Self {
        CriService {
            state: Arc::new(cri),
        }
    }

    /// Runs a mutating RPC on a task of its own, to its end. tonic drops a
    /// handler's future when its client goes away (a kubelet timeout, a
    /// killed crictl); dropped between two steps, a creation would leave a
    /// shim and a cgroup with no record. On its own task the work finishes
    /// and is recorded (or undone) whoever still listens, and a retry finds
    /// it, as CRI-O keeps work that outlives kubelet's timeout.
    pub(crate) async fn to_completion<T, F, Fut>(
        &self,
        rpc: F,
    ) -> Result<tonic::Response<T>, Status>
    where
        F: FnOnce(Arc<Cri>) -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>> + Send + 'static,
        T: Send + 'static,
    {
        let work = tokio::spawn(rpc(self.state.clone()));
        match work.await {
            Ok(result) => result.map(tonic::Response::new),
            Err(e) => Err(Status::internal(format!("the request's task failed: {e}"))),
        }
    }
}
