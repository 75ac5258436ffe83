//! Issue 13: kubelet's Summary API (`/stats/summary`) in a one-node
//! cluster, made from cortend's ListPodSandboxStats (the cluster's kubelet
//! runs with the `PodAndContainerStatsFromCRI` feature gate; without it
//! kubelet asks its cAdvisor, which finds no pause container, so no pod
//! network): every running pod has network stats that grow with its
//! traffic and process stats; memory has availableBytes under a limit and
//! page faults.
//!
//! kubelet v1.34 copies only working set, usage and RSS of a *container's*
//! CRI memory stats into the Summary (its `makeContainerStats`); a
//! container's availableBytes and page faults are checked where cortend
//! reports them, in ListPodSandboxStats and ListContainerStats.

use std::time::Duration;

use crictl_tests::{wait, Cluster};
use serde_json::{json, Value};

/// kubelet's and cortend's counters catching up with the traffic.
const STATS: Duration = Duration::from_secs(120);
const LIMIT: u64 = 64 << 20;
/// What the test downloads from the server pod, each time.
const FILE_BYTES: u64 = 1 << 20;
const DOWNLOADS: u64 = 4;

fn container(script: &str) -> Value {
    json!({"name": "app", "image": "busybox", "command": ["sh", "-c", script]})
}

fn pod(name: &str, container: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 2},
    })
}

/// The pod called `name` in a Summary.
fn pod_in<'a>(summary: &'a Value, name: &str) -> Option<&'a Value> {
    summary["pods"]
        .as_array()?
        .iter()
        .find(|p| p["podRef"]["name"] == name)
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// `GET path` of `ip:8080`; the number of body bytes.
fn download(ip: &str, path: &str) -> usize {
    crictl_tests::network::http_get_body_len(ip, 8080, path, STATS)
}

#[test]
fn the_summary_api_has_network_process_and_memory_stats_of_every_pod() {
    let c = Cluster::start();
    // A server with a memory limit, and a plain sleeper.
    let mut server = container(&format!(
        "mkdir -p /www && head -c {FILE_BYTES} /dev/zero > /www/file && \
         exec httpd -f -p 8080 -h /www"
    ));
    server["resources"] = json!({"limits": {"memory": LIMIT.to_string()}});
    server["readinessProbe"] = json!({"tcpSocket": {"port": 8080}, "periodSeconds": 1});
    c.apply(&pod("server", server));
    c.apply(&pod(
        "idle",
        container("trap 'exit 0' TERM; while true; do sleep 1; done"),
    ));
    for p in ["server", "idle"] {
        c.kubectl(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{p}"),
            "--timeout=300s",
        ])
        .ok();
    }
    let ip = c.get(&["pod", "server"]).expect("pod server")["status"]["podIP"]
        .as_str()
        .expect("the pod has an IP")
        .to_string();

    // Every running pod: network (eth0 the default) and processes.
    let mut summary = Value::Null;
    let complete = wait::within(STATS, || {
        summary = c.summary();
        ["server", "idle"].iter().all(|name| {
            pod_in(&summary, name).is_some_and(|p| {
                p["network"]["name"] == "eth0"
                    && p["network"]["rxBytes"].is_u64()
                    && p["network"]["txBytes"].is_u64()
                    && num(&p["process_stats"]["process_count"]) >= 1
            })
        })
    });
    assert!(
        complete,
        "pods without network or process stats: {summary:#}"
    );
    let before = pod_in(&summary, "server").expect("server")["network"].clone();

    // Traffic from the host to the pod (the test's own bridge) shows.
    for _ in 0..DOWNLOADS {
        assert_eq!(download(&ip, "/file"), FILE_BYTES as usize);
    }
    let grown = wait::within(STATS, || {
        summary = c.summary();
        pod_in(&summary, "server").is_some_and(|p| {
            let n = &p["network"];
            num(&n["txBytes"]) >= num(&before["txBytes"]) + DOWNLOADS * FILE_BYTES
                && num(&n["rxBytes"]) > num(&before["rxBytes"])
                && n["interfaces"][0]["name"] == "eth0"
                && num(&n["interfaces"][0]["txBytes"]) >= num(&n["txBytes"])
        })
    });
    assert!(grown, "before: {before}\nafter: {summary:#}");

    // Pod memory: what the limit leaves, and page faults.
    let server = pod_in(&summary, "server").expect("server");
    let memory = &server["memory"];
    let working_set = num(&memory["workingSetBytes"]);
    assert!(working_set > 0, "{memory}");
    assert_eq!(
        num(&memory["availableBytes"]),
        LIMIT - working_set,
        "{memory}"
    );
    assert!(num(&memory["pageFaults"]) > 0, "{memory}");
    assert!(memory["majorPageFaults"].is_u64(), "{memory}");
    let app = &server["containers"][0];
    assert_eq!(app["name"], "app", "{server}");
    assert!(num(&app["memory"]["workingSetBytes"]) > 0, "{app}");
    assert!(num(&app["cpu"]["usageCoreNanoSeconds"]) > 0, "{app}");

    // cortend's own answers carry the container's memory in full, and the
    // same network counters.
    let daemon = c.kubelet().daemon();
    let statsp = daemon
        .crictl(&[
            "statsp",
            "--label",
            "io.kubernetes.pod.name=server",
            "-o",
            "json",
        ])
        .json();
    let linux = &statsp["stats"][0]["linux"];
    let n = &linux["network"]["defaultInterface"];
    assert_eq!(n["name"], "eth0", "{linux}");
    assert!(
        cri(&n["txBytes"]) >= DOWNLOADS * FILE_BYTES,
        "{}",
        linux["network"]
    );
    assert!(cri(&linux["process"]["processCount"]) >= 1, "{linux}");
    let cm = &linux["containers"][0]["memory"];
    assert_container_memory(cm);
    let id = linux["containers"][0]["attributes"]["id"]
        .as_str()
        .expect("container id")
        .to_string();
    let stats = daemon.crictl(&["stats", "--id", &id, "-o", "json"]).json();
    assert_container_memory(&stats["stats"][0]["memory"]);
}

/// A CRI `UInt64Value` as crictl prints it (`{"value": "12"}`).
fn cri(v: &Value) -> u64 {
    v["value"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn assert_container_memory(m: &Value) {
    let ws = cri(&m["workingSetBytes"]);
    assert!(ws > 0, "{m}");
    assert_eq!(cri(&m["availableBytes"]), LIMIT - ws, "{m}");
    assert!(cri(&m["pageFaults"]) > 0, "{m}");
    assert!(m["majorPageFaults"]["value"].is_string(), "{m}");
}
