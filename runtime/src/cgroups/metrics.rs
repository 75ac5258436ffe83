//! The fuller reading of a cgroup that the CRI's `ListPodSandboxMetrics`
//! serves (the series cAdvisor names `container_*`): CPU split into user
//! and system time, memory by kind with its limits, block I/O per device,
//! and the CPU settings. [`CgroupStats`](super::CgroupStats) stays the
//! cheap snapshot of the stats RPCs.

use std::path::Path;

use super::cgroup::Cgroup;
use super::error::Result;
use super::fs;
use super::hierarchy::Controller;
use super::stats::{now_ns, UNLIMITED_FLOOR};

/// Nanoseconds of one `USER_HZ` tick, the unit of v1 `cpuacct.stat`
/// (100 Hz on every Linux architecture's ABI).
const NS_PER_TICK: u64 = 10_000_000;

/// A cgroup's counters and settings. Counters a kernel does not provide
/// read 0; settings it does not have read `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupMetrics {
    /// When they were read, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// CPU time.
    pub cpu: CpuMetrics,
    /// Memory use and limits.
    pub memory: MemoryMetrics,
    /// Block I/O, one entry per device the kernel lists, by major:minor.
    pub io: Vec<DeviceIo>,
    /// The pids limit; `None` when unlimited.
    pub pids_max: Option<u64>,
    /// Threads in the cgroup (v1 `tasks`, v2 `cgroup.threads`).
    pub threads: u64,
}

/// CPU time and settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuMetrics {
    /// All CPU time, nanoseconds.
    pub usage_ns: u64,
    /// Of it, in user mode.
    pub user_ns: u64,
    /// Of it, in kernel mode.
    pub system_ns: u64,
    /// The CFS period, microseconds.
    pub period_us: Option<u64>,
    /// The CFS quota per period, microseconds; `None` when unlimited.
    pub quota_us: Option<u64>,
    /// The relative weight in v1 shares (v2's weight converted back, as
    /// cAdvisor does).
    pub shares: Option<u64>,
}

/// Memory use, faults and limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryMetrics {
    /// Charged memory, page cache included.
    pub usage: u64,
    /// The highest usage seen (v1 `max_usage_in_bytes`, v2 `memory.peak`).
    pub max_usage: u64,
    /// Usage minus inactive file cache.
    pub working_set: u64,
    /// Page cache.
    pub cache: u64,
    /// Anonymous memory.
    pub rss: u64,
    /// Memory-mapped files.
    pub mapped_file: u64,
    /// Swap in use.
    pub swap: u64,
    /// Times usage hit the limit (v1 `memory.failcnt`, v2 `memory.events max`).
    pub failcnt: u64,
    /// Page faults of this cgroup's own processes, then of its subtree.
    pub pgfault: (u64, u64),
    /// Major page faults, likewise.
    pub pgmajfault: (u64, u64),
    /// OOM events (v2 `oom`; v1 counts kills).
    pub oom_events: u64,
    /// The limit; `None` when unlimited.
    pub limit: Option<u64>,
    /// The soft limit (v1 `soft_limit_in_bytes`, v2 `memory.low`); `None`
    /// when unlimited.
    pub reservation: Option<u64>,
    /// The memory+swap limit (v1 `memsw.limit_in_bytes`) or swap limit (v2
    /// `memory.swap.max`); `None` when unlimited or not accounted.
    pub swap_limit: Option<u64>,
}

/// Block I/O on one device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceIo {
    /// Device major number.
    pub major: u64,
    /// Device minor number.
    pub minor: u64,
    /// Bytes read.
    pub read_bytes: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// Read operations.
    pub reads: u64,
    /// Write operations.
    pub writes: u64,
}

impl Cgroup {
    /// The cgroup's counters and settings, for metrics.
    pub fn metrics(&self) -> Result<CgroupMetrics> {
        let mut m = CgroupMetrics {
            timestamp_ns: now_ns(),
            ..CgroupMetrics::default()
        };
        match self.unified_dir().filter(|_| self.is_pure_v2()) {
            Some(dir) => read_v2(dir, &mut m)?,
            None => read_v1(&|c| self.v1_dir(c), &mut m)?,
        }
        Ok(m)
    }
}

/// A limit file's value: `None` for "max" or an absurdly large number.
fn limit(path: &Path) -> Result<Option<u64>> {
    Ok(match fs::read_opt(path)? {
        Some(t) if t.trim() == "max" || t.trim() == "-1" => None,
        Some(t) => Some(fs::parse_u64(path, &t)?).filter(|l| *l < UNLIMITED_FLOOR),
        None => None,
    })
}

fn count_lines(path: &Path) -> Result<u64> {
    Ok(fs::read_opt(path)?
        .map(|t| t.lines().filter(|l| !l.trim().is_empty()).count() as u64)
        .unwrap_or(0))
}

fn read_v1<'a>(dir: &dyn Fn(Controller) -> Option<&'a Path>, m: &mut CgroupMetrics) -> Result<()> {
    if let Some(d) = dir(Controller::Cpuacct) {
        m.cpu.usage_ns = fs::read_u64_opt(&d.join("cpuacct.usage"))?.unwrap_or(0);
        let stat = fs::read_opt(&d.join("cpuacct.stat"))?.unwrap_or_default();
        m.cpu.user_ns = fs::keyed(&stat, "user").unwrap_or(0) * NS_PER_TICK;
        m.cpu.system_ns = fs::keyed(&stat, "system").unwrap_or(0) * NS_PER_TICK;
    }
    if let Some(d) = dir(Controller::Cpu) {
        m.cpu.period_us = fs::read_u64_opt(&d.join("cpu.cfs_period_us"))?;
        m.cpu.quota_us = limit(&d.join("cpu.cfs_quota_us"))?;
        m.cpu.shares = fs::read_u64_opt(&d.join("cpu.shares"))?;
    }
    if let Some(d) = dir(Controller::Memory) {
        let mem = &mut m.memory;
        mem.usage = fs::read_u64_opt(&d.join("memory.usage_in_bytes"))?.unwrap_or(0);
        mem.max_usage = fs::read_u64_opt(&d.join("memory.max_usage_in_bytes"))?.unwrap_or(0);
        mem.failcnt = fs::read_u64_opt(&d.join("memory.failcnt"))?.unwrap_or(0);
        let stat = fs::read_opt(&d.join("memory.stat"))?.unwrap_or_default();
        let total = |key: &str| {
            fs::keyed(&stat, &format!("total_{key}"))
                .or_else(|| fs::keyed(&stat, key))
                .unwrap_or(0)
        };
        let own = |key: &str| fs::keyed(&stat, key).unwrap_or(0);
        mem.working_set = mem.usage.saturating_sub(total("inactive_file"));
        mem.cache = total("cache");
        mem.rss = total("rss");
        mem.mapped_file = total("mapped_file");
        mem.swap = total("swap");
        mem.pgfault = (own("pgfault"), total("pgfault"));
        mem.pgmajfault = (own("pgmajfault"), total("pgmajfault"));
        let oom = fs::read_opt(&d.join("memory.oom_control"))?.unwrap_or_default();
        mem.oom_events = fs::keyed(&oom, "oom_kill").unwrap_or(0);
        mem.limit = limit(&d.join("memory.limit_in_bytes"))?;
        mem.reservation = limit(&d.join("memory.soft_limit_in_bytes"))?;
        mem.swap_limit = limit(&d.join("memory.memsw.limit_in_bytes"))?;
    }
    if let Some(d) = dir(Controller::Pids) {
        m.pids_max = limit(&d.join("pids.max"))?;
    }
    if let Some(d) = dir(Controller::Blkio) {
        let bytes =
            fs::read_opt(&d.join("blkio.throttle.io_service_bytes_recursive"))?.unwrap_or_default();
        let ops =
            fs::read_opt(&d.join("blkio.throttle.io_serviced_recursive"))?.unwrap_or_default();
        m.io = blkio_v1(&bytes, &ops);
    }
    // Every v1 controller lists the same threads; the first one mounted says.
    if let Some(d) = Controller::ALL.iter().find_map(|c| dir(*c)) {
        m.threads = count_lines(&d.join("tasks"))?;
    }
    Ok(())
}

fn read_v2(d: &Path, m: &mut CgroupMetrics) -> Result<()> {
    let cpu = fs::read_opt(&d.join("cpu.stat"))?.unwrap_or_default();
    let usec = |key: &str| fs::keyed(&cpu, key).unwrap_or(0).saturating_mul(1000);
    m.cpu.usage_ns = usec("usage_usec");
    m.cpu.user_ns = usec("user_usec");
    m.cpu.system_ns = usec("system_usec");
    if let Some(max) = fs::read_opt(&d.join("cpu.max"))? {
        let mut it = max.split_whitespace();
        m.cpu.quota_us = it.next().and_then(|q| q.parse().ok());
        m.cpu.period_us = it.next().and_then(|p| p.parse().ok());
    }
    m.cpu.shares = fs::read_u64_opt(&d.join("cpu.weight"))?.map(weight_to_shares);
    let mem = &mut m.memory;
    mem.usage = fs::read_u64_opt(&d.join("memory.current"))?.unwrap_or(0);
    mem.max_usage = fs::read_u64_opt(&d.join("memory.peak"))?.unwrap_or(0);
    let stat = fs::read_opt(&d.join("memory.stat"))?.unwrap_or_default();
    let key = |k: &str| fs::keyed(&stat, k).unwrap_or(0);
    mem.working_set = mem.usage.saturating_sub(key("inactive_file"));
    mem.cache = key("file");
    mem.rss = key("anon");
    mem.mapped_file = key("file_mapped");
    mem.swap = fs::read_u64_opt(&d.join("memory.swap.current"))?.unwrap_or(0);
    // v2 counts faults over the subtree only.
    mem.pgfault = (key("pgfault"), key("pgfault"));
    mem.pgmajfault = (key("pgmajfault"), key("pgmajfault"));
    let events = fs::read_opt(&d.join("memory.events"))?.unwrap_or_default();
    mem.failcnt = fs::keyed(&events, "max").unwrap_or(0);
    mem.oom_events = fs::keyed(&events, "oom").unwrap_or(0);
    mem.limit = limit(&d.join("memory.max"))?;
    mem.reservation = limit(&d.join("memory.low"))?.filter(|l| *l > 0);
    mem.swap_limit = limit(&d.join("memory.swap.max"))?;
    m.pids_max = limit(&d.join("pids.max"))?;
    m.io = io_stat_v2(&fs::read_opt(&d.join("io.stat"))?.unwrap_or_default());
    m.threads = count_lines(&d.join("cgroup.threads"))?;
    Ok(())
}

/// v2's `cpu.weight` (1..10000) back to v1 shares (2..262144), the inverse
/// of [`super::shares_to_weight`] as cAdvisor computes it.
pub fn weight_to_shares(weight: u64) -> u64 {
    2 + (weight.clamp(1, 10_000) - 1) * 262_142 / 9_999
}

/// `major:minor` of a blkio/io.stat line.
fn device(field: &str) -> Option<(u64, u64)> {
    let (major, minor) = field.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn entry(io: &mut Vec<DeviceIo>, (major, minor): (u64, u64)) -> &mut DeviceIo {
    let at = match io.iter().position(|d| d.major == major && d.minor == minor) {
        Some(at) => at,
        None => {
            io.push(DeviceIo {
                major,
                minor,
                ..DeviceIo::default()
            });
            io.len() - 1
        }
    };
    &mut io[at]
}

/// v1 `blkio.throttle.io_service_bytes` and `io_serviced`: `M:m Read N`
/// lines per device, then a `Total` line.
fn blkio_v1(bytes: &str, ops: &str) -> Vec<DeviceIo> {
    let mut io = Vec::new();
    for (text, is_bytes) in [(bytes, true), (ops, false)] {
        for line in text.lines() {
            let mut f = line.split_whitespace();
            let (Some(dev), Some(op), Some(n)) = (
                f.next().and_then(device),
                f.next(),
                f.next().and_then(|n| n.parse::<u64>().ok()),
            ) else {
                continue;
            };
            let d = entry(&mut io, dev);
            match (op, is_bytes) {
                ("Read", true) => d.read_bytes = n,
                ("Write", true) => d.write_bytes = n,
                ("Read", false) => d.reads = n,
                ("Write", false) => d.writes = n,
                _ => {}
            }
        }
    }
    io
}

/// v2 `io.stat`: `M:m rbytes=N wbytes=N rios=N wios=N ...` per device.
fn io_stat_v2(text: &str) -> Vec<DeviceIo> {
    let mut io = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some(dev) = f.next().and_then(device) else {
            continue;
        };
        let d = entry(&mut io, dev);
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let v = v.parse().unwrap_or(0);
            match k {
                "rbytes" => d.read_bytes = v,
                "wbytes" => d.write_bytes = v,
                "rios" => d.reads = v,
                "wios" => d.writes = v,
                _ => {}
            }
        }
    }
    io
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blkio_v1_lines_by_device_without_the_total() {
        let bytes = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Total 12288\n\
                     254:1 Read 512\nTotal 12800\n";
        let ops = "8:0 Read 1\n8:0 Write 2\n254:1 Read 1\nTotal 4\n";
        assert_eq!(
            blkio_v1(bytes, ops),
            [
                DeviceIo {
                    major: 8,
                    minor: 0,
                    read_bytes: 4096,
                    write_bytes: 8192,
                    reads: 1,
                    writes: 2
                },
                DeviceIo {
                    major: 254,
                    minor: 1,
                    read_bytes: 512,
                    reads: 1,
                    ..DeviceIo::default()
                },
            ]
        );
        assert!(blkio_v1("Total 0\n", "Total 0\n").is_empty());
    }

    #[test]
    fn io_stat_v2_keys() {
        let text = "254:0 rbytes=1024 wbytes=2048 rios=3 wios=4 dbytes=0 dios=0\n";
        assert_eq!(
            io_stat_v2(text),
            [DeviceIo {
                major: 254,
                minor: 0,
                read_bytes: 1024,
                write_bytes: 2048,
                reads: 3,
                writes: 4
            }]
        );
    }

    #[test]
    fn weight_and_shares_round_trip_at_the_ends() {
        assert_eq!(weight_to_shares(1), 2);
        assert_eq!(weight_to_shares(10_000), 262_144);
        assert_eq!(weight_to_shares(0), 2);
    }

    #[test]
    fn v1_files_of_a_tempdir() {
        let root = tempfile::tempdir().unwrap();
        let dirs: Vec<(Controller, std::path::PathBuf)> = Controller::ALL
            .iter()
            .map(|c| (*c, root.path().join(format!("{c:?}"))))
            .collect();
        for (_, d) in &dirs {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("tasks"), "10\n11\n").unwrap();
        }
        let at = |c: Controller| dirs.iter().find(|(k, _)| *k == c).unwrap().1.clone();
        let w =
            |c: Controller, file: &str, text: &str| std::fs::write(at(c).join(file), text).unwrap();
        w(Controller::Cpuacct, "cpuacct.usage", "3000000000\n");
        w(
            Controller::Cpuacct,
            "cpuacct.stat",
            "user 200\nsystem 100\n",
        );
        w(Controller::Cpu, "cpu.cfs_period_us", "100000\n");
        w(Controller::Cpu, "cpu.cfs_quota_us", "-1\n");
        w(Controller::Cpu, "cpu.shares", "2\n");
        w(Controller::Memory, "memory.usage_in_bytes", "1000\n");
        w(Controller::Memory, "memory.max_usage_in_bytes", "2000\n");
        w(Controller::Memory, "memory.failcnt", "0\n");
        w(
            Controller::Memory,
            "memory.stat",
            "cache 5\nrss 6\npgfault 7\npgmajfault 0\ntotal_cache 50\ntotal_rss 60\n\
             total_mapped_file 8\ntotal_swap 0\ntotal_pgfault 70\ntotal_pgmajfault 1\n\
             total_inactive_file 100\n",
        );
        w(Controller::Memory, "memory.limit_in_bytes", "79998976\n");
        w(
            Controller::Memory,
            "memory.soft_limit_in_bytes",
            "9223372036854771712\n",
        );
        w(
            Controller::Memory,
            "memory.memsw.limit_in_bytes",
            "79998976\n",
        );
        w(Controller::Pids, "pids.max", "max\n");
        w(
            Controller::Blkio,
            "blkio.throttle.io_service_bytes_recursive",
            "Total 0\n",
        );
        let mut m = CgroupMetrics::default();
        let lookup = |c: Controller| dirs.iter().find(|(k, _)| *k == c).map(|(_, d)| d.as_path());
        read_v1(&lookup, &mut m).unwrap();
        assert_eq!(
            m.cpu,
            CpuMetrics {
                usage_ns: 3_000_000_000,
                user_ns: 2_000_000_000,
                system_ns: 1_000_000_000,
                period_us: Some(100_000),
                quota_us: None,
                shares: Some(2),
            }
        );
        assert_eq!(
            m.memory,
            MemoryMetrics {
                usage: 1000,
                max_usage: 2000,
                working_set: 900,
                cache: 50,
                rss: 60,
                mapped_file: 8,
                swap: 0,
                failcnt: 0,
                pgfault: (7, 70),
                pgmajfault: (0, 1),
                oom_events: 0,
                limit: Some(79_998_976),
                reservation: None,
                swap_limit: Some(79_998_976),
            }
        );
        assert_eq!((m.pids_max, m.threads), (None, 2));
        assert!(m.io.is_empty());
    }
}
