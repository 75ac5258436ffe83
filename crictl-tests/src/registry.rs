//! A real OCI registry per test: Debian's `docker-registry` (distribution
//! 2.8) serving a tempdir on `127.0.0.1:<free port>`, plain HTTP or TLS,
//! optionally with htpasswd basic auth.
//!
//! The registry process is owned by its `Child` handle: `stop`, `restart`
//! and `Drop` signal only that process, and `Drop` removes the tempdir.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::client::RegistryClient;
use crate::oci::digest_hex;
use crate::registry_setup::{config_yaml, write_htpasswd, write_tls, ConfigInputs, TlsFiles};

/// Where Debian's `docker-registry` package installs the binary.
pub const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const PORT_TRIES: usize = 5;

/// How to run the registry. `Default` is plain HTTP without auth.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Serve HTTPS with a CA and server certificate made for this run.
    pub tls: bool,
    /// Require HTTP basic auth with this user and password (htpasswd, bcrypt).
    pub auth: Option<(String, String)>,
    /// The registry binary; `None` means [`DOCKER_REGISTRY`].
    pub binary: Option<PathBuf>,
}

impl RegistryOptions {
    pub fn plain() -> Self {
        Self::default()
    }

    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    pub fn auth(mut self, user: &str, password: &str) -> Self {
        self.auth = Some((user.to_string(), password.to_string()));
        self
    }
}

/// A running registry; killed and cleaned up when dropped.
#[derive(Debug)]
pub struct Registry {
    opts: RegistryOptions,
    binary: PathBuf,
    dir: tempfile::TempDir,
    tls: Option<TlsFiles>,
    port: u16,
    child: Option<Child>,
}

impl Registry {
    /// Starts a registry and waits until `GET /v2/` answers 200 or 401.
    pub fn start(opts: RegistryOptions) -> Result<Registry> {
        let binary = opts
            .binary
            .clone()
            .unwrap_or_else(|| PathBuf::from(DOCKER_REGISTRY));
        if !binary.is_file() {
            bail!(
                "registry binary {} not found: install the Debian package docker-registry \
                 (apt-get install -y docker-registry)",
                binary.display()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("corten-registry-")
            .tempdir()
            .context("registry tempdir")?;
        std::fs::create_dir(dir.path().join("storage")).context("registry storage dir")?;
        let tls = if opts.tls {
            Some(write_tls(dir.path())?)
        } else {
            None
        };
        if let Some((user, password)) = &opts.auth {
            write_htpasswd(&dir.path().join("htpasswd"), user, password)?;
        }
        let mut reg = Registry {
            opts,
            binary,
            dir,
            tls,
            port: 0,
            child: None,
        };
        let mut last_err = None;
        for _ in 0..PORT_TRIES {
            reg.port = free_port()?;
            match reg.spawn_and_wait() {
                Ok(()) => return Ok(reg),
                Err(e) if reg.log().contains("address already in use") => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("no free port for the registry")))
    }

    /// `127.0.0.1:PORT`, as an image reference host.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr())
    }

    /// The CA that signed the server certificate (TLS registries only).
    pub fn ca_pem_path(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca_pem.as_path())
    }

    /// The user and password the registry requires, when it does.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.opts
            .auth
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// A client trusting this registry's CA and sending its credentials.
    pub fn client(&self) -> Result<RegistryClient> {
        let ca = match self.ca_pem_path() {
            Some(p) => Some(std::fs::read(p).with_context(|| format!("read {}", p.display()))?),
            None => None,
        };
        RegistryClient::new(&self.url(), ca.as_deref(), self.credentials())
    }

    /// The registry's filesystem storage root.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// The registry's log so far (empty if unreadable).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The PID of the running registry process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the registry (SIGKILL, as a crash would) and reaps it. Storage
    /// and port are kept for [`Registry::restart`].
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            if let Ok(None) = child.try_wait() {
                child.kill().context("kill registry")?;
            }
            child.wait().context("wait for registry")?;
        }
        Ok(())
    }

    /// Stops the registry if running, then starts it again on the same
    /// port with the same storage, and waits until it answers.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        // Until the old one's port is free again.
        let mut result = Ok(());
        crate::wait::within(READY_TIMEOUT, || {
            result = self.spawn_and_wait();
            result.is_ok() || !self.log().contains("address already in use")
        });
        result
    }

    /// Where the filesystem driver keeps the bytes of blob `digest`.
    pub fn blob_data_path(&self, digest: &str) -> Result<PathBuf> {
        let hex = digest_hex(digest)?;
        Ok(self
            .storage_dir()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data"))
    }

    /// Replaces the stored bytes of an already pushed blob, behind the
    /// registry's back: it then serves `bytes` under `digest` (it does not
    /// re-verify on read). Keep the length to make only the digest lie.
    pub fn overwrite_blob(&self, digest: &str, bytes: &[u8]) -> Result<()> {
        let path = self.blob_data_path(digest)?;
        if !path.is_file() {
            bail!(
                "blob {digest} is not in the registry storage ({})",
                path.display()
            );
        }
        std::fs::write(&path, bytes).with_context(|| format!("overwrite {}", path.display()))
    }

    fn spawn_and_wait(&mut self) -> Result<()> {
        let config_path = self.dir.path().join("config.yml");
        let storage = self.storage_dir();
        let htpasswd = self.dir.path().join("htpasswd");
        let addr = self.addr();
        let yaml = config_yaml(&ConfigInputs {
            storage: &storage,
            addr: &addr,
            tls: self.tls.as_ref(),
            htpasswd: self.opts.auth.as_ref().map(|_| htpasswd.as_path()),
        });
        std::fs::write(&config_path, yaml).context("write registry config")?;
        let log = File::create(self.log_path()).context("create registry log")?;
        let log2 = log.try_clone().context("clone registry log handle")?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg("serve")
            .arg(&config_path)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        // REGISTRY_* variables would override the config file.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("REGISTRY_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("spawn {}", self.binary.display()))?;
        self.child = Some(child);
        match self.wait_ready() {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = self.stop();
                Err(e.context(format!("registry log:\n{}", self.log())))
            }
        }
    }

    fn wait_ready(&mut self) -> Result<()> {
        let client = self.client()?;
        let mut exited = Ok(None);
        let answered = crate::wait::within(READY_TIMEOUT, || {
            if let Some(child) = self.child.as_mut() {
                exited = child.try_wait();
                if !matches!(exited, Ok(None)) {
                    return true;
                }
            }
            matches!(client.ping(), Ok(200 | 401))
        });
        if let Some(status) = exited.context("poll registry")? {
            bail!("registry on {} exited early: {status}", self.addr());
        }
        if !answered {
            bail!(
                "registry on {} not answering GET /v2/ after {READY_TIMEOUT:?}",
                self.addr()
            );
        }
        Ok(())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Only our own child, by handle; the tempdir goes after this.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(l.local_addr().context("local addr")?.port())
}
