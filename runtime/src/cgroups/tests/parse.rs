//! Detection, path and value conversion: pure parsing, no files.

use std::fs;

use crate::cgroups::convert::{
    check, cpu_max, cpuset_list, memory_limit, path_components, pids_limit,
};
use crate::cgroups::hierarchy::{parse_mountinfo, parse_proc_cgroup};
use crate::cgroups::*;
use crate::ErrorKind;

const HYBRID: &str = "\
24 1 0:22 / /sys rw - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

#[test]
fn detects_hybrid_v1_v2_and_none() {
    assert_eq!(
        parse_mountinfo(HYBRID),
        Some(Hierarchy::Hybrid {
            v1_root: "/sys/fs/cgroup".into(),
            unified: "/sys/fs/cgroup/unified".into()
        })
    );
    let v2 = "30 1 0:26 / /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
    assert_eq!(
        parse_mountinfo(v2),
        Some(Hierarchy::V2 {
            root: "/sys/fs/cgroup".into()
        })
    );
    let v1: String = HYBRID
        .lines()
        .filter(|l| !l.contains("cgroup2"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        parse_mountinfo(&v1),
        Some(Hierarchy::V1 {
            root: "/sys/fs/cgroup".into()
        })
    );
    // A lone name=systemd v1 mount carries no controller: still pure v2.
    let named = format!("{v2}40 31 0:37 / /run/sd rw - cgroup cgroup rw,name=systemd\n");
    assert!(matches!(
        parse_mountinfo(&named),
        Some(Hierarchy::V2 { .. })
    ));
    assert_eq!(
        parse_mountinfo("24 1 0:22 / /sys rw - sysfs sysfs rw\n"),
        None
    );
    let spaced = "41 31 0:38 / /my\\040cg rw - cgroup2 cgroup2 rw\n";
    assert_eq!(
        parse_mountinfo(spaced),
        Some(Hierarchy::V2 {
            root: "/my cg".into()
        })
    );
}

#[test]
fn detect_from_reports_missing_hierarchy() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("mountinfo");
    fs::write(&f, "24 1 0:22 / /sys rw - sysfs sysfs rw\n").unwrap();
    let e = detect_from(&f).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Internal);
    assert!(e.to_string().contains("mountinfo"), "{e}");
}

#[test]
fn proc_cgroup_lookup() {
    let text = "9:name=systemd:/\n4:memory:/process_api/x\n2:cpu,cpuacct:/a\n0::/u\n";
    assert_eq!(
        parse_proc_cgroup(text, Some("memory")).as_deref(),
        Some("/process_api/x")
    );
    assert_eq!(
        parse_proc_cgroup(text, Some("cpuacct")).as_deref(),
        Some("/a")
    );
    assert_eq!(parse_proc_cgroup(text, None).as_deref(), Some("/u"));
    assert_eq!(parse_proc_cgroup(text, Some("pids")), None);
}

#[test]
fn value_conversions() {
    assert_eq!(shares_to_weight(2), 1);
    assert_eq!(shares_to_weight(1024), 39);
    assert_eq!(shares_to_weight(262_144), 10_000);
    assert_eq!(shares_to_weight(0), 1);
    assert_eq!(shares_to_weight(1 << 40), 10_000);
    assert_eq!(
        cpu_max(Some(50_000), Some(100_000)).as_deref(),
        Some("50000 100000")
    );
    assert_eq!(cpu_max(Some(-1), None).as_deref(), Some("max"));
    assert_eq!(cpu_max(None, Some(100_000)).as_deref(), Some("max 100000"));
    assert_eq!(cpu_max(None, None), None);
    assert_eq!(memory_limit(-1, true).unwrap(), "max");
    assert_eq!(memory_limit(-1, false).unwrap(), "-1");
    assert_eq!(
        memory_limit(0, false).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(pids_limit(0), "max");
    assert_eq!(pids_limit(10), "10");
    assert_eq!(cpuset_list("cpuset.cpus", " 0-3,6 ").unwrap(), "0-3,6");
    for bad in ["", "a", "3-1", "1,,2", "0-"] {
        let e = cpuset_list("cpuset.cpus", bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}");
    }
    assert_eq!(path_components("/corten/abc/").unwrap(), ["corten", "abc"]);
    for bad in ["/", "", "/a/../b", "a//b", "./a"] {
        assert_eq!(
            path_components(bad).unwrap_err().kind(),
            ErrorKind::InvalidArgument,
            "{bad}"
        );
    }
}

#[test]
fn check_refuses_what_the_kernel_would_and_passes_unset_values() {
    use oci_spec::runtime::{LinuxCpuBuilder, LinuxMemoryBuilder, LinuxResourcesBuilder};
    use std::collections::HashMap;
    let cpu = |b: LinuxCpuBuilder| {
        LinuxResourcesBuilder::default()
            .cpu(b.build().unwrap())
            .build()
            .unwrap()
    };
    let ok = [
        cpu(LinuxCpuBuilder::default()),
        cpu(LinuxCpuBuilder::default()
            .shares(0u64)
            .period(0u64)
            .quota(-1i64)),
        cpu(LinuxCpuBuilder::default().quota(0i64)),
        cpu(LinuxCpuBuilder::default()
            .shares(2u64)
            .period(1_000u64)
            .quota(1_000i64)),
        cpu(LinuxCpuBuilder::default()
            .shares(262_144u64)
            .period(1_000_000u64)),
        cpu(LinuxCpuBuilder::default().cpus("0-1,3").mems(" ")),
    ];
    for r in &ok {
        check(r).unwrap_or_else(|e| panic!("{r:?}: {e}"));
    }
    let bad = [
        (cpu(LinuxCpuBuilder::default().shares(1u64)), "cpu.shares"),
        (
            cpu(LinuxCpuBuilder::default().shares(262_145u64)),
            "cpu.shares",
        ),
        (
            cpu(LinuxCpuBuilder::default().period(999u64)),
            "cpu.cfs_period_us",
        ),
        (
            cpu(LinuxCpuBuilder::default().period(1_000_001u64)),
            "cpu.cfs_period_us",
        ),
        (
            cpu(LinuxCpuBuilder::default().quota(999i64)),
            "cpu.cfs_quota_us",
        ),
        (
            cpu(LinuxCpuBuilder::default().quota(1i64)),
            "cpu.cfs_quota_us",
        ),
        (cpu(LinuxCpuBuilder::default().cpus("0-x")), "cpuset.cpus"),
        (cpu(LinuxCpuBuilder::default().mems("1\n2")), "cpuset.mems"),
    ];
    for (r, what) in &bad {
        let e = check(r).expect_err(what);
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(
            matches!(&e, Error::InvalidValue { what: w, .. } if w == what),
            "{e}"
        );
    }
    let memory = LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(0i64).build().unwrap())
        .build()
        .unwrap();
    assert!(check(&memory).is_err());
    let unified = |k: &str, v: &str| {
        LinuxResourcesBuilder::default()
            .unified(HashMap::from([(k.to_string(), v.to_string())]))
            .build()
            .unwrap()
    };
    check(&unified("memory.high", "1M")).unwrap();
    for (k, v) in [
        ("../memory.high", "1"),
        ("memory/high", "1"),
        ("memory.high\n", "1"),
        ("cgroup.procs", "1"),
        ("memory.high", "1\n2"),
        ("memory.high", "1\0"),
    ] {
        let e = check(&unified(k, v)).expect_err(k);
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{k:?}={v:?}: {e}");
    }
}

#[test]
fn the_managed_hierarchies_of_a_proc_cgroup_line() {
    use crate::cgroups::Controller;
    for ours in ["", "memory", "cpu,cpuacct", "net_cls,pids"] {
        assert!(Controller::any_managed(ours), "{ours:?}");
    }
    for not_ours in ["name=systemd", "net_cls,net_prio", "misc", "rdma"] {
        assert!(!Controller::any_managed(not_ours), "{not_ours:?}");
    }
}
