//! [`KubeletBuilder`]: what a [`Kubelet`] is started with, and its start
//! (the registry, cortend, the cgroup root, kubelet itself).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

use super::config::LogRotation;
use super::host::{self, CgroupRoot};
use super::{Kubelet, Ports};
use crate::guard::free_port;
use crate::{
    tools, Compression, DaemonBuilder, ImageBuilder, Registry, RegistryOptions, TestNetwork,
};

/// Starts tried when a port was taken meanwhile.
const PORT_TRIES: usize = 3;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Prepares a [`Kubelet`].
#[derive(Default)]
pub struct KubeletBuilder {
    rotation: Option<LogRotation>,
    cluster: ClusterOptions,
}

/// What a kubelet of a cluster ([`crate::cluster`]) gets on top of the
/// standalone defaults.
#[derive(Default, Clone)]
pub(super) struct ClusterOptions {
    /// `--kubeconfig`: kubelet registers itself as a node of that API server.
    pub(super) kubeconfig: Option<PathBuf>,
    /// The node name (`--hostname-override`), instead of a generated one.
    pub(super) node_name: Option<String>,
    /// KubeletConfiguration keys set over the defaults.
    pub(super) config: serde_json::Map<String, Value>,
    /// Registries (besides docker.io) that cortend mirrors to the test registry.
    pub(super) mirrors: Vec<String>,
    /// Runtime handlers of cortend (`[runtimes.<name>] path`).
    pub(super) handlers: Vec<(String, PathBuf)>,
}

impl KubeletBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// kubelet rotates container logs past `max_size` (e.g. `"2Ki"`),
    /// keeping `max_files`, looking every 3 s (its shortest interval).
    pub fn log_rotation(mut self, max_size: &str, max_files: u32) -> Self {
        self.rotation = Some(LogRotation {
            max_size: max_size.into(),
            max_files,
            monitor_interval: "3s".into(),
        });
        self
    }

    /// kubelet registers itself as a node with the API server of
    /// `kubeconfig` (and reads pods from it besides its manifests).
    pub fn kubeconfig(mut self, kubeconfig: &std::path::Path) -> Self {
        self.cluster.kubeconfig = Some(kubeconfig.to_path_buf());
        self
    }

    /// The node's name (`--hostname-override`). An IP address there is also
    /// the node's InternalIP, the one address kubelet takes unchecked (its
    /// `--node-ip` refuses loopback): `127.0.0.1` lets an API server on
    /// loopback reach the kubelet's server.
    pub fn node_name(mut self, name: &str) -> Self {
        self.cluster.node_name = Some(name.to_string());
        self
    }

    /// Sets KubeletConfiguration key `key` (e.g. `featureGates`) to `value`.
    pub fn config(mut self, key: &str, value: Value) -> Self {
        self.cluster.config.insert(key.to_string(), value);
        self
    }

    /// cortend also mirrors `registry` (e.g. `registry.k8s.io`) to the test
    /// registry, finally (no pull leaves the machine).
    pub fn mirror(mut self, registry: &str) -> Self {
        self.cluster.mirrors.push(registry.to_string());
        self
    }

    /// cortend gets runtime handler `name` (RuntimeClass), the OCI runtime
    /// at `path`.
    pub fn runtime_handler(mut self, name: &str, path: &std::path::Path) -> Self {
        self.cluster
            .handlers
            .push((name.to_string(), path.to_path_buf()));
        self
    }

    /// Starts the registry, cortend and kubelet; panics (with what went
    /// wrong) when one of them cannot start.
    pub fn start(self) -> Kubelet {
        // First, so that a missing kubelet (or crictl, which cleaning up
        // needs) fails before anything starts.
        let binary = tools::k8s_binary("kubelet");
        tools::crictl();
        tools::require_root("kubelet: mount namespaces, cgroups, pods");
        for tool in ["unshare", "mount"] {
            assert!(
                tools::which(tool).is_some(),
                "{tool} (util-linux) is needed to run kubelet in a mount namespace"
            );
        }
        let registry = Registry::start(RegistryOptions::plain()).expect("registry starts");
        ImageBuilder::busybox()
            .build(Compression::Gzip)
            .and_then(|img| img.push(&registry, "library/busybox", "latest"))
            .expect("push busybox to the test registry");
        let mut builder = DaemonBuilder::new().mirror("docker.io", &registry.url());
        for other in &self.cluster.mirrors {
            builder = builder.mirror(other, &registry.url());
        }
        if !self.cluster.handlers.is_empty() {
            let handlers = self.cluster.handlers.clone();
            builder = builder.config(move |c| {
                let mut runtimes = toml::Table::new();
                for (name, path) in handlers {
                    let mut h = toml::Table::new();
                    h.insert(
                        "path".into(),
                        toml::Value::String(path.display().to_string()),
                    );
                    runtimes.insert(name, toml::Value::Table(h));
                }
                c.insert("runtimes".into(), toml::Value::Table(runtimes));
            });
        }
        let net = TestNetwork::new(&builder);
        let daemon = builder.start().expect("cortend starts");
        daemon.crictl(&["pull", "busybox"]).ok();

        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let name = format!("corten-kubelet-{}-{n}", std::process::id());
        let cgroup = CgroupRoot::create(&name).expect("create the kubelet's cgroup root");
        let dir = tempfile::Builder::new()
            .prefix("corten-kubelet-")
            .tempdir()
            .expect("kubelet tempdir");
        let mut kubelet = Kubelet {
            child: None,
            daemon,
            cgroup,
            shared_root: None,
            net,
            registry,
            binary,
            node: self.cluster.node_name.clone().unwrap_or(name),
            cluster: self.cluster.clone(),
            ports: Ports {
                secure: free_port(),
                read_only: free_port(),
                healthz: free_port(),
            },
            host_tunables: host::tunables(),
            dir,
        };
        // A port free a moment ago may be taken by then: new ports.
        for attempt in 1..=PORT_TRIES {
            kubelet
                .write_config(self.rotation.as_ref())
                .expect("write the kubelet config");
            let logged = kubelet.log().len();
            match kubelet.spawn() {
                Ok(()) => break,
                Err(_)
                    if attempt < PORT_TRIES
                        && kubelet
                            .log()
                            .get(logged..)
                            .is_some_and(|new| new.contains("address already in use")) =>
                {
                    kubelet.stop();
                    kubelet.ports = Ports {
                        secure: free_port(),
                        read_only: free_port(),
                        healthz: free_port(),
                    };
                }
                Err(e) => panic!("kubelet does not start: {e:#}\n{}", kubelet.log_tail()),
            }
        }
        kubelet
    }
}
