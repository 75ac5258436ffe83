//! Issue 13: a real kubelet's probes and restarts against cortend, with
//! static pods: exec, HTTP and TCP readiness and liveness probes; a
//! failing liveness probe restarting its container after SIGTERM; a crash
//! loop with back-off.

use std::time::Duration;

use crictl_tests::kubelet::pods;
use crictl_tests::Kubelet;
use serde_json::{json, Value};

/// Liveness guards for a loaded 2-core machine, never timing assertions.
const POD_START: Duration = Duration::from_secs(180);
const PROBES: Duration = Duration::from_secs(120);
/// kubelet's back-off doubles from 10 s: the second restart comes after
/// about 30 s of back-off.
const CRASH_LOOP: Duration = Duration::from_secs(300);

fn probe(kind: Value) -> Value {
    let mut p = kind;
    if let Some(o) = p.as_object_mut() {
        o.insert("periodSeconds".into(), json!(1));
        o.insert("failureThreshold".into(), json!(1));
        o.insert("timeoutSeconds".into(), json!(5));
    }
    p
}

/// The count of `probe_type` probes of `container` with `result`.
fn probes(k: &Kubelet, container: &str, probe_type: &str, result: &str) -> f64 {
    k.metric(
        "/metrics/probes",
        "prober_probe_total",
        &[
            ("container", container),
            ("probe_type", probe_type),
            ("result", result),
        ],
    )
}

fn exec(k: &Kubelet, id: &str, cmd: &[&str]) {
    let mut args = vec!["exec", "-s", id];
    args.extend_from_slice(cmd);
    k.daemon().crictl(&args).ok();
}

#[test]
fn exec_http_and_tcp_probes_drive_readiness_and_keep_live_containers() {
    let k = Kubelet::start();
    // Each container is not ready until the test makes its readiness probe
    // pass, and live all along.
    let mut exec_c = pods::container("exec", &["sh", "-c", "touch /tmp/alive; exec sleep 3600"]);
    exec_c["readinessProbe"] = probe(json!({"exec": {"command": ["cat", "/tmp/ready"]}}));
    exec_c["livenessProbe"] = probe(json!({"exec": {"command": ["cat", "/tmp/alive"]}}));
    let mut http = pods::container(
        "http",
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo ok > /www/alive && exec httpd -f -p 8080 -h /www",
        ],
    );
    http["readinessProbe"] = probe(json!({"httpGet": {"path": "/ready", "port": 8080}}));
    http["livenessProbe"] = probe(json!({"httpGet": {"path": "/alive", "port": 8080}}));
    let mut tcp = pods::container("tcp", &["httpd", "-f", "-p", "9090", "-h", "/"]);
    tcp["readinessProbe"] = probe(json!({"tcpSocket": {"port": 9091}}));
    tcp["livenessProbe"] = probe(json!({"tcpSocket": {"port": 9090}}));
    k.add_pod(&pods::pod("probes", vec![exec_c, http, tcp]));
    let names = ["exec", "http", "tcp"];

    let pod = k.wait_pod("probes", "all containers running", POD_START, |p| {
        names.iter().all(|c| pods::running(p, c))
    });
    // The readiness probes ran and failed: nobody is ready.
    for c in names {
        let failed = || probes(&k, c, "Readiness", "failed") >= 1.0;
        crictl_tests::wait::until(&format!("a failed readiness probe of {c}"), PROBES, failed);
    }
    let pod_now = k.pod("probes").expect("pod");
    for c in names {
        assert!(
            !pods::ready(&pod_now, c),
            "{c} ready too early: {}",
            pod_now["status"]
        );
    }

    // Make each probe pass, each its own way.
    let id = |c: &str| pods::container_id(&pod, c).expect("container id");
    exec(&k, &id("exec"), &["touch", "/tmp/ready"]);
    exec(&k, &id("http"), &["sh", "-c", "echo ok > /www/ready"]);
    exec(&k, &id("tcp"), &["httpd", "-p", "9091", "-h", "/"]);
    let ready = k.wait_pod("probes", "all containers ready", PROBES, |p| {
        names.iter().all(|c| pods::ready(p, c)) && p["status"]["conditions"].is_array()
    });
    let pod_ready = ready["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    assert!(pod_ready, "{}", ready["status"]);

    // The liveness probes keep passing: no restart.
    for c in names {
        let live = || probes(&k, c, "Liveness", "successful") >= 3.0;
        crictl_tests::wait::until(&format!("3 passed liveness probes of {c}"), PROBES, live);
    }
    assert_eq!(probes(&k, "exec", "Liveness", "failed"), 0.0);
    // Readiness is probed all along: failing again, not ready again.
    exec(&k, &id("exec"), &["rm", "/tmp/ready"]);
    let pod = k.wait_pod("probes", "exec not ready again", PROBES, |p| {
        pods::running(p, "exec") && !pods::ready(p, "exec")
    });
    for c in names {
        assert_eq!(pods::restart_count(&pod, c), Some(0), "{}", pod["status"]);
        assert_eq!(pods::container_id(&pod, c), Some(id(c)), "{c} was replaced");
    }
    assert!(pods::ready(&pod, "http") && pods::ready(&pod, "tcp"));
}

#[test]
fn a_failing_liveness_probe_restarts_the_container_after_sigterm() {
    let k = Kubelet::start();
    let host = k.host_dir();
    // On SIGTERM the container notes it on the host and exits 0: kubelet
    // asked it to stop before any SIGKILL.
    let script = "trap 'echo term >> /host/stopped; exit 0' TERM; \
                  touch /tmp/alive; while true; do sleep 1; done";
    let mut app = pods::container("app", &["sh", "-c", script]);
    app["livenessProbe"] = probe(json!({"exec": {"command": ["cat", "/tmp/alive"]}}));
    app["volumeMounts"] = json!([{"name": "host", "mountPath": "/host"}]);
    let mut pod = pods::pod("liveness", vec![app]);
    pod["spec"]["terminationGracePeriodSeconds"] = json!(30);
    pod["spec"]["volumes"] =
        json!([{"name": "host", "hostPath": {"path": host, "type": "Directory"}}]);
    k.add_pod(&pod);
    let first = k.wait_pod("liveness", "app running", POD_START, |p| {
        pods::running(p, "app")
    });
    let old = pods::container_id(&first, "app").expect("container id");
    let live = || probes(&k, "app", "Liveness", "successful") >= 1.0;
    crictl_tests::wait::until("a passed liveness probe", PROBES, live);
    assert!(!host.join("stopped").exists());

    exec(&k, &old, &["rm", "/tmp/alive"]);
    let after = k.wait_pod("liveness", "app restarted and running", PROBES, |p| {
        pods::restart_count(p, "app") == Some(1) && pods::running(p, "app")
    });
    let new = pods::container_id(&after, "app").expect("container id");
    assert_ne!(new, old, "the container was not replaced");
    assert!(probes(&k, "app", "Liveness", "failed") >= 1.0);
    let stopped = std::fs::read_to_string(host.join("stopped")).unwrap_or_default();
    assert_eq!(
        stopped, "term\n",
        "the old container did not get SIGTERM first"
    );
    let last = &pods::container_status(&after, "app").expect("status")["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 0, "{}", after["status"]);
    assert_eq!(
        last["containerID"].as_str().map(|s| s.ends_with(&old)),
        Some(true)
    );
    // cortend saw the same: the old one exited 0, the new one runs.
    let old_state = k.daemon().crictl(&["inspect", &old]).json();
    assert_eq!(old_state["status"]["state"], "CONTAINER_EXITED");
    assert_eq!(old_state["status"]["exitCode"], 0);
    let running = k.daemon().crictl(&["ps", "-q"]).ok();
    assert_eq!(running.trim(), new);
}

#[test]
fn a_crashing_container_loops_with_back_off_and_a_growing_restart_count() {
    let k = Kubelet::start();
    let crash = pods::container("crash", &["sh", "-c", "echo crashing; exit 3"]);
    k.add_pod(&pods::pod("crash", vec![crash, pods::sleeper("steady")]));
    let mut counts = Vec::new();
    let mut backed_off = false;
    let pod = k.wait_pod("crash", "2 restarts, in back-off", CRASH_LOOP, |p| {
        let n = pods::restart_count(p, "crash").unwrap_or(0);
        if counts.last() != Some(&n) {
            counts.push(n);
        }
        backed_off |= pods::waiting_reason(p, "crash").as_deref() == Some("CrashLoopBackOff");
        n >= 2 && backed_off
    });
    assert!(
        counts.windows(2).all(|w| w[0] < w[1]),
        "restart counts {counts:?}"
    );
    let status = pods::container_status(&pod, "crash").expect("status");
    assert_eq!(status["lastState"]["terminated"]["exitCode"], 3, "{status}");
    // The steady container of the same pod is untouched.
    assert_eq!(pods::restart_count(&pod, "steady"), Some(0));
    assert!(pods::running(&pod, "steady"));

    // cortend has the attempts: each exited 3 and logged (kubelet's GC may
    // remove an older one meanwhile; it keeps the latest dead one).
    let ps = k
        .daemon()
        .crictl(&["ps", "-a", "--name", "crash", "-o", "json"])
        .json();
    let attempts: Vec<&Value> = ps["containers"].as_array().into_iter().flatten().collect();
    let mut checked = 0;
    for c in attempts.iter().filter(|c| c["state"] == "CONTAINER_EXITED") {
        let id = c["id"].as_str().unwrap_or_default();
        let (inspect, logs) = (
            k.daemon().crictl(&["inspect", id]),
            k.daemon().crictl(&["logs", id]),
        );
        if !inspect.output.status.success() || !logs.output.status.success() {
            continue;
        }
        assert_eq!(
            inspect.json()["status"]["exitCode"],
            3,
            "{}",
            inspect.stdout()
        );
        assert!(logs.stdout().contains("crashing"), "{}", logs.stdout());
        checked += 1;
    }
    assert!(checked >= 1, "no exited attempt: {ps}");
    let max_attempt = attempts
        .iter()
        .filter_map(|c| c["metadata"]["attempt"].as_u64())
        .max();
    assert!(max_attempt >= Some(2), "{ps}");
}
