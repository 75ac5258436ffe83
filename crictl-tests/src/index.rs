//! Multi-platform images: an OCI image index or a Docker manifest list.

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::images::{Image, ImageBuilder};
use crate::oci::{Blob, Compression, ManifestFormat};
use crate::registry::Registry;

/// A multi-platform image: an OCI image index or a Docker manifest list.
#[derive(Debug, Clone)]
pub struct ImageIndex {
    pub index: Blob,
    pub images: Vec<Image>,
}

impl ImageIndex {
    /// An index over `images`, each entry's platform taken from its config.
    pub fn new(images: Vec<Image>, format: ManifestFormat) -> Result<Self> {
        let mut entries = Vec::with_capacity(images.len());
        for img in &images {
            if img.manifest.media_type != format.manifest_media_type() {
                bail!(
                    "index of {:?} cannot hold a {} manifest",
                    format,
                    img.manifest.media_type
                );
            }
            let mut platform = json!({ "architecture": img.architecture, "os": "linux" });
            if let (Some(v), Some(p)) = (&img.variant, platform.as_object_mut()) {
                p.insert("variant".into(), json!(v));
            }
            let mut d = img.manifest.descriptor();
            if let Some(obj) = d.as_object_mut() {
                obj.insert("platform".into(), platform);
            }
            entries.push(d);
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": format.index_media_type(),
            "manifests": entries,
        });
        let index = Blob::new(
            format.index_media_type(),
            serde_json::to_vec(&index).context("index JSON")?,
        );
        Ok(ImageIndex { index, images })
    }

    /// Busybox for linux/amd64 and linux/arm64/v8. Both carry the same
    /// (amd64) busybox bytes; the configs differ in `architecture` and in
    /// the label `org.corten.test.arch`, so a test can tell which was chosen.
    pub fn busybox_multi_arch(compression: Compression, format: ManifestFormat) -> Result<Self> {
        let amd64 = ImageBuilder::busybox()
            .format(format)
            .label("org.corten.test.arch", "amd64")
            .build(compression)?;
        let arm64 = ImageBuilder::busybox()
            .format(format)
            .platform("arm64", Some("v8"))
            .label("org.corten.test.arch", "arm64")
            .build(compression)?;
        Self::new(vec![amd64, arm64], format)
    }

    pub fn digest(&self) -> &str {
        &self.index.digest
    }

    /// The image of `architecture`, if the index has one.
    pub fn image(&self, architecture: &str) -> Option<&Image> {
        self.images.iter().find(|i| i.architecture == architecture)
    }

    /// Pushes every image by digest, then the index as `repo:tag`;
    /// returns the index digest.
    pub fn push(&self, registry: &Registry, repo: &str, tag: &str) -> Result<String> {
        let client = registry.client()?;
        for img in &self.images {
            img.push_with(&client, repo, img.digest())?;
        }
        client.put_manifest(repo, tag, &self.index.media_type, &self.index.bytes)
    }
}
