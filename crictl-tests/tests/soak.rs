//! Soak (issue 12): 50 concurrent CRI clients for 10 minutes (or
//! `CORTEN_SOAK_SECS`): 30 readers (list and status RPCs), 10 ExecSync
//! callers and 10 churning containers in pods of their own. Every call
//! must succeed, and cortend's resident memory and open descriptors must
//! stay flat: after the load, no more than a warmed-up daemon had (a
//! margin for allocator slack), so nothing grows with the work done.

mod container_env;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use container_env::Env;
use corten_cri_api::v1 as k8s;
use crictl_tests::cri;

const READERS: usize = 30;
const EXECS: usize = 10;
const CHURNERS: usize = 10;

fn soak_duration() -> Duration {
    let secs = std::env::var("CORTEN_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    Duration::from_secs(secs)
}

/// Resident memory (kB) and open descriptors of process `pid`.
fn usage(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (rss, fds)
}

#[derive(Default)]
struct Tally {
    calls: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Tally {
    fn note<T>(&self, what: &str, r: Result<T, tonic::Status>) -> Option<T> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
                if errors.len() < 20 {
                    errors.push(format!("{what}: {e:?}"));
                }
                None
            }
        }
    }
}

#[test]
fn fifty_clients_for_ten_minutes_no_errors_flat_memory_and_descriptors() {
    let env = Env::new();
    let socket = env.d.socket().to_path_buf();
    let pid = env.d.pid().expect("cortend runs");
    let duration = soak_duration();
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a runtime for the clients");
    let (before, warm, last, after) = rt.block_on(async {
        let mut c = cri::runtime(&socket).await.expect("connect");
        let pod = cri::run_pod(&mut c, cri::pod_config("soak-target", "soak"))
            .await
            .expect("pod");
        let target = cri::run_container(&mut c, &pod, cri::sleeper("soak-target"))
            .await
            .expect("target container");
        let before = usage(pid);
        let mut tasks = Vec::new();
        for i in 0..READERS {
            let (socket, stop, tally, pod, target) = (
                socket.clone(),
                stop.clone(),
                tally.clone(),
                pod.clone(),
                target.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut c = cri::runtime(&socket).await.expect("connect");
                let mut n = i;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    match n % 4 {
                        0 => {
                            let r = c
                                .list_containers(k8s::ListContainersRequest::default())
                                .await;
                            tally.note("ListContainers", r);
                        }
                        1 => {
                            let r = c
                                .container_status(k8s::ContainerStatusRequest {
                                    container_id: target.clone(),
                                    verbose: n % 8 == 1,
                                })
                                .await;
                            tally.note("ContainerStatus", r);
                        }
                        2 => {
                            let r = c
                                .pod_sandbox_status(k8s::PodSandboxStatusRequest {
                                    pod_sandbox_id: pod.clone(),
                                    verbose: false,
                                })
                                .await;
                            tally.note("PodSandboxStatus", r);
                        }
                        _ => {
                            let r = c
                                .list_pod_sandbox(k8s::ListPodSandboxRequest::default())
                                .await;
                            tally.note("ListPodSandbox", r);
                        }
                    }
                }
            }));
        }
        for i in 0..EXECS {
            let (socket, stop, tally, target) =
                (socket.clone(), stop.clone(), tally.clone(), target.clone());
            tasks.push(tokio::spawn(async move {
                let mut c = cri::runtime(&socket).await.expect("connect");
                while !stop.load(Ordering::Relaxed) {
                    let r = c
                        .exec_sync(k8s::ExecSyncRequest {
                            container_id: target.clone(),
                            cmd: vec!["echo".into(), format!("soak{i}")],
                            timeout: 30,
                        })
                        .await;
                    if let Some(out) = tally.note("ExecSync", r) {
                        let out = out.into_inner();
                        if out.exit_code != 0 || out.stdout != format!("soak{i}\n").into_bytes() {
                            tally.note::<()>(
                                "ExecSync output",
                                Err(tonic::Status::internal(format!("{out:?}"))),
                            );
                        }
                    }
                }
            }));
        }
        for i in 0..CHURNERS {
            let (socket, stop, tally) = (socket.clone(), stop.clone(), tally.clone());
            tasks.push(tokio::spawn(async move {
                let mut c = cri::runtime(&socket).await.expect("connect");
                let name = format!("soak-churn{i}");
                let Some(pod) = tally.note(
                    "RunPodSandbox",
                    cri::run_pod(&mut c, cri::pod_config(&name, "soak")).await,
                ) else {
                    return;
                };
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let Some(id) = tally.note(
                        "Create+Start",
                        cri::run_container(&mut c, &pod, cri::sleeper(&format!("c{n}"))).await,
                    ) else {
                        continue;
                    };
                    let r = c
                        .stop_container(k8s::StopContainerRequest {
                            container_id: id.clone(),
                            timeout: 0,
                        })
                        .await;
                    tally.note("StopContainer", r);
                    let r = c
                        .remove_container(k8s::RemoveContainerRequest { container_id: id })
                        .await;
                    tally.note("RemoveContainer", r);
                }
                let r = c
                    .stop_pod_sandbox(k8s::StopPodSandboxRequest {
                        pod_sandbox_id: pod.clone(),
                    })
                    .await;
                tally.note("StopPodSandbox", r);
                let r = c
                    .remove_pod_sandbox(k8s::RemovePodSandboxRequest {
                        pod_sandbox_id: pod,
                    })
                    .await;
                tally.note("RemovePodSandbox", r);
            }));
        }
        // A tenth of the time to warm up (allocator arenas, connection
        // buffers, caches), then watch for growth until the end.
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut warm = None;
        let mut last = before;
        while started.elapsed() < duration {
            tick.tick().await;
            last = usage(pid);
            if warm.is_none() && started.elapsed() >= duration / 10 {
                warm = Some(last);
            }
        }
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.expect("client task");
        }
        drop(c);
        // The clients' connections close on the daemon's side a moment
        // after ours.
        let gone = Instant::now();
        let mut after = usage(pid);
        while after.1 > before.1 && gone.elapsed() < Duration::from_secs(30) {
            tick.tick().await;
            after = usage(pid);
        }
        (before, warm.unwrap_or(last), last, after)
    });
    let calls = tally.calls.load(Ordering::Relaxed);
    println!(
        "soak {duration:?}: {calls} calls by {} clients; cortend RSS kB / fds: before {before:?}, warm {warm:?}, at the end {last:?}, after {after:?}",
        READERS + EXECS + CHURNERS,
    );
    let errors = tally.errors.lock().unwrap_or_else(|p| p.into_inner());
    assert!(
        errors.is_empty(),
        "errors under load:\n{}",
        errors.join("\n")
    );
    assert!(calls > 0);
    // Flat: at the end of the load no more descriptors than when warm
    // (beyond the few a churning container holds at a given moment), all
    // of them back once the clients are gone, and memory within allocator
    // slack of the warm figure.
    assert!(
        last.1 <= warm.1 + 16,
        "descriptors grew under load: warm {warm:?}, end {last:?}"
    );
    assert!(
        after.1 <= before.1,
        "descriptors left: before {before:?}, after {after:?}"
    );
    assert!(
        last.0 <= warm.0 + warm.0 / 4 + 4096,
        "resident memory grew: warm {warm:?}, end {last:?}"
    );
}
