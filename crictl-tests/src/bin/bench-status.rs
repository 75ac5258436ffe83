//! ContainerStatus under write load (not a test): the latency of
//! ContainerStatus on one running container, first on an idle daemon, then
//! while 10 writers each loop create/start/stop/remove of containers in
//! pods of their own (every step a record commit). Prints p50, p99 and max
//! of both and the ratio. Target: p99 under 5 ms with the writers running,
//! on an idle machine (reads never wait for another container's commit).
//!
//! Run: `cargo run --release -p crictl-tests --bin bench-status [-- SAMPLES
//! [WRITERS]]` as root, with crictl-tests/run.sh's dependencies installed (a
//! release cortend is built unless `CORTEND_BIN` names one). Fewer writers
//! show how the loaded figures follow the machine's load: each writer keeps
//! a shim and a container starting and stopping.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corten_cri_api::v1 as k8s;
use crictl_tests::{
    cri, tools, Compression, DaemonBuilder, ImageBuilder, Registry, RegistryOptions, TestNetwork,
};

/// Writers unless the command line says otherwise.
const WRITERS: usize = 10;

fn main() -> anyhow::Result<()> {
    let arg = |n: usize, default: usize| {
        std::env::args()
            .nth(n)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let samples = arg(1, 2000);
    let writers_wanted = arg(2, WRITERS);
    tools::use_release_cortend().map_err(anyhow::Error::msg)?;
    let reg = Registry::start(RegistryOptions::plain())?;
    let image = ImageBuilder::busybox().build(Compression::Gzip)?;
    image.push(&reg, "library/busybox", "latest")?;
    let builder = DaemonBuilder::new().mirror("docker.io", &reg.url());
    let _net = TestNetwork::new(&builder);
    let d = builder.start().map_err(anyhow::Error::msg)?;
    d.crictl(&["pull", "busybox"]).ok();
    let socket = d.socket().to_path_buf();
    // The sampler has a thread and runtime of its own, so that what it
    // measures is the daemon, not the writers' tasks queued before it on a
    // shared client executor.
    let sampler = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let load = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let spawner = load.handle().clone();
    sampler.block_on(async move {
        let mut client = cri::runtime(&socket).await?;
        let pod = cri::run_pod(&mut client, cri::pod_config("target", "bench")).await?;
        let target = cri::run_container(&mut client, &pod, cri::sleeper("target")).await?;
        let idle = measure(&mut client, &target, samples).await?;

        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(AtomicUsize::new(0));
        let mut writers = Vec::new();
        for w in 0..writers_wanted {
            let (socket, stop, writes) = (socket.clone(), stop.clone(), writes.clone());
            writers.push(spawner.spawn(async move {
                let mut c = cri::runtime(&socket).await?;
                let pod =
                    cri::run_pod(&mut c, cri::pod_config(&format!("writer{w}"), "bench")).await?;
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let id =
                        cri::run_container(&mut c, &pod, cri::sleeper(&format!("w{n}"))).await?;
                    c.stop_container(k8s::StopContainerRequest {
                        container_id: id.clone(),
                        timeout: 0,
                    })
                    .await?;
                    c.remove_container(k8s::RemoveContainerRequest { container_id: id })
                        .await?;
                    writes.fetch_add(4, Ordering::SeqCst);
                }
                anyhow::Ok(())
            }));
        }
        // The writers under way before the sampling starts.
        while writes.load(Ordering::SeqCst) < writers_wanted * 4 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let started = Instant::now();
        let loaded = measure(&mut client, &target, samples).await?;
        let elapsed = started.elapsed();
        stop.store(true, Ordering::SeqCst);
        for w in writers {
            w.await??;
        }
        let done = writes.load(Ordering::SeqCst);
        println!("ContainerStatus latency, {samples} samples each (ms):");
        println!("{:<28} {:>8} {:>8} {:>8}", "", "p50", "p99", "max");
        print_row("idle daemon", &idle);
        print_row(&format!("{writers_wanted} writers running"), &loaded);
        println!(
            "writers: {done} writes in total ({:.0}/s while sampling)",
            done as f64 / elapsed.as_secs_f64().max(1e-9)
        );
        println!(
            "ratio loaded/idle: p50 {:.2}x, p99 {:.2}x",
            pct(&loaded, 50) / pct(&idle, 50),
            pct(&loaded, 99) / pct(&idle, 99)
        );
        anyhow::Ok(())
    })?;
    Ok(())
}

async fn measure(
    c: &mut cri::RuntimeClient,
    id: &str,
    samples: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        c.container_status(k8s::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        })
        .await?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(times)
}

fn pct(sorted: &[Duration], p: usize) -> f64 {
    let i = ((sorted.len() * p) / 100).min(sorted.len().saturating_sub(1));
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

fn print_row(label: &str, sorted: &[Duration]) {
    let max = sorted.last().map_or(0.0, |d| d.as_secs_f64() * 1e3);
    println!(
        "{label:<28} {:>8.3} {:>8.3} {:>8.3}",
        pct(sorted, 50),
        pct(sorted, 99),
        max
    );
}
