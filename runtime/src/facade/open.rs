//! [`Runtime::open`]: the layout on disk, the metadata store, the stores
//! over it, and the reconciliation with what survived a restart.

use std::path::PathBuf;
use std::sync::Arc;

use super::{Error, Runtime};
use crate::cgroups::CpuRates;
use crate::container::{ContainerRuntime, Containers, ShimBackend};
use crate::image::{Images, RegistryConfig};
use crate::layout::Layout;
use crate::locks::KeyedLocks;
use crate::network::Cni;
use crate::sandbox::{HostPlumbing, PodPlumbing, Pods};
use crate::store::MetaStore;

/// What the runtime is opened with: plain settings, no wire types.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    /// Persistent state: metadata, image content and snapshots, writable
    /// layers, CNI results.
    pub root_dir: PathBuf,
    /// State that does not survive a reboot: bundles, shim sockets, pods.
    pub state_dir: PathBuf,
    /// The `corten-shim` binary (container supervisor, namespace pinner,
    /// pod init, exec helper).
    pub shim: PathBuf,
    /// Registry access: mirrors, plain-HTTP registries, CAs, credentials.
    pub registry: RegistryConfig,
    /// Where the CNI network configuration is looked for.
    pub cni_conf_dir: PathBuf,
    /// Where CNI plugin binaries are looked for, in order.
    pub cni_bin_dirs: Vec<PathBuf>,
    /// The runtime handlers (RuntimeClass) pods may name, beside the
    /// built-in core's "".
    pub handlers: crate::container::Handlers,
}

/// The seams below the facade, for tests: each `None` is the real one
/// built from the [`RuntimeConfig`].
#[derive(Debug, Default)]
pub struct Seams {
    /// What runs containers' shims (real: a [`ContainerRuntime`]).
    pub shims: Option<Arc<dyn ShimBackend>>,
    /// What makes pods' side effects (real: a [`HostPlumbing`]).
    pub plumbing: Option<Arc<dyn PodPlumbing>>,
}

impl Runtime {
    /// Opens the runtime: creates the directories of its [`Layout`], opens
    /// the metadata store and the image, pod and container stores over it,
    /// then reconciles them with what is on disk and what the shims say
    /// (running containers stay running, exits are recorded, half-made
    /// objects cleaned), and collects image data nothing refers to.
    pub async fn open(config: RuntimeConfig) -> Result<Runtime, crate::Error> {
        Runtime::open_with(config, Seams::default()).await
    }

    /// [`Self::open`] with some seams replaced.
    pub async fn open_with(config: RuntimeConfig, seams: Seams) -> Result<Runtime, crate::Error> {
        let layout = Layout::new(&config.root_dir, &config.state_dir);
        // Directories, the database file, the content store's cleanup and
        // the cgroup detection are blocking work.
        let opened = {
            let layout = layout.clone();
            tokio::task::spawn_blocking(move || open_blocking(&layout, config, seams))
                .await
                .map_err(|source| Error::Task {
                    what: "opening the runtime's stores",
                    source,
                })??
        };
        let Opened {
            store,
            images,
            plumbing,
            shims,
            containers,
        } = opened;
        let pods = Pods::open(store, layout.state_dir(), plumbing.clone()).await?;
        // Before the image GC: it must know which layers containers hold.
        containers.recover().await?;
        images.collect_garbage().await?;
        Ok(Runtime {
            layout,
            images,
            pods,
            containers,
            plumbing,
            shims,
            gates: KeyedLocks::default(),
            pod_cpu: CpuRates::default(),
        })
    }
}

/// The stores opened off the async threads.
struct Opened {
    store: Arc<MetaStore>,
    images: Images,
    plumbing: Arc<dyn PodPlumbing>,
    shims: ContainerRuntime,
    containers: Containers,
}

fn open_blocking(
    layout: &Layout,
    config: RuntimeConfig,
    seams: Seams,
) -> Result<Opened, crate::Error> {
    for dir in layout.dirs() {
        std::fs::create_dir_all(&dir).map_err(|source| Error::Layout { path: dir, source })?;
    }
    if !config.shim.is_file() {
        tracing::warn!(shim = %config.shim.display(), "corten-shim not found: pods and containers cannot run");
    }
    let store = Arc::new(MetaStore::open(&layout.meta_db())?);
    let images = Images::open(store.clone(), layout, config.registry)?;
    let plumbing = match seams.plumbing {
        Some(p) => p,
        None => {
            let cni = Cni::new(config.cni_conf_dir, config.cni_bin_dirs, layout.cni_cache());
            Arc::new(HostPlumbing::new(&config.shim, cni))
        }
    };
    let shims = ContainerRuntime::new(layout.state_dir(), layout.root_dir(), &config.shim);
    shims.clear_trash();
    let backend = match seams.shims {
        Some(b) => b,
        None => Arc::new(shims.clone()),
    };
    let containers =
        Containers::open_with_handlers(store.clone(), backend, images.holds(), config.handlers)?;
    Ok(Opened {
        store,
        images,
        plumbing,
        shims,
        containers,
    })
}
