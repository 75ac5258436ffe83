//! The CRI-independent description of a container.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What to run and how to isolate it. The CRI layer fills this from a
/// `ContainerConfig` + `PodSandboxConfig`; [`super::generate`] turns it,
/// with the image's config, into an OCI runtime spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerConfig {
    /// The container id.
    pub id: String,
    /// Replaces the image's Entrypoint (the image's Cmd is then dropped
    /// unless `args` are given).
    pub command: Vec<String>,
    /// Replaces the image's Cmd.
    pub args: Vec<String>,
    /// Environment; overrides the image's variables of the same name.
    pub env: Vec<(String, String)>,
    /// Working directory; the image's, or `/`, when absent.
    pub working_dir: Option<String>,
    /// Hostname, when the container has its own UTS namespace.
    pub hostname: Option<String>,
    /// `HOSTNAME` in the environment unless the image or the container
    /// sets one: the pod's hostname in effect (the host's for a pod with
    /// none), as containerd and CRI-O give every container.
    pub hostname_env: Option<String>,
    /// Bind mounts from the host.
    pub mounts: Vec<MountConfig>,
    /// Host devices to expose.
    pub devices: Vec<DeviceConfig>,
    /// cgroup limits.
    pub resources: Resources,
    /// Users, capabilities, seccomp, masking.
    pub security: Security,
    /// Namespaces to create, share with the host, or join.
    pub namespaces: Namespaces,
    /// Allocate a terminal.
    pub tty: bool,
    /// Keep stdin open.
    pub stdin: bool,
    /// Close stdin after the first attach ends.
    pub stdin_once: bool,
    /// Annotations, copied into the spec.
    pub annotations: BTreeMap<String, String>,
    /// The cgroup path (cgroupfs form, e.g. `/corten/<pod>/<id>`).
    pub cgroup_path: String,
    /// The lowest `oom_score_adj` the kernel lets the runtime set (its own,
    /// without CAP_SYS_RESOURCE): lower requested values are raised to it,
    /// as containerd's `restrict_oom_score_adj` does. `None`: no clamp.
    pub oom_score_adj_cap: Option<i32>,
    /// OCI hooks (from CDI devices), which an external runtime runs; the
    /// built-in core runs none and refuses a container that has any.
    pub hooks: Vec<HookConfig>,
    /// The signal StopContainer sends first, as the request named it (CRI
    /// `stop_signal`, e.g. `SIGUSR1`, `SIGRTMIN+3`, `SIGRTMAX-2`); it wins
    /// over the image's `StopSignal`. `None`: the image's, else SIGTERM.
    pub stop_signal: Option<String>,
}

/// An OCI hook.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HookConfig {
    /// When it runs: one of [`HOOK_POINTS`].
    pub point: String,
    /// The program (absolute).
    pub path: String,
    /// Its argv.
    pub args: Vec<String>,
    /// Its environment (`KEY=value`).
    pub env: Vec<String>,
    /// Seconds before the runtime aborts it.
    pub timeout: Option<i64>,
}

/// The points of a container's life the OCI runtime spec runs hooks at.
pub const HOOK_POINTS: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// A bind mount.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MountConfig {
    /// Absolute path on the host.
    pub host_path: PathBuf,
    /// Absolute path in the container, without `..`.
    pub container_path: String,
    /// Mount read-only.
    pub readonly: bool,
    /// Read-only all the way down: submounts of the source too (needs
    /// `readonly` and private propagation).
    pub recursive_readonly: bool,
    /// Mount propagation.
    pub propagation: Propagation,
    /// More mount(8) words for the bind mount, as CDI mounts give them
    /// (`nosuid`, `nodev`, `noexec`, ...; `bind` makes it non-recursive).
    pub options: Vec<String>,
    /// An image volume: the source is an image's tree (read-only), not a
    /// host path; the container manager fills `host_path` with where the
    /// container's shim mounts it.
    pub image: Option<ImageMount>,
}

/// The source of an image volume (CRI `Mount.image`, `Mount.image_sub_path`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageMount {
    /// The image as asked for (an id, or a name).
    pub image: String,
    /// The directory of the image's tree to mount (relative, without `..`);
    /// empty: its root.
    pub sub_path: String,
    /// The image's id, once resolved.
    pub image_id: String,
    /// The chain ids of the image's layers (held while the container exists).
    pub chain_ids: Vec<crate::image::Digest>,
}

/// Mount propagation of a bind mount.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Propagation {
    /// No propagation (rprivate).
    #[default]
    Private,
    /// Host mounts appear in the container (rslave).
    HostToContainer,
    /// Both ways (rshared).
    Bidirectional,
}

/// A host device to expose.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceConfig {
    /// The device node on the host.
    pub host_path: PathBuf,
    /// Where it appears in the container.
    pub container_path: String,
    /// cgroup permissions: some of `r`, `w`, `m` (all three when empty);
    /// `none`: neither read nor write. `m` is always allowed: the runtime
    /// makes the node inside the container's cgroup.
    pub permissions: String,
    /// The node as described (a CDI device node), made without reading
    /// `host_path`; `None`: the host node's type, numbers, mode and owner.
    pub node: Option<DeviceNode>,
}

/// A device node described rather than read from the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceNode {
    /// Character, block or FIFO.
    pub kind: DeviceKind,
    /// The major number (0 for a FIFO).
    pub major: i64,
    /// The minor number (0 for a FIFO).
    pub minor: i64,
    /// Permission bits; `None`: 0666.
    pub file_mode: Option<u32>,
    /// Owner; `None`: the container process's uid.
    pub uid: Option<u32>,
    /// Group; `None`: the container process's gid.
    pub gid: Option<u32>,
}

/// The kind of a device node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceKind {
    /// A character device.
    Char,
    /// A block device.
    Block,
    /// A named pipe (no cgroup rule applies to it).
    Fifo,
}

/// cgroup limits; `None` (or 0 from CRI) leaves a limit unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resources {
    /// CPU shares (cgroup v1 scale).
    pub cpu_shares: Option<u64>,
    /// CFS quota in microseconds per period.
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds.
    pub cpu_period: Option<u64>,
    /// CPUs allowed, e.g. `0-3,6`.
    pub cpuset_cpus: Option<String>,
    /// Memory nodes allowed.
    pub cpuset_mems: Option<String>,
    /// Memory limit in bytes.
    pub memory_limit_bytes: Option<i64>,
    /// Maximum number of pids.
    pub pids_limit: Option<i64>,
    /// OOM score adjustment of the container's processes.
    pub oom_score_adj: Option<i32>,
    /// cgroup v2 files to write verbatim.
    pub unified: BTreeMap<String, String>,
}

/// The security context.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Security {
    /// All capabilities and devices, no masking, no seccomp.
    pub privileged: bool,
    /// Run as this uid (overrides the image's user).
    pub run_as_user: Option<u32>,
    /// Run with this primary gid.
    pub run_as_group: Option<u32>,
    /// Run as this user name, resolved in the image.
    pub run_as_username: Option<String>,
    /// Extra groups.
    pub supplemental_groups: Vec<u32>,
    /// Strict supplemental groups: only the primary group and
    /// `supplemental_groups`, none of the image's /etc/group memberships
    /// (CRI SupplementalGroupsPolicy Strict; Merge is the default).
    pub strict_supplemental_groups: bool,
    /// Capabilities to add (`NET_ADMIN`, `CAP_NET_ADMIN`, or `ALL`).
    pub add_capabilities: Vec<String>,
    /// Capabilities to drop (same forms).
    pub drop_capabilities: Vec<String>,
    /// Mount the root filesystem read-only.
    pub readonly_rootfs: bool,
    /// Set no_new_privs for the container's processes.
    pub no_new_privs: bool,
    /// The seccomp profile.
    pub seccomp: SeccompProfile,
    /// Paths to mask; `None` means the defaults.
    pub masked_paths: Option<Vec<String>>,
    /// Paths to make read-only; `None` means the defaults.
    pub readonly_paths: Option<Vec<String>>,
}

/// Which seccomp profile a container runs under.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeccompProfile {
    /// No filter.
    #[default]
    Unconfined,
    /// corten's runtime-default profile.
    RuntimeDefault,
    /// A profile file on the host.
    Localhost(PathBuf),
}

/// The namespaces a container may share or join (mount and cgroup
/// namespaces are always new).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Namespaces {
    /// Network namespace.
    pub network: NsMode,
    /// PID namespace.
    pub pid: NsMode,
    /// IPC namespace.
    pub ipc: NsMode,
    /// UTS namespace.
    pub uts: NsMode,
    /// The pod's user namespace to join; `None`: the host's.
    pub user: Option<UserNamespace>,
}

/// The user namespace a container joins (its pod's) and its maps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserNamespace {
    /// The pinned namespace file.
    pub path: PathBuf,
    /// Its uid and gid maps.
    pub mappings: crate::linux::IdMappings,
}

/// How a container gets one namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NsMode {
    /// A new namespace of its own.
    #[default]
    New,
    /// The host's.
    Host,
    /// Join the namespace pinned at this path (a pod's).
    Path(PathBuf),
}
