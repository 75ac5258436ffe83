//! Tests of [`super::generate`].

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use oci_spec::runtime::{
    Capability, LinuxDeviceType, LinuxNamespaceType, LinuxSeccompAction, PosixRlimitType, Spec,
};

use super::*;

struct Files(HashMap<&'static str, &'static str>);

impl RootfsView for Files {
    fn read_file(&self, path: &str) -> Option<Vec<u8>> {
        self.0.get(path).map(|s| s.as_bytes().to_vec())
    }
}

fn rootfs() -> Files {
    Files(HashMap::from([
        (
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        ),
        ("/etc/group", "root:x:0:\napp:x:1000:\nwheel:x:10:app\n"),
    ]))
}

fn image() -> ImageConfig {
    ImageConfig {
        cmd: vec!["/bin/sh".into()],
        ..Default::default()
    }
}

fn config() -> ContainerConfig {
    ContainerConfig {
        id: "c1".into(),
        cgroup_path: "/corten/c1".into(),
        ..Default::default()
    }
}

fn gen(c: &ContainerConfig) -> Spec {
    generate(c, &image(), &rootfs()).expect("generate")
}

fn cap_names(spec: &Spec) -> Vec<String> {
    let caps = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().clone())
        .expect("caps");
    let mut names: Vec<String> = caps
        .effective()
        .iter()
        .flatten()
        .map(|c| c.to_string())
        .collect();
    names.sort();
    names
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn defaults_are_containerds() {
    let spec = gen(&config());
    let p = spec.process().as_ref().expect("process");
    let caps = p.capabilities().as_ref().expect("caps");
    assert_eq!(cap_names(&spec), sorted(defaults::DEFAULT_CAPS));
    assert_eq!(caps.bounding(), caps.effective());
    assert_eq!(caps.permitted(), caps.effective());
    assert_eq!(caps.inheritable().as_ref().map(|c| c.len()), Some(0));
    assert_eq!(caps.ambient().as_ref().map(|c| c.len()), Some(0));
    assert!(caps
        .effective()
        .as_ref()
        .expect("eff")
        .contains(&Capability::NetBindService));
    assert_eq!(p.args().as_deref(), Some(&["/bin/sh".to_string()][..]));
    assert_eq!(p.cwd(), &PathBuf::from("/"));
    assert_eq!(p.no_new_privileges(), Some(false));
    assert_eq!(p.terminal(), Some(false));
    let env = p.env().clone().expect("env");
    assert!(env.contains(&defaults::DEFAULT_PATH.to_string()), "{env:?}");
    assert!(env.contains(&"HOME=/root".to_string()), "{env:?}");
    let rl = &p.rlimits().as_ref().expect("rlimits")[0];
    assert_eq!(
        (rl.typ(), rl.soft(), rl.hard()),
        (PosixRlimitType::RlimitNofile, 1_048_576, 1_048_576)
    );
    assert_eq!((p.user().uid(), p.user().gid()), (0, 0));
    assert_eq!(
        spec.root().as_ref().map(|r| r.path().clone()),
        Some(PathBuf::from("rootfs"))
    );

    let linux = spec.linux().as_ref().expect("linux");
    assert_eq!(linux.masked_paths().as_ref().expect("masked").len(), 11);
    assert!(linux
        .masked_paths()
        .iter()
        .flatten()
        .any(|p| p == "/sys/devices/virtual/powercap"));
    assert_eq!(
        linux.readonly_paths().as_deref(),
        Some(&sorted_in_order(defaults::READONLY_PATHS)[..])
    );
    assert_eq!(
        linux.cgroups_path().as_deref(),
        Some(std::path::Path::new("/corten/c1"))
    );
    assert!(linux.seccomp().is_none());
    let ns: Vec<_> = linux
        .namespaces()
        .iter()
        .flatten()
        .map(|n| n.typ())
        .collect();
    assert_eq!(
        ns,
        [
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Cgroup,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts
        ]
    );

    let devices: Vec<_> = linux
        .devices()
        .iter()
        .flatten()
        .map(|d| d.path().display().to_string())
        .collect();
    assert_eq!(
        devices,
        [
            "/dev/null",
            "/dev/zero",
            "/dev/full",
            "/dev/random",
            "/dev/urandom",
            "/dev/tty"
        ]
    );
    let rules = linux
        .resources()
        .as_ref()
        .and_then(|r| r.devices().clone())
        .expect("rules");
    assert!(
        !rules[0].allow() && rules[0].typ() == Some(LinuxDeviceType::A),
        "deny all first"
    );
    assert!(rules
        .iter()
        .any(|r| r.allow() && r.major() == Some(136) && r.minor().is_none()));
    assert!(rules
        .iter()
        .any(|r| r.allow() && r.major() == Some(1) && r.minor() == Some(3)));

    let mounts: HashMap<String, (String, Vec<String>)> = spec
        .mounts()
        .iter()
        .flatten()
        .map(|m| {
            (
                m.destination().display().to_string(),
                (
                    m.typ().clone().unwrap_or_default(),
                    m.options().clone().unwrap_or_default(),
                ),
            )
        })
        .collect();
    for (dest, typ) in [
        ("/proc", "proc"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
        ("/sys", "sysfs"),
        ("/sys/fs/cgroup", "cgroup"),
    ] {
        assert_eq!(mounts.get(dest).map(|m| m.0.as_str()), Some(typ), "{dest}");
    }
    assert!(mounts["/dev"].1.contains(&"size=65536k".to_string()));
    assert!(mounts["/dev/pts"].1.contains(&"ptmxmode=0666".to_string()));
    assert!(mounts["/sys"].1.contains(&"ro".to_string()));
    assert!(mounts["/sys/fs/cgroup"].1.contains(&"ro".to_string()));
    // The spec is valid OCI JSON that round-trips.
    let json = serde_json::to_string(&spec).expect("json");
    let back: Spec = serde_json::from_str(&json).expect("parse back");
    assert_eq!(back, spec);
}

fn sorted_in_order(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn privileged_gets_everything() {
    let mut c = config();
    c.security.privileged = true;
    c.security.seccomp = SeccompProfile::RuntimeDefault;
    c.security.drop_capabilities = vec!["NET_RAW".into()];
    let spec = gen(&c);
    assert_eq!(cap_names(&spec).len(), defaults::kernel_caps().len());
    let linux = spec.linux().as_ref().expect("linux");
    assert_eq!(linux.masked_paths().as_ref().map(Vec::len), Some(0));
    assert_eq!(linux.readonly_paths().as_ref().map(Vec::len), Some(0));
    assert!(linux.seccomp().is_none());
    let rules = linux
        .resources()
        .as_ref()
        .and_then(|r| r.devices().clone())
        .expect("rules");
    assert!(rules
        .iter()
        .any(|r| r.allow() && r.typ() == Some(LinuxDeviceType::A)));
    assert!(linux
        .devices()
        .iter()
        .flatten()
        .any(|d| d.path() == &PathBuf::from("/dev/null")));
    let sys = spec
        .mounts()
        .iter()
        .flatten()
        .find(|m| m.destination() == &PathBuf::from("/sys"));
    assert!(sys
        .and_then(|m| m.options().clone())
        .expect("sys")
        .contains(&"rw".to_string()));
}

#[test]
fn add_and_drop_capabilities() {
    let d = |v: &[&str]| -> Vec<String> { v.iter().map(|s| s.to_string()).collect() };
    let run = |add: &[&str], drop: &[&str]| {
        let mut c = config();
        c.security.add_capabilities = d(add);
        c.security.drop_capabilities = d(drop);
        cap_names(&gen(&c))
    };
    let mut with_admin = d(defaults::DEFAULT_CAPS);
    with_admin.push("NET_ADMIN".into());
    with_admin.sort();
    assert_eq!(run(&["NET_ADMIN"], &[]), with_admin);
    assert_eq!(run(&["cap_net_admin"], &[]), with_admin);
    assert!(!run(&[], &["CAP_CHOWN"]).contains(&"CHOWN".to_string()));
    assert_eq!(run(&[], &["ALL"]), Vec::<String>::new());
    assert_eq!(
        run(&["NET_BIND_SERVICE"], &["ALL"]),
        d(&["NET_BIND_SERVICE"])
    );
    let all = run(&["ALL"], &[]);
    assert_eq!(all.len(), defaults::kernel_caps().len());
    let all_but = run(&["ALL"], &["SYS_ADMIN"]);
    assert_eq!(all_but.len(), all.len() - 1);
    assert!(!all_but.contains(&"SYS_ADMIN".to_string()));
    let mut c = config();
    c.security.add_capabilities = d(&["CAP_NOT_A_THING"]);
    let e = generate(&c, &image(), &rootfs()).expect_err("bad cap");
    assert!(e.to_string().contains("CAP_NOT_A_THING"), "{e}");
}

#[test]
fn process_user_env_and_workdir() {
    let mut c = config();
    c.env = vec![("HOME".into(), "/h".into()), ("A".into(), "1".into())];
    c.working_dir = Some("/work".into());
    c.tty = true;
    c.security.no_new_privs = true;
    c.security.supplemental_groups = vec![4000];
    let img = ImageConfig {
        user: Some("app".into()),
        env: vec!["PATH=/opt/bin".into(), "A=0".into()],
        entrypoint: vec!["/entry".into()],
        cmd: vec!["x".into()],
        working_dir: Some("/img".into()),
        stop_signal: None,
    };
    let spec = generate(&c, &img, &rootfs()).expect("generate");
    let p = spec.process().as_ref().expect("process");
    assert_eq!(
        p.env().as_deref().expect("env"),
        &["PATH=/opt/bin", "A=1", "HOME=/h", "TERM=xterm"].map(String::from)[..]
    );
    assert_eq!(p.cwd(), &PathBuf::from("/work"));
    assert_eq!(p.terminal(), Some(true));
    assert_eq!(p.no_new_privileges(), Some(true));
    assert_eq!((p.user().uid(), p.user().gid()), (1000, 1000));
    assert_eq!(
        p.user().additional_gids().as_deref(),
        Some(&[1000, 10, 4000][..])
    );
    assert_eq!(
        p.args().as_deref().expect("args"),
        &["/entry", "x"].map(String::from)[..]
    );
    // HOME from passwd when not set; "/" without an entry.
    let spec = generate(&config(), &img, &rootfs()).expect("generate");
    let env = spec
        .process()
        .as_ref()
        .and_then(|p| p.env().clone())
        .expect("env");
    assert!(env.contains(&"HOME=/home/app".to_string()), "{env:?}");
    let numeric = ImageConfig {
        user: Some("4242".into()),
        ..image()
    };
    let spec = generate(&config(), &numeric, &Files(HashMap::new())).expect("numeric user");
    let p = spec.process().as_ref().expect("process");
    assert_eq!(p.user().uid(), 4242);
    assert!(p.env().iter().flatten().any(|e| e == "HOME=/"));
    let unknown = ImageConfig {
        user: Some("ghost".into()),
        ..image()
    };
    let e = generate(&config(), &unknown, &rootfs()).expect_err("unknown user");
    assert!(e.to_string().contains("ghost"), "{e}");
    c.working_dir = Some("relative".into());
    assert!(generate(&c, &img, &rootfs()).is_err());
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
        .any(|d| d.allow() && d.access().as_deref() == Some("rw") && d.minor() == Some(3)));
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
        }];
        assert!(
            generate(&c, &image(), &rootfs()).is_err(),
            "{host} -> {ctr}"
        );
    }
}
