//! cgroup v2 (the unified hierarchy): limits, stats, OOM and killing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources};

use super::convert;
use super::devices::DeviceRules;
use super::error::{Error, Result};
use super::fs;
use super::stats::{now_ns, CgroupStats, UNLIMITED_FLOOR};
use crate::linux;

/// Controllers we enable down the tree on a pure v2 host, where available.
const WANTED: [&str; 6] = ["cpuset", "cpu", "io", "memory", "pids", "hugetlb"];

/// One v2 cgroup directory.
#[derive(Debug, Clone)]
pub(crate) struct V2<'a> {
    pub(crate) dir: &'a Path,
}

impl V2<'_> {
    /// Writes the OCI resources into the v2 files, and attaches the device
    /// rules as an eBPF program.
    pub(crate) fn apply(&self, r: &LinuxResources) -> Result<()> {
        let d = self.dir;
        if let Some(rules) = r.devices().as_deref().filter(|r| !r.is_empty()) {
            self.apply_devices(rules)?;
        }
        if let Some(m) = r.memory() {
            if let Some(limit) = m.limit() {
                let v = convert::memory_limit(limit, true)?;
                fs::write_limit(&d.join("memory.max"), &v)?;
            }
            if let Some(res) = m.reservation() {
                let v = if res < 0 {
                    "max".into()
                } else {
                    res.to_string()
                };
                fs::write_limit(&d.join("memory.low"), &v)?;
            }
        }
        if let Some(cpu) = r.cpu() {
            if let Some(shares) = cpu.shares().filter(|s| *s > 0) {
                let w = convert::shares_to_weight(shares);
                fs::write_limit(&d.join("cpu.weight"), &w.to_string())?;
            }
            if let Some(v) = convert::cpu_max(cpu.quota(), cpu.period().filter(|p| *p > 0)) {
                fs::write_limit(&d.join("cpu.max"), &v)?;
            }
            if let Some(cpus) = cpu.cpus().as_deref().filter(|s| !s.trim().is_empty()) {
                let v = convert::cpuset_list("cpuset.cpus", cpus)?;
                fs::write_limit(&d.join("cpuset.cpus"), &v)?;
            }
            if let Some(mems) = cpu.mems().as_deref().filter(|s| !s.trim().is_empty()) {
                let v = convert::cpuset_list("cpuset.mems", mems)?;
                fs::write_limit(&d.join("cpuset.mems"), &v)?;
            }
        }
        if let Some(p) = r.pids() {
            fs::write_limit(&d.join("pids.max"), &convert::pids_limit(p.limit()))?;
        }
        self.apply_unified(r)
    }

    /// Compiles the device rules into a cgroup device program and attaches it
    /// in place of the one attached before (see [`super::devices`]).
    pub(crate) fn apply_devices(&self, rules: &[LinuxDeviceCgroup]) -> Result<()> {
        let program = DeviceRules::from_oci(rules)?.program();
        let failed = |source| Error::DeviceProgram {
            path: self.dir.to_owned(),
            source: Box::new(source),
        };
        let fd = linux::load_device_program(&program).map_err(failed)?;
        linux::attach_device_program(self.dir, &fd).map_err(failed)
    }

    /// OCI `linux.resources.unified`: raw file name -> value pairs, written
    /// as given after the key is checked to be a plain controller file.
    pub(crate) fn apply_unified(&self, r: &LinuxResources) -> Result<()> {
        if let Some(map) = r.unified() {
            let mut keys: Vec<_> = map.iter().collect();
            keys.sort();
            for (k, v) in keys {
                let k = convert::unified_key(k)?;
                fs::write_limit(&self.dir.join(k), v)?;
            }
        }
        Ok(())
    }

    /// Reads usage from cpu.stat, memory.* and pids.current.
    pub(crate) fn stats(&self) -> Result<CgroupStats> {
        let d = self.dir;
        let mut s = CgroupStats {
            timestamp_ns: now_ns(),
            ..CgroupStats::default()
        };
        let cpu = fs::read_opt(&d.join("cpu.stat"))?.unwrap_or_default();
        s.cpu_usage_ns = fs::keyed(&cpu, "usage_usec")
            .unwrap_or(0)
            .saturating_mul(1000);
        s.memory_usage_bytes = fs::read_u64_opt(&d.join("memory.current"))?.unwrap_or(0);
        let stat = fs::read_opt(&d.join("memory.stat"))?.unwrap_or_default();
        let inactive = fs::keyed(&stat, "inactive_file").unwrap_or(0);
        s.memory_working_set_bytes = s.memory_usage_bytes.saturating_sub(inactive);
        s.memory_rss_bytes = fs::keyed(&stat, "anon").unwrap_or(0);
        s.page_faults = fs::keyed(&stat, "pgfault").unwrap_or(0);
        s.major_page_faults = fs::keyed(&stat, "pgmajfault").unwrap_or(0);
        s.memory_limit_bytes = match fs::read_opt(&d.join("memory.max"))? {
            Some(t) if t.trim() == "max" => None,
            Some(t) => {
                Some(fs::parse_u64(&d.join("memory.max"), &t)?).filter(|l| *l < UNLIMITED_FLOOR)
            }
            None => None,
        };
        let events = fs::read_opt(&d.join("memory.events"))?.unwrap_or_default();
        s.oom_events = fs::keyed(&events, "oom").unwrap_or(0);
        s.oom_kills = fs::keyed(&events, "oom_kill").unwrap_or(0);
        s.pids_current = fs::read_u64_opt(&d.join("pids.current"))?.unwrap_or(0);
        Ok(s)
    }

    /// Whether memory.events counts an OOM kill.
    pub(crate) fn oom_killed(&self) -> Result<bool> {
        let events = fs::read_opt(&self.dir.join("memory.events"))?.unwrap_or_default();
        Ok(fs::keyed(&events, "oom_kill").is_some_and(|k| k > 0))
    }

    /// Kills every process: `cgroup.kill` (kernel 5.14+) where present, else
    /// freeze, SIGKILL each, thaw. Returns false when neither file exists.
    pub(crate) fn kill(&self, procs: &dyn Fn() -> Result<Vec<i32>>) -> Result<bool> {
        let kill = self.dir.join("cgroup.kill");
        if kill.exists() {
            fs::write(&kill, "1")?;
            return Ok(true);
        }
        let freeze = self.dir.join("cgroup.freeze");
        if !freeze.exists() {
            return Ok(false);
        }
        fs::write(&freeze, "1")?;
        let frozen = self.wait_frozen(Duration::from_secs(2));
        let killed = procs().and_then(|pids| super::cgroup::signal_all(&pids));
        let thawed = fs::write(&freeze, "0");
        killed?;
        thawed?;
        if let Err(e) = frozen {
            tracing::debug!(error = %e, "cgroup did not freeze; processes were killed anyway");
        }
        Ok(true)
    }

    fn wait_frozen(&self, timeout: Duration) -> Result<()> {
        let path = self.dir.join("cgroup.events");
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let text = fs::read_opt(&path)?.unwrap_or_default();
            if fs::keyed(&text, "frozen") == Some(1) {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(Error::Freeze {
                    path,
                    want: "frozen 1",
                    state: text.trim().to_owned(),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Creates the directories from `root` down to `parts`. With
    /// `enable` (a pure v2 host), each level first gets the wanted
    /// controllers turned on in its parent's cgroup.subtree_control.
    pub(crate) fn create_dirs(root: &Path, parts: &[String], enable: bool) -> Result<PathBuf> {
        let mut cur = root.to_owned();
        for part in parts {
            if enable {
                enable_controllers(&cur);
            }
            cur.push(part);
            fs::mkdir(&cur)?;
        }
        Ok(cur)
    }
}

/// Turns on, in `dir`'s subtree_control, each wanted controller that `dir`
/// has and has not enabled yet. Failures (EBUSY when `dir` holds processes,
/// a controller the kernel will not delegate) are logged, not fatal: a limit
/// that then cannot be set fails in `apply`, naming its file.
fn enable_controllers(dir: &Path) {
    let available = fs::read_opt(&dir.join("cgroup.controllers"))
        .ok()
        .flatten()
        .unwrap_or_default();
    let enabled = fs::read_opt(&dir.join("cgroup.subtree_control"))
        .ok()
        .flatten()
        .unwrap_or_default();
    let control = dir.join("cgroup.subtree_control");
    for c in WANTED {
        let has = |t: &str| t.split_whitespace().any(|x| x == c);
        if has(&available) && !has(&enabled) {
            if let Err(e) = fs::write(&control, &format!("+{c}")) {
                tracing::debug!(error = %e, controller = c, "cannot enable controller");
            }
        }
    }
}
