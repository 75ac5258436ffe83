//! corten against containerd, side by side in one run (issue 14; not a
//! test). Both runtimes get the same local registry and images, the same
//! CNI plugin chain on a bridge of their own, and the same CRI requests
//! through the CRI client types, as kubelet sends them. Repetitions
//! alternate which runtime goes first, so both see the same machine load.
//!
//! Prints one table (metric, corten p50 and p90, containerd p50 and p90,
//! ratio of the medians) and writes it as JSON and Markdown under
//! `target/bench/` (or `BENCH_OUT`).
//!
//! Run: `bash crictl-tests/bench.sh [REPETITIONS]` (it builds containerd,
//! a release cortend, and this) as root.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use crictl_tests::critest::program_layer;
use crictl_tests::peer::{Containerd, PAUSE_IMAGE};
use crictl_tests::{
    cri, tools, Compression, DaemonBuilder, ImageBuilder, Registry, RegistryOptions, TestNetwork,
};
use k8s_cri::v1 as k8s;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use tonic::transport::Channel;

const WARMUP: usize = 3;
const REPETITIONS: usize = 30;
const BUSYBOX: &str = "docker.io/library/busybox:latest";
const SMALL: &str = "docker.io/library/small:latest";

/// One runtime under test.
struct Subject {
    name: &'static str,
    socket: PathBuf,
    pid: u32,
    /// The cgroup parent of its pods (per runtime, so leftovers are
    /// attributable).
    cgroup_parent: String,
}

/// Samples in milliseconds, by metric, per runtime (index into the
/// subjects).
#[derive(Default)]
struct Samples {
    order: Vec<String>,
    by_metric: BTreeMap<String, [Vec<f64>; 2]>,
}

impl Samples {
    fn add(&mut self, metric: &str, subject: usize, value: f64) {
        if !self.by_metric.contains_key(metric) {
            self.order.push(metric.to_string());
        }
        self.by_metric.entry(metric.to_string()).or_default()[subject].push(value);
    }

    fn time(&mut self, metric: &str, subject: usize, d: Duration) {
        self.add(metric, subject, d.as_secs_f64() * 1e3);
    }
}

fn percentile(v: &[f64], p: usize) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let i = (p * (s.len() - 1) + 50) / 100;
    s[i.min(s.len() - 1)]
}

/// The proportional set size of `pid` in KiB (smaps_rollup).
fn pss_kib(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn images(socket: &Path) -> Result<ImageServiceClient<Channel>> {
    Ok(cri::images(socket).await?)
}

fn image_spec(name: &str) -> Option<k8s::ImageSpec> {
    Some(k8s::ImageSpec {
        image: name.into(),
        ..Default::default()
    })
}

async fn pull(c: &mut ImageServiceClient<Channel>, name: &str) -> Result<()> {
    c.pull_image(k8s::PullImageRequest {
        image: image_spec(name),
        auth: None,
        sandbox_config: None,
    })
    .await
    .with_context(|| format!("pull {name}"))?;
    Ok(())
}

/// A pod, a container in it, an exec, and their teardown: every step
/// timed.
async fn lifecycle(s: &Subject, i: usize, n: usize, out: &mut Samples) -> Result<()> {
    let mut rt = cri::runtime(&s.socket).await?;
    let name = format!("bench{n}");
    let mut config = cri::pod_config(&name, "bench");
    config.linux = Some(k8s::LinuxPodSandboxConfig {
        cgroup_parent: format!("{}/{name}", s.cgroup_parent),
        ..Default::default()
    });
    let mut container = cri::sleeper("c");
    container.image = image_spec(BUSYBOX);

    let scratch = Instant::now();
    let t = Instant::now();
    let pod = cri::run_pod(&mut rt, config.clone())
        .await
        .with_context(|| format!("{}: RunPodSandbox", s.name))?;
    out.time("RunPodSandbox", i, t.elapsed());
    let t = Instant::now();
    let id = rt
        .create_container(k8s::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(container),
            sandbox_config: Some(config),
        })
        .await
        .with_context(|| format!("{}: CreateContainer", s.name))?
        .into_inner()
        .container_id;
    out.time("CreateContainer", i, t.elapsed());
    let t = Instant::now();
    rt.start_container(k8s::StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .with_context(|| format!("{}: StartContainer", s.name))?;
    out.time("StartContainer", i, t.elapsed());
    out.time("pod + container from scratch", i, scratch.elapsed());

    let t = Instant::now();
    let exec = rt
        .exec_sync(k8s::ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec!["true".into()],
            timeout: 10,
        })
        .await
        .with_context(|| format!("{}: ExecSync", s.name))?
        .into_inner();
    out.time("ExecSync true", i, t.elapsed());
    anyhow::ensure!(exec.exit_code == 0, "{}: ExecSync true: {exec:?}", s.name);

    let t = Instant::now();
    rt.container_status(k8s::ContainerStatusRequest {
        container_id: id.clone(),
        verbose: false,
    })
    .await?;
    out.time("ContainerStatus", i, t.elapsed());
    let t = Instant::now();
    rt.list_containers(k8s::ListContainersRequest::default())
        .await?;
    out.time("ListContainers", i, t.elapsed());

    let t = Instant::now();
    rt.stop_container(k8s::StopContainerRequest {
        container_id: id.clone(),
        timeout: 0,
    })
    .await
    .with_context(|| format!("{}: StopContainer", s.name))?;
    out.time("StopContainer", i, t.elapsed());
    let t = Instant::now();
    rt.remove_container(k8s::RemoveContainerRequest { container_id: id })
        .await
        .with_context(|| format!("{}: RemoveContainer", s.name))?;
    out.time("RemoveContainer", i, t.elapsed());
    let t = Instant::now();
    rt.stop_pod_sandbox(k8s::StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .with_context(|| format!("{}: StopPodSandbox", s.name))?;
    out.time("StopPodSandbox", i, t.elapsed());
    let t = Instant::now();
    rt.remove_pod_sandbox(k8s::RemovePodSandboxRequest {
        pod_sandbox_id: pod,
    })
    .await
    .with_context(|| format!("{}: RemovePodSandbox", s.name))?;
    out.time("RemovePodSandbox", i, t.elapsed());
    Ok(())
}

/// The image RPCs kubelet and crictl make, timed.
async fn image_calls(s: &Subject, i: usize, out: &mut Samples) -> Result<()> {
    let mut c = images(&s.socket).await?;
    let t = Instant::now();
    pull(&mut c, BUSYBOX).await?;
    out.time("PullImage (cached)", i, t.elapsed());
    let t = Instant::now();
    pull(&mut c, SMALL).await?;
    out.time("PullImage (small, uncached)", i, t.elapsed());
    c.remove_image(k8s::RemoveImageRequest {
        image: image_spec(SMALL),
    })
    .await
    .with_context(|| format!("{}: RemoveImage", s.name))?;
    let t = Instant::now();
    c.image_status(k8s::ImageStatusRequest {
        image: image_spec(BUSYBOX),
        verbose: false,
    })
    .await?;
    out.time("ImageStatus", i, t.elapsed());
    let t = Instant::now();
    c.list_images(k8s::ListImagesRequest::default()).await?;
    out.time("ListImages", i, t.elapsed());
    let t = Instant::now();
    c.image_fs_info(k8s::ImageFsInfoRequest::default()).await?;
    out.time("ImageFsInfo", i, t.elapsed());
    Ok(())
}

fn table(samples: &Samples, idle_pss: [Option<f64>; 2], reps: usize) -> (String, String, String) {
    let mut text = String::new();
    let mut md = String::from(
        "| metric | corten p50 | corten p90 | containerd p50 | containerd p90 | ratio |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    let mut json = Vec::new();
    let _ = writeln!(
        text,
        "{:<30} {:>11} {:>11} {:>14} {:>14} {:>7}",
        "metric (ms)", "corten p50", "corten p90", "containerd p50", "containerd p90", "ratio"
    );
    for metric in &samples.order {
        let [a, b] = &samples.by_metric[metric];
        let (a50, a90, b50, b90) = (
            percentile(a, 50),
            percentile(a, 90),
            percentile(b, 50),
            percentile(b, 90),
        );
        let ratio = a50 / b50;
        let _ = writeln!(
            text,
            "{metric:<30} {a50:>11.2} {a90:>11.2} {b50:>14.2} {b90:>14.2} {ratio:>7.2}"
        );
        let _ = writeln!(
            md,
            "| {metric} (ms) | {a50:.2} | {a90:.2} | {b50:.2} | {b90:.2} | {ratio:.2} |"
        );
        json.push(serde_json::json!({
            "metric": metric, "unit": "ms", "n": [a.len(), b.len()],
            "corten": {"p50": a50, "p90": a90},
            "containerd": {"p50": b50, "p90": b90},
            "ratio": ratio,
        }));
    }
    if let [Some(a), Some(b)] = idle_pss {
        let ratio = a / b;
        let _ = writeln!(
            text,
            "{:<30} {a:>11.0} {:>11} {b:>14.0} {:>14} {ratio:>7.2}",
            "daemon PSS idle (KiB)", "", ""
        );
        let _ = writeln!(
            md,
            "| daemon PSS idle (KiB) | {a:.0} | | {b:.0} | | {ratio:.2} |"
        );
        json.push(serde_json::json!({
            "metric": "daemon PSS idle", "unit": "KiB",
            "corten": {"value": a}, "containerd": {"value": b}, "ratio": ratio,
        }));
    }
    let doc = serde_json::json!({"repetitions": reps, "warmup": WARMUP, "metrics": json});
    (
        text,
        md,
        serde_json::to_string_pretty(&doc).unwrap_or_default(),
    )
}

fn main() -> Result<()> {
    let reps = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(REPETITIONS);
    tools::require_root("the benchmark runs pods");
    tools::use_release_cortend().map_err(anyhow::Error::msg)?;

    // One registry for both: busybox, a small image pulled and removed
    // each time, and the pause image containerd's pods need.
    let reg = Registry::start(RegistryOptions::plain())?;
    ImageBuilder::busybox()
        .build(Compression::Gzip)?
        .push(&reg, "library/busybox", "latest")?;
    ImageBuilder::new()
        .marker("small")?
        .build(Compression::Gzip)?
        .push(&reg, "library/small", "latest")?;
    let pause = program_layer(&tools::critest_double(), "/pause", 0o755)?;
    let (repo, tag) = PAUSE_IMAGE
        .trim_start_matches("registry.k8s.io/")
        .split_once(':')
        .context("pause image name")?;
    ImageBuilder::new()
        .layer(pause)
        .entrypoint(&["/pause"])
        .cmd(&[])
        .build(Compression::Gzip)?
        .push(&reg, repo, tag)?;

    let builder = DaemonBuilder::new()
        .mirror("docker.io", &reg.url())
        .mirror("registry.k8s.io", &reg.url());
    let corten_net = TestNetwork::new(&builder);
    let cortend = builder.start().map_err(anyhow::Error::msg)?;

    let peer_dir = tempfile::Builder::new().prefix("corten-peer-").tempdir()?;
    std::fs::create_dir_all(peer_dir.path().join("net.d"))?;
    let peer_net = TestNetwork::in_dir(peer_dir.path());
    let containerd = Containerd::start(
        peer_dir.path(),
        &reg.addr(),
        &["docker.io", "registry.k8s.io"],
    )?;

    let subjects = [
        Subject {
            name: "corten",
            socket: cortend.socket().to_path_buf(),
            pid: cortend.pid().context("cortend pid")?,
            cgroup_parent: format!("/corten-bench-{}-corten", std::process::id()),
        },
        Subject {
            name: "containerd",
            socket: containerd.socket().to_path_buf(),
            pid: containerd.pid().context("containerd pid")?,
            cgroup_parent: format!("/corten-bench-{}-containerd", std::process::id()),
        },
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let load_before = load_average();
    let result = rt.block_on(async {
        for s in &subjects {
            let mut c = images(&s.socket).await?;
            pull(&mut c, BUSYBOX).await?;
        }
        let idle_pss = [pss_kib(subjects[0].pid), pss_kib(subjects[1].pid)];
        let mut samples = Samples::default();
        let mut warm = Samples::default();
        for rep in 0..WARMUP + reps {
            let out = if rep < WARMUP {
                &mut warm
            } else {
                &mut samples
            };
            let order = if rep % 2 == 0 { [0, 1] } else { [1, 0] };
            for i in order {
                lifecycle(&subjects[i], i, rep, out).await?;
                image_calls(&subjects[i], i, out).await?;
            }
        }
        anyhow::Ok((samples, idle_pss))
    });
    let load_after = load_average();
    let (samples, idle_pss) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("containerd log:\n{}", containerd.log_text());
            return Err(e);
        }
    };
    let (text, md, json) = table(&samples, idle_pss, reps);
    let machine = format!(
        "{} repetitions after {WARMUP} of warm-up, runs interleaved; load average {load_before} \
         before, {load_after} after; {} CPUs",
        reps,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("{text}\n{machine}");
    let dir = std::env::var_os("BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools::workspace_root().join("target/bench"));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("peer.md"), format!("{md}\n{machine}\n"))?;
    std::fs::write(dir.join("peer.json"), json)?;
    println!("written: {}", dir.display());

    drop(containerd);
    drop(peer_net);
    drop(cortend);
    drop(corten_net);
    // A pod's cgroup can stay busy for a moment after its removal (its
    // last process still exiting).
    for s in &subjects {
        let gone = crictl_tests::wait::within(Duration::from_secs(20), || {
            crictl_tests::cgroups::remove_all(&s.cgroup_parent);
            crictl_tests::cgroups::dirs(&s.cgroup_parent).is_empty()
        });
        if !gone {
            eprintln!("cgroups left under {}", s.cgroup_parent);
        }
    }
    Ok(())
}
