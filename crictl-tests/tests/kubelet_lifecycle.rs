//! Issue 13: a real kubelet's pods through their lives on cortend: a
//! removed manifest leaves nothing behind, a restarted kubelet adopts every
//! pod, and cortend killed with SIGKILL under a running kubelet changes
//! nothing for the running pods.

use std::collections::BTreeSet;
use std::time::Duration;

use crictl_tests::kubelet::pods;
use crictl_tests::{cgroups, wait, Kubelet};
use serde_json::json;

const POD_START: Duration = Duration::from_secs(180);
/// kubelet removes dead containers and sandboxes of deleted pods in its
/// garbage collection, once a minute.
const CLEANUP: Duration = Duration::from_secs(300);
const RESYNC: Duration = Duration::from_secs(180);

fn ids(k: &Kubelet, args: &[&str]) -> BTreeSet<String> {
    k.daemon()
        .crictl(args)
        .ok()
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// Starts pods `a` (containers x, y) and `b` (z), each x, y, z with an
/// exec readiness probe; waits until all are running and ready. Returns
/// (pod, container) -> container id.
fn two_pods(k: &Kubelet) -> Vec<(&'static str, &'static str, String)> {
    let ready_probe = json!({"exec": {"command": ["true"]}, "periodSeconds": 1});
    let with_probe = |name: &str| {
        let mut c = pods::sleeper(name);
        c["readinessProbe"] = ready_probe.clone();
        c
    };
    k.add_pod(&pods::pod("a", vec![with_probe("x"), with_probe("y")]));
    k.add_pod(&pods::pod("b", vec![with_probe("z")]));
    let mut out = Vec::new();
    for (pod, containers) in [("a", vec!["x", "y"]), ("b", vec!["z"])] {
        let p = k.wait_pod(pod, "all ready", POD_START, |p| {
            containers.iter().all(|c| pods::ready(p, c))
        });
        for c in containers {
            out.push((pod, c, pods::container_id(&p, c).expect("container id")));
        }
    }
    out
}

/// Every container of `before` is running under the same id, ready, with
/// no restart, as kubelet reports it.
fn same_containers(k: &Kubelet, before: &[(&str, &str, String)]) -> bool {
    before.iter().all(|(pod, c, id)| {
        k.pod(pod).is_some_and(|p| {
            pods::ready(&p, c)
                && pods::container_id(&p, c).as_deref() == Some(id.as_str())
                && pods::restart_count(&p, c) == Some(0)
        })
    })
}

/// kubelet's count of pod syncs (any kind) since it started.
fn syncs(k: &Kubelet) -> f64 {
    k.metric("/metrics", "kubelet_pod_worker_duration_seconds_count", &[])
}

/// kubelet's count of failed calls to the runtime since it started.
fn runtime_errors(k: &Kubelet) -> f64 {
    k.metric("/metrics", "kubelet_runtime_operations_errors_total", &[])
}

fn started(k: &Kubelet) -> (f64, f64) {
    (
        k.metric("/metrics", "kubelet_started_pods_total", &[]),
        k.metric("/metrics", "kubelet_started_containers_total", &[]),
    )
}

#[test]
fn removing_a_manifest_leaves_nothing_in_cortend_or_on_the_host() {
    let k = Kubelet::start();
    let mut app = pods::sleeper("app");
    app["volumeMounts"] = json!([{"name": "scratch", "mountPath": "/scratch"}]);
    let mut init = pods::container("init", &["sh", "-c", "echo hi > /scratch/hi"]);
    init["volumeMounts"] = app["volumeMounts"].clone();
    let mut pod = pods::pod("gone", vec![app, pods::sleeper("side")]);
    pod["spec"]["initContainers"] = json!([init]);
    pod["spec"]["volumes"] = json!([{"name": "scratch", "emptyDir": {"medium": "Memory"}}]);
    k.add_pod(&pod);
    let pod = k.wait_pod("gone", "running", POD_START, |p| {
        pods::running(p, "app") && pods::running(p, "side")
    });
    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_string();
    let pod_dir = k.root_dir().join("pods").join(&uid);
    let log_dir = k
        .pod_logs_dir()
        .join(format!("default_gone-{}_{uid}", k.node()));
    let pod_cgroup = format!("{}/kubepods/besteffort/pod{uid}", k.cgroup_root().path());
    assert!(pod_dir.is_dir() && log_dir.is_dir());
    assert!(
        !cgroups::dirs(&pod_cgroup).is_empty(),
        "no cgroup {pod_cgroup}"
    );
    assert_eq!(k.network().allocations().len(), 1);
    assert_eq!(k.network().ports().len(), 1);
    assert_eq!(ids(&k, &["pods", "-q"]).len(), 1);
    // The memory-backed emptyDir is a tmpfs under kubelet's root dir.
    let root = k.root_dir().display().to_string();
    let mounts = k.root_mounts();
    assert!(
        mounts
            .iter()
            .any(|m| m.starts_with(&format!("{root}/pods/{uid}/"))),
        "{mounts:?}"
    );

    k.remove_pod("gone");
    wait::until("cortend has no pod and no container", CLEANUP, || {
        ids(&k, &["pods", "-q"]).is_empty() && ids(&k, &["ps", "-a", "-q"]).is_empty()
    });
    wait::until("kubelet forgot the pod", CLEANUP, || {
        k.pods().is_ok_and(|p| p.is_empty())
    });
    wait::until("the pod's dirs and cgroups gone", CLEANUP, || {
        !pod_dir.exists() && !log_dir.exists() && cgroups::dirs(&pod_cgroup).is_empty()
    });
    assert_eq!(k.root_mounts(), [root], "kubelet's mounts left");
    assert!(k.network().allocations().is_empty(), "an address is left");
    assert!(k.network().ports().is_empty(), "a veth is left");
    let state = k.daemon().dir().join("state");
    for sub in ["shims", "pods"] {
        let left: Vec<_> = std::fs::read_dir(state.join(sub))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "cortend's {sub} state left: {left:?}");
    }
    let mounts = crictl_tests::network::mounts_under(k.daemon().dir());
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    assert!(k.cgroup_root().processes().is_empty());
}

#[test]
fn a_restarted_kubelet_adopts_every_pod_without_restarting_any() {
    let mut k = Kubelet::start();
    let before = two_pods(&k);
    let sandboxes = ids(&k, &["pods", "-q"]);
    let containers = ids(&k, &["ps", "-a", "-q"]);
    assert_eq!((sandboxes.len(), containers.len()), (2, 3));
    assert_eq!(started(&k), (2.0, 3.0), "kubelet's own counts");

    k.restart();
    wait::until("kubelet reports the same containers, ready", RESYNC, || {
        same_containers(&k, &before)
    });
    // Let the new kubelet sync each pod a few times: had it wanted to
    // replace anything, it would have by then.
    wait::until("6 pod syncs by the new kubelet", RESYNC, || {
        syncs(&k) >= 6.0
    });
    assert!(same_containers(&k, &before));
    assert_eq!(
        started(&k),
        (0.0, 0.0),
        "the new kubelet started pods or containers"
    );
    assert_eq!(ids(&k, &["pods", "-q"]), sandboxes);
    assert_eq!(ids(&k, &["ps", "-a", "-q"]), containers);
}

#[test]
fn cortend_killed_under_a_running_kubelet_changes_nothing_for_running_pods() {
    let mut k = Kubelet::start();
    let before = two_pods(&k);
    let sandboxes = ids(&k, &["pods", "-q"]);
    let containers = ids(&k, &["ps", "-a", "-q"]);
    let started_before = started(&k);
    assert_eq!(started_before, (2.0, 3.0), "kubelet's own counts");
    let errors_before = runtime_errors(&k);

    k.daemon_mut().kill9();
    // kubelet notices: its runtime calls fail.
    wait::until("kubelet's runtime calls failing", RESYNC, || {
        runtime_errors(&k) > errors_before
    });
    k.daemon_mut().resume();
    let syncs_back = syncs(&k);
    wait::until("kubelet reports the same containers, ready", RESYNC, || {
        same_containers(&k, &before)
    });
    wait::until("6 more pod syncs", RESYNC, || syncs(&k) >= syncs_back + 6.0);
    assert!(same_containers(&k, &before));
    assert_eq!(
        started(&k),
        started_before,
        "kubelet started pods or containers"
    );
    assert_eq!(ids(&k, &["pods", "-q"]), sandboxes);
    assert_eq!(ids(&k, &["ps", "-a", "-q"]), containers);
    // The containers are the same processes, reachable as before.
    for (_, _, id) in &before {
        let out = k.daemon().crictl(&["exec", "-s", id, "echo", "here"]).ok();
        assert_eq!(out.trim(), "here");
    }
}
