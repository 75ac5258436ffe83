//! Core benchmark (not a test): the built-in core against runc, both driven
//! by corten-shim on the same kind of bundle (busybox on overlayfs), over N
//! runs each (one backend after the other, after a warm-up of both).
//!
//! Prints, per backend, median and p90 of
//! - create -> first instruction: from the moment `create` is called to the
//!   timestamp the shim puts on the container's first output line (the
//!   command is busybox `echo`, whose first act is that write), with the
//!   `start` call made as soon as `create` returns;
//! - create + start + wait of `true`;
//!
//! and the ratio runc / built-in, then the shim's RSS and PSS while idle
//! with a running `sleep` container.
//!
//! Run: `cargo run --release -p crictl-tests --bin bench-core [-- RUNS]`
//! (as root, with runc installed: crictl-tests/run.sh installs it). The
//! shim is built in release unless `CORTEN_SHIM_BIN` names one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context as _};
use corten_runtime::container::{ContainerRuntime, CreateRequest};
use corten_runtime::spec::{self, ContainerConfig, ImageConfig, LayeredRootfs};
use crictl_tests::tools;

const RUNC: &str = "/usr/sbin/runc";
/// The benchmark's parent cgroup, removed at the end.
const CGROUP_PARENT: &str = "corten-bench";
/// How many idle shims share the binary's pages in the second memory figure.
const IDLE_SHIMS: u64 = 10;

struct Bench {
    tmp: tempfile::TempDir,
    runtime: ContainerRuntime,
    layer: PathBuf,
    seq: usize,
}

fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50);
    anyhow::ensure!(
        Path::new(RUNC).exists(),
        "{RUNC} is missing: apt-get install runc"
    );
    let shim = shim_binary()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(bench(runs, &shim));
    remove_cgroup_parent();
    result
}

async fn bench(runs: usize, shim: &Path) -> anyhow::Result<()> {
    let tmp = tempfile::Builder::new().prefix("corten-bench-").tempdir()?;
    let layer = tmp.path().join("layer");
    busybox_layer(&layer)?;
    let runtime = ContainerRuntime::new(&tmp.path().join("state"), &tmp.path().join("root"), shim);
    let mut b = Bench {
        tmp,
        runtime,
        layer,
        seq: 0,
    };
    let result = measure(&mut b, runs, shim).await;
    // Whatever failed, no container is left running.
    b.delete_all().await;
    result
}

async fn measure(b: &mut Bench, runs: usize, shim: &Path) -> anyhow::Result<()> {
    let backends: [(&str, Option<PathBuf>); 2] =
        [("built-in", None), ("runc", Some(PathBuf::from(RUNC)))];
    // Warm the page cache and the cgroup hierarchy for both.
    for (_, backend) in &backends {
        for _ in 0..3 {
            b.first_instruction(backend).await?;
            b.run_true(backend).await?;
        }
    }
    let mut first = [Vec::new(), Vec::new()];
    let mut whole = [Vec::new(), Vec::new()];
    // One backend after the other: interleaving them per run made the
    // built-in's figures pay for runc's teardown (a Go process, nine v1
    // cgroups) still settling; a pause between runs made both slower and
    // noisier (idle CPUs clocking down).
    for (i, (_, backend)) in backends.iter().enumerate() {
        for _ in 0..runs {
            first[i].push(b.first_instruction(backend).await?);
            whole[i].push(b.run_true(backend).await?);
        }
    }
    println!("{runs} runs each, shim {}", shim.display());
    report("create -> first instruction", &backends, &mut first);
    report("create + start + wait of `true`", &backends, &mut whole);
    // TODO(exec): exec round-trip (ExecSync of `true` in a running
    // container), built-in vs runc, once `ContainerRuntime::exec_sync`
    // lands: create+start a `sleep` container per backend here, time N
    // exec_sync calls, and report() them like the figures above.
    for (name, backend) in &backends {
        for n in [1, IDLE_SHIMS] {
            let m = b.idle_shim_memory(backend, n).await?;
            println!(
                "shim memory, idle, {n} running sleep container(s) ({name}): RSS {} KiB, \
                 PSS {} KiB (anonymous {} KiB) per shim",
                m.rss, m.pss, m.anon
            );
        }
    }
    let size = std::fs::metadata(shim).map(|m| m.len()).unwrap_or(0);
    println!("corten-shim binary: {} KiB", size / 1024);
    Ok(())
}

impl Bench {
    async fn delete_all(&self) {
        let bundles = self.tmp.path().join("state/containers");
        for entry in std::fs::read_dir(bundles).into_iter().flatten().flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if let Err(e) = self.runtime.delete(&id).await {
                eprintln!("cannot delete {id}: {e}");
            }
        }
    }

    fn next_id(&mut self, what: &str) -> String {
        self.seq += 1;
        format!("{what}-{}", self.seq)
    }

    async fn create(
        &mut self,
        id: &str,
        args: &[&str],
        backend: &Option<PathBuf>,
    ) -> anyhow::Result<()> {
        let config = ContainerConfig {
            id: id.to_string(),
            command: args.iter().map(|s| s.to_string()).collect(),
            cgroup_path: format!("/{CGROUP_PARENT}/{}-{id}", std::process::id()),
            ..ContainerConfig::default()
        };
        let image = ImageConfig {
            env: vec!["PATH=/bin".to_string()],
            cmd: vec!["sh".to_string()],
            ..ImageConfig::default()
        };
        let view = LayeredRootfs {
            layers: vec![self.layer.clone()],
        };
        let spec = spec::generate(&config, &image, &view)?;
        self.runtime
            .create(CreateRequest {
                id: id.to_string(),
                spec,
                layers: vec![self.layer.clone()],
                readonly_rootfs: false,
                log_path: self.log_path(id),
                runtime: backend.clone(),
                runtime_root: None,
                image_volumes: Vec::new(),
                stdin: false,
                stdin_once: false,
            })
            .await?;
        Ok(())
    }

    fn log_path(&self, id: &str) -> PathBuf {
        self.tmp.path().join("logs").join(format!("{id}.log"))
    }

    /// From `create` called to the container's first output line.
    async fn first_instruction(&mut self, backend: &Option<PathBuf>) -> anyhow::Result<Duration> {
        let id = self.next_id("first");
        let t0 = SystemTime::now();
        self.create(&id, &["echo", "go"], backend).await?;
        self.runtime.start(&id).await?;
        let state = self.runtime.wait(&id).await?;
        let log = std::fs::read_to_string(self.log_path(&id))?;
        self.runtime.delete(&id).await?;
        if state.exit.as_ref().map(|e| e.code) != Some(0) {
            bail!("{id}: {state:?}: {log}");
        }
        let stamp = log
            .split(' ')
            .next()
            .with_context(|| format!("{id}: empty log"))?;
        let at = humantime::parse_rfc3339(stamp).with_context(|| format!("{id}: {stamp}"))?;
        Ok(at.duration_since(t0)?)
    }

    /// create + start + wait of `true`.
    async fn run_true(&mut self, backend: &Option<PathBuf>) -> anyhow::Result<Duration> {
        let id = self.next_id("true");
        let t0 = Instant::now();
        self.create(&id, &["true"], backend).await?;
        self.runtime.start(&id).await?;
        let state = self.runtime.wait(&id).await?;
        let took = t0.elapsed();
        self.runtime.delete(&id).await?;
        if state.exit.as_ref().map(|e| e.code) != Some(0) {
            bail!("{id}: {state:?}");
        }
        Ok(took)
    }

    /// Memory (KiB) of the shims of `n` running `sleep`s: the mean over them.
    /// With one shim its PSS carries every page of the binary it touched;
    /// with more, those are shared and PSS approaches the anonymous part.
    async fn idle_shim_memory(
        &mut self,
        backend: &Option<PathBuf>,
        n: u64,
    ) -> anyhow::Result<Memory> {
        let mut ids = Vec::new();
        for _ in 0..n {
            let id = self.next_id("idle");
            self.create(&id, &["sleep", "1000"], backend).await?;
            ids.push(id.clone());
            self.runtime.start(&id).await?;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut sum = Memory::default();
        for id in &ids {
            let shim = shim_of(self.runtime.state(id).await?.pid)?;
            sum.rss += proc_kib(&format!("/proc/{shim}/status"), "VmRSS:")?;
            let rollup = format!("/proc/{shim}/smaps_rollup");
            sum.pss += proc_kib(&rollup, "Pss:")?;
            sum.anon += proc_kib(&rollup, "Anonymous:")?;
        }
        for id in &ids {
            self.runtime.delete(id).await?;
        }
        Ok(Memory {
            rss: sum.rss / n,
            pss: sum.pss / n,
            anon: sum.anon / n,
        })
    }
}

/// A process's memory, KiB.
#[derive(Debug, Default)]
struct Memory {
    rss: u64,
    pss: u64,
    anon: u64,
}

/// The init's parent: the shim (runc's init is reparented to it).
fn shim_of(init: i32) -> anyhow::Result<i32> {
    let status = std::fs::read_to_string(format!("/proc/{init}/status"))?;
    let ppid = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .context("no PPid")?;
    Ok(ppid.trim().parse()?)
}

fn proc_kib(path: &str, key: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(path)?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .with_context(|| format!("{path}: no {key}"))?;
    let kib = line.split_whitespace().next().context("empty")?;
    Ok(kib.parse()?)
}

fn report(what: &str, backends: &[(&str, Option<PathBuf>); 2], samples: &mut [Vec<Duration>; 2]) {
    println!("{what}:");
    let mut medians = Vec::new();
    for ((name, _), s) in backends.iter().zip(samples.iter_mut()) {
        s.sort();
        let (median, p90) = (percentile(s, 50), percentile(s, 90));
        println!(
            "  {name:9} median {:7.2} ms  p90 {:7.2} ms",
            ms(median),
            ms(p90)
        );
        medians.push(median);
    }
    println!(
        "  runc / built-in (median): {:.2}x",
        ms(medians[1]) / ms(medians[0]).max(f64::MIN_POSITIVE)
    );
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() * p).div_ceil(100)).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A release corten-shim, unless `CORTEN_SHIM_BIN` names one.
fn shim_binary() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("CORTEN_SHIM_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let status = Command::new("cargo")
        .args(["build", "--release", "--quiet", "-p", "corten-runtime"])
        .args(["--bin", "corten-shim"])
        .current_dir(tools::workspace_root())
        .status()?;
    anyhow::ensure!(status.success(), "cannot build a release corten-shim");
    Ok(tools::workspace_root().join("target/release/corten-shim"))
}

/// /bin/busybox with its applets as hard links, and the usual directories.
fn busybox_layer(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin)?;
    let busybox = bin.join("busybox");
    std::fs::copy("/bin/busybox", &busybox).context("copy /bin/busybox (busybox-static)")?;
    std::fs::set_permissions(&busybox, std::fs::Permissions::from_mode(0o755))?;
    let list = Command::new("/bin/busybox").arg("--list").output()?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            std::fs::hard_link(&busybox, bin.join(applet))?;
        }
    }
    for d in ["etc", "tmp", "root", "proc", "sys", "dev"] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(dir.join("etc/group"), "root:x:0:\n")?;
    Ok(())
}

/// Removes the benchmark's parent cgroup in every hierarchy (the containers'
/// own cgroups went with them).
fn remove_cgroup_parent() {
    for controller in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = std::fs::remove_dir(controller.path().join(CGROUP_PARENT));
    }
}
