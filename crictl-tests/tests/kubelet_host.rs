//! Issue 13: a real kubelet drives cortend, and leaves the machine as it
//! was: its kernel tunables, its fixed host paths, its cgroups.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crictl_tests::kubelet::{host, pods};
use crictl_tests::network::mounts_under;
use crictl_tests::{cgroups, Kubelet};

const POD_START: Duration = Duration::from_secs(180);

#[test]
fn kubelet_runs_a_static_pod_listening_on_loopback_only_and_leaves_host_sysctls_alone() {
    let before = host::tunables();
    let absent: Vec<&str> = ["/var/lib/kubelet", "/var/log/containers", "/var/log/pods"]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    let k = Kubelet::start();
    assert_eq!(k.host_tunables_before(), before.as_slice());
    k.add_pod(&pods::pod("hello", vec![pods::sleeper("sleep")]));
    let pod = k.wait_pod("hello", "running", POD_START, |p| pods::running(p, "sleep"));
    let id = pods::container_id(&pod, "sleep").expect("container id");
    let ps = k.daemon().crictl(&["ps", "-q"]).ok();
    assert!(ps.contains(&id), "{ps}");

    // kubelet listens on loopback only: its three servers, nothing else.
    let pid = k.pid().expect("kubelet runs");
    let ss = std::process::Command::new("ss")
        .args(["-H", "-ltnup"])
        .output()
        .expect("run ss (iproute2)");
    let mine = format!("pid={pid},");
    let listening: Vec<String> = String::from_utf8_lossy(&ss.stdout)
        .lines()
        .filter(|l| l.contains(&mine))
        .filter_map(|l| l.split_whitespace().nth(4).map(String::from))
        .collect();
    let ports = k.ports();
    let mut want: Vec<String> = [ports.secure, ports.read_only, ports.healthz]
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let mut got = listening.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want, "kubelet listens on {listening:?}");

    // kubelet did set its tunables: in the files of its own namespace.
    let ns = k.namespace_dir();
    assert_eq!(
        host::tunable_seen_by_kubelet(&ns, "vm/overcommit_memory"),
        "1"
    );
    assert_eq!(host::tunable_seen_by_kubelet(&ns, "kernel/panic"), "10");
    assert_eq!(
        host::tunable_seen_by_kubelet(&ns, "kernel/panic_on_oops"),
        "1"
    );
    // The machine's own are as they were, while kubelet runs and after.
    assert_eq!(host::tunables(), before);
    // What kubelet writes at fixed host paths went to the test's overlay.
    let shadow = host::shadow_upper(&ns, "/var/lib");
    assert!(
        shadow.join("kubelet/device-plugins").is_dir(),
        "{}",
        shadow.display()
    );
    // Its pods' cgroups are under the fixture's own root.
    let root = k.cgroup_root().path().to_string();
    let uid = pod["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let pod_cgroup = format!("{root}/kubepods/besteffort/pod{uid}");
    assert!(
        !cgroups::dirs(&pod_cgroup).is_empty(),
        "no cgroup {pod_cgroup}"
    );
    let dir = k.root_dir();
    drop(k);
    assert!(cgroups::dirs(&root).is_empty(), "{root} left behind");
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(mounts_under(Path::new("/tmp"))
        .iter()
        .all(|m| !m.contains("corten-kubelet-")));
    assert_eq!(host::tunables(), before);
    for p in absent {
        assert!(!Path::new(p).exists(), "kubelet left {p} on the host");
    }
}

#[test]
fn a_failing_kubelet_test_leaves_no_process_cgroup_or_file_behind() {
    struct Seen {
        kubelet: u32,
        cortend: u32,
        in_pods: Vec<i32>,
        cgroup_root: String,
        dirs: Vec<PathBuf>,
    }
    let seen: Mutex<Option<Seen>> = Mutex::new(None);
    let failed = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let k = Kubelet::start();
        k.add_pod(&pods::pod(
            "doomed",
            vec![pods::sleeper("a"), pods::sleeper("b")],
        ));
        k.wait_pod("doomed", "running", POD_START, |p| {
            pods::running(p, "a") && pods::running(p, "b")
        });
        let in_pods = k.cgroup_root().processes();
        assert_eq!(
            in_pods.len(),
            2,
            "the two sleeps under the root: {in_pods:?}"
        );
        *seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(Seen {
            kubelet: k.pid().expect("kubelet runs"),
            cortend: k.daemon().pid().expect("cortend runs"),
            in_pods,
            cgroup_root: k.cgroup_root().path().to_string(),
            dirs: vec![k.dir().to_path_buf(), k.daemon().dir().to_path_buf()],
        });
        panic!("the test fails with everything running");
    }));
    assert!(failed.is_err());
    let seen = seen
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .expect("the test got as far as its failure");
    let alive = |pid: i32| Path::new(&format!("/proc/{pid}")).exists();
    for pid in [seen.kubelet, seen.cortend] {
        assert!(!alive(pid as i32), "process {pid} left running");
    }
    for pid in &seen.in_pods {
        assert!(!alive(*pid), "pod process {pid} left running");
    }
    assert!(
        cgroups::dirs(&seen.cgroup_root).is_empty(),
        "{} left",
        seen.cgroup_root
    );
    for d in &seen.dirs {
        assert!(!d.exists(), "{} left", d.display());
    }
}

/// Processes whose command line names `dir` (cortend, its shims).
fn processes_naming(dir: &Path) -> Vec<i32> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
        })
        .collect()
}

#[test]
fn a_test_failing_with_cortend_killed_still_leaves_nothing_behind() {
    struct Seen {
        daemon_dir: PathBuf,
        kubelet_dir: PathBuf,
        root: String,
        in_pods: Vec<i32>,
    }
    let seen: Mutex<Option<Seen>> = Mutex::new(None);
    let failed = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let mut k = Kubelet::start();
        k.add_pod(&pods::pod("orphaned", vec![pods::sleeper("a")]));
        k.wait_pod("orphaned", "running", POD_START, |p| pods::running(p, "a"));
        let daemon_dir = k.daemon().dir().to_path_buf();
        let shims = processes_naming(&daemon_dir);
        assert!(!shims.is_empty(), "no shim names {}", daemon_dir.display());
        *seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(Seen {
            daemon_dir,
            kubelet_dir: k.dir().to_path_buf(),
            root: k.cgroup_root().path().to_string(),
            in_pods: k.cgroup_root().processes(),
        });
        k.daemon_mut().kill9();
        panic!("the test fails with cortend dead and its pods running");
    }));
    assert!(failed.is_err());
    let Seen {
        daemon_dir,
        kubelet_dir,
        root,
        in_pods,
    } = seen
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .expect("the test got as far as its failure");
    let left = processes_naming(&daemon_dir);
    assert!(
        left.is_empty(),
        "processes of the test's cortend left: {left:?}"
    );
    for pid in in_pods {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "pod process {pid} left"
        );
    }
    assert!(cgroups::dirs(&root).is_empty(), "{root} left");
    assert!(!daemon_dir.exists() && !kubelet_dir.exists());
}
