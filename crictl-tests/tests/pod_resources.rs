//! Pod-level resources: `LinuxPodSandboxConfig.resources`/`overhead` at
//! RunPodSandbox and UpdatePodSandboxResources (in-place pod resize).
//! A pod cgroup corten made gets their sum, read back from the real
//! cgroupfs files; a pod in a cgroup that already existed (kubelet's) has
//! them recorded but its cgroup left alone; the pod record (PodSandboxStatus
//! verbose info) shows both; bad values and pods are refused with nothing
//! changed.

mod container_env;

use std::path::{Path, PathBuf};

use container_env::Env;
use corten_cri_api::v1 as k8s;
use crictl_tests::{cgroups, cri};

const MIB: i64 = 1 << 20;

fn limits(memory: i64, shares: i64, quota: i64) -> k8s::LinuxContainerResources {
    k8s::LinuxContainerResources {
        memory_limit_in_bytes: memory,
        cpu_shares: shares,
        cpu_quota: quota,
        cpu_period: if quota > 0 { 100_000 } else { 0 },
        ..Default::default()
    }
}

fn pod_config(
    name: &str,
    resources: k8s::LinuxContainerResources,
    overhead: k8s::LinuxContainerResources,
) -> k8s::PodSandboxConfig {
    k8s::PodSandboxConfig {
        linux: Some(k8s::LinuxPodSandboxConfig {
            resources: Some(resources),
            overhead: Some(overhead),
            ..Default::default()
        }),
        ..cri::pod_config(name, "default")
    }
}

fn run_pod(env: &Env, config: k8s::PodSandboxConfig) -> Result<String, tonic::Status> {
    cri::block_on(async {
        let mut c = cri::runtime(env.d.socket()).await.expect("connect");
        cri::run_pod(&mut c, config).await
    })
}

fn update(
    env: &Env,
    pod: &str,
    resources: k8s::LinuxContainerResources,
    overhead: Option<k8s::LinuxContainerResources>,
) -> Result<(), tonic::Status> {
    cri::block_on(async {
        let mut c = cri::runtime(env.d.socket()).await.expect("connect");
        c.update_pod_sandbox_resources(k8s::UpdatePodSandboxResourcesRequest {
            pod_sandbox_id: pod.into(),
            overhead,
            resources: Some(resources),
        })
        .await
        .map(|_| ())
    })
}

/// The pod's record, as PodSandboxStatus verbose shows it.
fn record(env: &Env, pod: &str) -> serde_json::Value {
    let info = cri::block_on(async {
        let mut c = cri::runtime(env.d.socket()).await.expect("connect");
        c.pod_sandbox_status(k8s::PodSandboxStatusRequest {
            pod_sandbox_id: pod.into(),
            verbose: true,
        })
        .await
        .expect("PodSandboxStatus")
        .into_inner()
        .info
    });
    serde_json::from_str(&info["info"]).expect("the pod record as JSON")
}

fn container_status(env: &Env, id: &str) -> k8s::ContainerStatus {
    cri::block_on(async {
        let mut c = cri::runtime(env.d.socket()).await.expect("connect");
        c.container_status(k8s::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        })
        .await
        .expect("ContainerStatus")
        .into_inner()
        .status
        .expect("a status")
    })
}

/// The first of `files` found in any hierarchy of `cgroup`, trimmed.
fn read(cgroup: &str, files: &[&str]) -> Option<String> {
    let dirs = cgroups::dirs(cgroup);
    files.iter().find_map(|f| {
        dirs.iter()
            .find_map(|d| std::fs::read_to_string(d.join(f)).ok())
            .map(|s| s.trim().to_string())
    })
}

/// The memory limit of `cgroup`; `None`: unlimited.
fn memory_limit(cgroup: &str) -> Option<i64> {
    let v = read(cgroup, &["memory.limit_in_bytes", "memory.max"]).expect("a memory file");
    // v1 shows "unlimited" as a page-rounded i64::MAX.
    v.parse::<i64>().ok().filter(|l| *l < i64::MAX / 2)
}

/// The CFS quota of `cgroup` (µs per period); `None`: unlimited.
fn cpu_quota(cgroup: &str) -> Option<i64> {
    if let Some(q) = read(cgroup, &["cpu.cfs_quota_us"]) {
        return q.parse::<i64>().ok().filter(|q| *q > 0);
    }
    let max = read(cgroup, &["cpu.max"]).expect("a cpu file");
    max.split_whitespace().next().and_then(|q| q.parse().ok())
}

/// cgroup v1 cpu.shares, where the host has it.
fn cpu_shares(cgroup: &str) -> Option<i64> {
    read(cgroup, &["cpu.shares"]).and_then(|s| s.parse().ok())
}

fn exec_ok(env: &Env, id: &str) -> bool {
    cri::block_on(async {
        let mut c = cri::runtime(env.d.socket()).await.expect("connect");
        c.exec_sync(k8s::ExecSyncRequest {
            container_id: id.into(),
            cmd: vec!["true".into()],
            timeout: 0,
        })
        .await
        .is_ok_and(|r| r.into_inner().exit_code == 0)
    })
}

#[test]
fn the_pod_cgroup_follows_its_resources_while_its_container_runs() {
    let env = Env::new();
    let pod = run_pod(
        &env,
        pod_config(
            "sized",
            limits(64 * MIB, 512, 50_000),
            limits(16 * MIB, 12, 10_000),
        ),
    )
    .expect("RunPodSandbox");
    let rec = record(&env, &pod);
    let cgroup = rec["cgroup"].as_str().expect("a pod cgroup").to_string();
    assert_eq!(rec["cgroup_created"], true, "{rec}");
    assert_eq!(rec["config"]["resources"]["memory_limit_bytes"], 64 * MIB);
    assert_eq!(rec["config"]["overhead"]["memory_limit_bytes"], 16 * MIB);
    assert_eq!(memory_limit(&cgroup), Some(80 * MIB));
    assert_eq!(cpu_quota(&cgroup), Some(60_000));
    if let Some(shares) = cpu_shares(&cgroup) {
        assert_eq!(shares, 524);
    }

    let ctr = cri::block_on(async {
        let mut c = cri::runtime(env.d.socket()).await.expect("connect");
        cri::run_container(&mut c, &pod, cri::sleeper("app")).await
    })
    .expect("a container runs in the pod");
    let started = container_status(&env, &ctr).started_at;

    // Raised.
    update(
        &env,
        &pod,
        limits(256 * MIB, 1024, 200_000),
        Some(limits(16 * MIB, 12, 10_000)),
    )
    .expect("raise");
    assert_eq!(memory_limit(&cgroup), Some(272 * MIB));
    assert_eq!(cpu_quota(&cgroup), Some(210_000));
    if let Some(shares) = cpu_shares(&cgroup) {
        assert_eq!(shares, 1036);
    }
    let rec = record(&env, &pod);
    assert_eq!(rec["config"]["resources"]["memory_limit_bytes"], 256 * MIB);
    assert_eq!(rec["config"]["resources"]["cpu_quota"], 200_000);

    // Lowered, the overhead dropped, the quota lifted.
    update(&env, &pod, limits(48 * MIB, 256, 0), None).expect("lower");
    assert_eq!(memory_limit(&cgroup), Some(48 * MIB));
    assert_eq!(cpu_quota(&cgroup), None);
    if let Some(shares) = cpu_shares(&cgroup) {
        assert_eq!(shares, 256);
    }
    let rec = record(&env, &pod);
    assert_eq!(rec["config"]["resources"]["memory_limit_bytes"], 48 * MIB);
    assert_eq!(
        rec["config"]["resources"]["cpu_quota"],
        serde_json::Value::Null
    );
    assert_eq!(
        rec["config"]["overhead"]["memory_limit_bytes"],
        serde_json::Value::Null
    );

    let s = container_status(&env, &ctr);
    assert_eq!(s.state, k8s::ContainerState::ContainerRunning as i32);
    assert_eq!(s.started_at, started, "the same process");
    assert!(exec_ok(&env, &ctr), "the container still answers");
}

#[test]
fn bad_values_and_pods_are_refused_with_nothing_changed() {
    let env = Env::new();
    let e = update(&env, "0123456789abcdef", limits(MIB, 0, 0), None).expect_err("unknown");
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    let e = update(&env, "", limits(MIB, 0, 0), None).expect_err("no id");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");

    // At RunPodSandbox: nothing made.
    let e = run_pod(
        &env,
        pod_config("neg", limits(64 * MIB, 0, 0), limits(-1, 0, 0)),
    )
    .expect_err("negative overhead");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("overhead"), "{e:?}");
    assert!(env.d.crictl(&["pods", "-q"]).ok().trim().is_empty());

    let pod = run_pod(
        &env,
        pod_config("kept", limits(64 * MIB, 0, 50_000), limits(0, 0, 0)),
    )
    .expect("RunPodSandbox");
    let cgroup = record(&env, &pod)["cgroup"]
        .as_str()
        .expect("a cgroup")
        .to_string();
    let before = record(&env, &pod)["config"].clone();
    for (bad, what) in [
        (limits(-5, 0, 0), "memory_limit_in_bytes"),
        (limits(0, -2, 0), "cpu_shares"),
        (limits(0, 0, -7), "cpu_quota"),
        (limits(0, 0, 10), "cpu"),
    ] {
        let e = update(&env, &pod, bad, None).expect_err(what);
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{what}: {e:?}");
        assert!(e.message().contains(what), "{what}: {e:?}");
        assert_eq!(record(&env, &pod)["config"], before, "{what}");
        assert_eq!(memory_limit(&cgroup), Some(64 * MIB), "{what}");
        assert_eq!(cpu_quota(&cgroup), Some(50_000), "{what}");
    }

    env.d.crictl(&["stopp", &pod]).ok();
    let e = update(&env, &pod, limits(128 * MIB, 0, 0), None).expect_err("not ready");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("not ready"), "{e:?}");
    assert_eq!(record(&env, &pod)["config"], before);
}

/// A cgroup made in every hierarchy, as kubelet makes a pod's, removed on
/// drop.
struct KubeletCgroup {
    path: String,
    made: Vec<PathBuf>,
}

impl KubeletCgroup {
    fn new(name: &str) -> KubeletCgroup {
        let path = format!("/{name}-{}", std::process::id());
        let mut made = Vec::new();
        for entry in std::fs::read_dir("/sys/fs/cgroup")
            .expect("cgroupfs")
            .flatten()
        {
            let dir = entry.path();
            if dir.is_dir() && !dir.join(path.trim_start_matches('/')).exists() {
                let new = dir.join(path.trim_start_matches('/'));
                if std::fs::create_dir(&new).is_ok() {
                    made.push(new);
                }
            }
        }
        if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            let new = Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
            if std::fs::create_dir(&new).is_ok() {
                made.push(new);
            }
        }
        assert!(!made.is_empty(), "no cgroup made");
        KubeletCgroup { path, made }
    }
}

impl Drop for KubeletCgroup {
    fn drop(&mut self) {
        cgroups::remove_all(&self.path);
        for dir in &self.made {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[test]
fn a_cgroup_that_is_not_ours_is_recorded_not_written() {
    let env = Env::new();
    let kube = KubeletCgroup::new("corten-test-kubepod");
    let unlimited = memory_limit(&kube.path);
    let mut config = pod_config("kube", limits(64 * MIB, 0, 0), limits(0, 0, 0));
    let linux = config.linux.as_mut().expect("linux");
    linux.cgroup_parent = kube.path.clone();
    // No pod init: a fresh v1 cpuset cgroup has no CPUs to run it on.
    linux.security_context = Some(k8s::LinuxSandboxSecurityContext {
        namespace_options: Some(k8s::NamespaceOption {
            pid: k8s::NamespaceMode::Container as i32,
            ..Default::default()
        }),
        ..Default::default()
    });
    let pod = run_pod(&env, config).expect("RunPodSandbox");
    let rec = record(&env, &pod);
    assert_eq!(rec["cgroup"], kube.path.as_str());
    assert_eq!(rec["cgroup_created"], false);
    assert_eq!(
        memory_limit(&kube.path),
        unlimited,
        "left as kubelet made it"
    );

    update(&env, &pod, limits(128 * MIB, 0, 0), None).expect("update");
    assert_eq!(memory_limit(&kube.path), unlimited);
    assert_eq!(
        record(&env, &pod)["config"]["resources"]["memory_limit_bytes"],
        128 * MIB
    );
    env.d.crictl(&["rmp", "-f", &pod]).ok();
    assert!(!cgroups::dirs(&kube.path).is_empty(), "not ours to remove");
}
