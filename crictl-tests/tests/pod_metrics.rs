//! Issue 16: ListMetricDescriptors and ListPodSandboxMetrics (what kubelet
//! shows at `/metrics/cadvisor` with `PodAndContainerStatsFromCRI`),
//! through the real crictl's `metricdescs` and `metricsp`: every metric
//! has the labels of its descriptor, values follow the container's limits
//! and the pod's traffic, and only ready pods and running containers are
//! listed.

mod container_env;

use std::collections::HashMap;
use std::net::TcpStream;
use std::time::Duration;

use container_env::Env;
use crictl_tests::wait;
use serde_json::{json, Value};

const LIMIT: u64 = 64 << 20;
const FILE_BYTES: u64 = 1 << 20;
const DOWNLOADS: u64 = 3;

/// Descriptor name -> its label keys.
fn descriptors(env: &Env) -> HashMap<String, Vec<String>> {
    let v = env.d.crictl(&["metricdescs", "-o", "json"]).json();
    let list = v["descriptors"].as_array().expect("descriptors");
    let mut out = HashMap::new();
    for d in list {
        let name = d["name"].as_str().expect("a name").to_string();
        assert!(
            d["help"].as_str().is_some_and(|h| !h.is_empty()),
            "no help: {d}"
        );
        let keys = d["labelKeys"]
            .as_array()
            .map(|k| {
                k.iter()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        assert!(out.insert(name.clone(), keys).is_none(), "{name} twice");
    }
    out
}

fn pod_metrics(env: &Env) -> Vec<Value> {
    let v = env.d.crictl(&["metricsp", "-o", "json"]).json();
    v["podMetrics"].as_array().cloned().unwrap_or_default()
}

/// The value of a CRI metric as crictl prints it (`{"value": "12"}`).
fn value(m: &Value) -> u64 {
    m["value"]["value"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn labels(m: &Value) -> Vec<&str> {
    m["labelValues"]
        .as_array()
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The metrics called `name` among `metrics`.
fn named<'a>(metrics: &'a [Value], name: &str) -> Vec<&'a Value> {
    metrics.iter().filter(|m| m["name"] == name).collect()
}

/// Every metric of `pod` has a descriptor and as many label values as it
/// has keys.
fn assert_described(pod: &Value, descs: &HashMap<String, Vec<String>>) {
    let all = pod["metrics"].as_array().into_iter().flatten().chain(
        pod["containerMetrics"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["metrics"].as_array().into_iter().flatten()),
    );
    for m in all {
        let name = m["name"].as_str().unwrap_or_default();
        let keys = descs
            .get(name)
            .unwrap_or_else(|| panic!("no descriptor for {m}"));
        assert_eq!(labels(m).len(), keys.len(), "{m} against {keys:?}");
        assert!(m["timestamp"].is_string(), "{m}");
        assert!(
            matches!(m["metricType"].as_str(), None | Some("COUNTER" | "GAUGE")),
            "{m}"
        );
    }
}

/// `GET path` of `ip:8080`; the number of body bytes.
fn download(ip: &str, path: &str) -> usize {
    crictl_tests::network::http_get_body_len(ip, 8080, path, Duration::from_secs(60))
}

/// The POD series `name` on `eth0` of the pod in `pods` with id `pod`.
fn pod_network(pods: &[Value], pod: &str, name: &str) -> Option<u64> {
    let p = pods.iter().find(|p| p["podSandboxId"] == pod)?;
    let metrics = p["metrics"].as_array()?;
    named(metrics, name)
        .into_iter()
        .find(|m| labels(m).last() == Some(&"eth0"))
        .map(value)
}

#[test]
fn pod_metrics_are_described_follow_limits_and_traffic_and_only_cover_what_runs() {
    let env = Env::new();
    let descs = descriptors(&env);
    for name in [
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
        "container_spec_memory_limit_bytes",
        "container_network_transmit_bytes_total",
        "container_processes",
    ] {
        let keys = descs.get(name).unwrap_or_else(|| panic!("no {name}"));
        assert_eq!(
            keys[..5],
            ["container", "pod", "namespace", "image", "id"],
            "{name}"
        );
    }
    assert!(pod_metrics(&env).is_empty(), "no pod, no metrics");

    let pod = env.pod("metrics");
    let mut web = env.container_config(
        "web",
        &[
            "sh",
            "-c",
            &format!(
                "mkdir -p /www && head -c {FILE_BYTES} /dev/zero > /www/file && \
                 exec httpd -f -p 8080 -h /www"
            ),
        ],
    );
    web["linux"] = json!({"resources": {"memory_limit_in_bytes": LIMIT}});
    let web = env.create(&pod, "metrics", &web);
    env.d.crictl(&["start", &web]).ok();
    let idle = env.run(&pod, "metrics", "idle", &["sleep", "3600"]);
    let ip = env.d.crictl(&["inspectp", &pod]).json()["status"]["network"]["ip"]
        .as_str()
        .expect("a pod IP")
        .to_string();
    wait::until("the pod serves", Duration::from_secs(30), || {
        TcpStream::connect((ip.as_str(), 8080)).is_ok()
    });

    let pods = pod_metrics(&env);
    assert_eq!(pods.len(), 1, "{pods:?}");
    let p = &pods[0];
    assert_eq!(p["podSandboxId"], pod.as_str(), "{p}");
    assert_described(p, &descs);
    let containers = p["containerMetrics"].as_array().expect("containers");
    let mut ids: Vec<&str> = containers
        .iter()
        .filter_map(|c| c["containerId"].as_str())
        .collect();
    ids.sort_unstable();
    let mut want = [web.as_str(), idle.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want, "{p}");
    let of = |id: &str| -> Vec<Value> {
        containers
            .iter()
            .find(|c| c["containerId"] == id)
            .and_then(|c| c["metrics"].as_array().cloned())
            .unwrap_or_default()
    };
    let web_metrics = of(&web);
    let limit = named(&web_metrics, "container_spec_memory_limit_bytes");
    assert_eq!(limit.len(), 1, "{web_metrics:?}");
    assert_eq!(value(limit[0]), LIMIT, "{}", limit[0]);
    // The base labels name the container, its pod and image.
    let l = labels(limit[0]);
    assert_eq!(l[..3], ["web", "metrics", "default"], "{}", limit[0]);
    assert!(l[3].contains("busybox"), "{}", limit[0]);
    assert_eq!(l[4], web, "{}", limit[0]);
    let ws = named(&web_metrics, "container_memory_working_set_bytes");
    assert!(ws.len() == 1 && value(ws[0]) > 0, "{web_metrics:?}");
    let procs = named(&web_metrics, "container_processes");
    assert!(procs.len() == 1 && value(procs[0]) >= 1, "{web_metrics:?}");
    // No limit is 0 (as kubelet's cAdvisor reports an unlimited one).
    let idle_limit = named(&of(&idle), "container_spec_memory_limit_bytes")
        .first()
        .map(|m| value(m));
    assert_eq!(idle_limit, Some(0), "{:?}", of(&idle));

    // The pod's network series carry container "POD" and follow traffic.
    let pod_series = p["metrics"].as_array().expect("pod metrics");
    assert!(
        pod_series.iter().all(|m| labels(m)[0] == "POD"),
        "{pod_series:?}"
    );
    let before = pod_network(&pods, &pod, "container_network_transmit_bytes_total")
        .expect("transmit bytes on eth0");
    for _ in 0..DOWNLOADS {
        assert_eq!(download(&ip, "/file"), FILE_BYTES as usize);
    }
    let mut after = 0;
    wait::until(
        "the pod's transmit bytes to grow",
        Duration::from_secs(30),
        || {
            after = pod_network(
                &pod_metrics(&env),
                &pod,
                "container_network_transmit_bytes_total",
            )
            .unwrap_or(0);
            after >= before + DOWNLOADS * FILE_BYTES
        },
    );

    // A removed container is gone from the metrics; an exited one too.
    env.d.crictl(&["rm", "--force", &idle]).ok();
    env.d.crictl(&["stop", &web]).ok();
    let pods = pod_metrics(&env);
    assert_eq!(pods.len(), 1, "{pods:?}");
    assert!(
        pods[0]["containerMetrics"]
            .as_array()
            .is_none_or(|c| c.is_empty()),
        "{pods:?}"
    );
    assert_described(&pods[0], &descs);

    // A stopped pod is not listed.
    env.d.crictl(&["stopp", &pod]).ok();
    assert!(pod_metrics(&env).is_empty(), "a stopped pod");
}
