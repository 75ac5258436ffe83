//! Defaults, privileged, capabilities, the process.

use std::collections::HashMap;
use std::path::PathBuf;

use oci_spec::runtime::{Capability, LinuxDeviceType, LinuxNamespaceType, PosixRlimitType};

use super::*;
use crate::spec::defaults;

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
fn hostname_is_in_the_environment_unless_the_image_or_container_sets_it() {
    let env_of = |c: &ContainerConfig, img: &ImageConfig| -> Vec<String> {
        let spec = generate(c, img, &rootfs()).expect("generate");
        spec.process()
            .as_ref()
            .and_then(|p| p.env().clone())
            .expect("env")
    };
    let mut c = config();
    assert!(!env_of(&c, &image())
        .iter()
        .any(|e| e.starts_with("HOSTNAME=")));
    c.hostname_env = Some("web-0".into());
    let env = env_of(&c, &image());
    assert_eq!(env.iter().filter(|e| e.starts_with("HOSTNAME=")).count(), 1);
    assert!(env.contains(&"HOSTNAME=web-0".to_string()), "{env:?}");
    let img = ImageConfig {
        env: vec!["HOSTNAME=from-image".into()],
        ..image()
    };
    let env = env_of(&c, &img);
    assert!(env.contains(&"HOSTNAME=from-image".to_string()), "{env:?}");
    assert!(!env.contains(&"HOSTNAME=web-0".to_string()), "{env:?}");
    c.env = vec![("HOSTNAME".into(), "mine".into())];
    let env = env_of(&c, &img);
    assert_eq!(
        env.iter()
            .filter(|e| e.starts_with("HOSTNAME="))
            .collect::<Vec<_>>(),
        vec!["HOSTNAME=mine"]
    );
}
