//! Pod sandboxes through the real crictl, networked by the real CNI plugins
//! on a bridge and subnet of the test's own (see `TestNetwork`).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crictl_tests::guard::{free_port, KillOnDrop};
use crictl_tests::network::mounts_under;
use crictl_tests::{cgroups, cri, wait, Daemon, DaemonBuilder, TestNetwork};
use serde_json::{json, Value};

/// A daemon with a test network (declared in this order so the daemon
/// drops first).
fn setup() -> (TestNetwork, Daemon) {
    let builder = DaemonBuilder::new();
    let net = TestNetwork::new(&builder);
    let daemon = builder.start().expect("cortend starts");
    (net, daemon)
}

fn pod_config(name: &str, extra: Value) -> Value {
    let mut pod = json!({
        "metadata": {"name": name, "namespace": "e2e", "uid": format!("uid-{name}"), "attempt": 0},
        "hostname": name,
        "log_directory": "/tmp",
        "linux": {},
    });
    merge(&mut pod, extra);
    pod
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn write_config(daemon: &Daemon, name: &str, config: &Value) -> PathBuf {
    let path = daemon.dir().join(format!("pod-{name}.json"));
    std::fs::write(&path, config.to_string()).expect("write pod config");
    path
}

/// `crictl runp` of a pod named `name`; returns its id.
fn run_pod(daemon: &Daemon, name: &str, extra: Value) -> String {
    let path = write_config(daemon, name, &pod_config(name, extra));
    let id = daemon
        .crictl(&["runp", path.to_str().expect("utf-8 path")])
        .ok();
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "a pod id: {id:?}");
    id
}

fn inspect(daemon: &Daemon, id: &str) -> Value {
    daemon.crictl(&["inspectp", id]).json()
}

fn pod_ip(daemon: &Daemon, id: &str) -> String {
    inspect(daemon, id)["status"]["network"]["ip"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn pod_dir(daemon: &Daemon, id: &str) -> PathBuf {
    daemon.dir().join("state/pods").join(id)
}

/// A command run in the pod's network namespace (busybox applets).
fn in_pod_net(daemon: &Daemon, id: &str, args: &[&str]) -> Command {
    let netns = pod_dir(daemon, id).join("net");
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", netns.display()))
        .arg("busybox")
        .args(args);
    cmd
}

#[test]
fn two_pods_get_distinct_addresses_and_reach_each_other() {
    let (net, daemon) = setup();
    let a = run_pod(&daemon, "alpha", json!({}));
    let b = run_pod(&daemon, "beta", json!({}));
    let (ip_a, ip_b) = (pod_ip(&daemon, &a), pod_ip(&daemon, &b));
    assert!(
        ip_a.starts_with(&net.prefix()),
        "{ip_a} in {}",
        net.prefix()
    );
    assert!(
        ip_b.starts_with(&net.prefix()),
        "{ip_b} in {}",
        net.prefix()
    );
    assert_ne!(ip_a, ip_b);
    assert_eq!(net.allocations(), {
        let mut v = vec![ip_a.clone(), ip_b.clone()];
        v.sort();
        v
    });
    assert_eq!(net.ports().len(), 2, "one veth per pod on {}", net.bridge);

    // ICMP from beta's namespace to alpha.
    let ping = in_pod_net(&daemon, &b, &["ping", "-c", "1", "-W", "2", &ip_a])
        .output()
        .expect("ping");
    assert!(ping.status.success(), "ping {ip_a}: {ping:?}");

    // TCP: a listener in alpha, a client in beta.
    let mut listener = KillOnDrop(
        in_pod_net(&daemon, &a, &["nc", "-l", "-p", "7070"])
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("nc -l"),
    );
    // Until the listener listens.
    wait::until(
        &format!("beta to connect to {ip_a}:7070"),
        Duration::from_secs(30),
        || {
            let mut client = in_pod_net(&daemon, &b, &["nc", &ip_a, "7070"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nc");
            if let Some(mut stdin) = client.stdin.take() {
                let _ = stdin.write_all(b"hello from beta\n");
            }
            client.wait().map(|s| s.success()).unwrap_or(false)
        },
    );
    let mut got = String::new();
    if let Some(mut out) = listener.0.stdout.take() {
        let _ = out.read_to_string(&mut got);
    }
    assert_eq!(got, "hello from beta\n");

    // The pod's names: hostname in its UTS namespace, hosts file.
    let uts = pod_dir(&daemon, &a).join("uts");
    let hostname = Command::new("nsenter")
        .arg(format!("--uts={}", uts.display()))
        .arg("hostname")
        .output()
        .expect("hostname");
    assert_eq!(String::from_utf8_lossy(&hostname.stdout).trim(), "alpha");
    let hosts = std::fs::read_to_string(pod_dir(&daemon, &a).join("hosts")).expect("hosts");
    assert!(hosts.contains(&format!("{ip_a}\talpha")), "{hosts}");
    // Its own /dev/shm.
    let shm = pod_dir(&daemon, &a).join("shm");
    assert!(
        mounts_under(&shm).contains(&shm.display().to_string()),
        "tmpfs on {}",
        shm.display()
    );
}

#[test]
fn host_network_pod_uses_the_host_namespace() {
    let (net, daemon) = setup();
    let id = run_pod(
        &daemon,
        "hostnet",
        json!({"linux": {"security_context": {"namespace_options": {"network": 2}}}}),
    );
    let status = inspect(&daemon, &id);
    assert_eq!(status["status"]["state"], "SANDBOX_READY");
    assert_eq!(status["status"]["network"]["ip"], "", "no CNI address");
    assert_eq!(
        status["status"]["linux"]["namespaces"]["options"]["network"],
        "NODE"
    );
    assert!(net.allocations().is_empty(), "CNI was not called");
    // No network or UTS namespace of its own: nothing pinned for them.
    let dir = pod_dir(&daemon, &id);
    assert!(!dir.join("net").exists() && !dir.join("uts").exists());
    assert!(dir.join("ipc").exists(), "IPC stays the pod's own");
    // Its /etc/hosts is the host's.
    assert_eq!(
        std::fs::read_to_string(dir.join("hosts")).expect("hosts"),
        std::fs::read_to_string("/etc/hosts").expect("/etc/hosts")
    );
    daemon.crictl(&["stopp", &id]).ok();
    daemon.crictl(&["rmp", &id]).ok();
    assert!(!dir.exists());
}

#[test]
fn port_mapping_is_reachable_on_localhost() {
    let (_net, daemon) = setup();
    let host_port = free_port();
    let id = run_pod(
        &daemon,
        "web",
        json!({"port_mappings": [{"protocol": 0, "container_port": 8080, "host_port": host_port, "host_ip": "127.0.0.1"}]}),
    );
    let _server = KillOnDrop(
        in_pod_net(
            &daemon,
            &id,
            &["sh", "-c", "echo served-by-pod | busybox nc -l -p 8080"],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("nc -l in the pod"),
    );
    let mut answer = String::new();
    wait::until("the mapped port to answer", Duration::from_secs(30), || {
        answer.clear();
        match TcpStream::connect(("127.0.0.1", host_port)) {
            Ok(mut s) => {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.read_to_string(&mut answer);
                answer == "served-by-pod\n"
            }
            Err(_) => false,
        }
    });
    daemon.crictl(&["stopp", &id]).ok();
    assert!(
        TcpStream::connect_timeout(
            &([127, 0, 0, 1], host_port).into(),
            Duration::from_millis(500)
        )
        .is_err(),
        "the mapping is gone after stop"
    );
}

#[test]
fn network_readiness_follows_the_conf_dir() {
    let (net, daemon) = setup();
    let ready = |d: &Daemon| {
        let info = d.crictl(&["info"]).json();
        let conds = info["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        conds
            .into_iter()
            .find(|c| c["type"] == "NetworkReady")
            .expect("NetworkReady condition")
    };
    assert_eq!(ready(&daemon)["status"], true);

    // Broken: not JSON. NetworkReady false with a reason; RunPodSandbox
    // refused clearly; nothing made.
    net.clear();
    net.write_raw("10-broken.conflist", "{ this is not json");
    let cond = ready(&daemon);
    assert_eq!(cond["status"], false);
    assert_eq!(cond["reason"], "NetworkPluginNotReady");
    assert!(
        cond["message"]
            .as_str()
            .unwrap_or("")
            .contains("10-broken.conflist"),
        "{cond}"
    );
    let path = write_config(&daemon, "nonet", &pod_config("nonet", json!({})));
    let err = daemon
        .crictl(&["runp", path.to_str().expect("utf-8")])
        .fails();
    assert!(err.contains("no valid CNI network config"), "{err}");
    assert!(daemon.crictl(&["pods", "-q"]).ok().trim().is_empty());

    // Valid again: ready without a restart, and pods run.
    net.clear();
    net.write("10-test.conflist", &net.conflist(&[]));
    assert_eq!(ready(&daemon)["status"], true);
    let id = run_pod(&daemon, "nonet", json!({}));
    assert!(pod_ip(&daemon, &id).starts_with(&net.prefix()));
}

#[test]
fn failed_network_setup_leaves_nothing_behind() {
    let (net, daemon) = setup();
    // bridge + host-local allocate an address, then `tuning` fails on a
    // sysctl that does not exist: the pod must be undone entirely.
    net.write(
        "10-test.conflist",
        &net.conflist(&[
            json!({"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.no_such_knob": "1"}}),
        ]),
    );
    let path = write_config(&daemon, "doomed", &pod_config("doomed", json!({})));
    let err = daemon
        .crictl(&["runp", path.to_str().expect("utf-8")])
        .fails();
    assert!(err.contains("tuning"), "the failing plugin is named: {err}");
    assert!(daemon.crictl(&["pods", "-q"]).ok().trim().is_empty());
    assert_eq!(net.allocations(), Vec::<String>::new(), "address released");
    assert!(net.ports().is_empty(), "veth removed");
    let state = daemon.dir().join("state");
    assert_eq!(mounts_under(&state), Vec::<String>::new());
    let pods = std::fs::read_dir(state.join("pods"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(pods, 0, "no pod directory left");
    assert!(
        !daemon.log().contains("panicked"),
        "the daemon did not panic"
    );
}

#[test]
fn sysctls_apply_in_the_pod_and_unnamespaced_ones_are_refused() {
    let (_net, daemon) = setup();
    let id = run_pod(
        &daemon,
        "tuned",
        json!({"linux": {"sysctls": {"net.ipv4.ip_unprivileged_port_start": "80", "kernel.shm_rmid_forced": "1"}}}),
    );
    let read = |ns: &str, file: &str| {
        let out = Command::new("nsenter")
            .arg(format!(
                "--{ns}={}",
                pod_dir(&daemon, &id).join(ns).display()
            ))
            .args(["cat", file])
            .output()
            .expect("nsenter cat");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(
        read("net", "/proc/sys/net/ipv4/ip_unprivileged_port_start"),
        "80"
    );
    let host = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .expect("host value");
    assert_ne!(host.trim(), "80", "the host is untouched");

    let path = write_config(
        &daemon,
        "vm",
        &pod_config("vm", json!({"linux": {"sysctls": {"vm.swappiness": "1"}}})),
    );
    let err = daemon
        .crictl(&["runp", path.to_str().expect("utf-8")])
        .fails();
    assert!(
        err.contains("InvalidArgument") && err.contains("vm.swappiness"),
        "{err}"
    );
    assert_eq!(daemon.crictl(&["pods", "-q"]).ok().lines().count(), 1);
}

#[test]
fn stop_and_remove_are_idempotent_and_leave_nothing() {
    let (net, daemon) = setup();
    let id = run_pod(&daemon, "once", json!({}));
    let status = inspect(&daemon, &id);
    // crictl lifts the verbose `info` JSON to the top of its output.
    let record = &status["info"];
    let cgroup = record["cgroup"].as_str().expect("a pod cgroup").to_string();
    let init_pid = record["init"]["pid"].as_i64().expect("a shared-pid init");
    assert!(!cgroups::dirs(&cgroup).is_empty(), "cgroup {cgroup} made");
    assert!(Path::new(&format!("/proc/{init_pid}")).exists());

    daemon.crictl(&["stopp", &id]).ok();
    daemon.crictl(&["stopp", &id]).ok();
    let stopped = inspect(&daemon, &id);
    assert_eq!(stopped["status"]["state"], "SANDBOX_NOTREADY");
    assert_eq!(stopped["status"]["network"]["ip"], "");
    assert!(net.allocations().is_empty(), "address released at stop");
    assert!(net.ports().is_empty());
    let dir = pod_dir(&daemon, &id);
    assert_eq!(mounts_under(&dir), Vec::<String>::new(), "unpinned at stop");
    wait::until("the pod init to go", Duration::from_secs(30), || {
        !Path::new(&format!("/proc/{init_pid}")).exists()
    });

    daemon.crictl(&["rmp", &id]).ok();
    assert!(!dir.exists());
    assert_eq!(
        cgroups::dirs(&cgroup),
        Vec::<PathBuf>::new(),
        "cgroup removed"
    );
    assert!(daemon.crictl(&["pods", "-q"]).ok().trim().is_empty());

    // The RPCs themselves on a pod that is gone (crictl would look it up
    // first and stop at NotFound).
    crictl_tests::cri::block_on(async {
        let mut client = cri::runtime(daemon.socket()).await.expect("connect");
        client
            .remove_pod_sandbox(corten_cri_api::v1::RemovePodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await
            .expect("remove of a removed pod succeeds");
        client
            .stop_pod_sandbox(corten_cri_api::v1::StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await
            .expect("stop of a removed pod succeeds");
        let status = client
            .pod_sandbox_status(corten_cri_api::v1::PodSandboxStatusRequest {
                pod_sandbox_id: id.clone(),
                verbose: false,
            })
            .await
            .expect_err("status of a removed pod");
        assert_eq!(status.code(), tonic::Code::NotFound);
    });
}

#[test]
fn names_are_unique_per_attempt_and_filters_work() {
    let (_net, daemon) = setup();
    let a = run_pod(
        &daemon,
        "same",
        json!({"labels": {"app": "web", "tier": "front"}}),
    );
    let path = write_config(&daemon, "same", &pod_config("same", json!({})));
    let err = daemon
        .crictl(&["runp", path.to_str().expect("utf-8")])
        .fails();
    assert!(err.contains("AlreadyExists") && err.contains(&a), "{err}");
    // A runtime handler nobody configured is refused, and makes nothing.
    let path = write_config(&daemon, "handler", &pod_config("handler", json!({})));
    let err = daemon
        .crictl(&[
            "runp",
            "--runtime",
            "no-such-handler",
            path.to_str().expect("utf-8"),
        ])
        .fails();
    assert!(
        err.contains("InvalidArgument") && err.contains("no-such-handler"),
        "{err}"
    );
    let b = run_pod(
        &daemon,
        "same",
        json!({"metadata": {"attempt": 1}, "labels": {"app": "db"}}),
    );
    let list = |args: &[&str]| -> Vec<String> {
        let mut full = vec!["pods", "-q", "--no-trunc"];
        full.extend_from_slice(args);
        let mut ids: Vec<String> = daemon
            .crictl(&full)
            .ok()
            .lines()
            .map(str::to_string)
            .collect();
        ids.sort();
        ids
    };
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(list(&[]), both);
    assert_eq!(list(&["--label", "app=web"]), vec![a.clone()]);
    assert_eq!(
        list(&["--label", "app=web", "--label", "tier=back"]),
        Vec::<String>::new()
    );
    assert_eq!(list(&["--id", &a[..12]]), vec![a.clone()]);
    daemon.crictl(&["stopp", &b]).ok();
    assert_eq!(list(&["--state", "ready"]), vec![a.clone()]);
    assert_eq!(list(&["--state", "notready"]), vec![b.clone()]);
    // A prefix works wherever crictl passes an id.
    assert_eq!(inspect(&daemon, &a[..10])["status"]["id"], a.as_str());
}

#[test]
fn pods_survive_a_daemon_restart() {
    let (net, mut daemon) = setup();
    let id = run_pod(&daemon, "durable", json!({}));
    let ip = pod_ip(&daemon, &id);
    daemon.restart();
    let status = inspect(&daemon, &id);
    assert_eq!(status["status"]["state"], "SANDBOX_READY");
    assert_eq!(status["status"]["network"]["ip"], ip.as_str());
    let ping = Command::new("busybox")
        .args(["ping", "-c", "1", "-W", "2", &ip])
        .output()
        .expect("ping");
    assert!(
        ping.status.success(),
        "the pod still answers from the host: {ping:?}"
    );
    daemon.crictl(&["stopp", &id]).ok();
    daemon.crictl(&["rmp", &id]).ok();
    assert!(net.allocations().is_empty());

    // A pod whose namespaces vanish while the daemon is down (as after a
    // reboot) comes back NotReady, its address released.
    let lost = run_pod(&daemon, "lost", json!({}));
    assert_eq!(net.allocations().len(), 1);
    assert!(daemon.terminate().success());
    for ns in ["net", "ipc", "uts"] {
        let file = pod_dir(&daemon, &lost).join(ns);
        let out = Command::new("umount").arg(&file).output().expect("umount");
        assert!(out.status.success(), "umount {}: {out:?}", file.display());
    }
    daemon.resume();
    let status = inspect(&daemon, &lost);
    assert_eq!(status["status"]["state"], "SANDBOX_NOTREADY");
    assert!(net.allocations().is_empty(), "{:?}", net.allocations());
    daemon.crictl(&["rmp", &lost]).ok();
}

#[test]
fn fifty_pods_run_and_removed_leak_nothing() {
    let (net, daemon) = setup();
    let pid = daemon.pid().expect("daemon pid");
    let fds = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    // One round first, so lazily opened things are open before counting.
    let warm = run_pod(&daemon, "warm", json!({}));
    daemon.crictl(&["rmp", "--force", &warm]).ok();
    let fds_before = fds();
    for i in 0..50 {
        let id = run_pod(&daemon, &format!("loop-{i}"), json!({}));
        daemon.crictl(&["stopp", &id]).ok();
        daemon.crictl(&["rmp", &id]).ok();
    }
    assert!(daemon.crictl(&["pods", "-q"]).ok().trim().is_empty());
    assert!(net.allocations().is_empty(), "{:?}", net.allocations());
    assert!(net.ports().is_empty(), "{:?}", net.ports());
    let state = daemon.dir().join("state");
    assert_eq!(mounts_under(&state), Vec::<String>::new());
    assert_eq!(
        std::fs::read_dir(state.join("pods"))
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
    let cache = std::fs::read_dir(daemon.root_dir().join("cni"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(cache, 0, "no CNI cache entries left");
    let fds_after = fds();
    assert!(
        fds_after <= fds_before + 2,
        "daemon fds grew from {fds_before} to {fds_after}"
    );
}
