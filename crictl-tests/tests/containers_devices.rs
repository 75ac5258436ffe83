//! Issue 15, end to end: device rules on the unified hierarchy. cortend runs
//! with `CORTEN_DEVICE_FILTER=bpf`, so on this hybrid host each container's
//! device rules become an eBPF device program on its cgroup2 directory and
//! are not written to the v1 devices controller: what is refused below is
//! refused by the program, as on a pure cgroup v2 host.
//!
//! A default container keeps CAP_MKNOD (as under containerd and CRI-O), so
//! the program is what stops it from making and opening a host disk.

#[path = "../../runtime/tests/common/block_device.rs"]
mod block_device;
mod container_env;

use block_device::host_block_device;
use container_env::{path, Env};
use corten_runtime::cgroups::{self, Cgroup, Controller, DEVICE_FILTER_ENV};
use crictl_tests::ImageBuilder;
use serde_json::json;

/// The container's cgroup, from its runtime spec.
fn cgroup_of(env: &Env, id: &str) -> Cgroup {
    let v = env.inspect(id);
    let path = v["info"]["runtimeSpec"]["linux"]["cgroupsPath"]
        .as_str()
        .unwrap_or_else(|| panic!("no cgroupsPath in {v}"))
        .to_string();
    let h = cgroups::detect().expect("detect cgroups");
    Cgroup::open(&h, &path).expect("open the container's cgroup")
}

#[test]
fn a_default_container_cannot_make_or_open_a_host_disk_and_a_given_one_opens() {
    let env = Env::with_daemon_env(ImageBuilder::busybox(), &[(DEVICE_FILTER_ENV, "bpf")]);
    let host = env.dir.path().join("host");
    std::fs::create_dir(&host).expect("mkdir");
    // The node made on the host, seen in the containers through a bind mount.
    let disk = host.join("disk");
    let (major, minor) = host_block_device(&disk);
    let pod = env.pod("dev");
    let script = format!(
        "mknod /tmp/blk b {major} {minor} && echo mknod-ok; \
         (: < /host/disk) && echo disk-open-ok; \
         if [ -b /dev/xdisk ]; then (: < /dev/xdisk) && echo given-open-ok; fi; \
         (: < /dev/null) && echo null-ok; \
         echo done; exec sleep 3600"
    );
    let mounts = json!([{"container_path": "/host", "host_path": path(&host)}]);
    let start = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let mut c = env.container_config(name, &["sh", "-c", &script]);
        c["mounts"] = mounts.clone();
        edit(&mut c);
        let id = env.create(&pod, "dev", &c);
        env.d.crictl(&["start", &id]).ok();
        env.wait_logged(&id, "done");
        // The shell's complaints are the container's stderr.
        let (out, err) = env.logs(&id, &[]);
        (id, out + &err)
    };

    // A default container: both refused by the kernel (EPERM), /dev/null fine.
    let (id, out) = start("default", &|_| {});
    let refused = out.matches("Operation not permitted").count();
    assert_eq!(refused, 2, "mknod and open refused: {out}");
    assert!(
        !out.contains("mknod-ok") && !out.contains("disk-open-ok"),
        "{out}"
    );
    assert!(out.contains("null-ok"), "{out}");
    // The program did it: the v1 controller was left at allow-all, and the
    // container's cgroup2 directory has one device program.
    let cg = cgroup_of(&env, &id);
    let list = cg
        .v1_dir(Controller::Devices)
        .map(|d| std::fs::read_to_string(d.join("devices.list")).expect("devices.list"));
    assert_eq!(list.as_deref().map(str::trim), Some("a *:* rwm"));
    let unified = cg.unified_dir().expect("a unified directory").to_owned();
    let programs = corten_runtime::linux::device_program_ids(&unified).expect("query");
    assert_eq!(programs.len(), 1, "{programs:?}");

    // Given the disk as a CRI device: it opens there, and mknod of it works.
    let (_, out) = start("given", &|c| {
        c["devices"] = json!([{
            "container_path": "/dev/xdisk",
            "host_path": path(&disk),
            "permissions": "rwm"
        }]);
    });
    for line in ["mknod-ok", "disk-open-ok", "given-open-ok", "null-ok"] {
        assert!(out.contains(line), "{line} missing: {out}");
    }
    assert!(!out.contains("Operation not permitted"), "{out}");

    // Privileged: every device.
    let (_, out) = start("privileged", &|c| {
        c["linux"]["security_context"] = json!({"privileged": true});
    });
    for line in ["mknod-ok", "disk-open-ok", "null-ok"] {
        assert!(out.contains(line), "{line} missing: {out}");
    }
}
