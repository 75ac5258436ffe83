//! The metrics of a running container (what the CRI's
//! `ListPodSandboxMetrics` serves): its cgroup's fuller reading, counts
//! over its processes from /proc, and its writable layer with the block
//! device under it.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::ContainerRuntime;
use crate::cgroups::CgroupMetrics;
use crate::snapshot::{disk_usage, Usage};

/// What a running container uses, for metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerMetrics {
    /// The cgroup's counters; `None` once the cgroup is gone.
    pub cgroup: Option<CgroupMetrics>,
    /// Counts over the cgroup's processes.
    pub processes: ProcessCounts,
    /// The writable layer's bytes and inodes.
    pub writable_layer: Usage,
    /// The device that holds the writable layer.
    pub layer_device: Option<BlockDevice>,
    /// The size of the filesystem that holds the writable layer.
    pub layer_filesystem: Option<FilesystemSize>,
}

/// A filesystem's size, from statvfs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilesystemSize {
    /// Its capacity, bytes.
    pub bytes: u64,
    /// Its inodes.
    pub inodes: u64,
    /// Of them, free.
    pub inodes_free: u64,
}

/// Counts over a container's processes, from /proc/<pid>.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessCounts {
    /// Processes (thread-group leaders) in the cgroup.
    pub processes: u64,
    /// Open file descriptors, over every process.
    pub file_descriptors: u64,
    /// Of them, sockets.
    pub sockets: u64,
    /// The soft limit on open files of the oldest process (the init);
    /// `None` when it is unlimited or there is no process.
    pub max_open_files: Option<u64>,
}

/// A device by number, with the name the mount table gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockDevice {
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// The mount source of a filesystem on it (`/dev/vda1`); empty if
    /// none is mounted from the running namespace.
    pub name: String,
}

impl ContainerRuntime {
    /// The metrics of container `id` (blocking: cgroupfs, /proc and a walk
    /// of the writable layer).
    pub fn metrics(&self, id: &str) -> Result<ContainerMetrics, crate::Error> {
        let mut out = ContainerMetrics::default();
        if let Some(cg) = self.cgroup_of(id)? {
            out.cgroup = Some(cg.metrics()?);
            // A process may exit between the list and its reading.
            out.processes = process_counts(Path::new("/proc"), &cg.pids()?);
        }
        let layer = self.writable_layer(id);
        out.writable_layer = disk_usage(&layer.join("upper"))?;
        out.layer_device = std::fs::metadata(&layer).ok().map(|m| {
            let dev = m.dev();
            let (major, minor) = (
                u64::from(nix::sys::stat::major(dev) as u32),
                u64::from(nix::sys::stat::minor(dev) as u32),
            );
            let name = std::fs::read_to_string("/proc/self/mountinfo")
                .ok()
                .and_then(|t| mount_source(&t, major, minor))
                .unwrap_or_default();
            BlockDevice { major, minor, name }
        });
        out.layer_filesystem = nix::sys::statvfs::statvfs(&layer)
            .ok()
            .map(|s| FilesystemSize {
                bytes: s.blocks().saturating_mul(s.fragment_size()),
                inodes: s.files(),
                inodes_free: s.files_free(),
            });
        Ok(out)
    }
}

/// Counts over `pids` from the proc filesystem at `proc`; a process gone
/// meanwhile counts as nothing.
pub(crate) fn process_counts(proc: &Path, pids: &[i32]) -> ProcessCounts {
    let mut c = ProcessCounts::default();
    let mut oldest: Option<(u64, Option<u64>)> = None;
    for pid in pids {
        let dir = proc.join(pid.to_string());
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        c.processes += 1;
        if let Ok(fds) = std::fs::read_dir(dir.join("fd")) {
            for fd in fds.flatten() {
                c.file_descriptors += 1;
                if std::fs::read_link(fd.path())
                    .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
                {
                    c.sockets += 1;
                }
            }
        }
        let started = start_ticks(&stat).unwrap_or(u64::MAX);
        if oldest.is_none_or(|(t, _)| started < t) {
            let limit = std::fs::read_to_string(dir.join("limits"))
                .ok()
                .and_then(|t| soft_limit(&t, "Max open files"));
            oldest = Some((started, limit));
        }
    }
    c.max_open_files = oldest.and_then(|(_, l)| l);
    c
}

/// Field 22 of /proc/<pid>/stat, the start time in clock ticks after boot
/// (the command, field 2, may hold blanks and parentheses: count from its
/// last `)`).
fn start_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The soft value of limit `name` in /proc/<pid>/limits; `None` when
/// "unlimited".
fn soft_limit(limits: &str, name: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// The source of the first mount of device `major:minor` in mountinfo
/// (field 3 is `major:minor`; the source follows the ` - <fstype> `
/// separator).
fn mount_source(mountinfo: &str, major: u64, minor: u64) -> Option<String> {
    let want = format!("{major}:{minor}");
    mountinfo.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        if fields.nth(2)? != want {
            return None;
        }
        let (_, tail) = line.split_once(" - ")?;
        tail.split_whitespace().nth(1).map(str::to_string)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_after_a_command_with_blanks_and_parens() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(start_ticks(stat), Some(98765));
        assert_eq!(start_ticks("garbage"), None);
    }

    #[test]
    fn soft_limit_of_open_files() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max cpu time              unlimited            unlimited            seconds\n\
                      Max open files            1048576              1048576              files\n";
        assert_eq!(soft_limit(limits, "Max open files"), Some(1_048_576));
        assert_eq!(soft_limit(limits, "Max cpu time"), None);
        assert_eq!(soft_limit(limits, "Max processes"), None);
    }

    #[test]
    fn mount_source_by_device_number() {
        let info = "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                    30 22 0:26 / /tmp rw - tmpfs tmpfs rw\n";
        assert_eq!(mount_source(info, 254, 0).as_deref(), Some("/dev/vda"));
        assert_eq!(mount_source(info, 0, 26).as_deref(), Some("tmpfs"));
        assert_eq!(mount_source(info, 8, 0), None);
    }

    #[test]
    fn counts_over_this_process_and_a_gone_one() {
        let me = std::process::id() as i32;
        let sock = std::os::unix::net::UnixDatagram::unbound().unwrap();
        // A pid that cannot exist (above pid_max's ceiling).
        let c = process_counts(Path::new("/proc"), &[me, 1 << 23]);
        assert_eq!(c.processes, 1);
        assert!(c.file_descriptors >= 4, "{c:?}");
        assert!(c.sockets >= 1, "{c:?}");
        drop(sock);
        let soft = soft_limit(
            &std::fs::read_to_string("/proc/self/limits").unwrap(),
            "Max open files",
        );
        assert_eq!(c.max_open_files, soft);
    }
}
