//! Resource usage of one cgroup, as the CRI stats RPCs and the OOM reason need.

use std::time::{SystemTime, UNIX_EPOCH};

/// A snapshot of a cgroup's usage. Counters a kernel does not provide read 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupStats {
    /// Total CPU time consumed, in nanoseconds (v1 `cpuacct.usage`, v2
    /// `cpu.stat usage_usec` * 1000).
    pub cpu_usage_ns: u64,
    /// Memory charged to the cgroup, page cache included (v1
    /// `memory.usage_in_bytes`, v2 `memory.current`).
    pub memory_usage_bytes: u64,
    /// Usage minus inactive file cache, as kubelet and cadvisor define it
    /// (never below zero).
    pub memory_working_set_bytes: u64,
    /// Anonymous memory (v1 `total_rss`, v2 `anon` in memory.stat).
    pub memory_rss_bytes: u64,
    /// The memory limit, `None` when unlimited.
    pub memory_limit_bytes: Option<u64>,
    /// Times the cgroup hit its limit and the OOM killer was invoked (v2
    /// `memory.events oom`; v1 has no such counter and reports `oom_kills`).
    pub oom_events: u64,
    /// Processes killed by the OOM killer (v2 `memory.events oom_kill`, v1
    /// `memory.oom_control oom_kill`, kernel 4.13 or newer).
    pub oom_kills: u64,
    /// Page faults of the cgroup's processes (memory.stat v1
    /// `total_pgfault`, v2 `pgfault`).
    pub page_faults: u64,
    /// Major page faults, the ones that read from disk (v1
    /// `total_pgmajfault`, v2 `pgmajfault`).
    pub major_page_faults: u64,
    /// Processes and threads in the cgroup (`pids.current`).
    pub pids_current: u64,
    /// When the snapshot was taken, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
}

/// Limits at or above this are "unlimited" (v1 reports 2^63 rounded down to
/// a page; nobody sets a real limit of 4 EiB).
pub(crate) const UNLIMITED_FLOOR: u64 = 1 << 62;

/// Now, in nanoseconds since the Unix epoch.
pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
