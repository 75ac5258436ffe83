//! Test images: OCI (or Docker schema2) config + manifest over layers from
//! [`crate::layers`], multi-platform indexes, corrupt variants, and push.
//!
//! ```no_run
//! # use crictl_tests::{Compression, ImageBuilder, Registry, RegistryOptions};
//! # fn main() -> anyhow::Result<()> {
//! let registry = Registry::start(RegistryOptions::plain())?;
//! let img = ImageBuilder::busybox().user("1000").build(Compression::Gzip)?;
//! let digest = img.push(&registry, "library/busybox", "latest")?;
//! # let _ = digest; Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::client::RegistryClient;
use crate::layers::{self, HostileLayer, LayerBuilder};
use crate::oci::{sha256_digest, Blob, Compression, ManifestFormat};
use crate::registry::Registry;

#[derive(Debug, Clone)]
enum LayerSource {
    Busybox,
    Tar(Vec<u8>),
}

/// Describes an image; [`ImageBuilder::build`] makes its bytes.
#[derive(Debug, Clone)]
pub struct ImageBuilder {
    busybox: PathBuf,
    layers: Vec<LayerSource>,
    architecture: String,
    variant: Option<String>,
    env: Vec<String>,
    cmd: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    user: Option<String>,
    workdir: Option<String>,
    stop_signal: Option<String>,
    labels: BTreeMap<String, String>,
    format: ManifestFormat,
    wrong_diff_id: Option<usize>,
}

impl Default for ImageBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageBuilder {
    /// No layers; linux/amd64, `PATH` set, `Cmd ["sh"]`, OCI media types.
    pub fn new() -> Self {
        ImageBuilder {
            busybox: PathBuf::from(layers::BUSYBOX),
            layers: Vec::new(),
            architecture: "amd64".into(),
            variant: None,
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            cmd: Some(vec!["sh".into()]),
            entrypoint: None,
            user: None,
            workdir: None,
            stop_signal: None,
            labels: BTreeMap::new(),
            format: ManifestFormat::Oci,
            wrong_diff_id: None,
        }
    }

    /// One layer: the busybox root filesystem ([`layers::busybox_rootfs`]).
    pub fn busybox() -> Self {
        Self::new().busybox_layer()
    }

    /// Busybox, then the two layers of [`layers::whiteout_layers`].
    pub fn busybox_with_whiteouts() -> Result<Self> {
        let (lower, upper) = layers::whiteout_layers()?;
        Ok(Self::busybox().layer(lower).layer(upper))
    }

    /// Busybox, then one hostile layer.
    pub fn hostile(kind: HostileLayer) -> Result<Self> {
        Ok(Self::busybox().layer(kind.tar()?))
    }

    /// Busybox, then `layers` layers of reproducible incompressible bytes,
    /// `total_bytes` in all (the pull benchmark uses >= 50 MB).
    pub fn big(total_bytes: usize, layer_count: usize) -> Result<Self> {
        if layer_count == 0 || total_bytes < layer_count {
            bail!("big image: {total_bytes} bytes cannot fill {layer_count} layers");
        }
        let mut b = Self::busybox();
        let each = total_bytes / layer_count;
        for i in 0..layer_count {
            let size = if i + 1 == layer_count {
                total_bytes - each * i
            } else {
                each
            };
            b = b.layer(layers::random_layer(i as u64 + 1, size)?);
        }
        Ok(b)
    }

    /// Take busybox from another path than `/bin/busybox`.
    pub fn busybox_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.busybox = path.into();
        self
    }

    pub fn busybox_layer(mut self) -> Self {
        self.layers.push(LayerSource::Busybox);
        self
    }

    /// Appends an uncompressed layer tar.
    pub fn layer(mut self, tar: Vec<u8>) -> Self {
        self.layers.push(LayerSource::Tar(tar));
        self
    }

    /// Appends a small layer with `/etc/corten-marker` holding `text`, so
    /// that images built alike still have a layer of their own.
    pub fn marker(self, text: &str) -> Result<Self> {
        let mut l = LayerBuilder::new();
        l.dir("etc", 0o755)?;
        l.file("etc/corten-marker", 0o644, text.as_bytes())?;
        Ok(self.layer(l.finish()?))
    }

    /// `architecture` and optional `variant` of the config (default amd64).
    pub fn platform(mut self, architecture: &str, variant: Option<&str>) -> Self {
        self.architecture = architecture.into();
        self.variant = variant.map(String::from);
        self
    }

    pub fn env(mut self, kv: &str) -> Self {
        self.env.push(kv.into());
        self
    }

    pub fn cmd(mut self, cmd: &[&str]) -> Self {
        self.cmd = Some(cmd.iter().map(|s| s.to_string()).collect());
        self
    }

    pub fn entrypoint(mut self, ep: &[&str]) -> Self {
        self.entrypoint = Some(ep.iter().map(|s| s.to_string()).collect());
        self
    }

    pub fn user(mut self, user: &str) -> Self {
        self.user = Some(user.into());
        self
    }

    pub fn workdir(mut self, dir: &str) -> Self {
        self.workdir = Some(dir.into());
        self
    }

    pub fn stop_signal(mut self, sig: &str) -> Self {
        self.stop_signal = Some(sig.into());
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    pub fn format(mut self, format: ManifestFormat) -> Self {
        self.format = format;
        self
    }

    /// Writes a wrong `rootfs.diff_ids[layer]` into the config (corrupt
    /// image: the layer's uncompressed digest will not match).
    pub fn wrong_diff_id(mut self, layer: usize) -> Self {
        self.wrong_diff_id = Some(layer);
        self
    }

    pub fn build(&self, compression: Compression) -> Result<Image> {
        let layer_type = compression.layer_media_type(self.format)?;
        let mut tars = Vec::with_capacity(self.layers.len());
        for src in &self.layers {
            tars.push(match src {
                LayerSource::Busybox => layers::busybox_rootfs(&self.busybox)?,
                LayerSource::Tar(t) => t.clone(),
            });
        }
        let mut diff_ids: Vec<String> = tars.iter().map(|t| sha256_digest(t)).collect();
        if let Some(i) = self.wrong_diff_id {
            let slot = diff_ids
                .get_mut(i)
                .with_context(|| format!("wrong_diff_id({i}): image has no layer {i}"))?;
            *slot = sha256_digest(format!("not the diff id of layer {i}").as_bytes());
        }
        let mut layer_blobs = Vec::with_capacity(tars.len());
        for t in &tars {
            layer_blobs.push(Blob::new(layer_type, compression.compress(t)?));
        }
        let config = Blob::new(
            self.format.config_media_type(),
            serde_json::to_vec(&self.config_json(&diff_ids)).context("config JSON")?,
        );
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": self.format.manifest_media_type(),
            "config": config.descriptor(),
            "layers": layer_blobs.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        });
        let manifest = Blob::new(
            self.format.manifest_media_type(),
            serde_json::to_vec(&manifest).context("manifest JSON")?,
        );
        Ok(Image {
            manifest,
            config,
            layers: layer_blobs,
            layer_tars: tars,
            diff_ids,
            architecture: self.architecture.clone(),
            variant: self.variant.clone(),
        })
    }

    fn config_json(&self, diff_ids: &[String]) -> Value {
        let mut c = serde_json::Map::new();
        c.insert("Env".into(), json!(self.env));
        let optional = [
            ("Cmd", self.cmd.as_ref().map(|v| json!(v))),
            ("Entrypoint", self.entrypoint.as_ref().map(|v| json!(v))),
            ("User", self.user.as_ref().map(|v| json!(v))),
            ("WorkingDir", self.workdir.as_ref().map(|v| json!(v))),
            ("StopSignal", self.stop_signal.as_ref().map(|v| json!(v))),
        ];
        for (k, v) in optional {
            if let Some(v) = v {
                c.insert(k.into(), v);
            }
        }
        if !self.labels.is_empty() {
            c.insert("Labels".into(), json!(self.labels));
        }
        let mut cfg = json!({
            "created": "1970-01-01T00:00:00Z",
            "architecture": self.architecture,
            "os": "linux",
            "config": c,
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
            "history": diff_ids.iter().map(|_| json!({"created_by": "corten crictl-tests"})).collect::<Vec<_>>(),
        });
        if let (Some(v), Some(obj)) = (&self.variant, cfg.as_object_mut()) {
            obj.insert("variant".into(), json!(v));
        }
        cfg
    }
}

/// A built image: manifest, config and compressed layers, with the
/// uncompressed layer tars kept for checks.
#[derive(Debug, Clone)]
pub struct Image {
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Vec<Blob>,
    pub layer_tars: Vec<Vec<u8>>,
    /// As written in the config (a wrong one if asked for).
    pub diff_ids: Vec<String>,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Image {
    /// The manifest digest, as a registry and CRI report it.
    pub fn digest(&self) -> &str {
        &self.manifest.digest
    }

    /// Compressed bytes of all layers.
    pub fn compressed_size(&self) -> usize {
        self.layers.iter().map(|b| b.bytes.len()).sum()
    }

    /// Pushes config, layers and manifest as `repo:tag`; returns the
    /// manifest digest.
    pub fn push(&self, registry: &Registry, repo: &str, tag: &str) -> Result<String> {
        self.push_with(&registry.client()?, repo, tag)
    }

    /// As [`Image::push`], with a given client; `reference` is a tag or
    /// this image's digest.
    pub fn push_with(
        &self,
        client: &RegistryClient,
        repo: &str,
        reference: &str,
    ) -> Result<String> {
        for blob in std::iter::once(&self.config).chain(&self.layers) {
            client
                .push_blob(repo, &blob.digest, &blob.bytes)
                .with_context(|| format!("push {repo}:{reference}"))?;
        }
        client.put_manifest(
            repo,
            reference,
            &self.manifest.media_type,
            &self.manifest.bytes,
        )
    }

    /// Pushes the image, then flips bytes of layer `layer` in the
    /// registry's storage (same length): the registry serves bytes that do
    /// not match the digest the manifest names. Blobs are shared by all
    /// repos of a registry, so give such an image a layer of its own
    /// ([`ImageBuilder::marker`]). Returns the manifest digest.
    pub fn push_corrupt_layer(
        &self,
        registry: &Registry,
        repo: &str,
        tag: &str,
        layer: usize,
    ) -> Result<String> {
        let digest = self.push(registry, repo, tag)?;
        let blob = self
            .layers
            .get(layer)
            .with_context(|| format!("image has no layer {layer}"))?;
        let mut bytes = blob.bytes.clone();
        let mid = bytes.len() / 2;
        match bytes.get_mut(mid) {
            Some(b) => *b ^= 0xff,
            None => bail!("layer {layer} is empty"),
        }
        registry.overwrite_blob(&blob.digest, &bytes)?;
        Ok(digest)
    }
}
