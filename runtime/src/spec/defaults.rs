//! What every container gets unless asked otherwise: the defaults
//! containerd's CRI plugin gives a container.

use std::path::Path;

use oci_spec::runtime::Capability;

use super::Error;

/// Every capability, in kernel number order (`CAP_CHOWN` = 0, ...).
pub(super) const ALL_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The capabilities of an unprivileged container.
pub(super) const DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    // As containerd and CRI-O keep it: a node made is only usable where the
    // device rules allow it (the v1 devices controller, or on cgroup v2 the
    // eBPF device program, cgroups::devices).
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Paths hidden from an unprivileged container.
pub(super) const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths an unprivileged container sees read-only.
pub(super) const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// PATH when the image sets none.
pub(super) const DEFAULT_PATH: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// RLIMIT_NOFILE soft and hard.
pub(super) const NOFILE: u64 = 1_048_576;

/// The default mounts: (destination, type, source, options).
pub(super) fn mounts(
    privileged: bool,
) -> Vec<(&'static str, &'static str, &'static str, Vec<&'static str>)> {
    let sys_ro = if privileged { "rw" } else { "ro" };
    vec![
        ("/proc", "proc", "proc", vec!["nosuid", "noexec", "nodev"]),
        (
            "/dev",
            "tmpfs",
            "tmpfs",
            vec!["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        (
            "/dev/pts",
            "devpts",
            "devpts",
            vec![
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        (
            "/dev/shm",
            "tmpfs",
            "shm",
            vec!["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        (
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            vec!["nosuid", "noexec", "nodev"],
        ),
        (
            "/sys",
            "sysfs",
            "sysfs",
            vec!["nosuid", "noexec", "nodev", sys_ro],
        ),
        (
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            vec!["nosuid", "noexec", "nodev", "relatime", sys_ro],
        ),
    ]
}

/// The standard device nodes: (path, major, minor). /dev/ptmx comes from
/// the devpts mount.
pub(crate) const DEVICES: &[(&str, i64, i64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Device cgroup allowances beyond [`DEVICES`]: (major, minor or all).
pub(super) const PTY_DEVICES: &[(i64, Option<i64>)] = &[
    (136, None),  // /dev/pts/*
    (5, Some(2)), // /dev/ptmx
];

/// Capabilities the running kernel knows (`/proc/sys/kernel/cap_last_cap`)
/// and this process may hand on (its bounding set: a container cannot be
/// given what the runtime itself lacks, as on hosts without
/// CAP_SYS_RESOURCE), or every one we know when that cannot be read.
/// Read once per process: neither the kernel's capabilities nor the
/// bounding set change while the daemon runs.
pub(super) fn kernel_caps() -> Vec<&'static str> {
    static CAPS: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    CAPS.get_or_init(read_kernel_caps).clone()
}

fn read_kernel_caps() -> Vec<&'static str> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(ALL_CAPS.len() - 1);
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| bounding_set(&s));
    ALL_CAPS
        .iter()
        .take(last + 1)
        .enumerate()
        .filter(|(bit, _)| bounding.is_none_or(|b| b & (1u64 << bit) != 0))
        .map(|(_, c)| *c)
        .collect()
}

/// The `CapBnd` mask of a /proc/PID/status text.
fn bounding_set(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

/// `net_admin` / `CAP_NET_ADMIN` -> the oci-spec capability.
pub(super) fn capability(name: &str) -> Result<Capability, Error> {
    let n = crate::seccomp::normalize_capability(name);
    n.parse::<Capability>()
        .map_err(|_| Error::Capability(name.to_string()))
}

/// The container's capability names (without `CAP_`), from the defaults or
/// (privileged) every capability, with `add` then `drop` applied. `ALL` in
/// `drop` starts from nothing, `ALL` in `add` from everything; a capability
/// both added and dropped is dropped.
pub(super) fn capabilities(
    privileged: bool,
    add: &[String],
    drop: &[String],
) -> Result<Vec<String>, Error> {
    let all = kernel_caps();
    if privileged {
        return Ok(all.iter().map(|c| c.to_string()).collect());
    }
    for c in add.iter().chain(drop) {
        if crate::seccomp::normalize_capability(c) != "ALL" {
            capability(c)?;
        }
    }
    let norm = |v: &[String]| -> Vec<String> {
        v.iter()
            .map(|c| crate::seccomp::normalize_capability(c))
            .collect()
    };
    let (add, drop) = (norm(add), norm(drop));
    let mut caps: Vec<String> = if add.iter().any(|c| c == "ALL") {
        all.iter().map(|c| c.to_string()).collect()
    } else {
        DEFAULT_CAPS.iter().map(|c| c.to_string()).collect()
    };
    if drop.iter().any(|c| c == "ALL") {
        caps.clear();
    }
    for c in add.iter().filter(|c| *c != "ALL") {
        if !caps.contains(c) {
            caps.push(c.clone());
        }
    }
    caps.retain(|c| !drop.contains(c));
    Ok(caps)
}

/// Every device node under the host's `dev` (privileged containers get them
/// all), skipping the directories the container mounts its own of.
pub(super) fn host_devices(dev: &Path) -> Vec<std::path::PathBuf> {
    const SKIP: &[&str] = &["pts", "shm", "mqueue", "fd", ".lxc", ".udev"];
    let mut out = Vec::new();
    let mut dirs = vec![dev.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            use std::os::unix::fs::FileTypeExt;
            if ft.is_dir() {
                let top_skip = dir == dev && SKIP.iter().any(|s| e.file_name() == *s);
                if !top_skip {
                    dirs.push(e.path());
                }
            } else if ft.is_char_device() || ft.is_block_device() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod bounding_tests {
    use super::*;

    #[test]
    fn the_bounding_set_limits_all_capabilities() {
        let status = "Name:\tx\nCapBnd:\t000001fffeffffff\n";
        let b = bounding_set(status).expect("mask");
        assert_eq!(b & (1 << 24), 0, "CAP_SYS_RESOURCE (24) missing");
        assert_eq!(ALL_CAPS[24], "SYS_RESOURCE");
        assert_eq!(bounding_set("Name:\tx\n"), None);
        let mine = kernel_caps();
        let own = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| bounding_set(&s))
            .expect("own mask");
        for (bit, c) in ALL_CAPS.iter().enumerate() {
            if mine.contains(c) {
                assert_ne!(own & (1 << bit), 0, "{c} is not in the bounding set");
            }
        }
    }
}
