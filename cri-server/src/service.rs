//! The state both CRI services share.

use std::sync::Arc;

use anyhow::Context as _;
use corten_runtime::image::{Images, RegistryConfig};
use corten_runtime::store::MetaStore;

use crate::config::Config;

/// The metadata database, under root_dir.
const META_DB: &str = "meta.redb";

/// What every handler can reach.
#[derive(Debug)]
pub struct Cri {
    /// The effective configuration.
    pub config: Config,
    /// Pulled images.
    pub images: Images,
}

impl Cri {
    /// Opens the runtime's stores under the configured directories.
    pub fn open(config: Config) -> anyhow::Result<Cri> {
        std::fs::create_dir_all(&config.root_dir)
            .with_context(|| format!("cannot create {}", config.root_dir.display()))?;
        let db = config.root_dir.join(META_DB);
        let store = Arc::new(
            MetaStore::open(&db).with_context(|| format!("cannot open {}", db.display()))?,
        );
        let images = Images::open(store, &config.root_dir, registry_config(&config))
            .context("cannot open the image store")?;
        Ok(Cri { config, images })
    }
}

fn registry_config(config: &Config) -> RegistryConfig {
    let r = &config.registry;
    RegistryConfig {
        mirrors: r.mirrors.clone(),
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
}
