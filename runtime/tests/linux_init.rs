//! Root integration tests of `corten_runtime::linux`: real containers from a
//! busybox rootfs, driven through the `corten-linux-probe` helper (the test
//! harness is multi-threaded and must not fork; the probe plays the
//! single-threaded shim). Fails when not run as root; CI runs as root.

// Tests may unwrap (clippy.toml), helpers of a test file included.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "linux_init/fixture.rs"]
mod fixture;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use fixture::{spec, Fixture};
use oci_spec::runtime::{Mount, MountBuilder, RootBuilder, UserBuilder};

#[test]
fn pid_one_is_the_command() {
    let fx = Fixture::new();
    let (out, err, line) = fx.run(&spec(&["sh", "-c", "echo $$"]));
    assert_eq!(line, "exit 0", "{err}");
    assert_eq!(out.trim(), "1");
    // The overlay and the container's mounts lived in the probe's mount
    // namespace only: nothing is left on the host.
    let host = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!host.contains(fx.dir.path().to_str().unwrap()), "{host}");
}

#[test]
fn cgroup_view_is_the_containers() {
    let fx = Fixture::new();
    let (out, err, line) = fx.run(&spec(&[
        "sh",
        "-c",
        "cat /proc/self/cgroup; ls /sys/fs/cgroup",
    ]));
    assert_eq!(line, "exit 0", "{err}");
    // In its own cgroup namespace every hierarchy is rooted at "/".
    for l in out
        .lines()
        .filter(|l| l.contains("::") || l.matches(':').count() == 2)
    {
        assert!(l.ends_with(":/"), "{out}");
    }
    assert!(
        out.lines().any(|l| l == "memory" || l == "cgroup.procs"),
        "{out}"
    );
}

#[test]
fn ps_sees_only_the_container() {
    let fx = Fixture::new();
    let (out, err, line) = fx.run(&spec(&["sh", "-c", "ps; true"]));
    assert_eq!(line, "exit 0", "{err}");
    let procs: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(procs.len(), 2, "{out}");
    assert!(procs[0].trim_start().starts_with('1'), "{out}");
}

#[test]
fn hostname_and_image_root() {
    let fx = Fixture::new();
    let (out, err, line) = fx.run(&spec(&["sh", "-c", "hostname; ls -l /"]));
    assert_eq!(line, "exit 0", "{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("probe-host"));
    let names: Vec<&str> = lines.filter_map(|l| l.split_whitespace().last()).collect();
    assert!(names.contains(&"image-marker"), "{out}");
    assert!(names.contains(&"bin"), "{out}");
    assert!(!names.contains(&"usr") && !names.contains(&"home"), "{out}");
}

#[test]
fn readonly_rootfs_refuses_writes() {
    let fx = Fixture::new();
    let mut s = spec(&["sh", "-c", "touch /new-file"]);
    s.set_root(Some(
        RootBuilder::default()
            .path("rootfs")
            .readonly(true)
            .build()
            .unwrap(),
    ));
    let (_, err, line) = fx.run(&s);
    assert_ne!(line, "exit 0", "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(!fx.dir.path().join("upper/new-file").exists());
}

#[test]
fn user_and_groups_apply() {
    let fx = Fixture::new();
    let mut s = spec(&["id"]);
    let mut p = s.process().clone().unwrap();
    p.set_user(
        UserBuilder::default()
            .uid(1000u32)
            .gid(1001u32)
            .additional_gids(vec![2000u32])
            .build()
            .unwrap(),
    );
    s.set_process(Some(p));
    let (out, err, line) = fx.run(&s);
    assert_eq!(line, "exit 0", "{err}");
    assert!(
        out.contains("uid=1000") && out.contains("gid=1001"),
        "{out}"
    );
    assert!(out.contains("2000"), "{out}");
}

#[test]
fn exit_code_round_trips() {
    let fx = Fixture::new();
    let (_, err, line) = fx.run(&spec(&["sh", "-c", "exit 3"]));
    assert_eq!(line, "exit 3", "{err}");
}

#[test]
fn death_by_signal_is_reported() {
    let fx = Fixture::new();
    // Pid 1 of a namespace ignores signals it has no handler for, even
    // SIGKILL from inside: kill a child of it that replaced the shell.
    let (_, err, line) = fx.run(&spec(&["sh", "-c", "sh -c 'kill -KILL $$'; exit $?"]));
    assert_eq!(line, "exit 137", "{err}");
    // With the host's pid namespace the init itself can be killed.
    let mut s = spec(&["sh", "-c", "kill -KILL $$"]);
    let mut linux = s.linux().clone().unwrap();
    let nss = linux.namespaces().clone().unwrap();
    linux.set_namespaces(Some(
        nss.into_iter()
            .filter(|n| n.typ() != oci_spec::runtime::LinuxNamespaceType::Pid)
            .collect(),
    ));
    s.set_linux(Some(linux));
    let (_, err, line) = fx.run(&s);
    assert_eq!(line, "signal SIGKILL", "{err}");
}

#[test]
fn masked_and_readonly_paths() {
    let fx = Fixture::new();
    // /proc/kcore where the kernel has it (this VM's kernel has none), else
    // another masked file; /sys/firmware is a masked directory.
    let file = if Path::new("/proc/kcore").exists() {
        "/proc/kcore"
    } else {
        "/proc/timer_list"
    };
    let script = format!(
        "wc -c < {file}; ls -A /sys/firmware | wc -l; echo x > /proc/sys/kernel/domainname || echo refused"
    );
    let (out, err, line) = fx.run(&spec(&["sh", "-c", &script]));
    assert_eq!(line, "exit 0", "{err}");
    assert_eq!(out, "0\n0\nrefused\n", "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
}

fn bind(source: &Path, dest: &str) -> Mount {
    MountBuilder::default()
        .destination(dest)
        .typ("bind")
        .source(source)
        .options(vec!["rbind".to_string(), "ro".to_string()])
        .build()
        .unwrap()
}

#[test]
fn bind_through_an_image_symlink_stays_in_the_rootfs() {
    let fx = Fixture::new();
    symlink("/etc", fx.lower().join("data")).unwrap();
    symlink(
        "../../../../../../etc/hostname-file",
        fx.lower().join("file"),
    )
    .unwrap();
    let src = fx.dir.path().join("volume");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("bound-marker"), "volume\n").unwrap();
    let mut s = spec(&[
        "sh",
        "-c",
        "cat /data/bound-marker /etc/bound-marker; test ! -e /etc/image-file",
    ]);
    let mut mounts = s.mounts().clone().unwrap();
    mounts.push(bind(&src, "/data"));

    s.set_mounts(Some(mounts));
    let (out, err, line) = fx.run(&s);
    assert_eq!(line, "exit 0", "{err}");
    assert_eq!(out, "volume\nvolume\n");
    assert!(!Path::new("/etc/bound-marker").exists());
}

#[test]
fn bind_through_a_dangling_escaping_symlink_is_refused() {
    let fx = Fixture::new();
    // Relative, climbing above the root, to a file that does not exist:
    // nothing is created through it, on the host or in the rootfs.
    symlink(
        "../../../../../../etc/corten-probe-file",
        fx.lower().join("file"),
    )
    .unwrap();
    let src = fx.dir.path().join("volume-file");
    fs::write(&src, "volume\n").unwrap();
    let mut s = spec(&["true"]);
    let mut mounts = s.mounts().clone().unwrap();
    mounts.push(bind(&src, "/file"));
    s.set_mounts(Some(mounts));
    let (_, err, line) = fx.run(&s);
    assert!(line.starts_with("spawn error:"), "{err}");
    assert!(
        line.contains("dangling symlink") && line.contains("InvalidArgument"),
        "{line}"
    );
    assert!(!Path::new("/etc/corten-probe-file").exists());
    assert!(!fx.dir.path().join("upper/etc/corten-probe-file").exists());
}

#[test]
fn escaping_destination_is_refused() {
    let fx = Fixture::new();
    let src = fx.dir.path().join("volume");
    fs::create_dir_all(&src).unwrap();
    let mut s = spec(&["true"]);
    let mut mounts = s.mounts().clone().unwrap();
    mounts.push(bind(&src, "/../../../tmp/evil"));
    s.set_mounts(Some(mounts));
    let (_, err, line) = fx.run(&s);
    assert!(line.starts_with("spawn error:"), "{err}");
    assert!(line.contains("escapes the container rootfs"), "{line}");
    assert!(line.contains("InvalidArgument"), "{line}");
}

#[test]
fn negative_oom_score_adj_is_clamped() {
    let own: i32 = fs::read_to_string("/proc/self/oom_score_adj")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let fx = Fixture::new();
    let mut s = spec(&["cat", "/proc/self/oom_score_adj"]);
    let mut p = s.process().clone().unwrap();
    p.set_oom_score_adj(Some(-998));
    s.set_process(Some(p));
    let (out, err, line) = fx.run(&s);
    assert_eq!(line, "exit 0", "{err}");
    let got: i32 = out.trim().parse().unwrap();
    assert!(got >= -998, "{got}");
    if got != -998 {
        assert_eq!(got, own, "clamped to the shim's own value");
    }
}

#[test]
fn missing_command_fails_start_cleanly() {
    let fx = Fixture::new();
    let (_, err, line) = fx.run(&spec(&["no-such-command"]));
    assert!(line.starts_with("start error:"), "{err}");
    assert!(line.to_lowercase().contains("no such file"), "{line}");
    assert!(line.ends_with("(exit 127)"), "{line}");
}

#[test]
fn seccomp_filter_is_installed_before_exec() {
    let fx = Fixture::new();
    // Both with no_new_privs (installed at start) and without (installed
    // before the capability drop).
    for nnp in [true, false] {
        let mut s = spec(&["sh", "-c", "mkdir /tmp-dir && echo made"]);
        let mut p = s.process().clone().unwrap();
        p.set_no_new_privileges(Some(nnp));
        s.set_process(Some(p));
        let (out, err, line) = fx.run_with(&s, &[("CORTEN_PROBE_DENY_MKDIR", "1")]);
        assert_eq!(line, "exit 1", "{err}");
        assert!(err.contains("Operation not permitted"), "{err}");
        assert_eq!(out, "");
    }
}

/// The spec without its own cgroup namespace (as pods on cgroup v1 run).
fn spec_without_cgroupns(args: &[&str]) -> oci_spec::runtime::Spec {
    let mut s = spec(args);
    let mut linux = s.linux().clone().unwrap();
    let nss: Vec<_> = linux
        .namespaces()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.typ() != oci_spec::runtime::LinuxNamespaceType::Cgroup)
        .collect();
    linux.set_namespaces(Some(nss));
    s.set_linux(Some(linux));
    s
}

/// A cgroup path of this test alone, and its directories (v1 ones with
/// their controller, then the unified one), learnt by making and removing it.
fn probe_cgroup(test: &str) -> (String, Vec<(&'static str, PathBuf)>) {
    use corten_runtime::cgroups::{detect, Cgroup, Controller};
    let path = format!("/corten-probe-{}-{test}", std::process::id());
    let cg = Cgroup::create(&detect().unwrap(), &path).unwrap();
    let mut dirs: Vec<(&'static str, PathBuf)> = Controller::ALL
        .iter()
        .filter_map(|c| Some((c.name(), cg.v1_dir(*c)?.to_path_buf())))
        .collect();
    dirs.extend(cg.unified_dir().map(|d| ("unified", d.to_path_buf())));
    cg.destroy().unwrap();
    (path, dirs)
}

/// The lines of `/proc/self/cgroup` text for the hierarchies corten makes
/// cgroups in (its v1 controllers and the unified one), as (controllers,
/// path).
fn our_hierarchies(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
            corten_runtime::cgroups::Controller::any_managed(ctrls)
                .then(|| (ctrls.to_string(), path.to_string()))
        })
        .collect()
}

#[test]
fn the_init_is_born_in_its_cgroup_before_its_cgroup_namespace() {
    let fx = Fixture::new();
    let host = our_hierarchies(&fs::read_to_string("/proc/self/cgroup").unwrap());
    assert!(!host.is_empty(), "no cgroup hierarchy of ours on this host");
    let (cgroup, dirs) = probe_cgroup("born");
    let cat = ["cat", "/proc/self/cgroup"];
    // Without a cgroup namespace, the host's paths: the cgroup's own, in
    // every hierarchy.
    let (out, err, line) = fx.run_with(
        &spec_without_cgroupns(&cat),
        &[("CORTEN_PROBE_CGROUP", cgroup.as_str())],
    );
    assert_eq!(line, "exit 0", "{err}");
    let seen = our_hierarchies(&out);
    assert_eq!(seen.len(), host.len(), "{out}");
    for (ctrls, path) in &seen {
        assert_eq!(path, &cgroup, "hierarchy {ctrls:?}: {out}");
    }
    // With one, made after the move: the cgroup is its root everywhere.
    let (out, err, line) = fx.run_with(&spec(&cat), &[("CORTEN_PROBE_CGROUP", cgroup.as_str())]);
    assert_eq!(line, "exit 0", "{err}");
    let seen = our_hierarchies(&out);
    assert_eq!(seen.len(), host.len(), "{out}");
    for (ctrls, path) in &seen {
        assert_eq!(path, "/", "hierarchy {ctrls:?}: {out}");
    }
    // The probe removed the cgroup once the init had ended.
    assert!(dirs.iter().all(|(_, d)| !d.exists()), "{dirs:?}");
}

#[test]
fn a_cgroup_removed_before_the_move_fails_the_spawn_and_is_named() {
    let fx = Fixture::new();
    let (cgroup, dirs) = probe_cgroup("gone");
    // A v1 hierarchy where there is one (the child's own move fails), else
    // the unified directory (the kernel refuses to fork into it).
    let (gone, dir) = dirs.first().unwrap().clone();
    let (out, err, line) = fx.run_with(
        &spec(&["echo", "ran"]),
        &[
            ("CORTEN_PROBE_CGROUP", cgroup.as_str()),
            ("CORTEN_PROBE_CGROUP_GONE", gone),
        ],
    );
    assert!(line.starts_with("spawn error:"), "{line}\n{err}");
    assert!(line.contains(dir.to_str().unwrap()), "{line}");
    assert!(out.is_empty(), "the command never ran: {out}");
    assert!(dirs.iter().all(|(_, d)| !d.exists()), "{dirs:?}");
}
