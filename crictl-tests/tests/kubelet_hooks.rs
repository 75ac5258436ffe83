//! Issue 13: more of what a real kubelet asks of cortend: lifecycle hooks,
//! startup probes, exec probes that outlast their timeout, and the exit
//! reasons and termination messages kubelet reads from ContainerStatus.

use std::time::Duration;

use crictl_tests::kubelet::pods;
use crictl_tests::{wait, Kubelet};
use serde_json::json;

const POD_START: Duration = Duration::from_secs(180);
const PROBES: Duration = Duration::from_secs(120);
const CLEANUP: Duration = Duration::from_secs(300);

#[test]
fn hooks_startup_probes_and_exec_probe_timeouts() {
    let k = Kubelet::start();
    let host = k.host_dir();
    let mut hooks = pods::container(
        "hooks",
        &[
            "sh",
            "-c",
            "trap 'echo term >> /host/hooks; exit 0' TERM; while true; do sleep 1; done",
        ],
    );
    hooks["lifecycle"] = json!({
        "postStart": {"exec": {"command": ["sh", "-c", "echo post-start >> /host/hooks"]}},
        "preStop": {"exec": {"command": ["sh", "-c", "echo pre-stop >> /host/hooks"]}},
    });
    hooks["volumeMounts"] = json!([{"name": "host", "mountPath": "/host"}]);
    // Ready only once the startup probe passed, which the test decides.
    let mut startup = pods::sleeper("startup");
    startup["startupProbe"] = json!({
        "exec": {"command": ["cat", "/tmp/started"]}, "periodSeconds": 1, "failureThreshold": 1000
    });
    // A readiness probe that outlasts its 1 s timeout: it must fail (had
    // the exec run its 10 s, it would pass).
    let mut slow = pods::sleeper("slow");
    slow["readinessProbe"] = json!({
        "exec": {"command": ["sleep", "10"]}, "timeoutSeconds": 1, "periodSeconds": 2
    });
    let mut pod = pods::pod("hooks", vec![hooks, startup, slow]);
    pod["spec"]["volumes"] =
        json!([{"name": "host", "hostPath": {"path": host, "type": "Directory"}}]);
    k.add_pod(&pod);

    let pod = k.wait_pod("hooks", "all running", POD_START, |p| {
        ["hooks", "startup", "slow"]
            .iter()
            .all(|c| pods::running(p, c))
    });
    let hooks_file = host.join("hooks");
    let read = || std::fs::read_to_string(&hooks_file).unwrap_or_default();
    wait::until("the postStart hook", PROBES, || read() == "post-start\n");

    let failed = |c: &str, probe: &str| {
        k.metric(
            "/metrics/probes",
            "prober_probe_total",
            &[
                ("container", c),
                ("probe_type", probe),
                ("result", "failed"),
            ],
        )
    };
    wait::until("3 failed startup probes", PROBES, || {
        failed("startup", "Startup") >= 3.0
    });
    let now = k.pod("hooks").expect("pod");
    let s = pods::container_status(&now, "startup").expect("status");
    assert_eq!(
        (s["started"].as_bool(), s["ready"].as_bool()),
        (Some(false), Some(false))
    );
    let id = pods::container_id(&pod, "startup").expect("id");
    k.daemon()
        .crictl(&["exec", "-s", &id, "touch", "/tmp/started"])
        .ok();
    k.wait_pod("hooks", "startup started and ready", PROBES, |p| {
        let s = pods::container_status(p, "startup");
        s.is_some_and(|s| s["started"] == true) && pods::ready(p, "startup")
    });

    wait::until("3 timed-out readiness probes", PROBES, || {
        failed("slow", "Readiness") >= 3.0
    });
    let now = k.pod("hooks").expect("pod");
    assert!(!pods::ready(&now, "slow"), "{}", now["status"]);
    assert!(pods::running(&now, "slow"));
    assert_eq!(pods::restart_count(&now, "slow"), Some(0));

    // Deleting the pod runs preStop, then stops the container with SIGTERM.
    k.remove_pod("hooks");
    wait::until("the pod's containers gone", CLEANUP, || {
        k.daemon().crictl(&["ps", "-q"]).ok().trim().is_empty()
    });
    assert_eq!(read(), "post-start\npre-stop\nterm\n");
}

#[test]
fn exit_reasons_and_termination_messages_reach_kubelet() {
    let k = Kubelet::start();
    // The container's own process is the one the kernel kills.
    let mut hog = pods::container(
        "hog",
        &[
            "sh",
            "-c",
            "exec dd if=/dev/zero of=/dev/null bs=200M count=1",
        ],
    );
    hog["resources"] = json!({"limits": {"memory": "32Mi"}});
    let message = pods::container(
        "message",
        &["sh", "-c", "echo goodbye > /dev/termination-log; exit 7"],
    );
    let mut fallback = pods::container("fallback", &["sh", "-c", "echo from the log; exit 5"]);
    fallback["terminationMessagePolicy"] = json!("FallbackToLogsOnError");
    let done = pods::container("done", &["true"]);
    let mut pod = pods::pod("exits", vec![hog, message, fallback, done]);
    pod["spec"]["restartPolicy"] = json!("Never");
    k.add_pod(&pod);
    let names = ["hog", "message", "fallback", "done"];
    let pod = k.wait_pod("exits", "every container terminated", POD_START, |p| {
        names.iter().all(|c| {
            pods::container_status(p, c).is_some_and(|s| s["state"]["terminated"].is_object())
        })
    });
    let terminated =
        |c: &str| pods::container_status(&pod, c).expect("status")["state"]["terminated"].clone();
    let hog = terminated("hog");
    assert_eq!(
        (hog["reason"].as_str(), hog["exitCode"].as_i64()),
        (Some("OOMKilled"), Some(137))
    );
    let message = terminated("message");
    assert_eq!(message["exitCode"], 7);
    assert_eq!(message["reason"], "Error");
    assert_eq!(message["message"], "goodbye\n");
    let fallback = terminated("fallback");
    assert_eq!(fallback["exitCode"], 5);
    assert_eq!(fallback["message"], "from the log\n");
    let done = terminated("done");
    assert_eq!(
        (done["reason"].as_str(), done["exitCode"].as_i64()),
        (Some("Completed"), Some(0))
    );
    k.wait_pod("exits", "phase Failed", POD_START, |p| {
        pods::phase(p) == "Failed"
    });
    for c in names {
        assert_eq!(pods::restart_count(&pod, c), Some(0), "{c}");
    }
}
