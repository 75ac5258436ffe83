//! Kubernetes' node conformance suite: the `[NodeConformance]` specs of
//! `e2e_node.test` (k8s.io/kubernetes v1.34.3, built by
//! `crictl-tests/k8s-tools.sh`), Serial ones included, against cortend on a
//! node of the test's own ([`crictl_tests::node_e2e`]). Every spec must
//! pass, except those in [`SKIPS`], each skipped by its full name for a
//! reason of this machine's, never corten's.
//!
//! `CORTEN_NODE_E2E_FOCUS` (a regex over spec names) narrows the run, to
//! work on a few specs; the skip list applies still.
//! `CORTEN_NODE_E2E_PROCS` sets the number of suite processes.
//! `CORTEN_NODE_E2E_LONG=1` runs the specs of [`LONG`] too.
//! `CORTEN_NODE_E2E_CRI_STATS=0` turns [`FEATURE_GATES`] off.
//! `CORTEN_NODE_E2E_NO_SKIPS=1` runs the specs of [`SKIPS`] and [`OWED`]
//! too (with a focus, to see whether one passes now).

use std::fmt::Write as _;

use crictl_tests::node_e2e::report::exactly;
use crictl_tests::node_e2e::{Node, Outcome, Run, Selection};

/// The specs that cannot pass on these machines, by full name, with why.
const SKIPS: &[(&str, &str)] = &[
    (
        "[sig-node] PrivilegedPod [NodeConformance] should enable privileged commands [LinuxOnly]",
        "it runs `ip link add dummy1 type dummy`: this machine's kernel has no dummy link type \
         (`ip link add x type dummy` says \"Unknown device type\" on the host too)",
    ),
    (
        "[sig-node] OOMKiller [LinuxOnly] [NodeConformance] [Serial] single process container \
         The containers terminated by OOM killer should have the reason set to OOMKilled",
        "it changes kubelet's configuration and restarts kubelet with `sudo systemctl restart \
         kubelet-*` (test/e2e_node/util.go); these machines have neither systemd nor sudo, and \
         the suite's kubelet is not a unit",
    ),
    (
        "[sig-node] POD Resources API [Serial] [Feature:PodResourcesAPI] when querying /metrics \
         [NodeConformance] should report the values for the podresources metrics",
        "it changes kubelet's configuration and restarts kubelet with `sudo systemctl`: no \
         systemd or sudo on these machines",
    ),
    (
        "[sig-node] OOMKiller [LinuxOnly] [NodeConformance] [Serial] init container \
         The containers terminated by OOM killer should have the reason set to OOMKilled",
        "as the single process container spec: it restarts kubelet with `sudo systemctl`",
    ),
    (
        "[sig-node] MirrorPod when recreating a static pod it should launch successfully even \
         if it temporarily failed termination due to volume failing to unmount \
         [NodeConformance] [Serial]",
        "it serves an NFS volume from a pod (image volume/nfs) and mounts it on the node: this \
         machine's kernel has neither the nfs nor the nfsd filesystem (/proc/filesystems)",
    ),
    (
        // (two blanks after "mirror pod": the suite's text has them)
        "[sig-node] MirrorPodWithGracePeriod when create a mirror pod  and the container \
         runtime is temporarily down during pod termination [NodeConformance] [Serial] \
         [Disruptive] the mirror pod should terminate successfully",
        "it stops and starts the container runtime as a systemd unit over D-Bus \
         (test/e2e_node/util.go, performContainerRuntimeUnitOp): no systemd on these machines",
    ),
    (
        "[sig-node] Swap [LinuxOnly] [Feature:NodeSwap] [Serial] [NodeConformance] with a \
         critical pod - should avoid swap",
        "it reads cgroup v2's memory.swap.max and, unlike the swap specs beside it, does not \
         skip itself on cgroup v1; this machine mounts cgroup v1",
    ),
    (
        "[sig-node] ContainerMetrics [LinuxOnly] [NodeConformance] when querying \
         /metrics/cadvisor should report container metrics",
        "every series matches (ListMetricDescriptors/ListPodSandboxMetrics under \
         PodAndContainerStatsFromCRI) but container_fs_inodes_total and _free: v1.34 bounds \
         them by 100 and 10 Ki, while they are the counts of the filesystem under the writable \
         layers (cAdvisor's meaning, and what CRI-O reports; upstream's later spec bounds them \
         by 10 Mi), and this machine's root filesystem has 16 Mi inodes (16,777,216 total, \
         ~16.2 M free), beyond either bound",
    ),
    (
        "[sig-node] Summary API [NodeConformance] when querying /stats/summary should report \
         resource usage through the stats api",
        "with PodAndContainerStatsFromCRI (on in this suite) cortend gives every field the spec \
         checks; it fails on what is not the runtime's: the `kubelet` and `misc` system \
         containers (no systemd here, and the suite's kubelet must run with empty system \
         cgroup flags), PSI (cgroup v1 here), and container memory availableBytes and page \
         faults, which kubelet v1.34's CRI stats provider leaves out of the Summary \
         (makeContainerStats copies working set, usage and RSS only; cortend sends them, \
         tests/cluster_stats.rs checks them in ListPodSandboxStats and ContainerStats)",
    ),
];

/// Specs that fail because corten lacks something yet, by full name, with
/// the issue that builds it. They are not run (so that the rest guards
/// against regressions in CI) and are printed on every run: this list is
/// a debt, not a reason. A name here that the suite does not have fails
/// the test, as for [`SKIPS`].
const OWED: &[(&str, &str)] = &[];

/// Specs that pass but are too long for CI's 90 minutes on 2 cores, by
/// full name, with their length; run with `CORTEN_NODE_E2E_LONG=1`.
const LONG: &[(&str, &str)] = &[(
    "[sig-node] Pods should cap back-off at MaxContainerBackOff [Slow] [NodeConformance]",
    "30 minutes by design: it sleeps 2 x MaxCrashLoopBackOff (10 min), then waits out four \
     restarts at the 5-minute cap; the crash-loop back-off itself is kubelet's, and \
     `kubelet_pods` checks that restarts back off on corten",
)];

/// Feature gates on for kubelet and the suite (off with
/// `CORTEN_NODE_E2E_CRI_STATS=0`): kubelet takes pod and
/// container stats and `/metrics/cadvisor` from the runtime (the CRI's
/// stats and metrics RPCs), not from cAdvisor, which has no handler for
/// corten's containers (it labels series through containerd's and CRI-O's
/// own APIs) and no pause container to find a pod's network by.
const FEATURE_GATES: &[&str] = &["PodAndContainerStatsFromCRI"];

/// The suite's focus: every node conformance spec.
const FOCUS: &str = r"\[NodeConformance\]";

/// Suite processes for the parallel specs (`CORTEN_NODE_E2E_PROCS` says
/// otherwise): most of a spec's time is spent waiting for pods, so more
/// processes than the machine's 2 cores pay.
const PROCS: usize = 4;

// About 30 minutes on 2 cores (4 suite processes); run alone with
// `cargo test -p crictl-tests --test node_conformance -- --nocapture`.
#[test]
fn node_conformance() {
    let node = match Node::start() {
        Ok(node) => node,
        Err(e) => panic!("the node for the conformance suite does not start: {e:#}"),
    };
    let focus = std::env::var("CORTEN_NODE_E2E_FOCUS").unwrap_or_else(|_| FOCUS.to_string());
    let long = std::env::var("CORTEN_NODE_E2E_LONG").is_ok_and(|v| v == "1");
    let no_skips = std::env::var("CORTEN_NODE_E2E_NO_SKIPS").is_ok_and(|v| v == "1");
    let not_run = || {
        (if no_skips { &[][..] } else { SKIPS })
            .iter()
            .chain(if no_skips { &[][..] } else { OWED })
            .chain(if long { &[][..] } else { LONG })
    };
    let skip = not_run()
        .map(|(name, _)| exactly(name))
        .collect::<Vec<_>>()
        .join("|");
    let procs = std::env::var("CORTEN_NODE_E2E_PROCS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(PROCS);
    let selection = Selection {
        focus,
        skip,
        feature_gates: if std::env::var("CORTEN_NODE_E2E_CRI_STATS").is_ok_and(|v| v == "0") {
            Vec::new()
        } else {
            FEATURE_GATES
                .iter()
                .map(|g| (g.to_string(), true))
                .collect()
        },
        procs,
    };
    let run = match node.run(&selection) {
        Ok(run) => run,
        Err(e) => panic!("the node conformance suite did not run: {e:#}"),
    };
    let text = describe(&run, long);
    eprintln!("{text}");
    let summary = run.report.summary();
    let mut problems = Vec::new();
    if summary.failed > 0 || !run.report.suite_failures.is_empty() {
        problems.push(format!(
            "{} specs failed, {} suite nodes failed",
            summary.failed,
            run.report.suite_failures.len()
        ));
    }
    if summary.ran == 0 {
        problems.push("no spec ran".into());
    }
    if !run.status.success() && summary.failed == 0 {
        problems.push(format!("the suite exited with {}", run.status));
    }
    for change in &run.host_changes {
        problems.push(format!("the machine changed: {change}"));
    }
    for (name, _) in not_run() {
        match run.report.spec(name) {
            None => problems.push(format!("the skip list names no spec of the suite: {name}")),
            Some(spec) if spec.outcome != Outcome::NotSelected => {
                problems.push(format!("a spec skipped by name ran all the same: {name}"))
            }
            Some(_) => {}
        }
    }
    assert!(
        problems.is_empty(),
        "node conformance: {}\n(suite log: {}, kubelet log: {})",
        problems.join("; "),
        run.log.display(),
        run.report_dir.join("kubelet.log").display()
    );
}

/// The run in words: counts, wall time, every failure with its message,
/// every skip with its reason.
fn describe(run: &Run, long: bool) -> String {
    let s = run.report.summary();
    let mut out = String::new();
    let skipped_by_name = run
        .report
        .with(Outcome::NotSelected)
        .filter(|spec| SKIPS.iter().any(|(n, _)| *n == spec.name))
        .count();
    let owed = run
        .report
        .with(Outcome::NotSelected)
        .filter(|spec| OWED.iter().any(|(n, _)| *n == spec.name))
        .count();
    let _ = writeln!(
        out,
        "node conformance: {} specs ran: {} passed, {} failed, {} skipped themselves; \
         {} skipped by name; {} owed (not run); {} long (not run); wall time {:.0?}",
        s.ran,
        s.passed,
        s.failed,
        s.skipped_itself,
        skipped_by_name,
        owed,
        if long { 0 } else { LONG.len() },
        run.wall
    );
    for spec in run.report.with(Outcome::Failed) {
        let _ = writeln!(
            out,
            "FAILED [{}] {} ({:.0?})\n    {}\n    at {}",
            spec.state,
            spec.name,
            spec.run_time,
            spec.message.trim().replace('\n', "\n    "),
            spec.location
        );
    }
    for failure in &run.report.suite_failures {
        let _ = writeln!(out, "SUITE FAILED {failure}");
    }
    for spec in run.report.with(Outcome::SkippedItself) {
        let _ = writeln!(
            out,
            "skipped itself: {}\n    {}",
            spec.name,
            spec.message.trim()
        );
    }
    for (name, why) in SKIPS {
        let _ = writeln!(out, "skipped by name: {name}\n    {why}");
    }
    for (name, owed) in OWED {
        let _ = writeln!(out, "OWED, not run: {name}\n    {owed}");
    }
    if !long {
        for (name, why) in LONG {
            let _ = writeln!(
                out,
                "long, not run (CORTEN_NODE_E2E_LONG=1 runs it): {name}\n    {why}"
            );
        }
    }
    out
}
