//! cgroup v1: one directory per controller; limits, stats, OOM and freezing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources};

use super::convert;
use super::error::{Error, Result};
use super::fs;
use super::hierarchy::Controller;
use super::stats::{now_ns, CgroupStats, UNLIMITED_FLOOR};

/// The directories of one v1 cgroup, one per mounted controller.
#[derive(Debug, Clone)]
pub(crate) struct V1<'a> {
    pub(crate) path: &'a str,
    pub(crate) dirs: &'a [(Controller, PathBuf)],
}

impl V1<'_> {
    pub(crate) fn dir(&self, c: Controller) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(k, _)| *k == c)
            .map(|(_, d)| d.as_path())
    }

    fn require(&self, c: Controller, what: &'static str) -> Result<&Path> {
        self.dir(c).ok_or_else(|| Error::MissingController {
            controller: c.name(),
            what,
            path: self.path.to_owned(),
        })
    }

    /// Writes the OCI resources into the v1 controller files.
    pub(crate) fn apply(&self, r: &LinuxResources) -> Result<()> {
        if let Some(m) = r.memory() {
            if let Some(limit) = m.limit() {
                let d = self.require(Controller::Memory, "memory limit")?;
                let v = convert::memory_limit(limit, false)?;
                fs::write_limit(&d.join("memory.limit_in_bytes"), &v)?;
            }
            if let Some(res) = m.reservation() {
                let d = self.require(Controller::Memory, "memory reservation")?;
                let v = if res < 0 {
                    "-1".into()
                } else {
                    res.to_string()
                };
                fs::write_limit(&d.join("memory.soft_limit_in_bytes"), &v)?;
            }
        }
        if let Some(cpu) = r.cpu() {
            if let Some(shares) = cpu.shares().filter(|s| *s > 0) {
                let d = self.require(Controller::Cpu, "cpu shares")?;
                fs::write_limit(&d.join("cpu.shares"), &shares.to_string())?;
            }
            // Period before quota: the kernel checks quota against the period.
            if let Some(period) = cpu.period().filter(|p| *p > 0) {
                let d = self.require(Controller::Cpu, "cpu period")?;
                fs::write_limit(&d.join("cpu.cfs_period_us"), &period.to_string())?;
            }
            if let Some(quota) = cpu.quota() {
                let d = self.require(Controller::Cpu, "cpu quota")?;
                let v = if quota > 0 {
                    quota.to_string()
                } else {
                    "-1".into()
                };
                fs::write_limit(&d.join("cpu.cfs_quota_us"), &v)?;
            }
            if let Some(cpus) = cpu.cpus().as_deref().filter(|s| !s.trim().is_empty()) {
                let d = self.require(Controller::Cpuset, "cpuset cpus")?;
                let v = convert::cpuset_list("cpuset.cpus", cpus)?;
                fs::write_limit(&d.join("cpuset.cpus"), &v)?;
            }
            if let Some(mems) = cpu.mems().as_deref().filter(|s| !s.trim().is_empty()) {
                let d = self.require(Controller::Cpuset, "cpuset mems")?;
                let v = convert::cpuset_list("cpuset.mems", mems)?;
                fs::write_limit(&d.join("cpuset.mems"), &v)?;
            }
        }
        if let Some(p) = r.pids() {
            let d = self.require(Controller::Pids, "pids limit")?;
            fs::write_limit(&d.join("pids.max"), &convert::pids_limit(p.limit()))?;
        }
        if let Some(rules) = r.devices().as_deref().filter(|r| !r.is_empty()) {
            let d = self.require(Controller::Devices, "device rules")?;
            for rule in rules {
                let file = if rule.allow() {
                    "devices.allow"
                } else {
                    "devices.deny"
                };
                fs::write_limit(&d.join(file), &device_rule(rule))?;
            }
        }
        Ok(())
    }

    /// Reads usage from cpuacct, memory and pids.
    pub(crate) fn stats(&self) -> Result<CgroupStats> {
        let mut s = CgroupStats {
            timestamp_ns: now_ns(),
            ..CgroupStats::default()
        };
        if let Some(d) = self.dir(Controller::Cpuacct) {
            s.cpu_usage_ns = fs::read_u64_opt(&d.join("cpuacct.usage"))?.unwrap_or(0);
        }
        if let Some(d) = self.dir(Controller::Memory) {
            s.memory_usage_bytes = fs::read_u64_opt(&d.join("memory.usage_in_bytes"))?.unwrap_or(0);
            let stat = fs::read_opt(&d.join("memory.stat"))?.unwrap_or_default();
            let inactive = fs::keyed(&stat, "total_inactive_file")
                .or_else(|| fs::keyed(&stat, "inactive_file"))
                .unwrap_or(0);
            s.memory_working_set_bytes = s.memory_usage_bytes.saturating_sub(inactive);
            s.memory_rss_bytes = fs::keyed(&stat, "total_rss")
                .or_else(|| fs::keyed(&stat, "rss"))
                .unwrap_or(0);
            s.page_faults = fs::keyed(&stat, "total_pgfault")
                .or_else(|| fs::keyed(&stat, "pgfault"))
                .unwrap_or(0);
            s.major_page_faults = fs::keyed(&stat, "total_pgmajfault")
                .or_else(|| fs::keyed(&stat, "pgmajfault"))
                .unwrap_or(0);
            s.memory_limit_bytes = fs::read_u64_opt(&d.join("memory.limit_in_bytes"))?
                .filter(|l| *l < UNLIMITED_FLOOR);
            let (_, kills) = self.oom_control()?;
            s.oom_kills = kills.unwrap_or(0);
            s.oom_events = s.oom_kills;
        }
        if let Some(d) = self.dir(Controller::Pids) {
            s.pids_current = fs::read_u64_opt(&d.join("pids.current"))?.unwrap_or(0);
        }
        Ok(s)
    }

    /// `(under_oom, oom_kill count)` from memory.oom_control; the count is
    /// `None` on kernels before 4.13.
    fn oom_control(&self) -> Result<(bool, Option<u64>)> {
        let Some(d) = self.dir(Controller::Memory) else {
            return Ok((false, None));
        };
        let text = fs::read_opt(&d.join("memory.oom_control"))?.unwrap_or_default();
        let under = fs::keyed(&text, "under_oom").is_some_and(|v| v > 0);
        Ok((under, fs::keyed(&text, "oom_kill")))
    }

    /// Whether the OOM killer has struck here: the `oom_kill` counter where
    /// the kernel has one, else whether the cgroup is under OOM right now.
    pub(crate) fn oom_killed(&self) -> Result<bool> {
        let (under, kills) = self.oom_control()?;
        Ok(match kills {
            Some(k) => k > 0,
            None => under,
        })
    }

    /// Freezes the cgroup (if the freezer is mounted), SIGKILLs everything in
    /// it, and thaws it so the signals are delivered. Returns false when no
    /// freezer is mounted and nothing was done.
    pub(crate) fn freeze_and_kill(&self, procs: &dyn Fn() -> Result<Vec<i32>>) -> Result<bool> {
        let Some(d) = self.dir(Controller::Freezer) else {
            return Ok(false);
        };
        let state = d.join("freezer.state");
        if fs::read_opt(&state)?.is_none() {
            return Ok(false);
        }
        fs::write(&state, "FROZEN")?;
        let frozen = wait_state(&state, "FROZEN", Duration::from_secs(2));
        // Kill whether or not the freeze completed: a task stuck in FREEZING
        // still dies on SIGKILL once thawed.
        let killed = procs().and_then(|pids| super::cgroup::signal_all(&pids));
        let thawed = fs::write(&state, "THAWED");
        killed?;
        thawed?;
        if let Err(e) = frozen {
            tracing::debug!(error = %e, "freezer did not settle; processes were killed anyway");
        }
        Ok(true)
    }

    /// Creates `leaf` under each controller root, walking down from the root
    /// so cpuset levels get cpus/mems from their parent before use.
    pub(crate) fn create_dirs(roots: &[(Controller, PathBuf)], parts: &[String]) -> Result<()> {
        for (c, root) in roots {
            let mut cur = root.clone();
            for part in parts {
                let parent = cur.clone();
                cur.push(part);
                fs::mkdir(&cur)?;
                if *c == Controller::Cpuset {
                    inherit_cpuset(&parent, &cur)?;
                }
            }
        }
        Ok(())
    }
}

/// Copies cpuset.cpus and cpuset.mems from `parent` into `child` where the
/// child's are empty (a fresh v1 cpuset has none, and refuses tasks so).
fn inherit_cpuset(parent: &Path, child: &Path) -> Result<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        // Only a file that exists and is empty is filled in (a real kernel
        // always has it; a test fake may not).
        match fs::read_opt(&child.join(file))? {
            Some(own) if own.trim().is_empty() => {}
            _ => continue,
        }
        let from = fs::read_opt(&parent.join(file))?.unwrap_or_default();
        if !from.trim().is_empty() {
            fs::write(&child.join(file), from.trim())?;
        }
    }
    Ok(())
}

/// Polls a freezer state file until it reads `want`.
fn wait_state(path: &Path, want: &'static str, timeout: Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let state = fs::read(path)?;
        if state.trim() == want {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(Error::Freeze {
                path: path.to_owned(),
                want,
                state: state.trim().to_owned(),
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A device rule as devices.allow/deny take it: `c 1:3 rwm`, `a *:* rwm`.
pub(crate) fn device_rule(rule: &LinuxDeviceCgroup) -> String {
    let typ = rule.typ().unwrap_or_default();
    let num = |n: Option<i64>| {
        n.filter(|n| *n >= 0)
            .map_or("*".to_owned(), |n| n.to_string())
    };
    let access = rule.access().as_deref().unwrap_or("rwm");
    format!(
        "{} {}:{} {}",
        typ.as_str(),
        num(rule.major()),
        num(rule.minor()),
        access
    )
}
