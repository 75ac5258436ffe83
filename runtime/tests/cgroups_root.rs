//! cgroups against this host's real hierarchy (needs root; fails otherwise).
//!
//! Each test works under its own `/corten-test-<pid>-<n>` at the controller
//! roots (not under our own cgroup, which the sandbox may have limited), and
//! a guard kills what is left and removes the cgroups even when it fails.
//! Child workloads are this test binary re-executed with an env var telling
//! one helper "test" what to do; it waits on stdin until it has been moved
//! into the cgroup.

mod common;

use std::io::{BufRead, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Duration;

use corten_runtime::cgroups::{Cgroup, Controller};
use oci_spec::runtime::{LinuxCpuBuilder, LinuxResourcesBuilder};
use support::{go, limits, pid_of, spawn_role, Guard, ROLE};

/// Helpers (in a cfg(test) module, where unwrapping is allowed).
#[cfg(test)]
mod support {
    use std::io::Write;
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicU32, Ordering};

    use corten_runtime::cgroups::{self, Cgroup, Hierarchy};
    use oci_spec::runtime::{LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder};

    pub const ROLE: &str = "CORTEN_CGROUP_TEST_ROLE";
    static NEXT: AtomicU32 = AtomicU32::new(0);

    /// The test cgroups; on drop, kills what is left and removes them.
    pub struct Guard {
        pub top: Cgroup,
        pub leaf: Cgroup,
    }

    impl Guard {
        /// Panics unless root on a host with cgroups.
        pub fn new() -> (Hierarchy, Guard) {
            crate::common::require_root("makes cgroups");
            let h = cgroups::detect().expect("detect");
            let n = NEXT.fetch_add(1, Ordering::SeqCst);
            let top = format!("/corten-test-{}-{n}", std::process::id());
            let top = cgroups::ensure_parent(&h, &top).expect("parent");
            let leaf = Cgroup::create(&h, &format!("{}/c", top.path())).expect("create");
            (h, Guard { top, leaf })
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.leaf.kill_all();
            if let Err(e) = self.top.destroy() {
                eprintln!("cleanup of {} failed: {e}", self.top.path());
            }
        }
    }

    pub fn limits(memory: i64, pids: i64) -> oci_spec::runtime::LinuxResources {
        LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(memory).build().unwrap())
            .pids(LinuxPidsBuilder::default().limit(pids).build().unwrap())
            .build()
            .unwrap()
    }

    /// Re-executes this binary running only `helper_role` with `role` set,
    /// stopped on stdin until `go` is called.
    pub fn spawn_role(role: &str) -> Child {
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "helper_role", "--nocapture", "--test-threads=1"])
            .env(ROLE, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    }

    pub fn go(child: &mut Child) {
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    }

    pub fn pid_of(child: &Child) -> i32 {
        i32::try_from(child.id()).unwrap()
    }
}

/// Not a test of its own: the workload of a re-executed child. Without the
/// env var it does nothing.
#[test]
fn helper_role() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).unwrap();
    match role.as_str() {
        "alloc64" => {
            // 64 MiB, every page touched so it is really charged.
            let mut v = vec![0u8; 64 << 20];
            for i in (0..v.len()).step_by(4096) {
                v[i] = 1;
            }
            println!("allocated {}", v.iter().step_by(4096).count());
        }
        "fork20" => {
            let mut kids = Vec::new();
            for _ in 0..20 {
                if let Ok(k) = Command::new("sleep").arg("30").spawn() {
                    kids.push(k);
                }
            }
            println!("forked {}", kids.len());
            for mut k in kids {
                let _ = k.kill();
                let _ = k.wait();
            }
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn limits_stats_pids_kill_and_destroy() {
    let (h, guard) = Guard::new();
    let cg = &guard.leaf;
    cg.apply(&limits(32 << 20, 10)).unwrap();
    let mut sleeper = Command::new("sleep").arg("100").spawn().unwrap();
    let pid = pid_of(&sleeper);
    cg.add_pid(pid).unwrap();
    assert_eq!(cg.pids().unwrap(), [pid]);
    if let Some(u) = h.unified() {
        // Hybrid: the pid is in the unified hierarchy too.
        let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(own.contains(&format!("0::{}", cg.path())), "{own} ({u:?})");
    }
    let s = cg.stats().unwrap();
    assert_eq!(s.memory_limit_bytes, Some(32 << 20));
    assert_eq!(s.pids_current, 1);
    assert!(s.timestamp_ns > 0);
    assert!(!cg.oom_killed().unwrap());

    let opened = Cgroup::open(&h, cg.path()).unwrap();
    assert_eq!(opened.pids().unwrap(), [pid]);

    cg.kill_all().unwrap();
    assert_eq!(sleeper.wait().unwrap().signal(), Some(9));
    cg.destroy().unwrap();
    cg.destroy().unwrap();
    let e = Cgroup::open(&h, cg.path()).unwrap_err();
    assert_eq!(e.kind(), corten_runtime::ErrorKind::NotFound);
}

#[test]
fn oom_kill_is_reported() {
    let (_h, guard) = Guard::new();
    let cg = &guard.leaf;
    cg.apply(&limits(32 << 20, 100)).unwrap();
    let mut child = spawn_role("alloc64");
    cg.add_pid(pid_of(&child)).unwrap();
    go(&mut child);
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "expected an OOM kill, got {status:?}"
    );
    assert!(cg.oom_killed().unwrap());
    let s = cg.stats().unwrap();
    assert!(s.oom_kills >= 1 && s.oom_events >= 1, "{s:?}");
}

#[test]
fn pids_limit_stops_forks() {
    let (_h, guard) = Guard::new();
    let cg = &guard.leaf;
    cg.apply(&limits(256 << 20, 10)).unwrap();
    let mut child = spawn_role("fork20");
    cg.add_pid(pid_of(&child)).unwrap();
    go(&mut child);
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{out}");
    // libtest prints the child's line after "test helper_role ... ".
    let forked: usize = out
        .split_once("forked ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {out:?}"));
    assert!(
        (1..10).contains(&forked),
        "forked {forked} of 20 with pids.max 10"
    );
    // The child reaped the sleeps it killed: the cgroup empties.
    common::wait::until("the cgroup to empty", Duration::from_secs(30), || {
        cg.pids().unwrap().is_empty()
    });
}

#[test]
fn cpu_values_land_and_unknown_cpus_are_invalid() {
    let (_h, guard) = Guard::new();
    let cg = &guard.leaf;
    let cpu = |cpus: &str| {
        let c = LinuxCpuBuilder::default()
            .shares(512u64)
            .quota(20_000i64)
            .period(100_000u64)
            .cpus(cpus)
            .build()
            .unwrap();
        LinuxResourcesBuilder::default().cpu(c).build().unwrap()
    };
    cg.apply(&cpu("0")).unwrap();
    let read = |c: Controller, f: &str| {
        let d = cg.v1_dir(c).or(cg.unified_dir()).unwrap();
        std::fs::read_to_string(d.join(f))
            .unwrap()
            .trim()
            .to_owned()
    };
    if cg.v1_dir(Controller::Cpu).is_some() {
        assert_eq!(read(Controller::Cpu, "cpu.shares"), "512");
        assert_eq!(read(Controller::Cpu, "cpu.cfs_quota_us"), "20000");
    } else {
        assert_eq!(read(Controller::Cpu, "cpu.weight"), "20");
        assert_eq!(read(Controller::Cpu, "cpu.max"), "20000 100000");
    }
    assert_eq!(read(Controller::Cpuset, "cpuset.cpus"), "0");
    // A cpu this machine does not have: the kernel's EINVAL, as InvalidArgument.
    let e = cg.apply(&cpu("4095")).unwrap_err();
    assert_eq!(e.kind(), corten_runtime::ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("cpuset.cpus"), "{e}");
}
