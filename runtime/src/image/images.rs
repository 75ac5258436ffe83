//! The image half of the runtime in one handle: the index of pulled images
//! and the puller that fills it. This is what the CRI server calls.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::pull::{Credentials, Puller, RegistryConfig};
use super::{ContentStore, ImageIndex, ImageRecord, LayerHolds, Reference};
use crate::layout::Layout;
use crate::snapshot::{Snapshotter, Usage};
use crate::store::MetaStore;

/// Pulled images, their content and snapshots.
#[derive(Debug)]
pub struct Images {
    index: Arc<ImageIndex>,
    puller: Puller,
    snapshot_root: PathBuf,
}

impl Images {
    /// Opens the image stores where `layout` puts them (content,
    /// snapshots), clearing what a crash left half-made, with records in
    /// `store`.
    pub fn open(
        store: Arc<MetaStore>,
        layout: &Layout,
        registry: RegistryConfig,
    ) -> Result<Images, crate::Error> {
        let snapshot_root = layout.snapshots();
        let content = ContentStore::open(&layout.content())?;
        let snapshots = Arc::new(Snapshotter::open(&snapshot_root)?);
        let index = Arc::new(ImageIndex::open(store, content, snapshots)?);
        let puller = Puller::new(registry)?;
        Ok(Images {
            index,
            puller,
            snapshot_root,
        })
    }

    /// Pulls `image` (any reference form; normalised first).
    pub async fn pull(
        &self,
        image: &str,
        credentials: Option<Credentials>,
    ) -> Result<ImageRecord, crate::Error> {
        let reference = Reference::parse(image)?;
        self.puller.pull(&self.index, &reference, credentials).await
    }

    /// The image named by id, id prefix, tag or digest reference, if present.
    pub fn status(&self, name_or_id: &str) -> Result<Option<ImageRecord>, crate::Error> {
        self.index.resolve(name_or_id)
    }

    /// Every image.
    pub fn list(&self) -> Vec<ImageRecord> {
        self.index.list()
    }

    /// Removes a tag, or the whole image; false when nothing matched.
    pub async fn remove(&self, name_or_id: &str) -> Result<bool, crate::Error> {
        self.index.remove(name_or_id).await
    }

    /// Bytes and inodes of the snapshot store (walked off the async threads).
    pub async fn usage(&self) -> Result<Usage, crate::Error> {
        // After the first call, from memory (no thread hand-off).
        if let Some(usage) = self.index.cached_usage() {
            return Ok(usage);
        }
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || index.usage())
            .await
            .map_err(|source| super::pull::Error::Task {
                what: "measuring the snapshot store".into(),
                source,
            })?
    }

    /// Removes snapshots and blobs no image references: what a pull that
    /// failed or crashed part-way left. Run at start, before serving.
    pub async fn collect_garbage(&self) -> Result<(), crate::Error> {
        let stats = self.index.gc().await?;
        if stats.snapshots + stats.blobs > 0 {
            tracing::info!(
                snapshots = stats.snapshots,
                blobs = stats.blobs,
                "removed unreferenced image data"
            );
        }
        Ok(())
    }

    /// The layer holds of containers (see [`LayerHolds`]).
    pub fn holds(&self) -> Arc<LayerHolds> {
        self.index.holds().clone()
    }

    /// Resolves `name_or_id` and makes `holder` keep the image's layers.
    /// `Ok(None)` when there is no such image.
    pub async fn hold(
        &self,
        holder: &str,
        name_or_id: &str,
    ) -> Result<Option<ImageRecord>, crate::Error> {
        let Some(record) = self.index.resolve(name_or_id)? else {
            return Ok(None);
        };
        self.index.hold_image(holder, &record.id).await
    }

    /// [`Self::hold`], keeping what `holder` holds already too.
    pub async fn hold_also(
        &self,
        holder: &str,
        name_or_id: &str,
    ) -> Result<Option<ImageRecord>, crate::Error> {
        let Some(record) = self.index.resolve(name_or_id)? else {
            return Ok(None);
        };
        self.index.hold_image_also(holder, &record.id).await
    }

    /// The snapshot directory of a layer, by chain id.
    pub fn snapshot_path(&self, chain_id: &super::Digest) -> PathBuf {
        self.index.snapshots().path(chain_id)
    }

    /// Where the layer snapshots live.
    pub fn snapshot_root(&self) -> &Path {
        &self.snapshot_root
    }
}
