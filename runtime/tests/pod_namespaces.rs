//! Issue 5, as root: `corten-shim pin` pins a pod's net/ipc/uts namespaces
//! as nsfs bind mounts, with hostname, namespaced sysctls and `lo` up, and
//! `PodNamespaces::remove` leaves no trace. Issue 15: with a user namespace
//! (pinned too, with its maps), which owns the others. Fails when not run
//! as root.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use corten_runtime::linux::{IdMapping, IdMappings, PinOptions};
use corten_runtime::sandbox::{Namespace, PodNamespaces};
use corten_runtime::ErrorKind;

const PING_RANGE: &str = "net.ipv4.ping_group_range";
const PING_VALUE: &str = "0 1234";
const SHMMAX: &str = "kernel.shmmax";
const SHMMAX_VALUE: &str = "123456789";

fn shim() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_corten-shim"))
}

/// A tempdir whose pinned namespaces are removed even when a test fails.
struct Guard {
    tmp: tempfile::TempDir,
}

impl Guard {
    fn new() -> Guard {
        Guard {
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn dir(&self) -> PathBuf {
        self.tmp.path().join("ns")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = corten_runtime::linux::unpin(&self.dir());
    }
}

/// Host 100000 -> 0, 65536 ids.
fn maps() -> IdMappings {
    let m = vec![IdMapping {
        container_id: 0,
        host_id: 100_000,
        size: 65_536,
    }];
    IdMappings {
        uids: m.clone(),
        gids: m,
    }
}

/// Every namespace, the user namespace included.
fn all_opts() -> PinOptions {
    PinOptions {
        namespaces: Namespace::ALL.to_vec(),
        hostname: Some("pod1".into()),
        sysctls: vec![
            (PING_RANGE.into(), PING_VALUE.into()),
            (SHMMAX.into(), SHMMAX_VALUE.into()),
        ],
        id_mappings: Some(maps()),
    }
}

/// The mountinfo lines that mention `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let needle = dir.to_string_lossy().into_owned();
    info.lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_owned)
        .collect()
}

fn nsfs_count() -> usize {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    info.lines().filter(|l| l.contains(" - nsfs ")).count()
}

fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn sysctl_path(name: &str) -> String {
    format!("/proc/sys/{}", name.replace('.', "/"))
}

#[tokio::test]
async fn pins_configured_namespaces_and_removes_them() {
    common::require_root("pins namespaces");
    let g = Guard::new();
    let dir = g.dir();
    let pod = PodNamespaces::create(shim(), &dir, &all_opts())
        .await
        .expect("create");

    let mounts = mounts_under(&dir);
    for ns in Namespace::ALL {
        let path = pod.path(ns).expect("pinned");
        let line = mounts
            .iter()
            .find(|l| l.contains(&format!(" {} ", path.display())))
            .unwrap_or_else(|| panic!("{} not mounted: {mounts:?}", path.display()));
        assert!(line.contains(" - nsfs "), "{line}");
        assert!(line.contains(&format!("{}:[", ns.name())), "{line}");
    }
    let net = format!("--net={}", dir.join("net").display());
    let links = run(&["nsenter", &net, "ip", "-o", "link"]);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo:") && links.contains(",UP"), "{links}");
    let uts = format!("--uts={}", dir.join("uts").display());
    assert_eq!(run(&["nsenter", &uts, "hostname"]), "pod1");
    let ping = sysctl_path(PING_RANGE);
    // Gids of the pod's user namespace: 0..1234 inside, mapped outside.
    let user = format!("--user={}", dir.join("user").display());
    assert_eq!(
        run(&["nsenter", &user, &net, "cat", &ping])
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["0", "1234"]
    );
    assert_eq!(
        run(&["nsenter", &net, "cat", &ping])
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["100000", "101234"]
    );
    let host_ping = std::fs::read_to_string(&ping).expect("host sysctl");
    assert_ne!(
        host_ping.split_whitespace().collect::<Vec<_>>(),
        ["0", "1234"]
    );
    let ipc = format!("--ipc={}", dir.join("ipc").display());
    let shm = sysctl_path(SHMMAX);
    assert_eq!(run(&["nsenter", &ipc, "cat", &shm]), SHMMAX_VALUE);
    assert_ne!(
        std::fs::read_to_string(&shm).expect("host").trim(),
        SHMMAX_VALUE
    );

    // The user namespace has the maps and owns the others: its root (and
    // nothing more) may rename the pod's uts and take its lo down.
    let uid_map = run(&["nsenter", &user, "cat", "/proc/self/uid_map"]);
    assert_eq!(
        uid_map.split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
    run(&["nsenter", &user, &uts, "hostname", "renamed"]);
    assert_eq!(run(&["nsenter", &uts, "hostname"]), "renamed");
    run(&["nsenter", &user, &net, "ip", "link", "set", "lo", "down"]);
    let lo = run(&["nsenter", &net, "ip", "-o", "link", "show", "lo"]);
    assert!(!lo.contains(",UP"), "{lo}");

    pod.remove().expect("remove");
    assert!(mounts_under(&dir).is_empty(), "{:?}", mounts_under(&dir));
    for ns in Namespace::ALL {
        assert!(!dir.join(ns.name()).exists());
    }
    pod.remove().expect("remove twice");
}

#[tokio::test]
async fn non_namespaced_sysctl_is_refused_and_leaves_nothing() {
    common::require_root("pins namespaces");
    let g = Guard::new();
    let dir = g.dir();
    let mut opts = all_opts();
    opts.sysctls.push(("vm.swappiness".into(), "10".into()));
    let e = PodNamespaces::create(shim(), &dir, &opts).await.err();
    let e = e.expect("refused");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("vm.swappiness"), "{e}");
    assert!(!dir.exists());
    assert!(mounts_under(g.tmp.path()).is_empty());

    // The helper refuses it too, before creating anything.
    let out = Command::new(shim())
        .args(["pin", "--dir"])
        .arg(&dir)
        .args(["--net", "--sysctl", "vm.swappiness=10"])
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not namespaced"));
    assert!(!dir.exists());

    // A net sysctl without a new net namespace would change the host.
    opts = PinOptions {
        namespaces: vec![Namespace::Uts],
        sysctls: vec![(PING_RANGE.into(), PING_VALUE.into())],
        ..PinOptions::default()
    };
    let e = PodNamespaces::create(shim(), &dir, &opts).await.err();
    assert_eq!(e.map(|e| e.kind()), Some(ErrorKind::InvalidArgument));
    assert!(!dir.exists());
}

#[tokio::test]
async fn a_kernel_refusal_mid_way_is_undone() {
    common::require_root("pins namespaces");
    let g = Guard::new();
    let dir = g.dir();
    let opts = PinOptions {
        namespaces: vec![Namespace::Net],
        sysctls: vec![("net.ipv4.no_such_knob".into(), "1".into())],
        ..PinOptions::default()
    };
    let e = PodNamespaces::create(shim(), &dir, &opts).await.err();
    let e = e.expect("refused");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("no such sysctl"), "{e}");
    assert!(!dir.exists(), "files left behind");
    assert!(mounts_under(g.tmp.path()).is_empty());
}

#[tokio::test]
async fn a_refusal_inside_the_user_namespace_is_undone() {
    common::require_root("pins namespaces");
    let g = Guard::new();
    let dir = g.dir();
    let opts = PinOptions {
        namespaces: vec![Namespace::User, Namespace::Net],
        sysctls: vec![("net.ipv4.no_such_knob".into(), "1".into())],
        id_mappings: Some(maps()),
        ..PinOptions::default()
    };
    let e = PodNamespaces::create(shim(), &dir, &opts).await.err();
    let e = e.expect("refused");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("no such sysctl"), "{e}");
    assert!(!dir.exists(), "files left behind");
    assert!(mounts_under(g.tmp.path()).is_empty());

    // Maps that cannot be: refused before anything is made.
    let mut bad = maps();
    bad.uids[0].size = 0;
    let opts = PinOptions {
        id_mappings: Some(bad),
        sysctls: vec![],
        ..opts
    };
    let e = PodNamespaces::create(shim(), &dir, &opts).await.err();
    assert_eq!(e.map(|e| e.kind()), Some(ErrorKind::InvalidArgument));
    assert!(!dir.exists());
}

#[tokio::test]
async fn pinning_twice_in_one_dir_is_refused() {
    common::require_root("pins namespaces");
    let g = Guard::new();
    let dir = g.dir();
    let opts = PinOptions {
        namespaces: vec![Namespace::Net, Namespace::Uts],
        ..PinOptions::default()
    };
    let pod = PodNamespaces::create(shim(), &dir, &opts)
        .await
        .expect("create");
    let e = PodNamespaces::create(shim(), &dir, &opts).await.err();
    assert_eq!(e.map(|e| e.kind()), Some(ErrorKind::AlreadyExists));
    assert_eq!(mounts_under(&dir).len(), 2, "the first pod is intact");
    assert_eq!(pod.path(Namespace::Ipc), None);
    pod.remove().expect("remove");
    assert!(mounts_under(&dir).is_empty());
}

#[tokio::test]
async fn fifty_cycles_leak_no_mounts() {
    common::require_root("pins namespaces");
    let g = Guard::new();
    let before = nsfs_count();
    for i in 0..50 {
        let dir = g.tmp.path().join(format!("pod{i}"));
        let pod = PodNamespaces::create(shim(), &dir, &all_opts())
            .await
            .expect("create");
        pod.remove().expect("remove");
        assert!(mounts_under(&dir).is_empty());
    }
    // Other tests run alongside; they leave at most their own pods' mounts.
    assert!(nsfs_count() <= before + 8, "{before} -> {}", nsfs_count());
    assert!(mounts_under(g.tmp.path()).is_empty());
}

/// Kills the pod init (and so its whole pid namespace) even on failure.
struct Kill(i32);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::SIGKILL,
        );
    }
}

#[test]
fn pod_init_is_pid_one_and_reaps_orphans() {
    common::require_root("pins namespaces");
    let pid: i32 = run(&[shim().to_str().expect("utf-8"), "pod-init"])
        .parse()
        .expect("pid");
    let _kill = Kill(pid);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let nspid = status
        .lines()
        .find(|l| l.starts_with("NSpid:"))
        .expect("NSpid");
    assert!(nspid.ends_with("\t1"), "{nspid}");
    // An orphan left in the namespace is reparented to the init and reaped.
    let ns = format!("--pid=/proc/{pid}/ns/pid");
    run(&["nsenter", &ns, "sh", "-c", "sleep 0.2 & exit 0"]);
    let children = format!("/proc/{pid}/task/{pid}/children");
    common::wait::until(
        "the orphan to be reaped",
        std::time::Duration::from_secs(30),
        || {
            std::fs::read_to_string(&children)
                .expect("children")
                .trim()
                .is_empty()
        },
    );
}
