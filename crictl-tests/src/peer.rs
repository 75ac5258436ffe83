//! containerd as the benchmarks' peer: containerd 2.x with its runc shim
//! and runc (built by `crictl-tests/peer-tools.sh` into `.test-tools/bin`),
//! with a root, state, socket and CNI conf dir of its own,
//! its registry hosts pointed at the test registry with no fallback
//! upstream (containerd's `certs.d` with a `server` of the mirror), and
//! its pause image from the same registry.
//!
//! Dropping it removes every pod it has, stops containerd, unmounts what
//! it left mounted under its directory and deletes the directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use crate::network::mounts_under;
use crate::{cri, tools, wait};

/// The pause image containerd is told to use (pushed by the caller).
pub const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10.1";

/// A running containerd.
pub struct Containerd {
    child: Option<Child>,
    dir: PathBuf,
    socket: PathBuf,
    log: PathBuf,
}

/// The containerd, shim and runc binaries under `.test-tools/bin`.
fn binary(name: &str) -> Result<PathBuf> {
    let path = tools::workspace_root().join(".test-tools/bin").join(name);
    if !path.is_file() {
        bail!(
            "{} is missing: run `bash crictl-tests/peer-tools.sh`",
            path.display()
        );
    }
    Ok(path)
}

/// containerd's certs.d entry for `host`: every pull goes to `mirror`
/// (plain HTTP), never to the registry the name says.
fn hosts_toml(mirror: &str) -> String {
    format!(
        "server = \"http://{mirror}\"\n\n[host.\"http://{mirror}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
    )
}

impl Containerd {
    /// Starts containerd under `dir` (which the caller owns; a fresh,
    /// empty directory), its CNI conf dir `net.d` there, pulling the
    /// registries `hosts` from the registry at `mirror` (`host:port`).
    pub fn start(dir: &Path, mirror: &str, hosts: &[&str]) -> Result<Containerd> {
        binary("containerd")?;
        binary("containerd-shim-runc-v2")?;
        let runc = binary("runc")?;
        for sub in ["root", "state", "net.d", "certs.d", "opt"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        for host in hosts {
            let d = dir.join("certs.d").join(host);
            fs::create_dir_all(&d)?;
            fs::write(d.join("hosts.toml"), hosts_toml(mirror))?;
        }
        let socket = dir.join("containerd.sock");
        let config = format!(
            r#"version = 3
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{pause}"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "{certs}"

[plugins."io.containerd.cri.v1.runtime"]
  enable_selinux = false
  disable_apparmor = true
  # These machines give root no CAP_SYS_RESOURCE: an oom_score_adj below
  # containerd's own is refused (corten keeps to its own too).
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{cni_bin}"]
    conf_dir = "{cni_conf}"

[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"#,
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            socket = socket.display(),
            opt = dir.join("opt").display(),
            pause = PAUSE_IMAGE,
            certs = dir.join("certs.d").display(),
            runc = runc.display(),
            cni_bin = crate::network::PLUGIN_DIR,
            cni_conf = dir.join("net.d").display(),
        );
        let config_path = dir.join("config.toml");
        fs::write(&config_path, config)?;
        let mut c = Containerd {
            child: None,
            dir: dir.to_path_buf(),
            socket,
            log: dir.join("containerd.log"),
        };
        c.spawn()?;
        let served = wait::within(Duration::from_secs(60), || {
            c.exited()
                || cri::block_on(async {
                    let Ok(mut rt) = cri::runtime(&c.socket).await else {
                        return false;
                    };
                    rt.version(corten_cri_api::v1::VersionRequest::default())
                        .await
                        .is_ok()
                })
        });
        if !served || c.exited() {
            bail!("containerd does not serve the CRI:\n{}", c.log_text());
        }
        Ok(c)
    }

    /// Starts the containerd process on this directory's config.
    fn spawn(&mut self) -> Result<()> {
        let containerd = binary("containerd")?;
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let bin_dir = containerd.parent().unwrap_or(Path::new("/")).to_path_buf();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let child = Command::new(&containerd)
            .arg("--config")
            .arg(self.dir.join("config.toml"))
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", containerd.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Kills containerd (SIGKILL, as a crash ends it; its shims and their
    /// containers live on) and starts it again on the same state, without
    /// waiting for it to serve; the instant it was started again.
    pub fn kill_and_restart(&mut self) -> Result<std::time::Instant> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let started = std::time::Instant::now();
        self.spawn()?;
        Ok(started)
    }

    fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }

    /// Its CRI socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The directory it lives in; its CNI conf dir is `net.d` there.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What it logged.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops and removes every pod (and so container) it has.
    pub fn remove_all_pods(&self) {
        let _ = cri::block_on(async {
            let mut rt = cri::runtime(&self.socket).await.ok()?;
            let pods = rt
                .list_pod_sandbox(corten_cri_api::v1::ListPodSandboxRequest::default())
                .await
                .ok()?
                .into_inner()
                .items;
            for p in pods {
                let id = p.id;
                let _ = rt
                    .stop_pod_sandbox(corten_cri_api::v1::StopPodSandboxRequest {
                        pod_sandbox_id: id.clone(),
                    })
                    .await;
                let _ = rt
                    .remove_pod_sandbox(corten_cri_api::v1::RemovePodSandboxRequest {
                        pod_sandbox_id: id,
                    })
                    .await;
            }
            Some(())
        });
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.remove_all_pods();
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let gone = wait::within(Duration::from_secs(20), || {
                child.try_wait().ok().flatten().is_some()
            });
            if !gone {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        // Deepest first.
        let mut mounts = mounts_under(&self.dir);
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}
