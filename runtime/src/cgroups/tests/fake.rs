//! Cgroups on fake v1, v2 and hybrid hierarchies built in a tempdir.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder,
    LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
};

use crate::cgroups::*;
use crate::ErrorKind;

/// Writes `files` (name, content) into `dir`.
fn put(dir: &Path, files: &[(&str, &str)]) {
    for (name, content) in files {
        fs::write(dir.join(name), content).unwrap();
    }
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap()
}

/// A v1 root with the usual controllers and a root cpuset.
fn fake_v1(root: &Path) {
    for c in ["memory", "cpu", "cpuacct", "cpuset", "pids", "freezer"] {
        fs::create_dir(root.join(c)).unwrap();
    }
    put(
        &root.join("cpuset"),
        &[("cpuset.cpus", "0-3\n"), ("cpuset.mems", "0\n")],
    );
}

/// Makes `path` under each fake controller with the files a real kernel
/// would give a v1 cgroup (cpuset files empty at every level), before
/// `Cgroup::create` adopts the directories.
fn fake_v1_files(root: &Path, path: &str) {
    for c in ["memory", "cpu", "cpuacct", "cpuset", "pids", "freezer"] {
        let mut d = root.join(c);
        for part in path.trim_matches('/').split('/') {
            d.push(part);
            fs::create_dir_all(&d).unwrap();
            put(&d, &[("cgroup.procs", "")]);
            if c == "cpuset" {
                put(&d, &[("cpuset.cpus", ""), ("cpuset.mems", "")]);
            }
        }
    }
    let dir = |c: &str| root.join(c).join(path.trim_start_matches('/'));
    put(
        &dir("memory"),
        &[
            ("memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory.soft_limit_in_bytes", ""),
            ("memory.usage_in_bytes", "10485760\n"),
            (
                "memory.stat",
                "rss 1\ntotal_rss 4194304\ntotal_inactive_file 2097152\npgfault 9\ntotal_pgfault 70\ntotal_pgmajfault 7\n",
            ),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
            ),
        ],
    );
    put(
        &dir("cpu"),
        &[
            ("cpu.shares", ""),
            ("cpu.cfs_quota_us", ""),
            ("cpu.cfs_period_us", ""),
        ],
    );
    put(&dir("cpuacct"), &[("cpuacct.usage", "123456789\n")]);
    put(&dir("pids"), &[("pids.max", ""), ("pids.current", "3\n")]);
    put(&dir("freezer"), &[("freezer.state", "THAWED\n")]);
}

fn resources(cpus: &str) -> LinuxResources {
    LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(32i64 << 20)
                .build()
                .unwrap(),
        )
        .cpu(
            LinuxCpuBuilder::default()
                .shares(512u64)
                .quota(50_000i64)
                .period(100_000u64)
                .cpus(cpus)
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(10i64).build().unwrap())
        .build()
        .unwrap()
}

#[test]
fn v1_create_copies_cpuset_and_applies_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fake_v1(root);
    let h = Hierarchy::V1 { root: root.into() };
    fake_v1_files(root, "/corten/c1");
    let cg = Cgroup::create(&h, "/corten/c1").unwrap();
    assert_eq!(cg.path(), "/corten/c1");
    assert!(root.join("memory/corten/c1").is_dir());
    assert!(
        cg.v1_dir(Controller::Devices).is_none(),
        "devices is not mounted"
    );
    // Walked down: both levels got the parent's cpus and mems.
    assert_eq!(read(&root.join("cpuset/corten/cpuset.cpus")), "0-3");
    assert_eq!(read(&root.join("cpuset/corten/c1/cpuset.mems")), "0");

    cg.apply(&resources("1-2")).unwrap();
    let m = root.join("memory/corten/c1");
    assert_eq!(read(&m.join("memory.limit_in_bytes")), "33554432");
    let c = root.join("cpu/corten/c1");
    assert_eq!(read(&c.join("cpu.shares")), "512");
    assert_eq!(read(&c.join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read(&c.join("cpu.cfs_period_us")), "100000");
    assert_eq!(read(&root.join("cpuset/corten/c1/cpuset.cpus")), "1-2");
    assert_eq!(read(&root.join("pids/corten/c1/pids.max")), "10");

    let e = cg.apply(&resources("1-x")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("1-x"), "{e}");
    assert_eq!(crate::Error::from(e).kind(), ErrorKind::InvalidArgument);
    // Refused before the first write: the memory limit that comes before
    // the bad cpuset in the request is not written either.
    let mut half = resources("1-x");
    half.set_memory(Some(
        LinuxMemoryBuilder::default()
            .limit(64i64 << 20)
            .build()
            .unwrap(),
    ));
    assert!(cg.apply(&half).is_err());
    assert_eq!(read(&m.join("memory.limit_in_bytes")), "33554432");

    let s = cg.stats().unwrap();
    assert_eq!(s.cpu_usage_ns, 123_456_789);
    assert_eq!(s.memory_usage_bytes, 10 << 20);
    assert_eq!(s.memory_working_set_bytes, 8 << 20);
    assert_eq!(s.memory_rss_bytes, 4 << 20);
    assert_eq!((s.page_faults, s.major_page_faults), (70, 7));
    assert_eq!(s.memory_limit_bytes, Some(32 << 20));
    assert_eq!((s.oom_kills, s.pids_current), (2, 3));
    assert!(s.timestamp_ns > 0);
    assert!(cg.oom_killed().unwrap());
    // Kernels before 4.13 have no oom_kill line: under_oom decides.
    put(
        &m,
        &[("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n")],
    );
    assert!(!cg.oom_killed().unwrap());

    cg.add_pid(4242).unwrap();
    assert_eq!(read(&root.join("freezer/corten/c1/cgroup.procs")), "4242");
    assert_eq!(cg.pids().unwrap(), [4242]);

    let opened = Cgroup::open(&h, "corten/c1").unwrap();
    assert_eq!(opened, cg);
    assert_eq!(
        Cgroup::open(&h, "/corten/nope").unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn v1_device_rules_and_missing_controllers() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("memory")).unwrap();
    fs::create_dir(tmp.path().join("devices")).unwrap();
    let h = Hierarchy::V1 {
        root: tmp.path().into(),
    };
    let cg = Cgroup::create(&h, "/x").unwrap();
    let d = cg.v1_dir(Controller::Devices).unwrap();
    put(d, &[("devices.deny", ""), ("devices.allow", "")]);
    let rule = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(LinuxDeviceType::C)
        .major(1i64)
        .minor(3i64)
        .access("rwm")
        .build()
        .unwrap();
    let r = LinuxResourcesBuilder::default()
        .devices(vec![rule])
        .build()
        .unwrap();
    cg.apply(&r).unwrap();
    assert_eq!(read(&d.join("devices.allow")), "c 1:3 rwm");

    // A pids limit with no pids controller: an Internal error naming it.
    let e = cg.apply(&resources("0")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Internal);
    // Unified keys need a v2 hierarchy.
    let mut u = LinuxResources::default();
    u.set_unified(Some(HashMap::from([("memory.high".into(), "1M".into())])));
    assert_eq!(cg.apply(&u).unwrap_err().kind(), ErrorKind::InvalidArgument);

    let empty = tempfile::tempdir().unwrap();
    let none = Hierarchy::V1 {
        root: empty.path().into(),
    };
    assert_eq!(
        Cgroup::create(&none, "/x").unwrap_err().kind(),
        ErrorKind::Internal
    );
}

#[test]
fn v2_enables_controllers_and_applies_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    put(
        root,
        &[
            ("cgroup.controllers", "cpu memory pids\n"),
            ("cgroup.subtree_control", ""),
        ],
    );
    let h = Hierarchy::V2 { root: root.into() };
    let cg = Cgroup::create(&h, "/corten/c2").unwrap();
    let d = cg.unified_dir().unwrap().to_owned();
    assert_eq!(d, root.join("corten/c2"));
    // The fake file keeps only the last of the "+ctl" writes.
    assert_eq!(read(&root.join("cgroup.subtree_control")), "+pids");
    assert!(cg.v1_dir(Controller::Memory).is_none());

    let files = [
        "memory.max",
        "cpu.weight",
        "cpu.max",
        "cpuset.cpus",
        "pids.max",
        "cgroup.procs",
    ];
    put(&d, &files.map(|f| (f, "")));
    cg.apply(&resources("0-1")).unwrap();
    assert_eq!(read(&d.join("memory.max")), "33554432");
    assert_eq!(read(&d.join("cpu.weight")), "20");
    assert_eq!(read(&d.join("cpu.max")), "50000 100000");
    assert_eq!(read(&d.join("pids.max")), "10");

    put(
        &d,
        &[
            ("cpu.stat", "usage_usec 1500\nuser_usec 1000\n"),
            ("memory.current", "8388608\n"),
            (
                "memory.stat",
                "anon 3145728\nfile 4194304\ninactive_file 1048576\npgfault 50\npgmajfault 5\n",
            ),
            ("memory.events", "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n"),
            ("pids.current", "2\n"),
        ],
    );
    let s = cg.stats().unwrap();
    assert_eq!(s.cpu_usage_ns, 1_500_000);
    assert_eq!(s.memory_working_set_bytes, 7 << 20);
    assert_eq!(s.memory_rss_bytes, 3 << 20);
    assert_eq!((s.page_faults, s.major_page_faults), (50, 5));
    assert_eq!(s.memory_limit_bytes, Some(32 << 20));
    assert_eq!((s.oom_events, s.oom_kills, s.pids_current), (1, 1, 2));
    assert!(cg.oom_killed().unwrap());

    let mut u = LinuxResources::default();
    u.set_unified(Some(HashMap::from([(
        "memory.high".into(),
        "1048576".into(),
    )])));
    put(&d, &[("memory.high", "")]);
    cg.apply(&u).unwrap();
    assert_eq!(read(&d.join("memory.high")), "1048576");
    u.set_unified(Some(HashMap::from([("../escape".into(), "1".into())])));
    assert_eq!(cg.apply(&u).unwrap_err().kind(), ErrorKind::InvalidArgument);

    // A missing control file is a named error, never a created file.
    let e = cg
        .apply(
            &LinuxResourcesBuilder::default()
                .memory(
                    LinuxMemoryBuilder::default()
                        .reservation(1i64)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("memory.low"), "{e}");
    assert!(!d.join("memory.low").exists());
}

#[test]
fn hybrid_limits_go_to_v1_and_pids_to_both() {
    let tmp = tempfile::tempdir().unwrap();
    let v1 = tmp.path().join("v1");
    let unified = tmp.path().join("unified");
    fs::create_dir_all(&v1).unwrap();
    fs::create_dir_all(&unified).unwrap();
    fake_v1(&v1);
    let h = Hierarchy::Hybrid {
        v1_root: v1.clone(),
        unified: unified.clone(),
    };
    fake_v1_files(&v1, "/corten/h");
    let cg = Cgroup::create(&h, "/corten/h").unwrap();
    let u = cg.unified_dir().unwrap().to_owned();
    assert_eq!(u, unified.join("corten/h"));
    put(&u, &[("cgroup.procs", "")]);
    cg.apply(&resources("0")).unwrap();
    assert_eq!(
        read(&v1.join("memory/corten/h/memory.limit_in_bytes")),
        "33554432"
    );
    assert!(!u.join("memory.max").exists());
    cg.add_pid(77).unwrap();
    assert_eq!(read(&u.join("cgroup.procs")), "77");
    assert_eq!(read(&v1.join("pids/corten/h/cgroup.procs")), "77");
    assert_eq!(cg.stats().unwrap().cpu_usage_ns, 123_456_789);
}

#[test]
fn v1_kill_all_freezes_kills_and_thaws() {
    let tmp = tempfile::tempdir().unwrap();
    fake_v1(tmp.path());
    let h = Hierarchy::V1 {
        root: tmp.path().into(),
    };
    fake_v1_files(tmp.path(), "/k");
    let cg = Cgroup::create(&h, "/k").unwrap();
    let mut child = std::process::Command::new("sleep")
        .arg("100")
        .spawn()
        .unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    put(
        cg.v1_dir(Controller::Freezer).unwrap(),
        &[("cgroup.procs", &format!("{pid}\n0\n"))],
    );
    cg.kill_all().unwrap();
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9));
    assert_eq!(
        read(
            &cg.v1_dir(Controller::Freezer)
                .unwrap()
                .join("freezer.state")
        ),
        "THAWED"
    );
}

#[test]
fn destroy_of_missing_cgroup_is_success() {
    let tmp = tempfile::tempdir().unwrap();
    fake_v1(tmp.path());
    let h = Hierarchy::V1 {
        root: tmp.path().into(),
    };
    fake_v1_files(tmp.path(), "/gone");
    let cg = Cgroup::create(&h, "/gone").unwrap();
    for c in Controller::ALL {
        if let Some(d) = cg.v1_dir(c) {
            let _ = fs::remove_dir_all(d);
        }
    }
    cg.destroy().unwrap();
    cg.destroy().unwrap();
}

#[test]
fn cgroup_is_send_and_sync() {
    fn check<T: Send + Sync + std::fmt::Debug>() {}
    check::<Cgroup>();
    check::<Hierarchy>();
}

#[test]
fn v2_kill_all_uses_cgroup_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Hierarchy::V2 {
        root: tmp.path().into(),
    };
    let cg = Cgroup::create(&h, "/k2").unwrap();
    let d = cg.unified_dir().unwrap();
    put(d, &[("cgroup.kill", ""), ("cgroup.procs", "")]);
    cg.kill_all().unwrap();
    assert_eq!(read(&d.join("cgroup.kill")), "1");
}
