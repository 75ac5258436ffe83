//! A pod sandbox as recorded: what was asked for ([`PodConfig`]) and what
//! was made of it ([`Pod`]).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{DnsConfig, Namespace, PodContext, PodFiles};
use crate::ids::SandboxId;
use crate::linux::IdMappings;
use crate::network::PortMapping;
use crate::spec::{NsMode, Resources, UserNamespace};

/// How the pod's containers get their pid namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PidMode {
    /// Each container has its own (the CRI default).
    #[default]
    Container,
    /// One namespace for the whole pod, with a tiny init that reaps orphans.
    Pod,
    /// The host's.
    Host,
}

/// What a pod is asked to be (the CRI `PodSandboxConfig`, runtime terms).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PodConfig {
    /// Pod name (metadata).
    pub name: String,
    /// Pod namespace (metadata).
    pub namespace: String,
    /// Pod uid (metadata).
    pub uid: String,
    /// Attempt number (metadata).
    pub attempt: u32,
    /// Hostname; empty: the host's.
    pub hostname: String,
    /// Where container log paths are rooted.
    pub log_directory: Option<PathBuf>,
    /// DNS settings for resolv.conf; `None`: the host's resolv.conf.
    pub dns: Option<DnsConfig>,
    /// Ports published on the host (by CNI's portmap).
    pub port_mappings: Vec<PortMapping>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// The cgroup the pod lives in (cgroupfs path); empty: one of ours.
    pub cgroup_parent: String,
    /// Sysctls to apply in the pod's namespaces.
    pub sysctls: BTreeMap<String, String>,
    /// Use the host's network (and UTS) namespace.
    pub host_network: bool,
    /// Use the host's IPC namespace (and /dev/shm).
    pub host_ipc: bool,
    /// The pid namespace mode.
    pub pid: PidMode,
    /// A user namespace of the pod's own with these maps (CRI
    /// `userns_options` mode POD); `None`: the host's.
    pub userns: Option<IdMappings>,
    /// The runtime handler ("" = default).
    pub runtime_handler: String,
    /// The sum of its containers' resources (CRI `LinuxPodSandboxConfig`
    /// `resources`, then `UpdatePodSandboxResources`).
    pub resources: Resources,
    /// The pod's own overhead (CRI `overhead`, likewise).
    pub overhead: Resources,
}

/// A pod's state, as CRI knows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodState {
    /// Its namespaces and network are up.
    #[default]
    Ready,
    /// Stopped (or never fully made).
    NotReady,
}

/// The init process of a shared pid namespace, identified by pid and start
/// time (so a recycled pid is never signalled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodInit {
    /// Its pid on the host.
    pub pid: i32,
    /// Its start time (field 22 of /proc/PID/stat).
    pub start_time: u64,
}

/// A pod sandbox: its config and what exists of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pod {
    /// The pod id (64 hex digits).
    pub id: SandboxId,
    /// What was asked for.
    pub config: PodConfig,
    /// Ready or NotReady.
    pub state: PodState,
    /// Creation time, nanoseconds since the epoch.
    pub created_at: i64,
    /// The directory of its files (namespaces, shm, hosts, ...).
    pub dir: PathBuf,
    /// The hostname in effect.
    pub hostname: String,
    /// Namespaces pinned under `dir`.
    pub namespaces: Vec<Namespace>,
    /// The pod's /dev/shm is mounted at `dir/shm`.
    pub shm: bool,
    /// The init of the shared pid namespace.
    pub init: Option<PodInit>,
    /// The pod's cgroup path, once made.
    pub cgroup: Option<String>,
    /// The cgroup was made by us (and is removed with the pod).
    pub cgroup_created: bool,
    /// CNI ADD succeeded and no DEL has run since.
    pub network_attached: bool,
    /// The pod's addresses (first is the primary).
    pub ips: Vec<IpAddr>,
    /// The pod's hostname, hosts and resolv.conf.
    pub files: Option<PodFiles>,
    /// RunPodSandbox has not finished: the record names what the pod may
    /// have (its cgroup, shm, network), written before each is made, so a
    /// crash mid-way leaves a record that removal completes. Found at
    /// start, such a pod (never handed to a client) is removed.
    #[serde(default)]
    pub creating: bool,
}

impl Pod {
    /// The pinned file of `ns`, if the pod has its own.
    pub fn namespace_path(&self, ns: Namespace) -> Option<PathBuf> {
        self.namespaces
            .contains(&ns)
            .then(|| self.dir.join(ns.name()))
    }

    /// The pod's /dev/shm on the host.
    pub fn shm_path(&self) -> PathBuf {
        self.dir.join("shm")
    }

    /// The pid namespace of the pod's init, when it shares one.
    pub fn pid_namespace_path(&self) -> Option<PathBuf> {
        self.init
            .map(|init| Path::new("/proc").join(init.pid.to_string()).join("ns/pid"))
    }

    /// What its containers need to know of it.
    pub fn context(&self) -> PodContext {
        let ns = |n: Namespace| match self.namespace_path(n) {
            Some(path) => NsMode::Path(path),
            None => NsMode::Host,
        };
        PodContext {
            pod_id: self.id.clone(),
            name: self.config.name.clone(),
            namespace: self.config.namespace.clone(),
            uid: self.config.uid.clone(),
            log_directory: self.config.log_directory.clone(),
            hostname: self.hostname.clone(),
            network: ns(Namespace::Net),
            ipc: ns(Namespace::Ipc),
            uts: ns(Namespace::Uts),
            user: match (&self.config.userns, self.namespace_path(Namespace::User)) {
                (Some(mappings), Some(path)) => Some(UserNamespace {
                    path,
                    mappings: mappings.clone(),
                }),
                _ => None,
            },
            pid: match (self.config.pid, self.pid_namespace_path()) {
                (PidMode::Host, _) => NsMode::Host,
                (PidMode::Pod, Some(path)) => NsMode::Path(path),
                _ => NsMode::New,
            },
            files: self.files.clone(),
            shm: self.shm.then(|| self.shm_path()),
            cgroup_parent: self.cgroup.clone().unwrap_or_default(),
            runtime_handler: self.config.runtime_handler.clone(),
            annotations: self.config.annotations.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_follows_what_was_made() {
        let pod = Pod {
            id: SandboxId::parse("p1").expect("a pod id"),
            dir: PathBuf::from("/run/corten/pods/p1"),
            hostname: "web".into(),
            namespaces: vec![Namespace::Net, Namespace::Uts],
            shm: false,
            init: Some(PodInit {
                pid: 42,
                start_time: 7,
            }),
            cgroup: Some("/corten/p1".into()),
            config: PodConfig {
                pid: PidMode::Pod,
                host_ipc: true,
                ..PodConfig::default()
            },
            ..Pod::default()
        };
        let c = pod.context();
        assert_eq!(c.network, NsMode::Path("/run/corten/pods/p1/net".into()));
        assert_eq!(c.ipc, NsMode::Host);
        assert_eq!(c.pid, NsMode::Path("/proc/42/ns/pid".into()));
        assert_eq!(c.shm, None);
        assert_eq!(c.cgroup_parent, "/corten/p1");
        let json = serde_json::to_string(&pod).expect("encode");
        let back: Pod = serde_json::from_str(&json).expect("decode");
        assert_eq!(back, pod);
    }
}
