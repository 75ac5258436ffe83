//! Pulling images from OCI registries with oci-client: mirrors first, then
//! the registry; the manifest (the node's platform out of an index), the
//! config, and every missing layer downloaded and unpacked concurrently.

mod error;
mod layer;

mod manifest;
mod registry;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;

pub use error::{Cause, Error};
pub use registry::{is_loopback, Credentials, Endpoint, RegistryConfig, Scheme};

use self::layer::LayerJob;
use self::manifest::{Descriptor, Manifest};
use crate::image::{Digest, ImageIndex, ImageRecord, LayerRecord, Reference};
use crate::locks::KeyedLocks;
use crate::snapshot::chain_ids;

/// Layers downloaded at once per pull.
const CONCURRENT_LAYERS: usize = 3;

/// Pulls images into an [`ImageIndex`].
#[derive(Debug)]
pub struct Puller {
    config: RegistryConfig,
    certificates: Vec<Vec<u8>>,
    /// Loopback hosts found not to speak TLS.
    plain_hosts: Mutex<HashSet<String>>,
    /// One pull per reference and one download per layer at a time.
    locks: KeyedLocks,
    /// Registry clients of anonymous pulls, by (host, plain HTTP), kept
    /// for their connections and tokens.
    anonymous: AnonymousClients,
}

/// Clients by (host, plain HTTP). Only anonymous pulls share one: a token
/// a client caches for one pull's credentials must not serve another's.
#[derive(Default)]
struct AnonymousClients(Mutex<HashMap<(String, bool), oci_client::Client>>);

impl std::fmt::Debug for AnonymousClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map(|m| m.len()).unwrap_or(0);
        write!(f, "AnonymousClients({n})")
    }
}

/// A manifest resolved at one endpoint.
struct Resolved {
    client: oci_client::Client,
    oref: oci_client::Reference,
    /// What the reference pointed at (an index or a manifest).
    top_digest: Digest,
    manifest_digest: Digest,
    config: Vec<u8>,
    config_digest: Digest,
    layers: Vec<Descriptor>,
}

impl Puller {
    /// A puller with these registry settings; CA files are read now.
    pub fn new(config: RegistryConfig) -> Result<Puller, Error> {
        let certificates = config
            .ca_files
            .iter()
            .map(|path| {
                std::fs::read(path).map_err(|source| Error::CaFile {
                    path: path.clone(),
                    source,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Puller {
            config,
            certificates,
            plain_hosts: Mutex::new(HashSet::new()),
            locks: KeyedLocks::default(),
            anonymous: AnonymousClients::default(),
        })
    }

    /// Pulls `reference` (already normalised) and records it in `index`.
    pub async fn pull(
        &self,
        index: &ImageIndex,
        reference: &Reference,
        credentials: Option<Credentials>,
    ) -> Result<ImageRecord, crate::Error> {
        let name = reference.to_string();
        let _same_reference = self.locks.lock(&name).await;
        // GC must not collect what this pull stores before it is recorded.
        let _no_gc = index.pull_guard().await;
        let started = Instant::now();
        let resolved = self.resolve(index, reference, credentials.as_ref()).await?;
        let (record, fetched) = self.fetch_layers(index, reference, resolved).await?;
        crate::crash::point("image.pull.after_layers");
        let record = index.add(record)?;
        tracing::info!(
            image = %name,
            id = %record.id,
            size = record.size,
            layers = record.layers.len(),
            fetched,
            ms = started.elapsed().as_millis() as u64,
            "image pulled"
        );
        Ok(record)
    }

    /// Finds the manifest at the first endpoint that has it.
    async fn resolve(
        &self,
        index: &ImageIndex,
        reference: &Reference,
        credentials: Option<&Credentials>,
    ) -> Result<Resolved, crate::Error> {
        let mut failure: Option<Error> = None;
        for endpoint in self.config.endpoints(reference.registry()) {
            match self
                .resolve_at(index, reference, &endpoint, credentials)
                .await
            {
                Ok(resolved) => return Ok(resolved),
                Err(crate::Error::Pull(e)) if e.try_next_endpoint() => {
                    tracing::debug!(endpoint = %endpoint.host, error = %e, "endpoint failed");
                    // Keep the most telling failure: NotFound over denied over transport.
                    let rank = |e: &Error| match e {
                        Error::NotFound { .. } => 2,
                        Error::Unauthorized { .. } => 1,
                        _ => 0,
                    };
                    if failure.as_ref().is_none_or(|f| rank(&e) >= rank(f)) {
                        failure = Some(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(failure
            .unwrap_or_else(|| Error::NoEndpoint {
                reference: reference.to_string(),
                registry: reference.registry().to_string(),
            })
            .into())
    }

    async fn resolve_at(
        &self,
        index: &ImageIndex,
        reference: &Reference,
        endpoint: &Endpoint,
        credentials: Option<&Credentials>,
    ) -> Result<Resolved, crate::Error> {
        let known_plain = self
            .plain_hosts
            .lock()
            .is_ok_and(|h| h.contains(&endpoint.host));
        let plain = match endpoint.scheme {
            Scheme::Http => true,
            Scheme::Https => false,
            Scheme::HttpsThenHttp => known_plain,
        };
        let result = self
            .resolve_with(index, reference, endpoint, plain, credentials)
            .await;
        match result {
            Err(crate::Error::Pull(e))
                if endpoint.scheme == Scheme::HttpsThenHttp && !plain && e.is_transport() =>
            {
                tracing::debug!(endpoint = %endpoint.host, error = %e, "no TLS on loopback registry; using plain HTTP");
                if let Ok(mut hosts) = self.plain_hosts.lock() {
                    hosts.insert(endpoint.host.clone());
                }
                self.resolve_with(index, reference, endpoint, true, credentials)
                    .await
            }
            other => other,
        }
    }

    fn client(&self, host: &str, plain: bool) -> oci_client::Client {
        let protocol = if plain {
            ClientProtocol::HttpsExcept(vec![host.to_string()])
        } else {
            ClientProtocol::Https
        };
        oci_client::Client::new(ClientConfig {
            protocol,
            extra_root_certificates: self
                .certificates
                .iter()
                .map(|data| Certificate {
                    encoding: CertificateEncoding::Pem,
                    data: data.clone(),
                })
                .collect(),
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            ..ClientConfig::default()
        })
    }

    /// The shared client of anonymous pulls from `host`.
    fn anonymous_client(&self, host: &str, plain: bool) -> oci_client::Client {
        let key = (host.to_string(), plain);
        if let Some(c) = self
            .anonymous
            .0
            .lock()
            .ok()
            .and_then(|m| m.get(&key).cloned())
        {
            return c;
        }
        let client = self.client(host, plain);
        if let Ok(mut m) = self.anonymous.0.lock() {
            m.entry(key).or_insert_with(|| client.clone());
        }
        client
    }

    fn auth(&self, host: &str, given: Option<&Credentials>) -> Result<RegistryAuth, Error> {
        let from_file = match (given, &self.config.auth_file) {
            (None, Some(path)) => Credentials::from_auth_file(path, host)?,
            _ => None,
        };
        Ok(match given.cloned().or(from_file) {
            Some(Credentials::Basic { username, password }) => {
                RegistryAuth::Basic(username, password)
            }
            Some(Credentials::Bearer(token)) => RegistryAuth::Bearer(token),
            None => RegistryAuth::Anonymous,
        })
    }

    async fn resolve_with(
        &self,
        index: &ImageIndex,
        reference: &Reference,
        endpoint: &Endpoint,
        plain: bool,
        credentials: Option<&Credentials>,
    ) -> Result<Resolved, crate::Error> {
        let name = reference.to_string();
        let registry_err = |e| Error::from_registry(&name, &endpoint.host, e);
        let auth = self.auth(&endpoint.host, credentials)?;
        let client = match auth {
            // Building a client (its TLS roots) and a first connection
            // cost more than a cached pull's whole exchange.
            RegistryAuth::Anonymous => self.anonymous_client(&endpoint.host, plain),
            _ => self.client(&endpoint.host, plain),
        };
        let (registry, repository) = (
            reference.registry().to_string(),
            reference.repository().to_string(),
        );
        let mut oref = match (reference.tag(), reference.digest()) {
            (Some(tag), Some(d)) => oci_client::Reference::with_tag_and_digest(
                registry,
                repository,
                tag.to_string(),
                d.to_string(),
            ),
            (_, Some(d)) => oci_client::Reference::with_digest(registry, repository, d.to_string()),
            (tag, None) => oci_client::Reference::with_tag(
                registry,
                repository,
                tag.unwrap_or("latest").to_string(),
            ),
        };
        if endpoint.host != reference.registry() {
            oref.set_mirror_registry(endpoint.host.clone());
        }
        let (bytes, digest) = client
            .pull_manifest_raw(&oref, &auth, manifest::ACCEPTED)
            .await
            .map_err(registry_err)?;
        let top_digest = parse_digest(&name, &digest)?;
        let content = index.content();
        let (manifest_bytes, manifest_digest) = match manifest::parse(&name, &bytes)? {
            Manifest::Index(entries) => {
                content.put(&top_digest, &bytes)?;
                let chosen = manifest::select(&name, &entries, &manifest::node_platform())?;
                let chosen_digest = manifest::digest_of(&name, chosen)?;
                let by_digest = oref.clone_with_digest(chosen_digest.to_string());
                let (bytes, _) = client
                    .pull_manifest_raw(
                        &by_digest,
                        &auth,
                        &[manifest::OCI_MANIFEST, manifest::DOCKER_MANIFEST],
                    )
                    .await
                    .map_err(registry_err)?;
                (bytes, chosen_digest)
            }
            Manifest::Image { .. } => (bytes, top_digest.clone()),
        };
        verify(
            &format!("manifest of {name}"),
            &manifest_digest,
            &manifest_bytes,
        )?;
        let Manifest::Image { config, layers } = manifest::parse(&name, &manifest_bytes)? else {
            return Err(Error::BadManifest {
                reference: name,
                reason: "an index points to another index".into(),
            }
            .into());
        };
        content.put(&manifest_digest, &manifest_bytes)?;
        let config_digest = manifest::digest_of(&name, &config)?;
        let config_bytes = if content.exists(&config_digest) {
            content.get(&config_digest)?
        } else {
            let mut buf = Vec::with_capacity(config.size.clamp(0, 1 << 20) as usize);
            client
                .pull_blob(&oref, config_digest.to_string().as_str(), &mut buf)
                .await
                .map_err(registry_err)?;
            verify(&format!("config of {name}"), &config_digest, &buf)?;
            content.put(&config_digest, &buf)?;
            buf
        };
        Ok(Resolved {
            client,
            oref,
            top_digest,
            manifest_digest,
            config: config_bytes,
            config_digest,
            layers,
        })
    }

    /// Fetches the layers not yet present; returns the record and how many
    /// layers were downloaded.
    async fn fetch_layers(
        &self,
        index: &ImageIndex,
        reference: &Reference,
        r: Resolved,
    ) -> Result<(ImageRecord, usize), crate::Error> {
        let name = reference.to_string();
        let bad_config = |reason: String| Error::BadConfig {
            reference: name.clone(),
            reason,
        };
        let unreadable = |source: Cause| Error::ConfigUnreadable {
            reference: name.clone(),
            source,
        };
        let config: serde_json::Value =
            serde_json::from_slice(&r.config).map_err(|e| unreadable(e.into()))?;
        let diff_ids = config
            .pointer("/rootfs/diff_ids")
            .and_then(|v| v.as_array())
            .ok_or_else(|| bad_config("no rootfs.diff_ids".into()))?
            .iter()
            .map(|v| {
                let s = v.as_str().unwrap_or_default();
                Digest::parse(s).map_err(|e| unreadable(e.into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if diff_ids.len() != r.layers.len() {
            return Err(bad_config(format!(
                "{} diff_ids for {} layers",
                diff_ids.len(),
                r.layers.len()
            ))
            .into());
        }
        let chains = chain_ids(&diff_ids);
        let digests = r
            .layers
            .iter()
            .map(|l| manifest::digest_of(&name, l))
            .collect::<Result<Vec<_>, _>>()?;
        let snapshots = index.snapshots().clone();
        let fetched = futures_util::stream::iter(0..r.layers.len())
            .map(|i| {
                let snapshots = snapshots.clone();
                let job = LayerJob {
                    client: &r.client,
                    reference: &r.oref,
                    descriptor: &r.layers[i],
                    digest: &digests[i],
                    diff_id: &diff_ids[i],
                    chain_id: &chains[i],
                };
                async move {
                    let _one_download = self.locks.lock(&job.chain_id.to_string()).await;
                    if snapshots.exists(job.chain_id) {
                        return Ok::<usize, crate::Error>(0);
                    }
                    layer::fetch(job, &snapshots).await.map(|_| 1)
                }
            })
            .buffer_unordered(CONCURRENT_LAYERS)
            // Every layer runs to its end before the pull answers, failed or
            // not: nothing is still being written when the caller hears back.
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .try_fold(0, |n, f| f.map(|f| n + f))?;
        let layers: Vec<LayerRecord> = (0..r.layers.len())
            .map(|i| LayerRecord {
                digest: digests[i].clone(),
                media_type: r.layers[i].media_type.clone(),
                size: r.layers[i].size.max(0) as u64,
                diff_id: diff_ids[i].clone(),
                chain_id: chains[i].clone(),
            })
            .collect();
        let size = r.config.len() as u64 + layers.iter().map(|l| l.size).sum::<u64>();
        let record = ImageRecord {
            id: r.config_digest.into(),
            repo_tags: reference
                .tag()
                .map(|t| format!("{}:{t}", reference.name()))
                .into_iter()
                .collect(),
            repo_digests: vec![format!("{}@{}", reference.name(), r.top_digest)],
            size,
            manifest_digest: r.manifest_digest,
            config,
            layers,
            pulled_at_ns: now_ns(),
        };
        Ok((record, fetched))
    }
}

fn parse_digest(reference: &str, s: &str) -> Result<Digest, Error> {
    Digest::parse(s).map_err(|e| Error::ManifestUnreadable {
        reference: reference.to_string(),
        source: e.into(),
    })
}

/// Checks that `bytes` hash to `expected`.
fn verify(what: &str, expected: &Digest, bytes: &[u8]) -> Result<(), Error> {
    let actual = Digest::sha256_of(bytes);
    if actual != *expected {
        return Err(Error::DigestMismatch {
            what: what.to_string(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
