//! The Kubernetes CRI validation suite, critest (cri-tools v1.34.0, built by
//! `crictl-tests/run.sh`), against cortend: its images come from a local
//! registry that cortend reaches as registry.k8s.io and gcr.io, its pods
//! from a test network of their own. Every spec must pass except the short
//! list in [`SKIPS`], each with its reason.

use std::process::{Command, Stdio};
use std::time::Instant;

use crictl_tests::critest::{
    critest_1_37_binary, critest_binary, dynamic_busybox, push_images, summary, UPSTREAMS,
};
use crictl_tests::node_e2e::report::regex_escape;
use crictl_tests::{tools, Daemon, DaemonBuilder, Registry, RegistryOptions, TestNetwork};

/// Specs that cannot apply here, with why.
const SKIPS: &[(&str, &str)] = &[
    (
        "public image with digest should be pulled and removed",
        "pulls gcr.io/k8s-staging-cri-tools/test-image-digest by an upstream digest, which no \
         locally built image can have",
    ),
    // critest's own benchmarks run only with -benchmark.
    ("benchmark", "benchmarks are not conformance specs"),
];

/// The runtime handlers critest runs against besides the built-in core.
const HANDLERS: &[(&str, &str)] = &[("runc", "/usr/sbin/runc"), ("crun", "/usr/bin/crun")];

struct Setup {
    _reg: Registry,
    _net: TestNetwork,
    daemon: Daemon,
}

fn setup() -> Setup {
    let reg = Registry::start(RegistryOptions::plain()).expect("registry starts");
    let busybox = dynamic_busybox();
    assert!(
        busybox.is_some(),
        "Debian's dynamic busybox is missing: crictl-tests/run.sh unpacks it into .test-tools/busybox"
    );
    push_images(&reg, &tools::critest_double(), busybox.as_deref()).expect("critest images pushed");
    let mut builder = DaemonBuilder::new().config(|c| {
        c.insert("log_level".into(), toml::Value::String("info".into()));
        // Debian's runc and crun as runtime handlers (RuntimeClass).
        let mut runtimes = toml::Table::new();
        for (name, path) in HANDLERS {
            let mut h = toml::Table::new();
            h.insert("path".into(), toml::Value::String(path.to_string()));
            runtimes.insert(name.to_string(), toml::Value::Table(h));
        }
        c.insert("runtimes".into(), toml::Value::Table(runtimes));
    });
    for upstream in UPSTREAMS {
        builder = builder.mirror(upstream, &reg.url());
    }
    let net = TestNetwork::new(&builder);
    let daemon = builder.start().expect("cortend starts");
    Setup {
        _reg: reg,
        _net: net,
        daemon,
    }
}

fn skips_for_kernel() -> Vec<(&'static str, &'static str)> {
    let mut skips = SKIPS.to_vec();
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'));
    if !apparmor {
        skips.push((
            "AppArmor",
            "AppArmor is not enabled in this kernel (critest skips it too, but only after trying)",
        ));
    }
    skips
}

/// Mount points under the temporary directory whose name starts `test`
/// (where critest's mount-propagation specs make theirs).
fn critest_mounts() -> Vec<String> {
    let tmp = std::env::temp_dir().join("test").display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&tmp))
        .map(str::to_string)
        .collect()
}

/// Detaches the mounts critest left under the temporary directory (its
/// mount-propagation specs do not always get theirs undone) and removes
/// their directories; only those that appeared during our run.
fn clean_critest_mounts(before: &[String]) {
    let mut left: Vec<String> = critest_mounts()
        .into_iter()
        .filter(|m| !before.contains(m))
        .collect();
    left.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mount in &left {
        eprintln!("critest left a mount at {mount}: detaching it");
        let _ = Command::new("umount").args(["-l", mount]).output();
        // /tmp/test<pod id><random>/mnt: remove the whole test directory.
        if let Some(dir) = std::path::Path::new(mount).parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// One critest run at a time, across the tests of this file: its specs
/// use fixed host ports (12000-12003).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs critest with `extra` arguments; returns its output and summary.
fn run_critest(daemon: &Daemon, extra: &[&str]) -> (String, crictl_tests::critest::Summary) {
    let critest = critest_binary().expect("critest is missing: run crictl-tests/run.sh");
    run_critest_binary(&critest, daemon, extra)
}

/// [`run_critest`] of the `critest` binary at `critest`.
fn run_critest_binary(
    critest: &std::path::Path,
    daemon: &Daemon,
    extra: &[&str],
) -> (String, crictl_tests::critest::Summary) {
    // A run that panicked elsewhere poisons the lock, not the ports.
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let endpoint = format!("unix://{}", daemon.socket().display());
    let skips = skips_for_kernel();
    for (spec, why) in &skips {
        eprintln!("skipping /{spec}/: {why}");
    }
    let skip = skips
        .iter()
        .map(|(s, _)| regex_escape(s))
        .collect::<Vec<_>>()
        .join("|");
    let started = Instant::now();
    let mounts_before = critest_mounts();
    let out = Command::new(critest)
        .current_dir(daemon.dir())
        .args(["-runtime-endpoint", &endpoint, "-image-endpoint", &endpoint])
        .args(["-ginkgo.no-color", "-ginkgo.timeout", "40m"])
        .arg(format!("-ginkgo.skip={skip}"))
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run critest");
    clean_critest_mounts(&mounts_before);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let s = summary(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    eprintln!(
        "critest {extra:?}: ran {} specs in {:.0?}: {} passed, {} failed, {} skipped",
        s.ran,
        started.elapsed(),
        s.passed,
        s.failed,
        s.skipped
    );
    (text, s)
}

fn failures(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.trim_start().starts_with("[FAIL]"))
        .collect()
}

/// Two runs in sequence (each run holds [`ONE_AT_A_TIME`]).
#[test]
fn critest_passes_over_spdy_and_websocket() {
    let s = setup();
    let (text, summary) = run_critest(&s.daemon, &[]);
    assert!(
        summary.failed == 0 && summary.ran >= 80,
        "critest: {summary:?}\n{}\n---- critest output ----\n{text}",
        failures(&text).join("\n")
    );
    let (text, summary) = run_critest(
        &s.daemon,
        &[
            "-websocket-exec",
            "-websocket-attach",
            "-websocket-portforward",
            "-ginkgo.focus=Streaming|Multiple Containers",
        ],
    );
    assert!(
        summary.failed == 0 && summary.ran >= 4,
        "critest over WebSocket: {summary:?}\n{}\n---- critest output ----\n{text}",
        failures(&text).join("\n")
    );
}

/// critest's conformance specs with each runtime handler
/// (`-runtime-handler`): pods run with it, containers made by its runtime.
#[test]
fn critest_passes_with_each_runtime_handler() {
    let s = setup();
    for (name, path) in HANDLERS {
        assert!(
            std::path::Path::new(path).is_file(),
            "{path} is missing: crictl-tests/run.sh installs it"
        );
        let (text, summary) = run_critest(&s.daemon, &["-runtime-handler", name]);
        assert!(
            summary.failed == 0 && summary.ran >= 80,
            "critest -runtime-handler {name}: {summary:?}\n{}\n---- critest output ----\n{text}",
            failures(&text).join("\n")
        );
    }
}

/// Issue 15: critest's user namespace specs (mode POD with a mapping, mode
/// NODE, and the four refusals) all run and pass: without
/// `user_namespaces` in Status critest skips them, so a count is asserted.
#[test]
fn critest_user_namespace_specs_pass() {
    let s = setup();
    let (text, summary) = run_critest(&s.daemon, &["-ginkgo.focus=UserNamespaces"]);
    assert!(
        summary.failed == 0 && summary.ran == 6 && summary.passed == 6,
        "critest user namespaces: {summary:?}\n{}\n---- critest output ----\n{text}",
        failures(&text).join("\n")
    );
}

/// critest v1.37.0's image volume specs ([Feature:ImageVolume]; v1.34.0
/// has none), with the built-in core and each runtime handler: each skips itself where the runtime lacks the feature (a
/// skip is not a pass), so all five must have passed.
#[test]
fn critest_image_volume_specs_pass() {
    let critest = critest_1_37_binary()
        .expect("critest-1.37 is missing: crictl-tests/cri-tools.sh builds it");
    let s = setup();
    // The built-in core, then each runtime handler.
    let handlers = std::iter::once("").chain(HANDLERS.iter().map(|(name, _)| *name));
    for handler in handlers {
        let mut args = vec!["-ginkgo.focus=Feature:ImageVolume"];
        if !handler.is_empty() {
            args.extend(["-runtime-handler", handler]);
        }
        let (text, summary) = run_critest_binary(&critest, &s.daemon, &args);
        assert!(
            summary.failed == 0 && summary.ran == 5 && summary.passed == 5,
            "critest image volumes {args:?}: {summary:?}\n{}\n---- critest output ----\n{text}",
            failures(&text).join("\n")
        );
    }
}

/// critest's benchmark mode against cortend (not part of the suite: run
/// with `cargo test -p crictl-tests --test critest -- --ignored --nocapture`);
/// prints critest's measurements.
#[test]
#[ignore = "a benchmark: run it on purpose"]
fn critest_benchmark() {
    let s = setup();
    let params = s.daemon.dir().join("bench.yaml");
    std::fs::write(
        &params,
        "containersNumber: 20\ncontainersNumberParallel: 2\ncontainerBenchmarkTimeoutSeconds: 60\n\
         podsNumber: 20\npodsNumberParallel: 2\npodBenchmarkTimeoutSeconds: 60\n\
         imagesNumber: 10\nimagesNumberParallel: 2\nimageBenchmarkTimeoutSeconds: 60\n\
         imagePullingBenchmarkImage: registry.k8s.io/e2e-test-images/busybox:1.29-2\n\
         imageListingBenchmarkImages:\n- registry.k8s.io/e2e-test-images/busybox:1.29-2\n\
         - gcr.io/k8s-staging-cri-tools/test-image-1:latest\n",
    )
    .expect("write params");
    let out_dir = s.daemon.dir().join("bench-out");
    std::fs::create_dir_all(&out_dir).expect("output dir");
    let critest = critest_binary().expect("critest is missing: run crictl-tests/run.sh");
    let endpoint = format!("unix://{}", s.daemon.socket().display());
    let out = Command::new(critest)
        .current_dir(s.daemon.dir())
        .args(["-runtime-endpoint", &endpoint, "-image-endpoint", &endpoint])
        .args(["-benchmark", "-ginkgo.no-color"])
        .arg(format!("-benchmarking-params-file={}", params.display()))
        .arg(format!("-benchmarking-output-dir={}", out_dir.display()))
        .stdin(Stdio::null())
        .output()
        .expect("run critest -benchmark");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("SUCCESS!"),
        "critest -benchmark failed:\n{text}"
    );
    if let Some(pid) = s.daemon.pid() {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        for key in ["VmRSS:", "VmHWM:"] {
            if let Some(line) = status.lines().find(|l| l.starts_with(key)) {
                println!("cortend {line}");
            }
        }
    }
    // One line per operation: samples, median and 90th percentile.
    let mut files: Vec<_> = std::fs::read_dir(&out_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    println!("critest -benchmark against cortend (milliseconds):");
    for file in files {
        let data: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).unwrap_or_default()).unwrap_or_default();
        let names: Vec<String> = data["operationsNames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect();
        let points = data["datapoints"].as_array().cloned().unwrap_or_default();
        for (i, name) in names.iter().enumerate() {
            let mut ms: Vec<f64> = points
                .iter()
                .filter_map(|p| p["operationsDurationsNs"][i].as_f64())
                .map(|ns| ns / 1e6)
                .collect();
            ms.sort_by(f64::total_cmp);
            if ms.is_empty() {
                continue;
            }
            let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
            println!(
                "  {:<28} {:<22} n={:<3} median {:>8.2}  p90 {:>8.2}",
                file.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                name,
                ms.len(),
                at(0.5),
                at(0.9)
            );
        }
    }
}
