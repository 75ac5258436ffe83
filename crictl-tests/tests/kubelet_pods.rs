//! Issue 13: what a real kubelet asks of cortend for static pods: init
//! containers in order, an emptyDir they share with the app, a hostPath;
//! kubelet's own rotation of container logs (ReopenContainerLog) with
//! `crictl logs` still showing the newest lines.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crictl_tests::kubelet::pods;
use crictl_tests::{wait, Kubelet, KubeletBuilder};
use serde_json::json;

const POD_START: Duration = Duration::from_secs(180);
/// kubelet looks at log sizes every 3 s; a loaded machine may be slower.
const ROTATION: Duration = Duration::from_secs(180);

#[test]
fn init_containers_run_in_order_and_share_an_empty_dir_and_a_host_path() {
    let k = Kubelet::start();
    let host = k.host_dir();
    std::fs::write(host.join("input"), "from-host\n").expect("write input");
    let mount = |c: &mut serde_json::Value| {
        c["volumeMounts"] = json!([
            {"name": "work", "mountPath": "/work"},
            {"name": "host", "mountPath": "/host"},
            {"name": "memory", "mountPath": "/memory"},
        ]);
    };
    let mut first = pods::container(
        "init-1",
        &[
            "sh",
            "-c",
            "echo one > /work/order; echo kept > /memory/note",
        ],
    );
    let mut second = pods::container(
        "init-2",
        &[
            "sh",
            "-c",
            "test \"$(cat /work/order)\" = one && echo two >> /work/order \
             && cat /host/input >> /work/order",
        ],
    );
    let mut app = pods::container(
        "app",
        &["sh", "-c", "cp /work/order /host/output; exec sleep 3600"],
    );
    for c in [&mut first, &mut second, &mut app] {
        mount(c);
    }
    let mut pod = pods::pod("volumes", vec![app]);
    pod["spec"]["initContainers"] = json!([first, second]);
    pod["spec"]["volumes"] = json!([
        {"name": "work", "emptyDir": {}},
        {"name": "host", "hostPath": {"path": host, "type": "Directory"}},
        {"name": "memory", "emptyDir": {"medium": "Memory"}},
    ]);
    k.add_pod(&pod);

    let pod = k.wait_pod("volumes", "app running", POD_START, |p| {
        pods::running(p, "app")
    });
    for init in ["init-1", "init-2"] {
        let s = pods::container_status(&pod, init).expect("init status");
        let done = &s["state"]["terminated"];
        assert_eq!(done["exitCode"], 0, "{s}");
        assert_eq!(done["reason"], "Completed", "{s}");
    }
    let output = host.join("output");
    wait::until("the app's output on the host", POD_START, || {
        output.exists()
    });
    let text = std::fs::read_to_string(&output).unwrap_or_default();
    assert_eq!(text, "one\ntwo\nfrom-host\n");

    // The emptyDir is kubelet's directory, which the containers shared.
    let uid = pod["metadata"]["uid"].as_str().expect("uid");
    let empty_dir = k
        .root_dir()
        .join("pods")
        .join(uid)
        .join("volumes/kubernetes.io~empty-dir/work/order");
    assert_eq!(
        std::fs::read_to_string(&empty_dir).unwrap_or_default(),
        text
    );
    // The app writes into it, and kubelet's directory sees it.
    let app = pods::container_id(&pod, "app").expect("app id");
    k.daemon()
        .crictl(&["exec", "-s", &app, "sh", "-c", "echo app > /work/from-app"])
        .ok();
    let from_app = empty_dir.with_file_name("from-app");
    assert_eq!(
        std::fs::read_to_string(from_app).unwrap_or_default(),
        "app\n"
    );
    assert_eq!(pods::restart_count(&pod, "app"), Some(0));
    // A memory-backed emptyDir is kubelet's tmpfs, which cortend sees and
    // the containers share.
    let memory = k
        .daemon()
        .crictl(&[
            "exec",
            "-s",
            &app,
            "sh",
            "-c",
            "awk '$2 == \"/memory\" { print $3 }' /proc/mounts; cat /memory/note",
        ])
        .ok();
    let memory: Vec<&str> = memory.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(memory, ["tmpfs", "kept"]);
    // HOSTNAME is the pod's hostname, as containerd and CRI-O set it.
    let names = k
        .daemon()
        .crictl(&[
            "exec",
            "-s",
            &app,
            "sh",
            "-c",
            "echo \"$HOSTNAME\"; hostname",
        ])
        .ok();
    let want = format!("volumes-{}", k.node());
    // (crictl prints stdout and stderr each with a newline of its own)
    let names: Vec<&str> = names.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(names, [want.as_str(), want.as_str()]);
}

/// The highest `line N` in CRI log text.
fn last_line_number(text: &str) -> Option<u64> {
    text.lines()
        .filter_map(|l| l.rsplit("line ").next()?.trim().parse().ok())
        .max()
}

/// The rotated files of a container's log directory: plain and gzipped.
fn rotated(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut plain = Vec::new();
    let mut gz = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".gz") {
            gz.push(e.path());
        } else if name.starts_with("0.log.") && !name.ends_with(".tmp") {
            plain.push(e.path());
        }
    }
    (plain, gz)
}

#[test]
fn kubelet_rotates_container_logs_and_crictl_logs_shows_the_newest_lines() {
    let k = KubeletBuilder::new().log_rotation("2Ki", 3).start();
    let chatty = pods::container(
        "chatty",
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo \"line $i\"; usleep 20000; done",
        ],
    );
    k.add_pod(&pods::pod("chatty", vec![chatty]));
    let pod = k.wait_pod("chatty", "running", POD_START, |p| {
        pods::running(p, "chatty")
    });
    let id = pods::container_id(&pod, "chatty").expect("container id");
    let uid = pod["metadata"]["uid"].as_str().expect("uid");
    let dir = k
        .pod_logs_dir()
        .join(format!("default_chatty-{}_{uid}", k.node()))
        .join("chatty");

    // A first rotation: 0.log renamed aside, the shim told to reopen.
    wait::until("a rotated log file", ROTATION, || {
        !rotated(&dir).0.is_empty()
    });
    let (plain, _) = rotated(&dir);
    let rotated_last = plain
        .iter()
        .filter_map(|p| last_line_number(&std::fs::read_to_string(p).unwrap_or_default()))
        .max()
        .expect("the rotated file has lines");
    // crictl reads the container's log path, 0.log: it holds what came
    // after the rotated lines.
    let mut newest = 0;
    wait::until("crictl logs past the rotated lines", ROTATION, || {
        let out = k.daemon().crictl(&["logs", "--tail", "5", &id]);
        newest = last_line_number(&out.stdout()).unwrap_or(0);
        newest > rotated_last
    });
    let current = std::fs::read_to_string(dir.join("0.log")).expect("0.log");
    assert!(!current.contains(" line 1\n"), "0.log was not rotated");

    // Older rotations are compressed, and only max files are kept.
    wait::until("a compressed rotation", ROTATION, || {
        !rotated(&dir).1.is_empty()
    });
    let (plain, gz) = rotated(&dir);
    assert!(
        plain.len() + gz.len() < 3,
        "more than 3 files: {plain:?} {gz:?}"
    );
    let mut text = String::new();
    let file = std::fs::File::open(&gz[0]).expect("open gz");
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .expect("gunzip a rotated log");
    let gz_last = last_line_number(&text).expect("lines in the compressed log");
    wait::until("crictl logs past the compressed lines", ROTATION, || {
        let out = k.daemon().crictl(&["logs", "--tail", "5", &id]);
        last_line_number(&out.stdout()).unwrap_or(0) > gz_last.max(newest)
    });
    let log = k.log();
    for error in [
        "Failed to rotate log for container",
        "reopen container log failed",
    ] {
        assert!(!log.contains(error), "kubelet logged {error:?}");
    }
}
