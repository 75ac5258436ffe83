//! A real kubelet (v1.34, built by `crictl-tests/k8s-tools.sh`) driving a
//! test cortend, standalone: no API server, pods come from static pod
//! manifests the test writes (or, given a kubeconfig, as the node of a
//! [`crate::cluster::Cluster`]). Everything is the test's own: a registry
//! with busybox (cortend's docker.io mirror; the image is pulled before
//! kubelet starts and manifests never pull), a cortend with a test network,
//! kubelet's root, manifest, pod log and plugin dirs, its config, a cgroup
//! root, and free ports on 127.0.0.1 for its servers.
//!
//! kubelet sets kernel tunables at start and writes a few fixed host paths
//! whatever its flags say; it runs in a mount namespace of its own (the
//! util-linux `unshare`) where those files and directories are the test's
//! ([`host`]), so the machine is left as it was. Its root dir is a shared
//! mount: what kubelet mounts there (a memory-backed emptyDir) cortend sees.
//!
//! Dropping a [`Kubelet`] stops kubelet, removes every pod through cortend,
//! stops cortend, kills what is left under its cgroup root (only its own
//! pods' processes can be there) and removes it, then the network, the
//! registry and the files. A panicking test gets the end of kubelet's log.

mod builder;
pub mod config;
pub mod host;
pub mod metrics;
pub mod pods;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tempfile::TempDir;

use crate::{wait, Daemon, Registry, TestNetwork};
use builder::ClusterOptions;
pub use builder::KubeletBuilder;
pub use config::LogRotation;
use config::{Paths, Ports};
use host::{CgroupRoot, SharedMount};

/// How long kubelet gets to answer `/healthz` after it is started, and to
/// exit after SIGTERM.
const START_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// What a panicking test prints of kubelet's log.
const LOG_TAIL_LINES: usize = 150;
/// A running kubelet and everything it drives (see the module doc).
/// Fields drop in order: kubelet is stopped first (in `drop`), then
/// cortend removes the pods, then the cgroup root, the mounts under
/// kubelet's root dir, network and registry go.
pub struct Kubelet {
    child: Option<Child>,
    daemon: Daemon,
    cgroup: CgroupRoot,
    /// kubelet's root dir; `None` until the config is written.
    shared_root: Option<SharedMount>,
    net: TestNetwork,
    registry: Registry,
    binary: PathBuf,
    node: String,
    cluster: ClusterOptions,
    ports: Ports,
    host_tunables: Vec<(String, String)>,
    dir: TempDir,
}

impl Kubelet {
    /// A kubelet with the defaults.
    pub fn start() -> Kubelet {
        KubeletBuilder::new().start()
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    fn write_config(&mut self, rotation: Option<&LogRotation>) -> Result<()> {
        for sub in [
            "root",
            "certs",
            "manifests",
            "logs",
            "plugins",
            "ns",
            "host",
        ] {
            std::fs::create_dir_all(self.path(sub)).with_context(|| format!("create {sub}"))?;
        }
        if self.shared_root.is_none() {
            self.shared_root = Some(SharedMount::create(&self.path("root"))?);
        }
        // Name resolution in pods stays on loopback.
        std::fs::write(self.path("resolv.conf"), "nameserver 127.0.0.1\n")
            .context("write resolv.conf")?;
        let paths = Paths {
            runtime_socket: self.daemon.socket(),
            manifests: &self.path("manifests"),
            pod_logs: &self.path("logs"),
            volume_plugins: &self.path("plugins"),
            resolv_conf: &self.path("resolv.conf"),
        };
        let mut config =
            config::kubelet_configuration(&paths, self.ports, self.cgroup.path(), rotation);
        if let Some(obj) = config.as_object_mut() {
            if self.cluster.kubeconfig.is_some() {
                obj.insert("registerNode".into(), Value::Bool(true));
            }
            for (key, value) in &self.cluster.config {
                obj.insert(key.clone(), value.clone());
            }
        }
        let text = serde_json::to_string_pretty(&config).context("render config")?;
        std::fs::write(self.path("config.json"), text).context("write config.json")
    }

    /// Starts kubelet in its mount namespace and waits for `/healthz`.
    fn spawn(&mut self) -> Result<()> {
        // Each start gets the host's tunables afresh (kubelet wrote its own
        // into the files last time).
        let script = host::namespace_script(&self.path("ns"))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("kubelet.log"))
            .context("open kubelet.log")?;
        let err_log = log.try_clone().context("kubelet.log")?;
        let child = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "unchanged",
                "--",
                "/bin/sh",
                "-c",
            ])
            .arg(script)
            .arg("kubelet-mount-ns")
            .arg(&self.binary)
            .arg(format!("--config={}", self.path("config.json").display()))
            .arg(format!("--root-dir={}", self.path("root").display()))
            .arg(format!("--cert-dir={}", self.path("certs").display()))
            .arg(format!("--hostname-override={}", self.node))
            .args(
                self.cluster
                    .kubeconfig
                    .iter()
                    .map(|k| format!("--kubeconfig={}", k.display())),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .context("run unshare for kubelet")?;
        self.child = Some(child);
        let url = format!("http://127.0.0.1:{}/healthz", self.ports.healthz);
        let mut exited = None;
        let log_path = self.path("kubelet.log");
        let logged = std::fs::metadata(&log_path).map_or(0, |m| m.len());
        let mut port_taken = false;
        let healthy = wait::within(START_TIMEOUT, || {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                exited = Some(status);
                return true;
            }
            // kubelet retries a healthz port it cannot bind, forever.
            port_taken = std::fs::read(&log_path).is_ok_and(|log| {
                let new = log
                    .get(usize::try_from(logged).unwrap_or(0)..)
                    .unwrap_or_default();
                String::from_utf8_lossy(new).contains("address already in use")
            });
            port_taken || http_get(&url).is_ok_and(|body| body.trim() == "ok")
        });
        if port_taken {
            bail!("a port of kubelet's is taken");
        }
        if let Some(status) = exited {
            self.child = None;
            bail!("kubelet exited with {status}");
        }
        if !healthy {
            bail!("kubelet not healthy on {url} after {START_TIMEOUT:?}");
        }
        Ok(())
    }

    /// Stops kubelet (SIGTERM, SIGKILL after 30 s); its pods keep running.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let exited = wait::within(STOP_TIMEOUT, || matches!(child.try_wait(), Ok(Some(_))));
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts kubelet again after [`Kubelet::stop`], on the same root dir,
    /// config and manifests.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "kubelet is still running");
        if let Err(e) = self.spawn() {
            panic!("kubelet does not start again: {e:#}\n{}", self.log_tail());
        }
    }

    /// Stops kubelet and starts it again.
    pub fn restart(&mut self) {
        self.stop();
        self.resume();
    }

    /// Whether kubelet is running (reaping it if it exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// kubelet's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The cortend kubelet drives.
    pub fn daemon(&self) -> &Daemon {
        &self.daemon
    }

    /// The cortend, to kill or restart it.
    pub fn daemon_mut(&mut self) -> &mut Daemon {
        &mut self.daemon
    }

    /// The test network of cortend's pods.
    pub fn network(&self) -> &TestNetwork {
        &self.net
    }

    /// The registry behind cortend's docker.io mirror.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The node name; a static pod `p` is `p-<node>`.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The ports of kubelet's servers on 127.0.0.1.
    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// The mounts under kubelet's root dir on the host (the root dir's own
    /// bind mount first among them).
    pub fn root_mounts(&self) -> Vec<String> {
        self.shared_root
            .as_ref()
            .map(SharedMount::mounts)
            .unwrap_or_default()
    }

    /// The fixture's cgroup root (kubelet's `cgroupRoot`).
    pub fn cgroup_root(&self) -> &CgroupRoot {
        &self.cgroup
    }

    /// The directory holding everything of kubelet's (removed on drop).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// kubelet's `--root-dir`.
    pub fn root_dir(&self) -> PathBuf {
        self.path("root")
    }

    /// kubelet's `podLogsDir`.
    pub fn pod_logs_dir(&self) -> PathBuf {
        self.path("logs")
    }

    /// A directory for the test's hostPath volumes.
    pub fn host_dir(&self) -> PathBuf {
        self.path("host")
    }

    /// The directory of kubelet's mount namespace files (see [`host`]).
    pub fn namespace_dir(&self) -> PathBuf {
        self.path("ns")
    }

    /// The host's tunables as they were before kubelet first started.
    pub fn host_tunables_before(&self) -> &[(String, String)] {
        &self.host_tunables
    }

    /// Writes static pod `manifest` (named after its `metadata.name`),
    /// atomically: kubelet ignores the dot-file until it is renamed.
    pub fn add_pod(&self, manifest: &Value) {
        let name = manifest["metadata"]["name"]
            .as_str()
            .expect("the manifest has metadata.name");
        let tmp = self.path("manifests").join(format!(".{name}.json.tmp"));
        std::fs::write(&tmp, manifest.to_string()).expect("write manifest");
        std::fs::rename(&tmp, self.manifest_path(name)).expect("rename manifest");
    }

    /// Removes the manifest of static pod `name`: kubelet deletes the pod.
    pub fn remove_pod(&self, name: &str) {
        std::fs::remove_file(self.manifest_path(name)).expect("remove manifest");
    }

    fn manifest_path(&self, name: &str) -> PathBuf {
        self.path("manifests").join(format!("{name}.json"))
    }

    /// `GET path` of kubelet's read-only server.
    pub fn get(&self, path: &str) -> Result<String> {
        http_get(&format!("http://127.0.0.1:{}{path}", self.ports.read_only))
    }

    /// Every pod kubelet has, with the statuses it reports.
    pub fn pods(&self) -> Result<Vec<Value>> {
        let body = self.get("/pods")?;
        let list: Value = serde_json::from_str(&body).context("/pods is not JSON")?;
        Ok(list["items"].as_array().cloned().unwrap_or_default())
    }

    /// Static pod `name` as kubelet reports it, when it has it.
    pub fn pod(&self, name: &str) -> Option<Value> {
        let full = format!("{name}-{}", self.node);
        self.pods()
            .ok()?
            .into_iter()
            .find(|p| p["metadata"]["name"] == full.as_str())
    }

    /// Polls static pod `name` until `cond` holds of it; returns that
    /// status. Panics after `limit` with the last one seen.
    pub fn wait_pod(
        &self,
        name: &str,
        what: &str,
        limit: Duration,
        mut cond: impl FnMut(&Value) -> bool,
    ) -> Value {
        let mut last = None;
        let held = wait::within(limit, || {
            last = self.pod(name);
            last.as_ref().is_some_and(&mut cond)
        });
        match last {
            Some(pod) if held => pod,
            other => panic!(
                "timed out after {limit:?} waiting for pod {name}: {what}; last seen: {}",
                other.map_or("no such pod".into(), |p| p["status"].to_string())
            ),
        }
    }

    /// kubelet's metrics (`/metrics`, or `/metrics/probes`).
    pub fn metrics(&self, path: &str) -> String {
        self.get(path)
            .unwrap_or_else(|e| panic!("GET {path} of kubelet: {e:#}"))
    }

    /// The sum of metric `name` with `labels` at `path` (see [`metrics::sum`]).
    pub fn metric(&self, path: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
        metrics::sum(&self.metrics(path), name, labels)
    }

    /// Everything kubelet has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("kubelet.log")).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(LOG_TAIL_LINES);
        format!(
            "---- kubelet log (last {} lines) ----\n{}\n---- end of kubelet log ----",
            lines.len() - from,
            lines[from..].join("\n")
        )
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
        // Then the fields: the daemon removes every pod (their containers,
        // mounts, network) and stops, the cgroup root goes, and the rest.
        // A test that killed cortend gets it back for that.
        if let Err(e) = self.daemon.ensure_running() {
            eprintln!("cortend does not start again to remove the pods: {e}");
        }
    }
}

/// A plain HTTP GET on loopback; the body of a 200.
pub(crate) fn http_get(url: &str) -> Result<String> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent();
    let mut resp = agent
        .get(url)
        .call()
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .with_context(|| format!("GET {url}: body"))?;
    if status != 200 {
        bail!("GET {url}: status {status}: {}", body.trim());
    }
    Ok(body)
}
