//! The state both CRI services share.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use corten_runtime::container::{ContainerRuntime, Containers};
use corten_runtime::image::{Images, RegistryConfig};
use corten_runtime::network::Cni;
use corten_runtime::sandbox::{HostPlumbing, Pods};
use corten_runtime::store::MetaStore;
use corten_runtime::Runtime;
use tonic::Status;

use crate::config::Config;
use crate::streaming::Streaming;

/// The metadata database, under root_dir.
const META_DB: &str = "meta.redb";
/// What CNI ADD returned per pod, under root_dir: DEL must see it even
/// after a reboot (host-local keeps its leases on disk).
const CNI_CACHE: &str = "cni";

/// What every handler can reach.
#[derive(Debug)]
pub struct Cri {
    /// The effective configuration.
    pub config: Config,
    /// Pulled images.
    pub images: Arc<Images>,
    /// Pod sandboxes.
    pub pods: Arc<Pods>,
    /// The streaming server (Exec, Attach, PortForward URLs).
    pub streaming: Arc<Streaming>,
    /// Containers.
    pub containers: Containers,
    /// The lifecycle rules over pods and containers together.
    pub runtime: Runtime,
}

impl Cri {
    /// Opens the runtime's stores under the configured directories.
    pub async fn open(config: Config) -> anyhow::Result<Cri> {
        std::fs::create_dir_all(&config.root_dir)
            .with_context(|| format!("cannot create {}", config.root_dir.display()))?;
        let db = config.root_dir.join(META_DB);
        let store = Arc::new(
            MetaStore::open(&db).with_context(|| format!("cannot open {}", db.display()))?,
        );
        let images = Arc::new(
            Images::open(store.clone(), &config.root_dir, registry_config(&config))
                .context("cannot open the image store")?,
        );
        let shim = shim_binary(&config)?;
        let cni = Cni::new(
            &config.cni.conf_dir,
            config.cni.bin_dirs.clone(),
            config.root_dir.join(CNI_CACHE),
        );
        let pods = Arc::new(
            Pods::open(
                store.clone(),
                &config.state_dir,
                Arc::new(HostPlumbing::new(&shim, cni)),
            )
            .await
            .context("cannot open the pod store")?,
        );
        let runtime = ContainerRuntime::new(&config.state_dir, &config.root_dir, &shim);
        let containers = Containers::open(store, Arc::new(runtime.clone()), images.holds())
            .context("cannot open the container records")?;
        let s = &config.streaming;
        let streaming = Streaming::start(
            &s.address,
            s.port,
            Duration::from_secs(s.idle_timeout_seconds),
            runtime.clone(),
        )
        .await?;
        let runtime = Runtime::new(images.clone(), pods.clone(), containers.clone());
        Ok(Cri {
            config,
            images,
            pods,
            streaming,
            containers,
            runtime,
        })
    }
}

/// The configured shim, or the `corten-shim` beside this executable. A
/// missing binary is reported now and again by each pod or container
/// creation, which names it; images work without it.
fn shim_binary(config: &Config) -> anyhow::Result<PathBuf> {
    let shim = if config.shim_path.as_os_str().is_empty() {
        std::env::current_exe()
            .context("cannot find the cortend executable")?
            .with_file_name("corten-shim")
    } else {
        config.shim_path.clone()
    };
    if !shim.is_file() {
        tracing::warn!(shim = %shim.display(), "corten-shim not found: pods and containers cannot run (set shim_path)");
    }
    Ok(shim)
}

fn registry_config(config: &Config) -> RegistryConfig {
    let r = &config.registry;
    RegistryConfig {
        mirrors: r.mirrors.clone(),
        mirrors_final: r.mirrors_final.clone(),
        insecure: r.insecure.clone(),
        ca_files: r.ca_files.clone(),
        auth_file: Some(r.auth_file.clone()).filter(|p| !p.as_os_str().is_empty()),
    }
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
