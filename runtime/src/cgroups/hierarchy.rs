//! Which cgroup layout this host has (v1, v2 or hybrid), found from the mount
//! table, and where each v1 controller lives.

use std::path::{Path, PathBuf};

use super::error::{Error, Result};
use super::fs;

/// The cgroup layout of a host.
///
/// Built by [`detect`] on a real host; tests build one around a tempdir with
/// fake controller directories and files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// Only v1: one directory per controller under `root` (`root/memory`, ...).
    V1 {
        /// Usually `/sys/fs/cgroup`.
        root: PathBuf,
    },
    /// Only the unified (v2) hierarchy, mounted at `root`.
    V2 {
        /// Usually `/sys/fs/cgroup`.
        root: PathBuf,
    },
    /// v1 controllers own the resources; a controller-less (or nearly so)
    /// cgroup2 hierarchy is mounted beside them at `unified`.
    Hybrid {
        /// Usually `/sys/fs/cgroup`.
        v1_root: PathBuf,
        /// Usually `/sys/fs/cgroup/unified`.
        unified: PathBuf,
    },
}

impl Hierarchy {
    /// The directory holding the v1 controller mounts, if any.
    pub fn v1_root(&self) -> Option<&Path> {
        match self {
            Hierarchy::V1 { root } => Some(root),
            Hierarchy::V2 { .. } => None,
            Hierarchy::Hybrid { v1_root, .. } => Some(v1_root),
        }
    }

    /// The cgroup2 mount, if any (the whole hierarchy on V2).
    pub fn unified(&self) -> Option<&Path> {
        match self {
            Hierarchy::V1 { .. } => None,
            Hierarchy::V2 { root } => Some(root),
            Hierarchy::Hybrid { unified, .. } => Some(unified),
        }
    }
}

/// The v1 controllers a container cgroup is made in (where mounted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Controller {
    /// memory
    Memory,
    /// cpu
    Cpu,
    /// cpuacct
    Cpuacct,
    /// cpuset
    Cpuset,
    /// pids
    Pids,
    /// devices
    Devices,
    /// freezer
    Freezer,
    /// blkio
    Blkio,
}

impl Controller {
    /// Every controller, in creation order.
    pub const ALL: [Controller; 8] = [
        Controller::Memory,
        Controller::Cpu,
        Controller::Cpuacct,
        Controller::Cpuset,
        Controller::Pids,
        Controller::Devices,
        Controller::Freezer,
        Controller::Blkio,
    ];

    /// Whether the controller list of a `/proc/<pid>/cgroup` line (its
    /// second field) names a hierarchy corten makes cgroups in: one with a
    /// controller of [`Self::ALL`], or the unified one (an empty list).
    pub fn any_managed(controllers: &str) -> bool {
        controllers.is_empty()
            || controllers
                .split(',')
                .any(|c| Self::ALL.iter().any(|k| k.name() == c))
    }

    /// The kernel's name of the controller.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Cpuset => "cpuset",
            Controller::Pids => "pids",
            Controller::Devices => "devices",
            Controller::Freezer => "freezer",
            Controller::Blkio => "blkio",
        }
    }
}

/// Where controller `c` is mounted under a v1 root: `root/<name>`, or a
/// co-mount directory such as `root/cpu,cpuacct` when no symlink exists.
pub(crate) fn controller_dir(root: &Path, c: Controller) -> Option<PathBuf> {
    let direct = root.join(c.name());
    if direct.is_dir() {
        return Some(direct);
    }
    let entries = std::fs::read_dir(root).ok()?;
    entries
        .flatten()
        .find(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.split(',').any(|part| part == c.name()))
                && e.path().is_dir()
        })
        .map(|e| e.path())
}

/// Detects the host's layout from `/proc/self/mountinfo`.
pub fn detect() -> Result<Hierarchy> {
    detect_from(Path::new("/proc/self/mountinfo"))
}

/// Detects the layout from a mount table in mountinfo format.
pub fn detect_from(mountinfo: &Path) -> Result<Hierarchy> {
    parse_mountinfo(&fs::read(mountinfo)?).ok_or_else(|| Error::NoHierarchy {
        at: mountinfo.to_owned(),
    })
}

/// Decides the layout from mountinfo text; `None` if no cgroup fs is mounted.
///
/// A v1 mount counts only if it carries a real controller (a lone
/// `name=systemd` hierarchy does not); its parent directory is the v1 root.
pub(crate) fn parse_mountinfo(text: &str) -> Option<Hierarchy> {
    let mut v1_root: Option<PathBuf> = None;
    let mut unified: Option<PathBuf> = None;
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mount_point) = left.split_whitespace().nth(4) else {
            continue;
        };
        let mut rest = right.split_whitespace();
        let (fstype, _source, opts) = (rest.next(), rest.next(), rest.next().unwrap_or(""));
        let mount_point = PathBuf::from(unescape(mount_point));
        match fstype {
            Some("cgroup2") => unified = Some(mount_point),
            Some("cgroup") => {
                let has_controller = opts
                    .split(',')
                    .any(|o| Controller::ALL.iter().any(|c| c.name() == o));
                if has_controller {
                    if let Some(parent) = mount_point.parent() {
                        v1_root = Some(parent.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    match (v1_root, unified) {
        (Some(root), None) => Some(Hierarchy::V1 { root }),
        (None, Some(root)) => Some(Hierarchy::V2 { root }),
        (Some(v1_root), Some(unified)) => Some(Hierarchy::Hybrid { v1_root, unified }),
        (None, None) => None,
    }
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let esc = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        if let Some(d) = esc {
            let v = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup path of the current process: for a v1 `controller`
/// (e.g. `Some("memory")`), or the unified one (`None`).
pub fn self_cgroup(controller: Option<&str>) -> Result<String> {
    let path = Path::new("/proc/self/cgroup");
    let text = fs::read(path)?;
    parse_proc_cgroup(&text, controller).ok_or_else(|| Error::Parse {
        path: path.to_owned(),
        reason: format!(
            "no entry for {}",
            controller.unwrap_or("the unified hierarchy")
        ),
    })
}

/// Finds a controller's (or the unified, `None`) path in /proc/<pid>/cgroup
/// text: lines `id:controllers:path`.
pub(crate) fn parse_proc_cgroup(text: &str, controller: Option<&str>) -> Option<String> {
    text.lines().find_map(|line| {
        let mut it = line.splitn(3, ':');
        let (_id, ctls, path) = (it.next()?, it.next()?, it.next()?);
        let hit = match controller {
            None => ctls.is_empty(),
            Some(c) => ctls.split(',').any(|x| x == c),
        };
        hit.then(|| path.to_owned())
    })
}
