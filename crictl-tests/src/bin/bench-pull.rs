//! Pull benchmark (not a test): a multi-layer image of 64 MiB, built here,
//! pulled from a local registry by a release cortend through the real
//! crictl, several times with the image removed in between. Prints the
//! times; the benchmark issue sets them beside containerd.
//!
//! Run: `cargo run --release -p crictl-tests --bin bench-pull [-- RUNS]`
//! (as root, with crictl-tests/run.sh's dependencies installed).

use std::time::Instant;

use crictl_tests::{tools, Compression, DaemonBuilder, ImageBuilder, Registry, RegistryOptions};

fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    tools::use_release_cortend().map_err(anyhow::Error::msg)?;
    let reg = Registry::start(RegistryOptions::plain())?;
    let image = ImageBuilder::big(64 << 20, 4)?.build(Compression::Gzip)?;
    image.push(&reg, "bench/big", "v1")?;
    let mb = image.compressed_size() as f64 / (1 << 20) as f64;
    let name = format!("{}/bench/big:v1", reg.addr());
    let daemon = DaemonBuilder::new()
        .config(|c| {
            c.insert("log_level".into(), toml::Value::String("info".into()));
        })
        .start()
        .map_err(anyhow::Error::msg)?;

    let mut times = Vec::new();
    for run in 0..runs {
        let started = Instant::now();
        daemon.crictl(&["pull", &name]).ok();
        let secs = started.elapsed().as_secs_f64();
        times.push(secs);
        println!("run {run}: {secs:.3} s ({:.1} MiB/s)", mb / secs);
        daemon.crictl(&["rmi", &name]).ok();
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "corten pull of {mb:.1} MiB in 5 layers (4 x random + busybox), gzip: median {median:.3} s, \
         min {:.3} s, max {:.3} s over {runs} runs ({:.1} MiB/s)",
        times[0],
        times[times.len() - 1],
        mb / median
    );
    Ok(())
}
