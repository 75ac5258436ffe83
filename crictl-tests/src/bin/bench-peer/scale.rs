//! Many pods and containers at once: the memory of a runtime's own
//! processes, bursts of pods, and what list, status and a restart cost
//! with 10 to 500 running containers.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use corten_cri_api::v1 as k8s;
use futures_util::stream::{self, StreamExt as _, TryStreamExt as _};

use crate::{image_spec, Subject, BUSYBOX};
use crictl_tests::cri;

/// The proportional set size of `pid` in KiB (smaps_rollup).
pub fn pss_kib(pid: u32) -> Option<f64> {
    smaps_field(pid, "Pss:")
}

/// The anonymous part of it (heap, stacks: what code pages are not).
pub fn pss_anon_kib(pid: u32) -> Option<f64> {
    smaps_field(pid, "Pss_Anon:")
}

fn smaps_field(pid: u32, field: &str) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The processes of `s` itself, not of its containers' workloads: its
/// daemon, its shims (their command lines name the daemon's directory),
/// and the pod helpers in its pods' cgroups (containerd's pause
/// processes). The workload (busybox) is the same for both and left out.
pub fn own_processes(s: &Subject) -> Vec<u32> {
    let marker = s.marker.display().to_string();
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == s.pid() {
            pids.push(pid);
            continue;
        }
        let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else {
            continue;
        };
        let name = exe
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == "busybox" {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let shim = s.binaries.contains(&name.as_str()) && cmdline.contains(&marker);
        let helper = cgroup.contains(&format!("{}/", s.cgroup_parent));
        if shim || helper {
            pids.push(pid);
        }
    }
    pids
}

/// Total PSS (KiB) of [`own_processes`], and how many there are.
pub fn own_pss(s: &Subject) -> (f64, usize) {
    let pids = own_processes(s);
    let total = pids.iter().filter_map(|p| pss_kib(*p)).sum();
    (total, pids.len())
}

/// Pod `n` of `s`, with its cgroup under the subject's parent.
fn pod_config(s: &Subject, n: usize) -> k8s::PodSandboxConfig {
    let name = format!("scale{n}");
    let mut config = cri::pod_config(&name, "scale");
    config.linux = Some(k8s::LinuxPodSandboxConfig {
        cgroup_parent: format!("{}/{name}", s.cgroup_parent),
        ..Default::default()
    });
    config
}

/// A pod with `containers` running sleepers, as kubelet makes one.
async fn pod_with_containers(
    s: &Subject,
    n: usize,
    containers: usize,
) -> Result<(String, Vec<String>)> {
    let mut rt = cri::runtime(&s.socket).await?;
    let config = pod_config(s, n);
    let pod = cri::run_pod(&mut rt, config.clone())
        .await
        .with_context(|| format!("{}: RunPodSandbox {n}", s.name))?;
    let mut ids = Vec::new();
    for c in 0..containers {
        let mut container = cri::sleeper(&format!("c{c}"));
        container.image = image_spec(BUSYBOX);
        let id = rt
            .create_container(k8s::CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(container),
                sandbox_config: Some(config.clone()),
            })
            .await
            .with_context(|| format!("{}: CreateContainer", s.name))?
            .into_inner()
            .container_id;
        rt.start_container(k8s::StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .with_context(|| format!("{}: StartContainer", s.name))?;
        ids.push(id);
    }
    Ok((pod, ids))
}

/// Pods `first..first + count` with `containers` each, `concurrency` at a
/// time; their ids.
pub async fn add_pods(
    s: &Subject,
    first: usize,
    count: usize,
    containers: usize,
    concurrency: usize,
) -> Result<Vec<String>> {
    let pods: Vec<(String, Vec<String>)> = stream::iter(first..first + count)
        .map(|n| pod_with_containers(s, n, containers))
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    Ok(pods.into_iter().map(|(p, _)| p).collect())
}

/// Stops and removes `pods`, `concurrency` at a time, as kubelet tears a
/// pod down (its containers first, then the sandbox).
pub async fn remove_pods(s: &Subject, pods: &[String], concurrency: usize) -> Result<()> {
    stream::iter(pods.iter().cloned())
        .map(|pod| async move {
            let mut rt = cri::runtime(&s.socket).await?;
            let containers = rt
                .list_containers(k8s::ListContainersRequest {
                    filter: Some(k8s::ContainerFilter {
                        pod_sandbox_id: pod.clone(),
                        ..Default::default()
                    }),
                })
                .await?
                .into_inner()
                .containers;
            for c in containers {
                rt.stop_container(k8s::StopContainerRequest {
                    container_id: c.id.clone(),
                    timeout: 0,
                })
                .await
                .with_context(|| format!("{}: StopContainer", s.name))?;
                rt.remove_container(k8s::RemoveContainerRequest { container_id: c.id })
                    .await
                    .with_context(|| format!("{}: RemoveContainer", s.name))?;
            }
            rt.stop_pod_sandbox(k8s::StopPodSandboxRequest {
                pod_sandbox_id: pod.clone(),
            })
            .await
            .with_context(|| format!("{}: StopPodSandbox", s.name))?;
            rt.remove_pod_sandbox(k8s::RemovePodSandboxRequest {
                pod_sandbox_id: pod,
            })
            .await
            .with_context(|| format!("{}: RemovePodSandbox", s.name))?;
            anyhow::Ok(())
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Running containers `s` lists.
pub async fn running(s: &Subject) -> Result<usize> {
    let mut rt = cri::runtime(&s.socket).await?;
    let list = rt
        .list_containers(k8s::ListContainersRequest {
            filter: Some(k8s::ContainerFilter {
                state: Some(k8s::ContainerStateValue {
                    state: k8s::ContainerState::ContainerRunning as i32,
                }),
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .containers;
    Ok(list.len())
}

/// ListContainers and ContainerStatus (of one container) `n` times each.
pub async fn list_and_status(s: &Subject, n: usize) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let mut rt = cri::runtime(&s.socket).await?;
    let all = rt
        .list_containers(k8s::ListContainersRequest::default())
        .await?
        .into_inner()
        .containers;
    ensure!(!all.is_empty(), "{}: no containers", s.name);
    let (mut lists, mut statuses) = (Vec::new(), Vec::new());
    for i in 0..n {
        let t = Instant::now();
        rt.list_containers(k8s::ListContainersRequest::default())
            .await?;
        lists.push(t.elapsed());
        let id = all[i % all.len()].id.clone();
        let t = Instant::now();
        rt.container_status(k8s::ContainerStatusRequest {
            container_id: id,
            verbose: false,
        })
        .await?;
        statuses.push(t.elapsed());
    }
    Ok((lists, statuses))
}

/// Waits until `s` serves again after a restart and lists `want` running
/// containers; the time since `since`.
pub async fn serving_again(s: &Subject, want: usize, since: Instant) -> Result<Duration> {
    let deadline = since + Duration::from_secs(300);
    loop {
        if let Ok(n) = running(s).await {
            if n >= want {
                return Ok(since.elapsed());
            }
        }
        ensure!(
            Instant::now() < deadline,
            "{}: not serving {want} running containers after a restart",
            s.name
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
