//! One container's cgroup across every hierarchy of the host.

use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use super::convert;
use super::error::{Error, Result};
use super::fs;
use super::hierarchy::{controller_dir, Controller, Hierarchy};
use super::stats::CgroupStats;
use super::v1::V1;
use super::v2::V2;

/// How long `destroy` waits for exiting processes to leave.
const DESTROY_WAIT: Duration = Duration::from_secs(2);

/// A cgroup: its directory under each v1 controller and/or in the unified
/// hierarchy. Resources go to v1 when the host has v1 controllers (V1 and
/// hybrid), to the unified directory on pure v2; on hybrid the processes are
/// also placed in the unified directory so v2-aware tools find them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    path: String,
    v1: Vec<(Controller, PathBuf)>,
    unified: Option<PathBuf>,
    pure_v2: bool,
}

impl Cgroup {
    /// Creates (or adopts, if present) the cgroup `path` (e.g.
    /// `/corten/<id>`, relative to each controller root) with its parents.
    pub fn create(h: &Hierarchy, path: &str) -> Result<Cgroup> {
        let parts = convert::path_components(path)?;
        let roots = v1_roots(h)?;
        V1::create_dirs(&roots, &parts)?;
        let unified = match h.unified() {
            Some(root) => Some(V2::create_dirs(
                root,
                &parts,
                matches!(h, Hierarchy::V2 { .. }),
            )?),
            None => None,
        };
        let cg = Cgroup::resolve(h, &parts, roots, unified);
        tracing::debug!(cgroup = %cg.path, "cgroup created");
        Ok(cg)
    }

    /// Opens an existing cgroup; NotFound if it exists in no hierarchy.
    pub fn open(h: &Hierarchy, path: &str) -> Result<Cgroup> {
        let parts = convert::path_components(path)?;
        let roots = v1_roots(h)?;
        let unified = h.unified().map(|r| join(r.to_owned(), &parts));
        let cg = Cgroup::resolve(h, &parts, roots, unified);
        if cg.dirs().any(|d| d.is_dir()) {
            Ok(cg)
        } else {
            Err(Error::NotFound {
                path: cg
                    .dirs()
                    .next()
                    .cloned()
                    .unwrap_or_else(|| PathBuf::from(&cg.path)),
            })
        }
    }

    fn resolve(
        h: &Hierarchy,
        parts: &[String],
        roots: Vec<(Controller, PathBuf)>,
        unified: Option<PathBuf>,
    ) -> Cgroup {
        Cgroup {
            path: format!("/{}", parts.join("/")),
            v1: roots
                .into_iter()
                .map(|(c, r)| (c, join(r, parts)))
                .collect(),
            unified,
            pure_v2: matches!(h, Hierarchy::V2 { .. }),
        }
    }

    /// The cgroup path, normalised (`/corten/<id>`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The directory for a v1 controller, if mounted.
    pub fn v1_dir(&self, c: Controller) -> Option<&std::path::Path> {
        self.v1
            .iter()
            .find(|(k, _)| *k == c)
            .map(|(_, d)| d.as_path())
    }

    /// The directories in the v1 hierarchies (none on a pure v2 host).
    pub fn v1_dirs(&self) -> impl Iterator<Item = &std::path::Path> {
        self.v1.iter().map(|(_, d)| d.as_path())
    }

    /// Whether the host is pure v2 (resources live in the unified directory).
    pub(crate) fn is_pure_v2(&self) -> bool {
        self.pure_v2
    }

    /// The directory in the unified hierarchy, if any.
    pub fn unified_dir(&self) -> Option<&std::path::Path> {
        self.unified.as_deref()
    }

    fn v1_view(&self) -> V1<'_> {
        V1 {
            path: &self.path,
            dirs: &self.v1,
        }
    }

    /// The directory that holds the resources on pure v2.
    fn v2_view(&self) -> Option<V2<'_>> {
        self.unified
            .as_deref()
            .filter(|_| self.pure_v2)
            .map(|dir| V2 { dir })
    }

    /// Every directory of this cgroup, v1 first.
    fn dirs(&self) -> impl Iterator<Item = &PathBuf> {
        self.v1.iter().map(|(_, d)| d).chain(self.unified.iter())
    }

    /// Applies memory, cpu, cpuset, pids and device limits. Device rules go
    /// to the v1 devices controller, or on pure v2 (or with
    /// [`DEVICE_FILTER_ENV`] set to `bpf`) become an eBPF program attached
    /// to the unified directory, replacing the one an earlier call attached.
    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        // Every value checked before the first write: a bad one changes nothing.
        convert::check(r)?;
        match self.v2_view() {
            Some(v2) => v2.apply(r),
            None => {
                let rules = r.devices().as_deref().filter(|r| !r.is_empty());
                match (self.unified.as_deref(), rules) {
                    // The pure v2 path on a hybrid host: the rules become an
                    // eBPF program on the unified directory, not v1 files.
                    (Some(dir), Some(rules)) if device_filter_forced() => {
                        let mut rest = r.clone();
                        rest.set_devices(None);
                        self.v1_view().apply(&rest)?;
                        V2 { dir }.apply_devices(rules)?;
                    }
                    _ => self.v1_view().apply(r)?,
                }
                match (
                    &self.unified,
                    r.unified().as_ref().filter(|m| !m.is_empty()),
                ) {
                    // Hybrid: raw unified keys can only mean the v2 hierarchy.
                    (Some(dir), Some(_)) => V2 { dir }.apply_unified(r),
                    (None, Some(map)) => Err(Error::InvalidValue {
                        what: "unified resources",
                        value: map.keys().cloned().collect::<Vec<_>>().join(","),
                        reason: "need a cgroup v2 hierarchy, and this host has only v1",
                    }),
                    _ => Ok(()),
                }
            }
        }
    }

    /// Moves `pid` into this cgroup in every hierarchy.
    pub fn add_pid(&self, pid: i32) -> Result<()> {
        let value = pid.to_string();
        for dir in self.dirs() {
            fs::write(&dir.join("cgroup.procs"), &value)?;
        }
        Ok(())
    }

    /// The processes in the cgroup (the union over hierarchies), sorted.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut all = Vec::new();
        for dir in self.dirs() {
            let procs = dir.join("cgroup.procs");
            if procs.exists() {
                all.extend(fs::read_pids(&procs)?);
            }
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    /// A snapshot of the cgroup's resource usage.
    pub fn stats(&self) -> Result<CgroupStats> {
        match self.v2_view() {
            Some(v2) => v2.stats(),
            None => self.v1_view().stats(),
        }
    }

    /// Whether the OOM killer killed a process in this cgroup.
    pub fn oom_killed(&self) -> Result<bool> {
        match self.v2_view() {
            Some(v2) => v2.oom_killed(),
            None => self.v1_view().oom_killed(),
        }
    }

    /// SIGKILLs every process in the cgroup, freezing it first where a
    /// freezer exists so nothing forks away. Returns once signals are sent.
    pub fn kill_all(&self) -> Result<()> {
        let procs = || self.pids();
        let done = match self.v2_view() {
            Some(v2) => v2.kill(&procs)?,
            None => {
                self.v1_view().freeze_and_kill(&procs)?
                    || match &self.unified {
                        Some(dir) => V2 { dir }.kill(&procs)?,
                        None => false,
                    }
            }
        };
        if !done {
            signal_all(&self.pids()?)?;
        }
        Ok(())
    }

    /// Removes the cgroup (and any child cgroups) everywhere, waiting
    /// briefly for exiting processes. Already gone is success.
    pub fn destroy(&self) -> Result<()> {
        // Co-mounted controllers share a directory; rmdir each once.
        let mut seen: Vec<PathBuf> = Vec::new();
        for dir in self.dirs() {
            let canon = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
            if seen.contains(&canon) {
                continue;
            }
            fs::rmdir(dir, DESTROY_WAIT)?;
            seen.push(canon);
        }
        tracing::debug!(cgroup = %self.path, "cgroup destroyed");
        Ok(())
    }
}

/// The environment variable that, set to `bpf`, sends device rules on a
/// host with v1 controllers to an eBPF program on the cgroup's unified
/// directory instead of the v1 devices controller: the pure v2 code path,
/// for tests on a hybrid host (the kernel runs both checks there). Read by
/// whoever applies resources (the shim, which inherits cortend's
/// environment).
pub const DEVICE_FILTER_ENV: &str = "CORTEN_DEVICE_FILTER";

fn device_filter_forced() -> bool {
    std::env::var_os(DEVICE_FILTER_ENV).is_some_and(|v| v == "bpf")
}

/// Creates `parent` (e.g. `/corten`) in every hierarchy, as container
/// cgroups will be made beneath it.
pub fn ensure_parent(h: &Hierarchy, parent: &str) -> Result<Cgroup> {
    Cgroup::create(h, parent)
}

/// Sends SIGKILL to each pid; one already gone is fine. Non-positive
/// values (which kill(2) would read as process groups) are skipped.
pub(crate) fn signal_all(pids: &[i32]) -> Result<()> {
    for &pid in pids.iter().filter(|p| **p > 0) {
        match kill(Pid::from_raw(pid), Signal::SIGKILL) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(source) => return Err(Error::Kill { pid, source }),
        }
    }
    Ok(())
}

/// The mounted v1 controllers and their roots (empty on pure v2).
fn v1_roots(h: &Hierarchy) -> Result<Vec<(Controller, PathBuf)>> {
    let Some(root) = h.v1_root() else {
        return Ok(Vec::new());
    };
    let roots: Vec<_> = Controller::ALL
        .iter()
        .filter_map(|&c| controller_dir(root, c).map(|d| (c, d)))
        .collect();
    if roots.is_empty() {
        return Err(Error::NoHierarchy {
            at: root.to_owned(),
        });
    }
    Ok(roots)
}

fn join(mut base: PathBuf, parts: &[String]) -> PathBuf {
    base.extend(parts);
    base
}
