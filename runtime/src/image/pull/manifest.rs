//! Manifests, indexes and platform selection (OCI image spec and Docker
//! v2 schema 2, which share their shape).

use serde::Deserialize;

use super::Error;
use crate::image::Digest;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// What we ask a registry for, in order of preference.
pub const ACCEPTED: &[&str] = &[OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

/// A content descriptor.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

/// The platform of an index entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// A fetched manifest document: an index or an image manifest.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

/// A parsed manifest document.
#[derive(Debug)]
pub enum Manifest {
    /// An OCI index or Docker manifest list.
    Index(Vec<Descriptor>),
    /// A single-platform image manifest.
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
}

/// Parses a manifest document; `reference` names it in errors.
pub fn parse(reference: &str, bytes: &[u8]) -> Result<Manifest, Error> {
    let bad = |reason: String| Error::BadManifest {
        reference: reference.to_string(),
        reason,
    };
    let doc: Document = serde_json::from_slice(bytes).map_err(|e| Error::ManifestUnreadable {
        reference: reference.to_string(),
        source: e.into(),
    })?;
    match (doc.manifests, doc.config, doc.layers) {
        (Some(manifests), None, _) => Ok(Manifest::Index(manifests)),
        (None, Some(config), layers) => {
            let layers = layers.unwrap_or_default();
            if layers.is_empty() {
                return Err(bad("the image manifest has no layers".into()));
            }
            Ok(Manifest::Image { config, layers })
        }
        _ => Err(bad(format!(
            "unsupported manifest (media type {:?}); schema 1 and others are not pulled",
            doc.media_type.unwrap_or_default()
        ))),
    }
}

/// The node's platform in OCI terms.
pub fn node_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    Platform {
        architecture: architecture.to_string(),
        os: "linux".to_string(),
        variant: match architecture {
            "arm64" => Some("v8".to_string()),
            _ => None,
        },
    }
}

/// Chooses the entry of an index for `node`: same OS and architecture; for
/// the variant, an exact match first, then an entry without a variant,
/// then (amd64 only) the baseline `v1`.
pub fn select<'a>(
    reference: &str,
    entries: &'a [Descriptor],
    node: &Platform,
) -> Result<&'a Descriptor, Error> {
    let candidates: Vec<&Descriptor> = entries
        .iter()
        .filter(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == node.os && p.architecture == node.architecture)
        })
        .collect();
    let variant = |d: &Descriptor| d.platform.as_ref().and_then(|p| p.variant.clone());
    candidates
        .iter()
        .find(|d| variant(d) == node.variant)
        .or_else(|| candidates.iter().find(|d| variant(d).is_none()))
        .or_else(|| {
            candidates
                .iter()
                .find(|d| node.architecture == "amd64" && variant(d).as_deref() == Some("v1"))
        })
        .copied()
        .ok_or_else(|| Error::NoMatchingPlatform {
            reference: reference.to_string(),
            platform: format!("{}/{}", node.os, node.architecture),
            available: entries
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .map(|p| match &p.variant {
                    Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                    None => format!("{}/{}", p.os, p.architecture),
                })
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Parses a descriptor's digest, naming the reference on failure.
pub fn digest_of(reference: &str, d: &Descriptor) -> Result<Digest, Error> {
    Digest::parse(&d.digest).map_err(|e| Error::ManifestUnreadable {
        reference: reference.to_string(),
        source: e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(arch: &str, variant: Option<&str>, n: u8) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: format!("sha256:{}", hex::encode([n; 32])),
            size: 1,
            platform: Some(Platform {
                architecture: arch.into(),
                os: "linux".into(),
                variant: variant.map(Into::into),
            }),
        }
    }

    #[test]
    fn selects_the_node_platform_variant_aware() {
        let amd = Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
        };
        let arm = Platform {
            architecture: "arm64".into(),
            os: "linux".into(),
            variant: Some("v8".into()),
        };
        let list = vec![
            entry("arm64", Some("v8"), 1),
            entry("amd64", None, 2),
            entry("arm", Some("v7"), 3),
        ];
        assert_eq!(
            select("r", &list, &amd).expect("amd64").digest,
            list[1].digest
        );
        assert_eq!(
            select("r", &list, &arm).expect("arm64").digest,
            list[0].digest
        );
        let only_v1 = vec![entry("amd64", Some("v1"), 4)];
        assert_eq!(
            select("r", &only_v1, &amd).expect("v1").digest,
            only_v1[0].digest
        );
        let err = select("r", &[entry("s390x", None, 5)], &amd).expect_err("none");
        assert!(err.to_string().contains("linux/s390x"), "{err}");
    }

    #[test]
    fn parses_index_and_manifest_and_refuses_others() {
        let idx = br#"{"schemaVersion":2,"manifests":[{"digest":"sha256:00","size":1}]}"#;
        assert!(matches!(parse("r", idx).expect("index"), Manifest::Index(l) if l.len() == 1));
        let m = br#"{"schemaVersion":2,"config":{"mediaType":"c","digest":"d","size":2},
                     "layers":[{"mediaType":"l","digest":"e","size":3}]}"#;
        assert!(
            matches!(parse("r", m).expect("manifest"), Manifest::Image { layers, .. } if layers.len() == 1)
        );
        let v1 = br#"{"schemaVersion":1,"fsLayers":[]}"#;
        assert!(parse("r", v1).is_err());
        assert!(parse("r", b"nope").is_err());
        let no_layers = br#"{"config":{"digest":"d","size":2},"layers":[]}"#;
        assert!(parse("r", no_layers).is_err());
    }
}
