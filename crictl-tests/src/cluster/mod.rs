//! A one-node Kubernetes cluster of the test's own, on loopback: etcd (its
//! own data dir and ports), kube-apiserver (its own certificates, made by
//! the test: [`certs`]), kube-controller-manager and kube-scheduler, and
//! the [`Kubelet`] fixture registered as node `127.0.0.1` against it, so
//! the real kubectl drives cortend the way a cluster does: Deployments,
//! Jobs, `logs`, `exec`, `attach`, `port-forward`, `cp`, `debug`.
//!
//! kubelet refuses a loopback `--node-ip`, but takes a node name that is an
//! IP address as the node's InternalIP unchecked: the node is called
//! `127.0.0.1`, which is where the API server dials the kubelet for logs,
//! exec, attach and port-forward (kubelet listens on loopback only).
//!
//! The kubelet gets the `PodAndContainerStatsFromCRI` feature gate: without
//! it kubelet takes pod and container stats from its cAdvisor, which knows
//! nothing of cortend's containers; with it the Summary API
//! (`/stats/summary`) is made of cortend's ListPodSandboxStats.
//!
//! Images come from the kubelet fixture's registry, under outside names
//! (`busybox`, `docker.io/library/busybox:1.36`, `registry.k8s.io/...`):
//! cortend's final mirrors of docker.io and registry.k8s.io resolve them
//! to it, and no pull leaves the machine.
//!
//! Dropping a [`Cluster`] stops the scheduler and the controller manager,
//! then the kubelet fixture (kubelet, every pod through cortend, cortend,
//! its cgroups, network and registry), then the API server and etcd, and
//! removes the cluster's directory. Each process is stopped by its own
//! handle; nothing the test did not start is signalled.

pub mod certs;
pub mod kubectl;
pub mod service;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::guard::free_port;
use crate::{tools, wait, Kubelet, KubeletBuilder};
use certs::Pki;
pub use kubectl::{Kubectl, Streamed};
use service::Service;

/// The node's name, and so its InternalIP.
pub const NODE: &str = "127.0.0.1";
/// The service range (no kube-proxy runs: nothing routes to it) and the
/// `kubernetes` service's address in it.
const SERVICE_CIDR: &str = "10.211.0.0/24";
pub const KUBERNETES_SERVICE_IP: &str = "10.211.0.1";

/// How long etcd and the API server get to come up, the controllers and the
/// node to be ready, on a loaded 2-core machine.
const ETCD_START: Duration = Duration::from_secs(60);
const APISERVER_START: Duration = Duration::from_secs(240);
const CONTROLLERS_START: Duration = Duration::from_secs(60);
const NODE_READY: Duration = Duration::from_secs(240);
/// What one readiness probe of kubectl may take.
const PROBE_TIMEOUT: &str = "--request-timeout=20s";

/// The control plane's binaries, checked before anything starts.
struct Binaries {
    etcd: PathBuf,
    apiserver: PathBuf,
    controller_manager: PathBuf,
    scheduler: PathBuf,
    kubectl: PathBuf,
}

/// A running one-node cluster (see the module doc). Fields drop in order.
pub struct Cluster {
    scheduler: Service,
    controller_manager: Service,
    kubelet: Kubelet,
    apiserver: Service,
    etcd: Service,
    kubectl: PathBuf,
    kubeconfig: PathBuf,
    api_port: u16,
    pki: Pki,
    dir: TempDir,
}

impl Cluster {
    /// Starts everything and waits until node [`NODE`] is Ready and
    /// schedulable and namespace `default` has its service account; panics
    /// with what went wrong (and the logs of what started).
    pub fn start() -> Cluster {
        Self::start_with(|k| k)
    }

    /// As [`Cluster::start`], the kubelet fixture changed by `kubelet`
    /// first (more mirrors, config keys).
    pub fn start_with(kubelet: impl FnOnce(KubeletBuilder) -> KubeletBuilder) -> Cluster {
        let bins = Binaries {
            etcd: tools::k8s_binary("etcd"),
            apiserver: tools::k8s_binary("kube-apiserver"),
            controller_manager: tools::k8s_binary("kube-controller-manager"),
            scheduler: tools::k8s_binary("kube-scheduler"),
            kubectl: tools::k8s_binary("kubectl"),
        };
        tools::k8s_binary("kubelet");
        tools::require_root("a cluster: kubelet, cortend, pods");
        let dir = tempfile::Builder::new()
            .prefix("corten-cluster-")
            .tempdir()
            .expect("cluster tempdir");
        let pki = certs::write(&dir.path().join("pki")).expect("make the cluster's certificates");
        let kubeconfig = dir.path().join("kubeconfig.json");

        let etcd = start_etcd(&bins.etcd, dir.path()).unwrap_or_else(|e| panic!("{e:#}"));
        let (apiserver, api_port) = start_apiserver(&bins, dir.path(), &pki, etcd.1, &kubeconfig)
            .unwrap_or_else(|e| panic!("{e:#}"));
        let common = |sub: &str| {
            vec![
                format!("--kubeconfig={}", kubeconfig.display()),
                "--leader-elect=false".to_string(),
                // No server of theirs: nothing to serve, no port to take.
                "--secure-port=0".to_string(),
                format!("--cert-dir={}", dir.path().join(sub).display()),
                "--v=1".to_string(),
            ]
        };
        let mut cm = Command::new(&bins.controller_manager);
        cm.args(common("controller-manager"))
            .arg(format!("--root-ca-file={}", pki.ca.display()))
            .arg(format!(
                "--service-account-private-key-file={}",
                pki.service_account_key.display()
            ))
            .arg(format!("--service-cluster-ip-range={SERVICE_CIDR}"))
            .arg("--use-service-account-credentials=false");
        let controller_manager = start_plain(
            "kube-controller-manager",
            cm,
            dir.path().join("controller-manager.log"),
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        let mut sched = Command::new(&bins.scheduler);
        sched.args(common("scheduler"));
        let scheduler = start_plain("kube-scheduler", sched, dir.path().join("scheduler.log"))
            .unwrap_or_else(|e| panic!("{e:#}"));

        let kubelet = kubelet(
            KubeletBuilder::new()
                .mirror("registry.k8s.io")
                .kubeconfig(&kubeconfig)
                .node_name(NODE)
                .config("featureGates", json!({"PodAndContainerStatsFromCRI": true})),
        )
        .start();
        let cluster = Cluster {
            scheduler,
            controller_manager,
            kubelet,
            apiserver,
            etcd: etcd.0,
            kubectl: bins.kubectl,
            kubeconfig,
            api_port,
            pki,
            dir,
        };
        cluster.wait_ready();
        cluster
    }

    /// The node Ready without taints (the node lifecycle controller lifts
    /// `not-ready` once kubelet reports Ready), and the service account
    /// that pods of `default` get (made by the controller manager).
    fn wait_ready(&self) {
        self.wait_for(
            "node Ready and untainted",
            NODE_READY,
            &["node", NODE],
            |n| {
                let ready = n["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                let tainted = n["spec"]["taints"]
                    .as_array()
                    .is_some_and(|t| !t.is_empty());
                ready && !tainted
            },
        );
        self.wait_for(
            "the default service account",
            CONTROLLERS_START,
            &["serviceaccount", "default", "-n", "default"],
            |_| true,
        );
    }

    /// The real kubectl pointed at this cluster, ready to run with `args`.
    /// Its discovery cache is in the cluster's directory.
    pub fn kubectl_command(&self, args: &[&str]) -> Command {
        kubectl_command(&self.kubectl, &self.kubeconfig, self.dir.path(), args)
    }

    /// Runs kubectl with `args`.
    pub fn kubectl(&self, args: &[&str]) -> Kubectl {
        self.kubectl_input(args, None)
    }

    /// Runs kubectl with `args`, `input` on its stdin.
    pub fn kubectl_with_input(&self, args: &[&str], input: &str) -> Kubectl {
        self.kubectl_input(args, Some(input))
    }

    fn kubectl_input(&self, args: &[&str], input: Option<&str>) -> Kubectl {
        run_kubectl(self.kubectl_command(args), args, input)
    }

    /// `kubectl apply` of `manifest` (one object, or a `List`).
    pub fn apply(&self, manifest: &Value) {
        self.kubectl_with_input(&["apply", "-f", "-"], &manifest.to_string())
            .ok();
    }

    /// `kubectl get <what> -o json`, when it succeeds.
    pub fn get(&self, what: &[&str]) -> Option<Value> {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        args.extend_from_slice(&["-o", "json"]);
        let out = self.kubectl(&args);
        if !out.success() {
            return None;
        }
        serde_json::from_str(&out.stdout()).ok()
    }

    /// Polls `kubectl get <what>` until `cond` holds of it; returns it.
    /// Panics after `limit` with the last one seen.
    pub fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        get: &[&str],
        mut cond: impl FnMut(&Value) -> bool,
    ) -> Value {
        let mut last = None;
        let held = wait::within(limit, || {
            last = self.get(get);
            last.as_ref().is_some_and(&mut cond)
        });
        match last {
            Some(v) if held => v,
            other => panic!(
                "timed out after {limit:?} waiting for {what} ({get:?}); last seen: {}",
                other.map_or("nothing".into(), |v| v.to_string())
            ),
        }
    }

    /// The pods of namespace `ns` matching label `selector`.
    pub fn pods(&self, ns: &str, selector: &str) -> Vec<Value> {
        self.get(&["pods", "-n", ns, "-l", selector])
            .and_then(|l| l["items"].as_array().cloned())
            .unwrap_or_default()
    }

    /// The Summary API of the node: `/stats/summary` of the kubelet (its
    /// read-only port). The API server's node proxy
    /// (`/api/v1/nodes/<node>/proxy/...`) refuses a node on loopback
    /// ("address not allowed"); logs, exec, attach and port-forward do not
    /// go through it.
    pub fn summary(&self) -> Value {
        let body = self
            .kubelet
            .get("/stats/summary")
            .unwrap_or_else(|e| panic!("the kubelet's /stats/summary: {e:#}"));
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("/stats/summary is not JSON ({e}): {body}"))
    }

    /// Builds a busybox image with a layer of its own (`/etc/corten-marker`
    /// holding `repo:tag`) and pushes it to the registry behind cortend's
    /// mirrors as `repo:tag` (`library/busybox` is `busybox` of docker.io,
    /// `e2e-test-images/x` is `registry.k8s.io/e2e-test-images/x`); returns
    /// its manifest digest.
    pub fn push_busybox(&self, repo: &str, tag: &str) -> String {
        crate::ImageBuilder::busybox()
            .marker(&format!("{repo}:{tag}"))
            .and_then(|b| b.build(crate::Compression::Gzip))
            .and_then(|img| img.push(self.kubelet.registry(), repo, tag))
            .unwrap_or_else(|e| panic!("push {repo}:{tag} to the test registry: {e:#}"))
    }

    /// The node's name.
    pub fn node(&self) -> &str {
        NODE
    }

    /// The kubelet fixture (its cortend, registry, network, dirs).
    pub fn kubelet(&self) -> &Kubelet {
        &self.kubelet
    }

    /// The kubeconfig of the cluster's admin (`system:masters`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API server's port on 127.0.0.1.
    pub fn api_port(&self) -> u16 {
        self.api_port
    }

    /// The cluster's certificates.
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// The directory holding everything of the control plane's.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process ids of etcd, the API server, the controller manager and
    /// the scheduler, as far as they run.
    pub fn control_plane_pids(&self) -> Vec<u32> {
        [
            &self.etcd,
            &self.apiserver,
            &self.controller_manager,
            &self.scheduler,
        ]
        .iter()
        .filter_map(|s| s.pid())
        .collect()
    }

    /// Whether every control-plane process still runs.
    pub fn control_plane_running(&mut self) -> bool {
        [
            &mut self.etcd,
            &mut self.apiserver,
            &mut self.controller_manager,
            &mut self.scheduler,
        ]
        .into_iter()
        .all(Service::is_running)
    }
}

fn kubectl_command(binary: &Path, kubeconfig: &Path, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(binary);
    cmd.arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg(format!(
            "--cache-dir={}",
            dir.join("kubectl-cache").display()
        ))
        .args(args);
    cmd
}

fn run_kubectl(mut cmd: Command, args: &[&str], input: Option<&str>) -> Kubectl {
    use std::io::Write;
    use std::process::Stdio;
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run kubectl {args:?}: {e}"));
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // kubectl may exit before reading it all; its status tells.
        let _ = stdin.write_all(text.as_bytes());
    }
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"));
    Kubectl { args, output }
}

/// etcd on two free loopback ports, its data in `dir/etcd`; waits until
/// `/health` says so. Returns it with its client port.
fn start_etcd(binary: &Path, dir: &Path) -> Result<(Service, u16)> {
    let data = dir.join("etcd");
    let (service, (client, _peer)) = Service::start(
        "etcd",
        dir.join("etcd.log"),
        ETCD_START,
        || {
            let (client, peer) = (free_port(), free_port());
            let client_url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let mut cmd = Command::new(binary);
            cmd.arg("--name=corten-test")
                .arg(format!("--data-dir={}", data.display()))
                .arg(format!("--listen-client-urls={client_url}"))
                .arg(format!("--advertise-client-urls={client_url}"))
                .arg(format!("--listen-peer-urls={peer_url}"))
                .arg(format!("--initial-advertise-peer-urls={peer_url}"))
                .arg(format!("--initial-cluster=corten-test={peer_url}"))
                .arg("--initial-cluster-state=new")
                // A test's cluster need not survive a power cut.
                .arg("--unsafe-no-fsync")
                .arg("--log-level=warn");
            (cmd, (client, peer))
        },
        |(client, _)| {
            crate::kubelet::http_get(&format!("http://127.0.0.1:{client}/health"))
                .is_ok_and(|body| body.contains("\"health\":\"true\""))
        },
    )?;
    Ok((service, client))
}

/// kube-apiserver on a free loopback port over `etcd_port`; writes
/// `kubeconfig` for it and waits until `/readyz` answers through kubectl.
fn start_apiserver(
    bins: &Binaries,
    dir: &Path,
    pki: &Pki,
    etcd_port: u16,
    kubeconfig: &Path,
) -> Result<(Service, u16)> {
    let (service, port) = Service::start(
        "kube-apiserver",
        dir.join("apiserver.log"),
        APISERVER_START,
        || {
            let port = free_port();
            write_kubeconfig(kubeconfig, port, pki).expect("write the kubeconfig");
            let mut cmd = Command::new(&bins.apiserver);
            cmd.arg(format!("--etcd-servers=http://127.0.0.1:{etcd_port}"))
                .arg("--bind-address=127.0.0.1")
                .arg("--advertise-address=127.0.0.1")
                .arg(format!("--secure-port={port}"))
                .arg(format!("--cert-dir={}", dir.join("apiserver").display()))
                .arg(format!("--tls-cert-file={}", pki.server_cert.display()))
                .arg(format!(
                    "--tls-private-key-file={}",
                    pki.server_key.display()
                ))
                .arg(format!("--client-ca-file={}", pki.ca.display()))
                .arg(format!(
                    "--kubelet-client-certificate={}",
                    pki.client_cert.display()
                ))
                .arg(format!("--kubelet-client-key={}", pki.client_key.display()))
                .arg("--kubelet-preferred-address-types=InternalIP")
                .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
                .arg(format!(
                    "--service-account-key-file={}",
                    pki.service_account_pub.display()
                ))
                .arg(format!(
                    "--service-account-signing-key-file={}",
                    pki.service_account_key.display()
                ))
                .arg(format!("--service-cluster-ip-range={SERVICE_CIDR}"))
                .arg("--authorization-mode=Node,RBAC")
                // The `kubernetes` endpoints would name 127.0.0.1, which
                // Endpoints refuse; no pod of the tests talks to the API.
                .arg("--endpoint-reconciler-type=none")
                .arg("--profiling=false")
                .arg("--v=1");
            (cmd, port)
        },
        |_| {
            run_kubectl(
                kubectl_command(
                    &bins.kubectl,
                    kubeconfig,
                    dir,
                    &["get", "--raw", "/readyz", PROBE_TIMEOUT],
                ),
                &["get", "--raw", "/readyz"],
                None,
            )
            .stdout()
            .trim()
                == "ok"
        },
    )?;
    Ok((service, port))
}

/// A process that serves nothing the test reaches: started, and checked to
/// still run a moment later through its log's first lines.
fn start_plain(name: &'static str, cmd: Command, log: PathBuf) -> Result<Service> {
    let mut cmd = Some(cmd);
    let (service, ()) = Service::start(
        name,
        log.clone(),
        CONTROLLERS_START,
        || (cmd.take().unwrap_or_else(|| Command::new("false")), ()),
        |()| std::fs::metadata(&log).is_ok_and(|m| m.len() > 0),
    )?;
    Ok(service)
}

/// The admin's kubeconfig (JSON is YAML) for the API server on `port`.
fn write_kubeconfig(path: &Path, port: u16, pki: &Pki) -> Result<()> {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "corten-test", "cluster": {
            "server": format!("https://127.0.0.1:{port}"),
            "certificate-authority": pki.ca,
        }}],
        "users": [{"name": "admin", "user": {
            "client-certificate": pki.client_cert,
            "client-key": pki.client_key,
        }}],
        "contexts": [{"name": "corten-test", "context": {
            "cluster": "corten-test",
            "user": "admin",
            "namespace": "default",
        }}],
        "current-context": "corten-test",
    });
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, config.to_string()).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))
}
