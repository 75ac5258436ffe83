//! Image records: what the runtime knows of one pulled image.

use serde::{Deserialize, Serialize};

use super::Digest;
use crate::ids::ImageId;

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Digest of the layer blob as the registry serves it (compressed).
    pub digest: Digest,
    /// The layer's media type from the manifest.
    pub media_type: String,
    /// Size of the layer blob in bytes.
    pub size: u64,
    /// Digest of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
    /// Chain id of the stack up to and including this layer: its snapshot.
    pub chain_id: Digest,
}

/// A pulled image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The config blob digest (what CRI calls the image id).
    pub id: ImageId,
    /// Full normalised tags: `docker.io/library/busybox:latest`.
    pub repo_tags: Vec<String>,
    /// `docker.io/library/busybox@sha256:<manifest or index digest as pulled>`.
    pub repo_digests: Vec<String>,
    /// Config size plus the sum of compressed layer sizes.
    pub size: u64,
    /// The platform manifest actually used.
    pub manifest_digest: Digest,
    /// The image config JSON as pulled (OCI image-spec config).
    pub config: serde_json::Value,
    /// The layers, bottom first.
    pub layers: Vec<LayerRecord>,
    /// When the image was pulled, in unix nanoseconds.
    pub pulled_at_ns: i64,
}

impl ImageRecord {
    /// The user the image runs as (`config.User`), if set and non-empty.
    pub fn user(&self) -> Option<&str> {
        self.config
            .get("config")
            .and_then(|c| c.get("User"))
            .and_then(serde_json::Value::as_str)
            .filter(|u| !u.is_empty())
    }

    /// Whether any name (tag or digest reference) still points to the image.
    pub(super) fn is_named(&self) -> bool {
        !self.repo_tags.is_empty() || !self.repo_digests.is_empty()
    }

    /// Adds the names of `other` that this record lacks, keeping order.
    pub(super) fn merge_names(&mut self, other: &ImageRecord) {
        for tag in &other.repo_tags {
            if !self.repo_tags.contains(tag) {
                self.repo_tags.push(tag.clone());
            }
        }
        for digest in &other.repo_digests {
            if !self.repo_digests.contains(digest) {
                self.repo_digests.push(digest.clone());
            }
        }
    }

    /// The snapshots this image needs.
    pub(super) fn chain_ids(&self) -> impl Iterator<Item = &Digest> {
        self.layers.iter().map(|l| &l.chain_id)
    }

    /// The content blobs this image keeps alive: its config, its manifest,
    /// and the manifests or indexes its digest references name.
    pub(super) fn blobs(&self) -> impl Iterator<Item = Digest> + '_ {
        let named = self
            .repo_digests
            .iter()
            .filter_map(|r| r.rsplit_once('@'))
            .filter_map(|(_, d)| Digest::parse(d).ok());
        [self.id.digest().clone(), self.manifest_digest.clone()]
            .into_iter()
            .chain(named)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(config: serde_json::Value) -> ImageRecord {
        ImageRecord {
            id: Digest::sha256_of(b"config").into(),
            repo_tags: vec!["docker.io/library/busybox:latest".into()],
            repo_digests: vec![format!(
                "docker.io/library/busybox@{}",
                Digest::sha256_of(b"index")
            )],
            size: 10,
            manifest_digest: Digest::sha256_of(b"manifest"),
            config,
            layers: vec![LayerRecord {
                digest: Digest::sha256_of(b"gz"),
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                size: 3,
                diff_id: Digest::sha256_of(b"tar"),
                chain_id: Digest::sha256_of(b"tar"),
            }],
            pulled_at_ns: 1,
        }
    }

    #[test]
    fn user_is_config_user_when_set() {
        let r = record(serde_json::json!({"config": {"User": "1000:1000"}}));
        assert_eq!(r.user(), Some("1000:1000"));
        assert_eq!(
            record(serde_json::json!({"config": {"User": ""}})).user(),
            None
        );
        assert_eq!(record(serde_json::json!({"config": {}})).user(), None);
        assert_eq!(record(serde_json::json!({})).user(), None);
    }

    #[test]
    fn serde_round_trip() {
        let r = record(serde_json::json!({"config": {"Env": ["A=1"]}}));
        let json = serde_json::to_vec(&r).expect("encode");
        assert_eq!(
            serde_json::from_slice::<ImageRecord>(&json).expect("decode"),
            r
        );
    }

    #[test]
    fn blobs_include_config_manifest_and_named_digests() {
        let r = record(serde_json::json!({}));
        let blobs: Vec<Digest> = r.blobs().collect();
        assert_eq!(
            blobs,
            vec![
                Digest::sha256_of(b"config"),
                Digest::sha256_of(b"manifest"),
                Digest::sha256_of(b"index"),
            ]
        );
    }
}
