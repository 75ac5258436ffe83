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

mod critest_bench;
mod pull;
mod scale;
mod streaming;
mod table;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use corten_cri_api::v1 as k8s;
use corten_cri_api::v1::image_service_client::ImageServiceClient;
use corten_cri_api::v1::runtime_service_client::RuntimeServiceClient;
use crictl_tests::critest::program_layer;
use crictl_tests::peer::{Containerd, PAUSE_IMAGE};
use crictl_tests::{
    cri, tools, Compression, Daemon, DaemonBuilder, ImageBuilder, Registry, RegistryOptions,
    TestNetwork,
};
use table::{table, Samples};
use tonic::transport::Channel;

const WARMUP: usize = 3;
const REPETITIONS: usize = 30;
const BUSYBOX: &str = "docker.io/library/busybox:latest";
const SMALL: &str = "docker.io/library/small:latest";
/// Cold pulls of the image of real binaries.
const COLD_PULLS: usize = 5;
/// Pods of a burst, and how many at once.
const BURST_PODS: usize = 100;
const BURST_CONCURRENCY: usize = 10;
const BURSTS: usize = 3;
/// Running containers of the cost curve, 10 to a pod.
const CURVE: [usize; 3] = [10, 100, 500];
const CONTAINERS_PER_POD: usize = 10;

type Runtime = RuntimeServiceClient<Channel>;

/// One runtime under test.
pub struct Subject {
    name: &'static str,
    socket: PathBuf,
    /// The daemon's pid (a restart changes it).
    pid_now: AtomicU32,
    /// The cgroup parent of its pods (per runtime, so leftovers are
    /// attributable).
    cgroup_parent: String,
    /// The directory its shims' command lines name.
    marker: PathBuf,
    /// Its daemon's and shims' executable names.
    binaries: &'static [&'static str],
}

impl Subject {
    fn pid(&self) -> u32 {
        self.pid_now.load(Ordering::Relaxed)
    }
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
    let created = t.elapsed();
    out.time("CreateContainer", i, created);
    let t = Instant::now();
    rt.start_container(k8s::StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .with_context(|| format!("{}: StartContainer", s.name))?;
    out.time("StartContainer", i, t.elapsed());
    out.time("CreateContainer + StartContainer", i, created + t.elapsed());
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
    let streamed = streaming::exec_true(&mut rt, &id)
        .await
        .with_context(|| format!("{}: streaming exec", s.name))?;
    out.time("Exec true (streaming)", i, streamed);

    // The floor of any RPC: a Version call does no work.
    let t = Instant::now();
    rt.version(k8s::VersionRequest::default()).await?;
    out.time("Version (the floor of an RPC)", i, t.elapsed());
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

/// Pushes every image the benchmark pulls to `reg`.
fn push_images(reg: &Registry) -> Result<pull::RealImage> {
    let busybox = ImageBuilder::busybox().build(Compression::Gzip)?;
    busybox.push(reg, "library/busybox", "latest")?;
    let (repo, tag) = critest_bench::CRITEST_IMAGE
        .trim_start_matches("registry.k8s.io/")
        .split_once(':')
        .context("critest image name")?;
    busybox.push(reg, repo, tag)?;
    ImageBuilder::new()
        .marker("small")?
        .build(Compression::Gzip)?
        .push(reg, "library/small", "latest")?;
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
        .push(reg, repo, tag)?;
    pull::push_real_image(reg)
}

/// The two daemons, for what needs more than their sockets (a restart).
struct Daemons {
    cortend: Daemon,
    containerd: Containerd,
}

impl Daemons {
    /// Kills runtime `i`'s daemon as a crash would and starts it again on
    /// the same state; the instant the new daemon was started.
    fn kill_and_restart(&mut self, s: &Subject, i: usize) -> Result<Instant> {
        if i == 0 {
            self.cortend.kill9();
            let started = Instant::now();
            self.cortend.resume();
            s.pid_now.store(
                self.cortend.pid().context("cortend pid")?,
                Ordering::Relaxed,
            );
            return Ok(started);
        }
        let started = self.containerd.kill_and_restart()?;
        s.pid_now.store(
            self.containerd.pid().context("containerd pid")?,
            Ordering::Relaxed,
        );
        Ok(started)
    }
}

/// Which runtime goes first in repetition `rep`.
fn order(rep: usize) -> [usize; 2] {
    if rep % 2 == 0 {
        [0, 1]
    } else {
        [1, 0]
    }
}

async fn run_all(
    subjects: &[Subject; 2],
    daemons: &mut Daemons,
    reps: usize,
    notes: &mut Vec<String>,
) -> Result<Samples> {
    let mut samples = Samples::default();
    for s in subjects {
        let mut c = images(&s.socket).await?;
        pull(&mut c, BUSYBOX).await?;
    }
    for (i, s) in subjects.iter().enumerate() {
        if let Some(kib) = scale::pss_kib(s.pid()) {
            samples.add("daemon PSS idle", "KiB", i, kib);
        }
        if let Some(kib) = scale::pss_anon_kib(s.pid()) {
            samples.add("daemon PSS idle, anonymous part", "KiB", i, kib);
        }
    }

    eprintln!("== lifecycle and image RPCs: {WARMUP} + {reps} repetitions");
    let mut warm = Samples::default();
    for rep in 0..WARMUP + reps {
        let out = if rep < WARMUP {
            &mut warm
        } else {
            &mut samples
        };
        for i in order(rep) {
            lifecycle(&subjects[i], i, rep, out).await?;
            image_calls(&subjects[i], i, out).await?;
        }
    }

    eprintln!("== pulls of the image of real binaries: 1 + {COLD_PULLS} cold, then warm");
    for rep in 0..=COLD_PULLS {
        for i in order(rep) {
            let d = pull::cold(&subjects[i]).await?;
            if rep > 0 {
                samples.time("PullImage cold, real binaries", i, d);
            }
        }
    }
    for rep in 0..reps.min(10) {
        for i in order(rep) {
            let d = pull::warm(&subjects[i]).await?;
            samples.time("PullImage warm (present), real binaries", i, d);
        }
    }
    for s in subjects {
        pull::remove(&mut images(&s.socket).await?, s).await?;
    }

    eprintln!("== memory with 20 and 100 pods");
    for i in order(0) {
        let s = &subjects[i];
        let mut pods = scale::add_pods(s, 0, 20, 1, BURST_CONCURRENCY).await?;
        let (pss20, n20) = scale::own_pss(s);
        pods.extend(scale::add_pods(s, 20, 80, 1, BURST_CONCURRENCY).await?);
        let (pss100, n100) = scale::own_pss(s);
        samples.add("PSS daemon+shims+helpers, 20 pods", "KiB", i, pss20);
        samples.add("PSS daemon+shims+helpers, 100 pods", "KiB", i, pss100);
        samples.add(
            "PSS per pod (20 -> 100 pods)",
            "KiB",
            i,
            (pss100 - pss20) / 80.0,
        );
        notes.push(format!(
            "{}: {n20} own processes with 20 pods, {n100} with 100",
            s.name
        ));
        scale::remove_pods(s, &pods, BURST_CONCURRENCY).await?;
    }

    eprintln!("== bursts of {BURST_PODS} pods at concurrency {BURST_CONCURRENCY}");
    for rep in 0..BURSTS {
        for i in order(rep) {
            let s = &subjects[i];
            let t = Instant::now();
            let pods = scale::add_pods(s, 0, BURST_PODS, 1, BURST_CONCURRENCY).await?;
            samples.time("burst of 100 pods: create + start", i, t.elapsed());
            let t = Instant::now();
            scale::remove_pods(s, &pods, BURST_CONCURRENCY).await?;
            samples.time("burst of 100 pods: stop + remove", i, t.elapsed());
        }
    }

    eprintln!("== cost curve: {CURVE:?} running containers");
    let mut pods: [Vec<String>; 2] = Default::default();
    for (level, want) in CURVE.into_iter().enumerate() {
        for i in order(level) {
            let s = &subjects[i];
            let have = pods[i].len();
            let need = want / CONTAINERS_PER_POD;
            let added =
                scale::add_pods(s, have, need - have, CONTAINERS_PER_POD, BURST_CONCURRENCY)
                    .await?;
            pods[i].extend(added);
            let running = scale::running(s).await?;
            anyhow::ensure!(running == want, "{}: {running} running, not {want}", s.name);
            let (lists, statuses) = scale::list_and_status(s, 30).await?;
            for d in lists {
                samples.time(&format!("ListContainers, {want} running"), i, d);
            }
            for d in statuses {
                samples.time(&format!("ContainerStatus, {want} running"), i, d);
            }
            if let Some(kib) = scale::pss_kib(s.pid()) {
                samples.add(&format!("daemon PSS, {want} running"), "KiB", i, kib);
            }
            let started = daemons.kill_and_restart(s, i)?;
            let d = scale::serving_again(s, want, started).await?;
            samples.time(&format!("restart: serving {want} running again"), i, d);
        }
    }
    for i in [0, 1] {
        scale::remove_pods(&subjects[i], &pods[i], BURST_CONCURRENCY).await?;
    }

    match crictl_tests::critest::critest_binary() {
        Some(critest) => {
            eprintln!("== critest -benchmark");
            let dir = bench_dir().join("critest");
            for (i, s) in subjects.iter().enumerate() {
                critest_bench::run(&critest, s, i, &dir.join(s.name), &mut samples)?;
            }
        }
        None => notes.push("critest -benchmark not run: no critest binary".into()),
    }
    Ok(samples)
}

fn bench_dir() -> PathBuf {
    std::env::var_os("BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools::workspace_root().join("target/bench"))
}

fn main() -> Result<()> {
    let reps = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(REPETITIONS);
    tools::require_root("the benchmark runs pods");
    tools::use_release_cortend().map_err(anyhow::Error::msg)?;

    // One registry for both: busybox, a small image pulled and removed
    // each time, the image of real binaries, and the pause image
    // containerd's pods need.
    let reg = Registry::start(RegistryOptions::plain())?;
    let real = push_images(&reg)?;
    let mut notes = vec![format!(
        "image of real binaries: {} layers, {:.1} MiB compressed, {:.1} MiB of tar",
        real.layers,
        real.compressed as f64 / f64::from(1 << 20),
        real.unpacked as f64 / f64::from(1 << 20),
    )];

    // A node's log level, not the tests' debug.
    let builder = DaemonBuilder::new()
        .mirror("docker.io", &reg.url())
        .mirror("registry.k8s.io", &reg.url())
        .config(|c| {
            c.insert("log_level".into(), toml::Value::String("info".into()));
        });
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
            pid_now: AtomicU32::new(cortend.pid().context("cortend pid")?),
            cgroup_parent: format!("/corten-bench-{}-corten", std::process::id()),
            marker: cortend.dir().to_path_buf(),
            binaries: &["cortend", "corten-shim"],
        },
        Subject {
            name: "containerd",
            socket: containerd.socket().to_path_buf(),
            pid_now: AtomicU32::new(containerd.pid().context("containerd pid")?),
            cgroup_parent: format!("/corten-bench-{}-containerd", std::process::id()),
            marker: peer_dir.path().to_path_buf(),
            binaries: &["containerd", "containerd-shim-runc-v2"],
        },
    ];
    let mut daemons = Daemons {
        cortend,
        containerd,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let load_before = load_average();
    let started = Instant::now();
    let result = rt.block_on(run_all(&subjects, &mut daemons, reps, &mut notes));
    let load_after = load_average();
    let samples = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("containerd log:\n{}", daemons.containerd.log_text());
            return Err(e);
        }
    };
    let machine = format!(
        "{} repetitions after {WARMUP} of warm-up, runs interleaved; {:.0} s; load average \
         {load_before} before, {load_after} after; {} CPUs",
        reps,
        started.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    notes.push(machine.clone());
    let (text, md, json) = table(&samples, reps, &notes);
    println!("{text}");
    for n in &notes {
        println!("{n}");
    }
    let dir = bench_dir();
    std::fs::create_dir_all(&dir)?;
    let md_notes: String = notes.iter().map(|n| format!("- {n}\n")).collect();
    std::fs::write(dir.join("peer.md"), format!("{md}\n{md_notes}"))?;
    std::fs::write(dir.join("peer.json"), json)?;
    println!("written: {}", dir.display());

    let Daemons {
        cortend,
        containerd,
    } = daemons;
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
