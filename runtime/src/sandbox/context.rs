//! What a container needs to know of the pod it runs in.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::PodFiles;
use crate::ids::SandboxId;
use crate::spec::{NsMode, UserNamespace};

/// A pod as its containers see it: the namespaces to join, the files to
/// bind-mount, the cgroup to nest under. [`super::Pod::context`] builds it;
/// the container side only reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PodContext {
    /// The pod id.
    pub pod_id: SandboxId,
    /// The pod's name, namespace and uid (from its metadata).
    pub name: String,
    /// Kubernetes namespace of the pod.
    pub namespace: String,
    /// The pod's uid.
    pub uid: String,
    /// The directory container log paths are relative to (CRI
    /// `PodSandboxConfig.log_directory`), if any.
    pub log_directory: Option<PathBuf>,
    /// The pod's hostname.
    pub hostname: String,
    /// Network namespace: the pod's pinned one (`Path`) or the host's.
    pub network: NsMode,
    /// IPC namespace: the pod's pinned one or the host's.
    pub ipc: NsMode,
    /// UTS namespace: the pod's pinned one or the host's.
    pub uts: NsMode,
    /// The pod's user namespace (pinned) and its maps; `None`: the host's.
    pub user: Option<UserNamespace>,
    /// PID namespace: `New` (one per container, the CRI default), the
    /// pod's shared one (`Path` to `/proc/<init>/ns/pid`) or the host's.
    pub pid: NsMode,
    /// `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf` of the pod, to be
    /// bind-mounted into every container.
    pub files: Option<PodFiles>,
    /// The pod's `/dev/shm` (a tmpfs), or `None` with host IPC (then the
    /// host's `/dev/shm`).
    pub shm: Option<PathBuf>,
    /// The pod's cgroup (cgroupfs path); containers go beneath it.
    pub cgroup_parent: String,
    /// The runtime handler the pod was run with ("" = default).
    pub runtime_handler: String,
    /// The pod's annotations (those a handler allows go on to its
    /// containers' specs).
    pub annotations: std::collections::BTreeMap<String, String>,
}
