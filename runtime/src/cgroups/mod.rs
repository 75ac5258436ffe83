//! Container cgroups on v1, v2 and hybrid hosts, through cgroupfs directly.
//!
//! The layout is detected from the mount table ([`detect`]), never assumed.
//! On v1 (and hybrid) hosts a cgroup is a directory under each mounted
//! controller (memory, cpu, cpuacct, cpuset, pids, devices, freezer, blkio),
//! and limits, stats and OOM counters come from there; on hybrid hosts the
//! processes are also placed in the unified hierarchy. On pure v2 hosts the
//! controllers are enabled down the tree and everything lives in one
//! directory.
//!
//! Why not the `cgroups-rs` crate: its detection picks v1 or v2 for the whole
//! host and ignores the unified mount of a hybrid host, it reads the real
//! mount table itself (so it cannot be pointed at a tempdir for tests without
//! root), and it brings an older `nix` and `thiserror` into the build. The
//! operations themselves are mkdir, a few writes and reads, and rmdir.
//!
//! Device rules go to the v1 devices controller where it is mounted, and on
//! pure v2 hosts to an eBPF device program attached to the unified directory
//! (`devices.rs`; with [`DEVICE_FILTER_ENV`] set, on hybrid hosts too).
//!
//! Not done here: blkio/io and hugetlb limits.

mod cgroup;
mod convert;
mod devices;
mod error;
mod fs;
mod hierarchy;
mod metrics;
mod rate;
mod stats;
mod v1;
mod v2;

#[cfg(test)]
mod tests;

pub use cgroup::{ensure_parent, Cgroup, DEVICE_FILTER_ENV};
pub use convert::{check as check_resources, shares_to_weight};
pub use error::{Error, Result};
pub use hierarchy::{detect, detect_from, self_cgroup, Controller, Hierarchy};
pub use metrics::{weight_to_shares, CgroupMetrics, CpuMetrics, DeviceIo, MemoryMetrics};
pub use rate::CpuRates;
pub(crate) use stats::now_ns;
pub use stats::CgroupStats;
