//! A small blocking client of the Docker Registry HTTP API v2, enough to
//! push test images and to read them back in tests.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use ureq::http::StatusCode;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use crate::oci::sha256_digest;

/// Largest body read back (blobs of the big test image are far smaller).
const MAX_BODY: u64 = 1 << 30;

/// A manifest as the registry served it.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub content_type: String,
    /// The `Docker-Content-Digest` header, when sent.
    pub digest_header: Option<String>,
    pub bytes: Vec<u8>,
}

/// Talks to one registry: `http(s)://127.0.0.1:PORT`.
#[derive(Clone)]
pub struct RegistryClient {
    base: String,
    agent: ureq::Agent,
    auth: Option<String>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("base", &self.base)
            .field("auth", &self.auth.is_some())
            .finish()
    }
}

impl RegistryClient {
    /// `base` is `http://HOST:PORT` or `https://HOST:PORT`. With
    /// `ca_pem`, TLS trusts only that CA; without it, the platform's
    /// roots ureq bundles (webpki-roots), so a test CA is refused.
    pub fn new(
        base: &str,
        ca_pem: Option<&[u8]>,
        basic_auth: Option<(&str, &str)>,
    ) -> Result<Self> {
        let mut tls = TlsConfig::builder();
        if let Some(pem) = ca_pem {
            let cert = Certificate::from_pem(pem).context("parse registry CA PEM")?;
            tls = tls.root_certs(RootCerts::Specific(Arc::new(vec![cert])));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(120)))
            .tls_config(tls.build())
            .build()
            .new_agent();
        let auth = basic_auth.map(|(user, pass)| {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            format!("Basic {token}")
        });
        Ok(RegistryClient {
            base: base.trim_end_matches('/').to_string(),
            agent,
            auth,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn with_auth<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.auth {
            Some(a) => req.header("Authorization", a),
            None => req,
        }
    }

    /// `GET /v2/`: the status code (200 open, 401 wants credentials).
    pub fn ping(&self) -> Result<u16> {
        let resp = self
            .with_auth(self.agent.get(self.url("/v2/")))
            .call()
            .with_context(|| format!("GET {}/v2/", self.base))?;
        Ok(resp.status().as_u16())
    }

    pub fn blob_exists(&self, repo: &str, digest: &str) -> Result<bool> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        let resp = self
            .with_auth(self.agent.head(&url))
            .call()
            .with_context(|| format!("HEAD {url}"))?;
        match resp.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => bail!("HEAD {url}: unexpected status {s}"),
        }
    }

    /// Monolithic upload of `bytes` under `digest` (skipped when present).
    /// The digest is sent as given, so a caller may lie; the registry checks.
    pub fn push_blob(&self, repo: &str, digest: &str, bytes: &[u8]) -> Result<()> {
        if self.blob_exists(repo, digest)? {
            return Ok(());
        }
        let url = self.url(&format!("/v2/{repo}/blobs/uploads/"));
        let mut resp = self
            .with_auth(self.agent.post(&url))
            .send_empty()
            .with_context(|| format!("POST {url}"))?;
        expect_status(&mut resp, StatusCode::ACCEPTED, || format!("POST {url}"))?;
        let location =
            header(&resp, "Location").with_context(|| format!("POST {url}: no Location"))?;
        let location = if location.starts_with('/') {
            self.url(&location)
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{sep}digest={digest}");
        let mut resp = self
            .with_auth(self.agent.put(&put))
            .header("Content-Type", "application/octet-stream")
            .send(bytes)
            .with_context(|| format!("PUT blob {digest} to {repo}"))?;
        expect_status(&mut resp, StatusCode::CREATED, || {
            format!("PUT blob {digest} to {repo}")
        })?;
        Ok(())
    }

    /// `PUT /v2/<repo>/manifests/<reference>`; returns the manifest digest.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let mut resp = self
            .with_auth(self.agent.put(&url))
            .header("Content-Type", media_type)
            .send(bytes)
            .with_context(|| format!("PUT {url}"))?;
        expect_status(&mut resp, StatusCode::CREATED, || format!("PUT {url}"))?;
        let digest = sha256_digest(bytes);
        if let Some(sent) = header(&resp, "Docker-Content-Digest") {
            if sent != digest {
                bail!("PUT {url}: registry says digest {sent}, expected {digest}");
            }
        }
        Ok(digest)
    }

    /// `GET /v2/<repo>/manifests/<reference>` accepting `accept`.
    pub fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
        accept: &[&str],
    ) -> Result<FetchedManifest> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let mut resp = self
            .with_auth(self.agent.get(&url))
            .header("Accept", accept.join(", "))
            .call()
            .with_context(|| format!("GET {url}"))?;
        expect_status(&mut resp, StatusCode::OK, || format!("GET {url}"))?;
        let content_type = header(&resp, "Content-Type").unwrap_or_default();
        let digest_header = header(&resp, "Docker-Content-Digest");
        let bytes = read_body(&mut resp).with_context(|| format!("GET {url}: body"))?;
        Ok(FetchedManifest {
            content_type,
            digest_header,
            bytes,
        })
    }

    /// `GET /v2/<repo>/blobs/<digest>`, bytes as served (not verified).
    pub fn get_blob(&self, repo: &str, digest: &str) -> Result<Vec<u8>> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        let mut resp = self
            .with_auth(self.agent.get(&url))
            .call()
            .with_context(|| format!("GET {url}"))?;
        expect_status(&mut resp, StatusCode::OK, || format!("GET {url}"))?;
        read_body(&mut resp).with_context(|| format!("GET {url}: body"))
    }
}

fn header(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

fn read_body(resp: &mut ureq::http::Response<ureq::Body>) -> Result<Vec<u8>> {
    Ok(resp
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()?)
}

/// Fails with what the registry said unless it answered `want`.
fn expect_status(
    resp: &mut ureq::http::Response<ureq::Body>,
    want: StatusCode,
    what: impl FnOnce() -> String,
) -> Result<()> {
    if resp.status() != want {
        bail!("{}: status {}: {}", what(), resp.status(), body_text(resp));
    }
    Ok(())
}

fn body_text(resp: &mut ureq::http::Response<ureq::Body>) -> String {
    match resp
        .body_mut()
        .with_config()
        .limit(64 << 10)
        .read_to_string()
    {
        Ok(s) => s.trim().to_string(),
        Err(e) => format!("(unreadable body: {e})"),
    }
}
