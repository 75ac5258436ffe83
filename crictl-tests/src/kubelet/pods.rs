//! Static pod manifests for a test kubelet, and reading the pod statuses
//! kubelet reports (`/pods` of its read-only server).

use serde_json::{json, Value};

/// A pod `name` in namespace `default` with `containers`, restart policy
/// Always and a 2 s termination grace period (busybox's `sleep` as pid 1
/// ignores SIGTERM, so every stop waits that long).
pub fn pod(name: &str, containers: Vec<Value>) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "containers": containers,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 2,
        }
    })
}

/// A busybox container running `command`. The image is never pulled by
/// kubelet (`imagePullPolicy: Never`): the fixture pulled it beforehand
/// from the test registry, so no pull can reach another registry.
pub fn container(name: &str, command: &[&str]) -> Value {
    json!({
        "name": name,
        "image": "busybox",
        "imagePullPolicy": "Never",
        "command": command,
    })
}

/// A container that sleeps for an hour.
pub fn sleeper(name: &str) -> Value {
    container(name, &["sleep", "3600"])
}

/// The status of container `name` (app, init or ephemeral) in `pod`.
pub fn container_status<'a>(pod: &'a Value, name: &str) -> Option<&'a Value> {
    [
        "containerStatuses",
        "initContainerStatuses",
        "ephemeralContainerStatuses",
    ]
    .iter()
    .filter_map(|k| pod["status"][k].as_array())
    .flatten()
    .find(|s| s["name"] == name)
}

/// The runtime's id of container `name`: `containerID` without its
/// `<runtime>://` prefix.
pub fn container_id(pod: &Value, name: &str) -> Option<String> {
    let id = container_status(pod, name)?["containerID"].as_str()?;
    Some(id.rsplit("://").next().unwrap_or(id).to_string())
}

/// How often container `name` has been restarted.
pub fn restart_count(pod: &Value, name: &str) -> Option<u64> {
    container_status(pod, name)?["restartCount"].as_u64()
}

/// Whether container `name` is running.
pub fn running(pod: &Value, name: &str) -> bool {
    container_status(pod, name).is_some_and(|s| s["state"]["running"].is_object())
}

/// Whether container `name` is running and ready.
pub fn ready(pod: &Value, name: &str) -> bool {
    running(pod, name) && container_status(pod, name).is_some_and(|s| s["ready"] == true)
}

/// The reason container `name` is waiting (`CrashLoopBackOff`, ...).
pub fn waiting_reason(pod: &Value, name: &str) -> Option<String> {
    container_status(pod, name)?["state"]["waiting"]["reason"]
        .as_str()
        .map(String::from)
}

/// The phase of `pod` (`Pending`, `Running`, ...).
pub fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({"status": {
            "phase": "Running",
            "initContainerStatuses": [{"name": "init", "restartCount": 0,
                "state": {"terminated": {"exitCode": 0}}, "containerID": "corten://abc"}],
            "containerStatuses": [
                {"name": "app", "restartCount": 2, "ready": true,
                 "state": {"running": {}}, "containerID": "corten://def"},
                {"name": "crash", "restartCount": 3, "ready": false,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ]
        }})
    }

    #[test]
    fn reads_container_statuses() {
        let p = sample();
        assert_eq!(phase(&p), "Running");
        assert_eq!(container_id(&p, "init").as_deref(), Some("abc"));
        assert_eq!(container_id(&p, "app").as_deref(), Some("def"));
        assert_eq!(restart_count(&p, "app"), Some(2));
        assert!(ready(&p, "app") && running(&p, "app"));
        assert!(!running(&p, "crash") && !ready(&p, "crash"));
        assert_eq!(
            waiting_reason(&p, "crash").as_deref(),
            Some("CrashLoopBackOff")
        );
        assert!(container_status(&p, "none").is_none());
    }

    #[test]
    fn manifests_never_pull() {
        let p = pod("p", vec![sleeper("s")]);
        assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], "Never");
        assert_eq!(p["metadata"]["name"], "p");
    }
}
