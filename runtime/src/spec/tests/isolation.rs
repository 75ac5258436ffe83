//! Namespaces, seccomp, mounts, resources and devices.

use std::collections::BTreeMap;
use std::path::PathBuf;

use oci_spec::runtime::{LinuxDeviceType, LinuxNamespaceType, LinuxSeccompAction};

use super::*;

#[test]
fn a_pods_user_namespace_comes_first_with_its_maps() {
    use crate::linux::{IdMapping, IdMappings};
    let mut c = config();
    assert!(!gen(&c)
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default()
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::User));
    let map = vec![IdMapping {
        container_id: 0,
        host_id: 100_000,
        size: 65_536,
    }];
    c.namespaces.user = Some(crate::spec::UserNamespace {
        path: "/run/corten/pods/p/user".into(),
        mappings: IdMappings {
            uids: map.clone(),
            gids: map,
        },
    });
    let spec = gen(&c);
    let linux = spec.linux().as_ref().expect("linux");
    let ns = linux.namespaces().clone().expect("ns");
    assert_eq!(ns[0].typ(), LinuxNamespaceType::User);
    assert_eq!(
        ns[0].path().clone(),
        Some(PathBuf::from("/run/corten/pods/p/user"))
    );
    let uids = linux.uid_mappings().clone().expect("uid maps");
    assert_eq!(
        (uids[0].container_id(), uids[0].host_id(), uids[0].size()),
        (0, 100_000, 65_536)
    );
    assert_eq!(linux.gid_mappings().as_ref().map(Vec::len), Some(1));
}

#[test]
fn namespaces_and_hostname() {
    let mut c = config();
    c.hostname = Some("pod-a".into());
    c.namespaces = Namespaces {
        network: NsMode::Path("/run/corten/pods/p/net".into()),
        pid: NsMode::Host,
        ipc: NsMode::Path("/run/corten/pods/p/ipc".into()),
        uts: NsMode::New,
        user: None,
    };
    let spec = gen(&c);
    assert_eq!(spec.hostname().as_deref(), Some("pod-a"));
    let ns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .expect("ns");
    let find = |t| ns.iter().find(|n| n.typ() == t);
    assert_eq!(
        find(LinuxNamespaceType::Network).and_then(|n| n.path().clone()),
        Some(PathBuf::from("/run/corten/pods/p/net"))
    );
    assert!(find(LinuxNamespaceType::Pid).is_none());
    assert!(find(LinuxNamespaceType::Uts)
        .and_then(|n| n.path().clone())
        .is_none());
    c.namespaces.uts = NsMode::Host;
    let spec = gen(&c);
    assert_eq!(spec.hostname(), &None, "never set the host's hostname");
}

#[test]
fn seccomp_selection() {
    let mut c = config();
    c.security.seccomp = SeccompProfile::RuntimeDefault;
    let profile = gen(&c)
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().clone())
        .expect("profile");
    assert_eq!(profile.default_action(), LinuxSeccompAction::ScmpActErrno);
    let allowed = |p: &oci_spec::runtime::LinuxSeccomp, name: &str| {
        p.syscalls().iter().flatten().any(|s| {
            s.action() == LinuxSeccompAction::ScmpActAllow
                && s.args().is_none()
                && s.names().iter().any(|n| n == name)
        })
    };
    assert!(!allowed(&profile, "unshare"));
    c.security.add_capabilities = vec!["SYS_ADMIN".into()];
    let profile = gen(&c)
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().clone())
        .expect("profile");
    assert!(allowed(&profile, "unshare"));

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("p.json");
    std::fs::write(&path, r#"{"defaultAction":"SCMP_ACT_LOG"}"#).expect("write");
    c.security.seccomp = SeccompProfile::Localhost(path);
    let profile = gen(&c)
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().clone())
        .expect("profile");
    assert_eq!(profile.default_action(), LinuxSeccompAction::ScmpActLog);
    c.security.seccomp = SeccompProfile::Localhost("/nonexistent/p.json".into());
    let e = generate(&c, &image(), &rootfs()).expect_err("missing profile");
    assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("/nonexistent/p.json"), "{e}");
}

#[test]
fn mounts_override_defaults_and_hostile_ones_are_refused() {
    let mut c = config();
    let m = |host: &str, ctr: &str, readonly, propagation| MountConfig {
        host_path: host.into(),
        container_path: ctr.into(),
        readonly,
        propagation,
        ..MountConfig::default()
    };
    c.mounts = vec![
        m(
            "/srv/data/sub",
            "/data/sub",
            false,
            Propagation::Bidirectional,
        ),
        m("/srv/data", "/data", true, Propagation::HostToContainer),
        m("/host/shm", "/dev/shm/", false, Propagation::Private),
    ];
    let spec = gen(&c);
    let mounts = spec.mounts().clone().expect("mounts");
    let shm: Vec<_> = mounts
        .iter()
        .filter(|m| m.destination() == &PathBuf::from("/dev/shm"))
        .collect();
    assert_eq!(shm.len(), 1, "the default /dev/shm is replaced");
    assert_eq!(shm[0].typ().as_deref(), Some("bind"));
    let dests: Vec<String> = mounts
        .iter()
        .map(|m| m.destination().display().to_string())
        .collect();
    let data = dests.iter().position(|d| d == "/data").expect("/data");
    let sub = dests
        .iter()
        .position(|d| d == "/data/sub")
        .expect("/data/sub");
    assert!(data < sub, "parents first: {dests:?}");
    let opts = |i: usize| mounts[i].options().clone().expect("options");
    assert_eq!(opts(data), ["rbind", "rslave", "ro"]);
    assert_eq!(opts(sub), ["rbind", "rshared", "rw"]);
    assert_eq!(mounts[data].typ().as_deref(), Some("bind"));
    assert_eq!(
        mounts[data].source().as_deref(),
        Some(std::path::Path::new("/srv/data"))
    );

    for (host, ctr, what) in [
        ("/srv", "relative/path", "relative/path"),
        ("/srv", "/data/../../etc", "/data/../../etc"),
        ("srv/relative", "/data", "srv/relative"),
    ] {
        let mut c = config();
        c.mounts = vec![m(host, ctr, false, Propagation::Private)];
        let e = generate(&c, &image(), &rootfs()).expect_err(ctr);
        assert!(e.to_string().contains(what), "{e}");
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
    }
}

#[test]
fn resources_annotations_oom_and_devices() {
    let mut c = config();
    c.resources = Resources {
        cpu_shares: Some(512),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        cpuset_cpus: Some("0-1".into()),
        cpuset_mems: None,
        memory_limit_bytes: Some(32 << 20),
        pids_limit: Some(100),
        oom_score_adj: Some(-998),
        unified: BTreeMap::from([("memory.high".into(), "1000000".into())]),
    };
    c.oom_score_adj_cap = Some(0);
    c.annotations = BTreeMap::from([("io.kubernetes.pod".into(), "p".into())]);
    c.devices = vec![DeviceConfig {
        host_path: "/dev/null".into(),
        container_path: "/dev/mynull".into(),
        permissions: "rw".into(),
        ..DeviceConfig::default()
    }];
    let spec = gen(&c);
    assert_eq!(
        spec.process().as_ref().and_then(|p| p.oom_score_adj()),
        Some(0)
    );
    assert_eq!(
        spec.annotations()
            .as_ref()
            .and_then(|a| a.get("io.kubernetes.pod"))
            .map(String::as_str),
        Some("p")
    );
    let linux = spec.linux().as_ref().expect("linux");
    let r = linux.resources().as_ref().expect("resources");
    assert_eq!(r.memory().as_ref().and_then(|m| m.limit()), Some(32 << 20));
    let cpu = r.cpu().as_ref().expect("cpu");
    assert_eq!(
        (cpu.shares(), cpu.quota(), cpu.period()),
        (Some(512), Some(50_000), Some(100_000))
    );
    assert_eq!(cpu.cpus().as_deref(), Some("0-1"));
    assert_eq!(r.pids().as_ref().map(|p| p.limit()), Some(100));
    assert_eq!(
        r.unified()
            .as_ref()
            .and_then(|u| u.get("memory.high"))
            .map(String::as_str),
        Some("1000000")
    );
    let dev = linux
        .devices()
        .iter()
        .flatten()
        .find(|d| d.path() == &PathBuf::from("/dev/mynull"))
        .expect("dev");
    assert_eq!(
        (dev.typ(), dev.major(), dev.minor()),
        (LinuxDeviceType::C, 1, 3)
    );
    assert!(r
        .devices()
        .iter()
        .flatten()
        .any(|d| d.allow() && d.access().as_deref() == Some("rwm") && d.minor() == Some(3)));
    // No clamp without a cap; limits of 0 are unset.
    c.oom_score_adj_cap = None;
    c.resources.memory_limit_bytes = Some(0);
    let spec = gen(&c);
    assert_eq!(
        spec.process().as_ref().and_then(|p| p.oom_score_adj()),
        Some(-998)
    );
    assert!(spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .and_then(|r| *r.memory())
        .is_none());
    // Devices that are not, or not safe.
    for (host, ctr) in [
        ("/etc/hostname", "/dev/x"),
        ("/dev/null", "dev/x"),
        ("/dev/null", "/dev/../x"),
        ("/nonexistent", "/dev/x"),
    ] {
        let mut c = config();
        c.devices = vec![DeviceConfig {
            host_path: host.into(),
            container_path: ctr.into(),
            permissions: String::new(),
            ..DeviceConfig::default()
        }];
        assert!(
            generate(&c, &image(), &rootfs()).is_err(),
            "{host} -> {ctr}"
        );
    }
}

#[test]
fn described_devices_and_bind_mount_options() {
    let mut c = config();
    let node = |kind, major, uid| DeviceNode {
        kind,
        major,
        minor: 7,
        file_mode: Some(0o640),
        uid,
        gid: None,
    };
    c.devices = vec![
        DeviceConfig {
            // Not read: the node is described.
            host_path: "/nonexistent".into(),
            container_path: "/dev/vendor0".into(),
            permissions: "r".into(),
            node: Some(node(DeviceKind::Block, 250, None)),
        },
        DeviceConfig {
            host_path: "/nonexistent".into(),
            container_path: "/dev/vendor-hidden".into(),
            permissions: "none".into(),
            node: Some(node(DeviceKind::Char, 251, Some(5))),
        },
        DeviceConfig {
            host_path: "/nonexistent".into(),
            container_path: "/dev/vendor-pipe".into(),
            node: Some(node(DeviceKind::Fifo, 0, None)),
            ..DeviceConfig::default()
        },
    ];
    c.security.run_as_user = Some(1000);
    c.mounts = vec![
        MountConfig {
            host_path: "/usr/lib".into(),
            container_path: "/vendor/lib".into(),
            readonly: true,
            options: vec!["nosuid".into(), "bind".into(), "nodev".into()],
            ..MountConfig::default()
        },
        MountConfig {
            host_path: "/usr/share".into(),
            container_path: "/vendor/share".into(),
            options: vec!["noexec".into()],
            ..MountConfig::default()
        },
    ];
    let spec = gen(&c);
    let linux = spec.linux().as_ref().expect("linux");
    let find = |p: &str| {
        linux
            .devices()
            .iter()
            .flatten()
            .find(|d| d.path() == &PathBuf::from(p))
            .cloned()
            .expect(p)
    };
    let d = find("/dev/vendor0");
    assert_eq!(
        (d.typ(), d.major(), d.minor(), d.file_mode()),
        (LinuxDeviceType::B, 250, 7, Some(0o640))
    );
    // No owner given: the process's (uid 1000, gid 1000 from the image).
    assert_eq!((d.uid(), d.gid()), (Some(1000), Some(1000)));
    let hidden = find("/dev/vendor-hidden");
    assert_eq!((hidden.uid(), hidden.gid()), (Some(5), Some(1000)));
    assert_eq!(find("/dev/vendor-pipe").typ(), LinuxDeviceType::P);
    let rules = linux
        .resources()
        .as_ref()
        .and_then(|r| r.devices().clone())
        .expect("rules");
    let allowed: Vec<_> = rules
        .iter()
        .filter(|r| r.allow() && matches!(r.major(), Some(250 | 251)))
        .map(|r| (r.typ(), r.major(), r.minor(), r.access().clone()))
        .collect();
    // Each may be made (`m`); "none" allows no more; the FIFO has no rule.
    assert_eq!(
        allowed,
        [
            (
                Some(LinuxDeviceType::B),
                Some(250),
                Some(7),
                Some("rm".into())
            ),
            (
                Some(LinuxDeviceType::C),
                Some(251),
                Some(7),
                Some("m".into())
            )
        ]
    );
    let mounts = spec.mounts().as_ref().expect("mounts");
    let options = |dest: &str| {
        mounts
            .iter()
            .find(|m| m.destination() == &PathBuf::from(dest))
            .and_then(|m| m.options().clone())
            .expect(dest)
    };
    assert_eq!(
        options("/vendor/lib"),
        ["bind", "rprivate", "ro", "nosuid", "nodev"]
    );
    assert_eq!(
        options("/vendor/share"),
        ["rbind", "rprivate", "rw", "noexec"]
    );
}
