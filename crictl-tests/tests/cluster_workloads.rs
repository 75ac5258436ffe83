//! Issue 13: a one-node cluster (etcd, kube-apiserver, the controller
//! manager, the scheduler, kubelet on cortend) driven by the real kubectl:
//! a Deployment rolls out, scales up and down and rolls to a new image; a
//! Job runs to completion; pods show the image names their manifests
//! asked for; deleting a pod honours its termination grace period. The
//! control plane listens on loopback only, and a failing test leaves
//! nothing behind.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crictl_tests::cluster::Streamed;
use crictl_tests::{cgroups, wait, Cluster};
use serde_json::{json, Value};

/// Pulls, pod starts and controller loops on a loaded 2-core machine.
const ROLLOUT: Duration = Duration::from_secs(300);
const ROLLOUT_FLAG: &str = "--timeout=300s";

/// A busybox container that exits at once on SIGTERM (a shell as pid 1
/// ignores it unless trapped).
fn sleeper(name: &str, image: &str) -> Value {
    json!({
        "name": name,
        "image": image,
        "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"],
    })
}

fn pod(name: &str, containers: Vec<Value>) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"test": name}},
        "spec": {"containers": containers, "terminationGracePeriodSeconds": 5},
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

/// Pods of `selector` that run and are not being deleted.
fn running_pods(c: &Cluster, selector: &str) -> Vec<Value> {
    c.pods("default", selector)
        .into_iter()
        .filter(|p| {
            p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null()
        })
        .collect()
}

/// The ids of what cortend has for pods with CRI label `label`: pod
/// sandboxes (`pods`) or containers (`ps`), in `state`.
fn in_cortend(c: &Cluster, what: &str, state: &str, label: &str) -> Vec<String> {
    let out = c
        .kubelet()
        .daemon()
        .crictl(&[what, "--state", state, "--label", label, "-q"])
        .ok();
    out.split_whitespace().map(String::from).collect()
}

/// The image each container of `pod` runs, as its status says.
fn status_images(pod: &Value) -> Vec<(String, String, String)> {
    pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap_or_default().to_string();
            (text("name"), text("image"), text("imageID"))
        })
        .collect()
}

#[test]
fn a_deployment_rolls_out_scales_and_rolls_to_a_new_image() {
    let c = Cluster::start();
    let new_digest = c.push_busybox("library/busybox", "1.36");
    c.apply(&deployment("web", 2, "busybox"));
    c.kubectl(&["rollout", "status", "deployment/web", ROLLOUT_FLAG])
        .ok();
    assert_eq!(running_pods(&c, "app=web").len(), 2);

    c.kubectl(&["scale", "deployment/web", "--replicas=4"]).ok();
    c.kubectl(&["rollout", "status", "deployment/web", ROLLOUT_FLAG])
        .ok();
    wait::until("4 web pods, in the API and in cortend", ROLLOUT, || {
        running_pods(&c, "app=web").len() == 4
            && in_cortend(&c, "pods", "ready", "app=web").len() == 4
    });

    c.kubectl(&["scale", "deployment/web", "--replicas=1"]).ok();
    wait::until("1 web pod left, in the API and in cortend", ROLLOUT, || {
        c.pods("default", "app=web").len() == 1
            && in_cortend(&c, "pods", "ready", "app=web").len() == 1
    });

    // A new image: a new ReplicaSet takes over, the old pod goes.
    let image = "docker.io/library/busybox:1.36";
    c.kubectl(&["set", "image", "deployment/web", &format!("main={image}")])
        .ok();
    c.kubectl(&["rollout", "status", "deployment/web", ROLLOUT_FLAG])
        .ok();
    wait::until("the old pod gone", ROLLOUT, || {
        c.pods("default", "app=web").len() == 1
            && in_cortend(&c, "pods", "ready", "app=web").len() == 1
    });
    let pods = running_pods(&c, "app=web");
    assert_eq!(pods.len(), 1);
    let images = status_images(&pods[0]);
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(images[0].1, image, "{images:?}");
    assert!(images[0].2.ends_with(&new_digest), "{images:?}");
}

#[test]
fn pods_show_the_image_names_their_manifests_asked_for() {
    let c = Cluster::start();
    let tagged = c.push_busybox("library/busybox", "1.36");
    let k8s = c.push_busybox("e2e-test-images/busybox", "1.36.1-1");
    let asked = [
        ("short", "busybox"),
        ("tagged", "docker.io/library/busybox:1.36"),
        ("k8s", "registry.k8s.io/e2e-test-images/busybox:1.36.1-1"),
    ];
    let containers = asked.iter().map(|(n, i)| sleeper(n, i)).collect();
    c.apply(&pod("images", containers));
    c.kubectl(&["wait", "--for=condition=Ready", "pod/images", ROLLOUT_FLAG])
        .ok();

    let wide = c.kubectl(&["get", "pods", "-o", "wide"]).ok();
    let line = wide
        .lines()
        .find(|l| l.starts_with("images "))
        .unwrap_or_else(|| panic!("no pod images in {wide}"));
    assert!(
        line.contains("3/3") && line.contains("Running") && line.contains(c.node()),
        "{wide}"
    );
    // What `-o wide` shows of the containers' images: the statuses' names.
    let columns = c
        .kubectl(&[
            "get",
            "pod",
            "images",
            "-o",
            "custom-columns=NAME:.status.containerStatuses[*].name,\
             IMAGE:.status.containerStatuses[*].image",
        ])
        .ok();
    eprintln!("{wide}{columns}");
    assert!(!columns.contains("sha256:"), "{columns}");

    let pod = c.get(&["pod", "images"]).expect("pod images");
    let mut images = status_images(&pod);
    images.sort();
    let by_name = |name: &str| {
        images
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("no status of {name}: {images:?}"))
    };
    for (name, image) in asked {
        assert_eq!(by_name(name).1, image, "{images:?}");
    }
    // The image ids are the digests pulled.
    assert!(by_name("tagged").2.ends_with(&tagged), "{images:?}");
    assert!(by_name("k8s").2.ends_with(&k8s), "{images:?}");
    assert!(by_name("short").2.contains("sha256:"), "{images:?}");
}

/// Issue 15: a RuntimeClass whose handler is one of cortend's
/// `[runtimes.<name>]` runs its pods' containers with that runtime (Debian's
/// runc); one whose handler cortend does not have leaves its pod unmade,
/// with kubelet's event saying why.
#[test]
fn a_pod_of_a_runtime_class_runs_under_its_handler() {
    let runc = Path::new("/usr/sbin/runc");
    assert!(runc.is_file(), "crictl-tests/run.sh installs Debian's runc");
    let c = Cluster::start_with(|k| k.runtime_handler("runc", runc));
    for (class, handler) in [("runc-class", "runc"), ("ghost-class", "ghost")] {
        c.apply(&json!({
            "apiVersion": "node.k8s.io/v1",
            "kind": "RuntimeClass",
            "metadata": {"name": class},
            "handler": handler,
        }));
    }
    let mut manifest = pod("classy", vec![sleeper("main", "busybox")]);
    manifest["spec"]["runtimeClassName"] = json!("runc-class");
    c.apply(&manifest);
    c.kubectl(&["wait", "--for=condition=Ready", "pod/classy", ROLLOUT_FLAG])
        .ok();
    let hostname = c
        .kubectl(&["exec", "classy", "--", "hostname"])
        .ok()
        .trim()
        .to_string();
    assert_eq!(hostname, "classy");

    let d = c.kubelet().daemon();
    let pods = in_cortend(&c, "pods", "ready", "test=classy");
    assert_eq!(pods.len(), 1, "{}", d.crictl(&["pods", "-o", "json"]).ok());
    let shown = d.crictl(&["inspectp", "-o", "json", &pods[0]]).json();
    assert_eq!(shown["status"]["runtimeHandler"], "runc", "{shown}");
    let containers = in_cortend(&c, "ps", "running", "io.kubernetes.pod.name=classy");
    assert_eq!(containers.len(), 1, "{containers:?}");
    let id = &containers[0];
    // runc's own state of it: runc made it.
    let out = std::process::Command::new(runc)
        .arg("--root")
        .arg(d.state_dir().join("containers").join(id).join("runc"))
        .args(["state", id])
        .output()
        .expect("runc state");
    let state: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "runc state {id}: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(state["status"], "running", "{state}");

    let mut ghost = pod("ghostly", vec![sleeper("main", "busybox")]);
    ghost["spec"]["runtimeClassName"] = json!("ghost-class");
    c.apply(&ghost);
    let mut events = String::new();
    wait::until("kubelet's event on the ghost handler", ROLLOUT, || {
        events = c
            .kubectl(&[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=ghostly",
            ])
            .ok();
        events.contains("FailedCreatePodSandBox") && events.contains("not configured")
    });
    assert!(events.contains("ghost"), "{events}");
    assert!(
        in_cortend(&c, "pods", "ready", "test=ghostly").is_empty(),
        "a pod of an unknown handler was made"
    );
}

/// Issue 15: `hostUsers: false` (user namespaces, on by default since
/// Kubernetes 1.33): kubelet gives the pod a range of host ids and cortend
/// runs it in a user namespace of that mapping; its root is not the host's.
#[test]
fn a_pod_without_host_users_runs_in_a_user_namespace() {
    let c = Cluster::start();
    let mut manifest = pod("userns", vec![sleeper("main", "busybox")]);
    manifest["spec"]["hostUsers"] = json!(false);
    c.apply(&manifest);
    c.kubectl(&["wait", "--for=condition=Ready", "pod/userns", ROLLOUT_FLAG])
        .ok();
    let map = c
        .kubectl(&["exec", "userns", "--", "cat", "/proc/self/uid_map"])
        .ok();
    let fields: Vec<u64> = map
        .split_whitespace()
        .map(|f| f.parse().expect("uid_map numbers"))
        .collect();
    assert_eq!(fields.len(), 3, "one range: {map}");
    assert_eq!(fields[0], 0, "{map}");
    assert!(
        fields[1] >= 65536,
        "container root is not a low host id: {map}"
    );
    assert_eq!(fields[2], 65536, "{map}");
    let uid = c.kubectl(&["exec", "userns", "--", "id", "-u"]).ok();
    assert_eq!(uid.trim(), "0");
    // The service account token, a volume kubelet made, reads inside.
    let token = c
        .kubectl(&[
            "exec",
            "userns",
            "--",
            "cat",
            "/var/run/secrets/kubernetes.io/serviceaccount/namespace",
        ])
        .ok();
    assert_eq!(token.trim(), "default");
    // The same pod seen by cortend: its user namespace with kubelet's map.
    let pods = in_cortend(&c, "pods", "ready", "test=userns");
    assert_eq!(pods.len(), 1, "{pods:?}");
    let shown = c
        .kubelet()
        .daemon()
        .crictl(&["inspectp", "-o", "json", &pods[0]])
        .json();
    let opts = &shown["status"]["linux"]["namespaces"]["options"]["usernsOptions"];
    assert_eq!(
        opts["uids"][0]["hostId"].as_u64(),
        Some(fields[1]),
        "{shown}"
    );
}

#[test]
fn a_job_runs_to_completion() {
    let c = Cluster::start();
    c.apply(&json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "count", "namespace": "default"},
        "spec": {
            "completions": 3,
            "parallelism": 2,
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "work",
                    "image": "busybox",
                    "command": ["sh", "-c", "echo counted by $HOSTNAME"],
                }],
            }},
        },
    }));
    c.kubectl(&[
        "wait",
        "--for=condition=Complete",
        "job/count",
        ROLLOUT_FLAG,
    ])
    .ok();
    let job = c.get(&["job", "count"]).expect("job count");
    assert_eq!(job["status"]["succeeded"], 3, "{}", job["status"]);
    assert!(job["status"]["failed"].is_null(), "{}", job["status"]);

    let pods = c.pods("default", "job-name=count");
    assert_eq!(pods.len(), 3, "{pods:?}");
    for p in &pods {
        assert_eq!(p["status"]["phase"], "Succeeded", "{}", p["status"]);
        let name = p["metadata"]["name"].as_str().expect("pod name");
        let terminated = &p["status"]["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(terminated["exitCode"], 0, "{}", p["status"]);
        assert_eq!(terminated["reason"], "Completed", "{}", p["status"]);
        let logs = c.kubectl(&["logs", name]).ok();
        assert_eq!(logs, format!("counted by {name}\n"));
    }
}

#[test]
fn deleting_a_pod_honours_its_grace_period_and_its_sigterm_trap() {
    let c = Cluster::start();
    let host = c.kubelet().host_dir();
    let log = host.join("log");
    let release = host.join("release");
    // On SIGTERM the container logs it, waits for the test's word, logs
    // that and exits 0: only a container left its grace period gets there.
    let script = "trap 'echo term >> /host/log; \
                  until [ -f /host/release ]; do sleep 0.2; done; \
                  echo done >> /host/log; exit 0' TERM; \
                  echo up >> /host/log; while true; do sleep 1; done";
    let mut manifest = pod(
        "graceful",
        vec![json!({
            "name": "app",
            "image": "busybox",
            "command": ["sh", "-c", script],
            "volumeMounts": [{"name": "host", "mountPath": "/host"}],
        })],
    );
    manifest["spec"]["terminationGracePeriodSeconds"] = json!(600);
    manifest["spec"]["volumes"] = json!([
        {"name": "host", "hostPath": {"path": host, "type": "Directory"}},
    ]);
    c.apply(&manifest);
    c.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/graceful",
        ROLLOUT_FLAG,
    ])
    .ok();
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    wait::until("the container up", ROLLOUT, || read() == "up\n");
    let label = "io.kubernetes.pod.name=graceful";
    let running = in_cortend(&c, "ps", "running", label);
    assert_eq!(running.len(), 1, "{running:?}");
    let id = running[0].clone();

    // The pod's statuses from now on, as kubelet reports them.
    let mut watch = Streamed::spawn(
        c.kubectl_command(&[
            "get",
            "pod",
            "graceful",
            "--watch",
            "--output-watch-events",
            "-o",
            "json",
        ]),
        "kubectl get --watch",
    );
    watch.wait_stdout("the watch's first event", ROLLOUT, |o| {
        o.contains("\"ADDED\"")
    });
    c.kubectl(&["delete", "pod", "graceful", "--wait=false"])
        .ok();
    wait::until("SIGTERM trapped", ROLLOUT, || read() == "up\nterm\n");
    // Terminating, with the pod's grace period, and still running.
    let pod = c.get(&["pod", "graceful"]).expect("the pod is still there");
    assert!(!pod["metadata"]["deletionTimestamp"].is_null(), "{pod}");
    assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 600, "{pod}");
    assert_eq!(in_cortend(&c, "ps", "running", label), vec![id.clone()]);

    std::fs::write(&release, "").expect("release the trap");
    wait::until("the trap's end", ROLLOUT, || read() == "up\nterm\ndone\n");
    wait::until("the pod gone from the API", ROLLOUT, || {
        c.kubectl(&["get", "pod", "graceful"])
            .stderr()
            .contains("NotFound")
    });
    // Its container exited by itself, 0, as kubelet reported before the
    // pod went; and as cortend has it, if kubelet has not removed it yet.
    watch.wait_stdout("the watch to see the deletion", ROLLOUT, |o| {
        o.contains("\"DELETED\"")
    });
    let events: Vec<Value> = serde_json::Deserializer::from_str(&watch.stdout())
        .into_iter::<Value>()
        .map(|e| e.expect("a watch event"))
        .collect();
    let terminated: Vec<&Value> = events
        .iter()
        .map(|e| &e["object"]["status"]["containerStatuses"][0]["state"]["terminated"])
        .filter(|t| t.is_object())
        .collect();
    assert!(
        !terminated.is_empty(),
        "no terminated state seen: {events:?}"
    );
    for t in terminated {
        assert_eq!(t["exitCode"], 0, "{t}");
        assert_eq!(t["reason"], "Completed", "{t}");
    }
    let inspect = c.kubelet().daemon().crictl(&["inspect", &id]);
    if inspect.output.status.success() {
        let status = &inspect.json()["status"];
        assert_eq!(status["state"], "CONTAINER_EXITED", "{status}");
        assert_eq!(status["exitCode"], 0, "{status}");
    }
    assert!(in_cortend(&c, "ps", "running", label).is_empty());
}

/// The addresses process `pid` listens on (TCP and UDP), from `ss`.
fn listening(pid: u32) -> Vec<String> {
    let ss = std::process::Command::new("ss")
        .args(["-H", "-ltnup"])
        .output()
        .expect("run ss (iproute2)");
    let mine = format!("pid={pid},");
    String::from_utf8_lossy(&ss.stdout)
        .lines()
        .filter(|l| l.contains(&mine))
        .filter_map(|l| l.split_whitespace().nth(4).map(String::from))
        .collect()
}

#[test]
fn a_failing_cluster_test_leaves_nothing_behind_and_listened_on_loopback_only() {
    struct Seen {
        pids: Vec<u32>,
        in_pods: Vec<i32>,
        cgroup_root: String,
        dirs: Vec<PathBuf>,
    }
    let seen: Mutex<Option<Seen>> = Mutex::new(None);
    let failed = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let mut c = Cluster::start();
        c.apply(&deployment("doomed", 2, "busybox"));
        c.kubectl(&["rollout", "status", "deployment/doomed", ROLLOUT_FLAG])
            .ok();
        assert!(c.control_plane_running());
        let k = c.kubelet();
        let mut pids = c.control_plane_pids();
        assert_eq!(pids.len(), 4, "etcd, API server, controllers, scheduler");
        // etcd (client and peer), the API server: loopback only; the
        // controller manager and the scheduler serve nothing.
        for pid in &pids {
            for addr in listening(*pid) {
                assert!(addr.starts_with("127.0.0.1:"), "{pid} listens on {addr}");
            }
        }
        assert_eq!(listening(pids[0]).len(), 2, "etcd's client and peer ports");
        assert_eq!(
            listening(pids[1]),
            vec![format!("127.0.0.1:{}", c.api_port())]
        );
        assert!(listening(pids[2]).is_empty() && listening(pids[3]).is_empty());
        pids.push(k.pid().expect("kubelet runs"));
        pids.push(k.daemon().pid().expect("cortend runs"));
        let in_pods = k.cgroup_root().processes();
        assert!(in_pods.len() >= 2, "the two pods' processes: {in_pods:?}");
        *seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(Seen {
            pids,
            in_pods,
            cgroup_root: k.cgroup_root().path().to_string(),
            dirs: vec![
                c.dir().to_path_buf(),
                k.dir().to_path_buf(),
                k.daemon().dir().to_path_buf(),
            ],
        });
        panic!("the test fails with everything running");
    }));
    assert!(failed.is_err());
    let seen = seen
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .expect("the test got as far as its failure");
    let alive = |pid: i32| Path::new(&format!("/proc/{pid}")).exists();
    for pid in &seen.pids {
        assert!(!alive(*pid as i32), "process {pid} left running");
    }
    for pid in &seen.in_pods {
        assert!(!alive(*pid), "pod process {pid} left running");
    }
    assert!(
        cgroups::dirs(&seen.cgroup_root).is_empty(),
        "{} left",
        seen.cgroup_root
    );
    for d in &seen.dirs {
        assert!(!d.exists(), "{} left", d.display());
    }
}

/// The memory limit of cgroup `path` on this host (the v1 memory
/// controller, or cgroup v2's memory.max).
fn memory_limit(path: &str) -> Option<u64> {
    cgroups::dirs(path).iter().find_map(|d| {
        ["memory.limit_in_bytes", "memory.max"]
            .iter()
            .find_map(|f| std::fs::read_to_string(d.join(f)).ok())
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Issue 16: an in-place pod resize (`kubectl patch --subresource resize`,
/// on by default since Kubernetes 1.33): kubelet changes the container's
/// limits through UpdateContainerResources and tells cortend the pod's new
/// resources through UpdatePodSandboxResources, which succeeds; the
/// container's cgroup has the new limit and the container keeps running.
#[test]
fn a_pod_resized_in_place_gets_its_new_memory_limit() {
    let c = Cluster::start();
    let mut container = sleeper("main", "busybox");
    container["resources"] = json!({
        "requests": {"memory": "32Mi", "cpu": "50m"},
        "limits": {"memory": "64Mi"},
    });
    c.apply(&pod("resized", vec![container]));
    c.kubectl(&["wait", "--for=condition=Ready", "pod/resized", ROLLOUT_FLAG])
        .ok();
    let d = c.kubelet().daemon();
    let ids = in_cortend(&c, "ps", "running", "io.kubernetes.pod.name=resized");
    assert_eq!(ids.len(), 1, "{ids:?}");
    let shown = d.crictl(&["inspect", "-o", "json", &ids[0]]).json();
    let cgroup = shown["info"]["runtimeSpec"]["linux"]["cgroupsPath"]
        .as_str()
        .unwrap_or_else(|| panic!("no cgroupsPath in {shown}"))
        .to_string();
    assert_eq!(memory_limit(&cgroup), Some(64 << 20), "{cgroup}");

    c.kubectl(&[
        "patch",
        "pod",
        "resized",
        "--subresource",
        "resize",
        "--patch",
        r#"{"spec":{"containers":[{"name":"main","resources":{"limits":{"memory":"128Mi"}}}]}}"#,
    ])
    .ok();
    // kubelet reports the resize done once the runtime shows the new limit.
    c.wait_for(
        "the resized limit in the pod's status",
        ROLLOUT,
        &["pod", "resized"],
        |p| {
            p["status"]["containerStatuses"][0]["resources"]["limits"]["memory"] == "128Mi"
                && p["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|c| c["type"] != "PodResizeInProgress")
        },
    );
    assert_eq!(memory_limit(&cgroup), Some(128 << 20), "{cgroup}");
    let status = d.crictl(&["inspect", "-o", "json", &ids[0]]).json();
    assert_eq!(status["status"]["state"], "CONTAINER_RUNNING", "{status}");
    assert_eq!(
        status["status"]["resources"]["linux"]["memoryLimitInBytes"],
        json!((128u64 << 20).to_string()),
        "{status}"
    );
    // kubelet's UpdatePodSandboxResources reached cortend and succeeded.
    let log = d.log();
    let calls: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("rpc=UpdatePodSandboxResources"))
        .collect();
    assert!(
        calls.iter().any(|l| l.contains("done")),
        "no successful UpdatePodSandboxResources in cortend's log: {calls:#?}"
    );
    assert!(!calls.iter().any(|l| l.contains("failed")), "{calls:#?}");
}
