//! Mounts benchmark (not a test): creating a container with N read-only bind
//! mounts (`/m/0` ... `/m/N-1` of one host directory: the spec the CRI layer
//! makes for N `readonly` host-path mounts), the built-in core against runc,
//! both driven by corten-shim on the same kind of bundle (busybox on
//! overlayfs).
//!
//! Prints, per N and backend, the median and worst time of
//! `ContainerRuntime::create` (bundle written, shim started, every mount
//! made, the init waiting for start) and the CPU time of the container's
//! init process (where the mounts are made), and the ratio runc / built-in.
//!
//! The backends take turns, one create each, and the containers are removed
//! only after the last create: ext4 without a journal (this
//! machine's root filesystem) skips, when it allocates an inode, every
//! inode freed in the last one to six minutes, so the mount points of a
//! container just removed make each mkdir of the next one slower, and
//! creating right after removing measures that instead (the 10,000 mount
//! points of the last container made each of the next 10,000 mkdirs scan
//! past them: 13 s instead of 1).
//!
//! Run: `cargo run --release -p crictl-tests --bin bench-mounts [-- RUNS [N...]]`
//! (as root, with runc installed). Defaults: 3 runs, N = 2500 and 10000.
//! The shim is built in release unless `CORTEN_SHIM_BIN` names one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use corten_runtime::container::{ContainerRuntime, CreateRequest};
use corten_runtime::spec::{self, ContainerConfig, ImageConfig, LayeredRootfs, MountConfig};
use crictl_tests::tools;

const RUNC: &str = "/usr/sbin/runc";
/// The benchmark's parent cgroup, removed at the end.
const CGROUP_PARENT: &str = "corten-bench-mounts";

fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().with_context(|| format!("{a}: not a number")))
        .collect::<anyhow::Result<_>>()?;
    let runs = args.first().copied().unwrap_or(3).max(1);
    let counts = match &args[..] {
        [_, counts @ ..] if !counts.is_empty() => counts.to_vec(),
        _ => vec![2500, 10_000],
    };
    tools::require_root("makes containers");
    anyhow::ensure!(
        Path::new(RUNC).exists(),
        "{RUNC} is missing: apt-get install runc"
    );
    let shim = shim_binary()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(bench(runs, &counts, &shim));
    for controller in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = std::fs::remove_dir(controller.path().join(CGROUP_PARENT));
    }
    result
}

async fn bench(runs: usize, counts: &[usize], shim: &Path) -> anyhow::Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("corten-bench-mounts-")
        .tempdir()?;
    let layer = tmp.path().join("layer");
    busybox_layer(&layer)?;
    let source = tmp.path().join("shared");
    std::fs::create_dir_all(&source)?;
    std::fs::write(source.join("marker"), "here")?;
    let runtime = ContainerRuntime::new(&tmp.path().join("state"), &tmp.path().join("root"), shim);
    let backends: [(&str, Option<PathBuf>); 2] =
        [("built-in", None), ("runc", Some(PathBuf::from(RUNC)))];
    println!("{runs} runs each, shim {}", shim.display());
    let mut made = Vec::new();
    let measured = measure(
        &runtime, &backends, runs, counts, &layer, &source, &mut made,
    )
    .await;
    // Whatever happened, nothing stays running.
    for id in &made {
        if let Err(e) = runtime.delete(id).await {
            eprintln!("cannot delete {id}: {e}");
        }
    }
    measured
}

async fn measure(
    runtime: &ContainerRuntime,
    backends: &[(&str, Option<PathBuf>); 2],
    runs: usize,
    counts: &[usize],
    layer: &Path,
    source: &Path,
    made: &mut Vec<String>,
) -> anyhow::Result<()> {
    for &n in counts {
        let mut samples: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..runs {
            for (i, (_, backend)) in backends.iter().enumerate() {
                let id = format!("mounts-{n}-{}", made.len());
                made.push(id.clone());
                let sample = create(runtime, &id, layer, source, n, backend)
                    .await
                    .with_context(|| format!("{id}: create"))?;
                samples[i].push(sample);
            }
        }
        println!("{n} read-only bind mounts:");
        let mut medians = Vec::new();
        for ((name, _), s) in backends.iter().zip(samples.iter_mut()) {
            s.sort_by_key(|s| s.took);
            let median = &s[s.len() / 2];
            let worst = s.last().map_or(Duration::ZERO, |s| s.took);
            println!(
                "  {name:9} create median {:8.1} ms  worst {:8.1} ms  init CPU (median run) {:8.1} ms",
                ms(median.took),
                ms(worst),
                ms(median.init_cpu)
            );
            medians.push(median.took);
        }
        println!(
            "  runc / built-in (median): {:.2}x",
            ms(medians[1]) / ms(medians[0]).max(f64::MIN_POSITIVE)
        );
    }
    Ok(())
}

/// One create: how long it took, and the CPU its init had used by then.
struct Sample {
    took: Duration,
    init_cpu: Duration,
}

async fn create(
    runtime: &ContainerRuntime,
    id: &str,
    layer: &Path,
    source: &Path,
    n: usize,
    backend: &Option<PathBuf>,
) -> anyhow::Result<Sample> {
    let config = ContainerConfig {
        id: id.to_string(),
        command: vec!["sleep".into(), "1000".into()],
        cgroup_path: format!("/{CGROUP_PARENT}/{}-{id}", std::process::id()),
        mounts: (0..n)
            .map(|i| MountConfig {
                host_path: source.to_path_buf(),
                container_path: format!("/m/{i}"),
                readonly: true,
                ..MountConfig::default()
            })
            .collect(),
        ..ContainerConfig::default()
    };
    let image = ImageConfig {
        env: vec!["PATH=/bin".to_string()],
        ..ImageConfig::default()
    };
    let view = LayeredRootfs {
        layers: vec![layer.to_path_buf()],
    };
    let spec = spec::generate(&config, &image, &view)?;
    let t0 = Instant::now();
    runtime
        .create(CreateRequest {
            id: id.to_string(),
            spec,
            layers: vec![layer.to_path_buf()],
            readonly_rootfs: false,
            log_path: PathBuf::from("/dev/null"),
            runtime: backend.clone(),
            runtime_root: None,
            image_volumes: Vec::new(),
            stdin: false,
            stdin_once: false,
        })
        .await?;
    // The state waits for the shim's answer: the creation's whole time.
    let pid = runtime.state(id).await?.pid;
    let took = t0.elapsed();
    Ok(Sample {
        took,
        init_cpu: cpu_time(pid)?,
    })
}

/// User and system time of process `pid` (from /proc/PID/stat).
fn cpu_time(pid: i32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let (_, rest) = stat.rsplit_once(')').context("no comm in stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks =
        |i: usize| -> anyhow::Result<u64> { Ok(fields.get(i).context("short stat")?.parse()?) };
    // utime and stime: fields 14 and 15, the 12th and 13th after the comm.
    // In USER_HZ, which Linux fixes at 100 for /proc.
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_millis(total * 10))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A release corten-shim, unless `CORTEN_SHIM_BIN` names one.
fn shim_binary() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("CORTEN_SHIM_BIN") {
        return Ok(PathBuf::from(bin));
    }
    tools::use_release_cortend().map_err(anyhow::Error::msg)?;
    let cortend = std::env::var_os("CORTEND_BIN").context("no release cortend")?;
    Ok(PathBuf::from(cortend).with_file_name("corten-shim"))
}

/// /bin/busybox with its applets as hard links, and the usual directories.
fn busybox_layer(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin)?;
    let busybox = bin.join("busybox");
    std::fs::copy("/bin/busybox", &busybox).context("copy /bin/busybox (busybox-static)")?;
    std::fs::set_permissions(&busybox, std::fs::Permissions::from_mode(0o755))?;
    for applet in ["sh", "sleep"] {
        std::fs::hard_link(&busybox, bin.join(applet))?;
    }
    for d in ["etc", "tmp", "root", "proc", "sys", "dev"] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(dir.join("etc/group"), "root:x:0:\n")?;
    Ok(())
}
