//! `critest -benchmark` (cri-tools' own benchmark suite) against one
//! runtime: its result files are kept, and the median of each operation
//! goes into the table.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context as _, Result};

use crate::{Samples, Subject, BUSYBOX, SMALL};

/// cri-tools' pod and container benchmark image (pushed by the caller).
pub const CRITEST_IMAGE: &str = "registry.k8s.io/e2e-test-images/busybox:1.29-2";

/// Runs critest's benchmarks against `s`, writing their results under
/// `out` and adding each operation's durations to `samples`.
pub fn run(critest: &Path, s: &Subject, i: usize, out: &Path, samples: &mut Samples) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let params = out.join("params.yaml");
    std::fs::write(
        &params,
        format!(
            "containersNumber: 20\ncontainersNumberParallel: 1\npodsNumber: 20\n\
             podsNumberParallel: 1\nimagesNumber: 20\nimagesNumberParallel: 1\n\
             imagePullingBenchmarkImage: {SMALL}\n\
             imageListingBenchmarkImages: [{BUSYBOX}, {SMALL}]\n"
        ),
    )?;
    let endpoint = format!("unix://{}", s.socket.display());
    let output = Command::new(critest)
        .arg("-benchmark")
        .arg(format!("-runtime-endpoint={endpoint}"))
        .arg(format!("-image-endpoint={endpoint}"))
        .arg(format!("-benchmarking-params-file={}", params.display()))
        .arg(format!("-benchmarking-output-dir={}", out.display()))
        .output()
        .context("running critest -benchmark")?;
    std::fs::write(
        out.join("critest.log"),
        [&output.stdout[..], &output.stderr[..]].concat(),
    )?;
    if !output.status.success() {
        bail!(
            "{}: critest -benchmark failed ({}); its output is in {}",
            s.name,
            output.status,
            out.join("critest.log").display()
        );
    }
    for file in [
        "pod_benchmark_data.json",
        "container_benchmark_data.json",
        "image_lifecycle_benchmark_data.json",
        "image_listing_benchmark_data.json",
    ] {
        let path = out.join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{}: reading {}", s.name, path.display()))?;
        let doc: serde_json::Value = serde_json::from_str(&text)?;
        let names: Vec<String> = doc["operationsNames"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for point in doc["datapoints"].as_array().into_iter().flatten() {
            let durations = point["operationsDurationsNs"].as_array();
            for (name, ns) in names.iter().zip(durations.into_iter().flatten()) {
                if let Some(ns) = ns.as_f64() {
                    samples.add(&format!("critest {name}"), "ms", i, ns / 1e6);
                }
            }
        }
    }
    Ok(())
}
