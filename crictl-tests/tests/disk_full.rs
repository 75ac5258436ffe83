//! Full disks (issue 12): with the root dir or the state dir full, an RPC
//! that must write fails with ResourceExhausted naming the path and "no
//! space left on device", leaves nothing half-made, and once space is back
//! the next one succeeds without a restart.

use std::path::Path;

use crictl_tests::full_disk::SmallDisk;
use crictl_tests::network::mounts_under;
use crictl_tests::{
    Compression, Daemon, DaemonBuilder, ImageBuilder, Registry, RegistryOptions, TestNetwork,
};
use serde_json::json;

fn pod_file(d: &Daemon, name: &str) -> String {
    let config = json!({
        "metadata": {"name": name, "namespace": "full", "uid": format!("uid-{name}"), "attempt": 0},
        "hostname": name,
        "linux": {},
    });
    let path = d.dir().join(format!("pod-{name}.json"));
    std::fs::write(&path, config.to_string()).expect("pod config");
    path.display().to_string()
}

/// The refusal says what a node operator needs: the code, the cause, where.
fn assert_out_of_space(err: &str, disk: &Path) {
    assert!(err.contains("ResourceExhausted"), "{err}");
    assert!(
        err.to_lowercase().contains("no space left on device"),
        "{err}"
    );
    assert!(err.contains(&disk.display().to_string()), "{err}");
}

/// Nothing of a refused pod: no record, address, veth, mount or directory.
fn assert_no_pod_left(d: &Daemon, net: &TestNetwork) {
    assert!(d.crictl(&["pods", "-q"]).ok().trim().is_empty());
    assert_eq!(net.allocations(), Vec::<String>::new(), "address released");
    assert!(net.ports().is_empty(), "veth removed");
    let state = d.dir().join("state");
    let mounts: Vec<String> = mounts_under(&state)
        .into_iter()
        .filter(|m| Path::new(m) != state)
        .collect();
    assert_eq!(mounts, Vec::<String>::new());
    let pods = std::fs::read_dir(state.join("pods"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(pods, 0, "no pod directory left");
}

fn pod_on_a_full(which: &str) {
    let builder = DaemonBuilder::new();
    let disk = SmallDisk::mount(&builder.dir().join(which), "8m");
    let net = TestNetwork::new(&builder);
    let d = builder.start().expect("cortend starts");
    let filler = disk.fill();
    let err = d.crictl(&["runp", &pod_file(&d, "full")]).fails();
    assert_out_of_space(&err, disk.path());
    println!("full {which}: {err}");
    assert_no_pod_left(&d, &net);
    // Still full: refused the same way (the store is not left broken).
    let err = d.crictl(&["runp", &pod_file(&d, "full")]).fails();
    assert_out_of_space(&err, disk.path());

    std::fs::remove_file(&filler).expect("make room");
    let id = d.crictl(&["runp", &pod_file(&d, "full")]).ok();
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    d.crictl(&["stopp", id]).ok();
    d.crictl(&["rmp", id]).ok();
    assert_no_pod_left(&d, &net);
    assert!(!d.log().contains("panicked"));
}

#[test]
fn a_full_root_dir_refuses_a_pod_precisely_until_there_is_room() {
    pod_on_a_full("root");
}

#[test]
fn a_full_state_dir_refuses_a_pod_precisely_until_there_is_room() {
    pod_on_a_full("state");
}

#[test]
fn a_pull_onto_a_full_root_dir_is_resource_exhausted_not_a_digest_mismatch() {
    let reg = Registry::start(RegistryOptions::plain()).expect("registry starts");
    // Layers larger than the disk's free room.
    let img = ImageBuilder::busybox()
        .build(Compression::Gzip)
        .expect("build image");
    img.push(&reg, "library/busybox", "latest").expect("push");
    let builder = DaemonBuilder::new().mirror("docker.io", &reg.url());
    let disk = SmallDisk::mount(&builder.dir().join("root"), "16m");
    let d = builder.start().expect("cortend starts");
    let filler = disk.fill();
    let err = d.crictl(&["pull", "busybox"]).fails();
    assert_out_of_space(&err, disk.path());
    assert!(!err.contains("digest mismatch"), "{err}");
    println!("pull onto a full root: {err}");
    assert!(d.crictl(&["images", "-q"]).ok().trim().is_empty());
    let tmp = d.root_dir().join("snapshots/tmp");
    let left = std::fs::read_dir(&tmp).map(|r| r.count()).unwrap_or(0);
    assert_eq!(left, 0, "temporary snapshots left in {}", tmp.display());

    std::fs::remove_file(&filler).expect("make room");
    d.crictl(&["pull", "busybox"]).ok();
    assert!(!d.crictl(&["images", "-q"]).ok().trim().is_empty());
}
