//! The Linux container primitives: the only module of the crate that makes
//! raw system calls or uses `unsafe`.
//!
//! Three entry points, all meant for the single-threaded `corten-shim`:
//!
//! * [`mount_rootfs`] moves the shim into a private mount namespace and
//!   mounts the container's overlay there, so the overlay lives and dies with
//!   the shim and never shows on the host.
//! * [`spawn_init`] forks the container's init, born in its cgroup (see
//!   [`CgroupBirth`]). The child joins or creates
//!   its namespaces, builds the container's mounts and `/dev` inside the
//!   rootfs (every destination resolved confined to the rootfs), pivots into
//!   it, applies the process settings of the spec (oom score, rlimits, user,
//!   capabilities, no_new_privs), reports "ready" and waits. [`Init::start`]
//!   lets it install seccomp and exec the container's command.
//! * [`exec_process`] runs a command in a running container, from a fresh
//!   single-threaded helper (`corten-shim exec`).
//!
//! * [`pin`] creates and pins a pod's net/ipc/uts namespaces, and a user
//!   namespace that owns them when asked (from `corten-shim pin`);
//!   [`unpin`] releases them (from the daemon). Containers of a pod with a
//!   user namespace join it first; their files are id-mapped mounts (see
//!   `userns`).
//!
//! * [`load_device_program`] and [`attach_device_program`] put a cgroup
//!   device program (built by `crate::cgroups` from the device rules) on a
//!   cgroup2 directory, replacing the previous ones.
//!
//! Sync protocol, over two close-on-exec pipes: the parent writes `S`
//! (start); the child answers `R` (ready) or an error record
//! `E<kind><message>` and exits. A successful exec closes the
//! child's end, so the parent sees end-of-file.

mod birth;
mod bpf;
mod caps;
mod child;
mod confined;
mod dev;
mod error;
mod exec;
mod exec_child;
mod init;
mod memory;
mod mount_api;
mod mounts;
mod namespaces;
mod netns;
mod pin;
mod pivot;
mod pod_init;
mod process;
mod pty;
mod relay;
mod rootfs;
mod shm;
mod sync;
mod sysctl;
mod targets;
mod userns;

pub use birth::CgroupBirth;
pub use bpf::{attach_device_program, device_program_ids, load_device_program, Insn};
pub use error::{Error, Result};
pub use exec::{exec_process, ExecOptions, EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, EXIT_SETUP_FAILED};
pub use init::{spawn_init, Init, Stdio};
pub use memory::shed_code_pages;
pub use netns::{connect_in_netns, interfaces_in_netns, InterfaceCounters};
pub use pin::{check_pin_options, pin, unpin, PinOptions};
pub use pod_init::spawn_pod_init;
pub use pty::{open_pty, open_resize_fifo, recv_fd, resize_pty};
pub use rootfs::{mount_image_volume, mount_rootfs, RootfsIdmap, RootfsLayers};
pub use shm::{mount_shm, unmount_shm, DEFAULT_SHM_SIZE};
pub use sysctl::{check_shape as check_sysctl, namespace_of as sysctl_namespace, Namespace};
pub use userns::{IdMapping, IdMappings};
