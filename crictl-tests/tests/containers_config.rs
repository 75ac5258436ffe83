//! Issue 6, end to end: what a container is made of — the image's config
//! and the CRI config's overrides, host mounts, a read-only root, the
//! image's stop signal, resources changed live.

mod container_env;

use std::time::Duration;

use container_env::{path, Env};
use crictl_tests::ImageBuilder;
use serde_json::json;

/// Runs `config` in `pod` to its end and returns its log lines' text.
fn output(env: &Env, pod: &str, pod_name: &str, config: &serde_json::Value) -> Vec<String> {
    let id = env.create(pod, pod_name, config);
    env.d.crictl(&["start", &id]).ok();
    let v = env.wait_state(&id, "CONTAINER_EXITED", Duration::from_secs(20));
    let (out, _) = env.logs(&id, &[]);
    assert_eq!(v["status"]["exitCode"], 0, "{v} {out}");
    out.lines().map(str::to_string).collect()
}

#[test]
fn env_workdir_and_user_come_from_the_image_unless_overridden() {
    let env = Env::with_image(
        ImageBuilder::busybox()
            .env("FOO=image")
            .env("KEEP=kept")
            .workdir("/home/tester")
            .user("tester"),
    );
    let pod = env.pod("cfg");
    let script = ["sh", "-c", "echo $FOO $KEEP; pwd; id -u; id -g"];
    let from_image = output(&env, &pod, "cfg", &env.container_config("plain", &script));
    assert_eq!(from_image, ["image kept", "/home/tester", "1000", "1000"]);
    let plain = env.d.crictl(&["ps", "-a", "-q", "--name", "plain"]).ok();
    let v = env.inspect(plain.trim());
    let uid = &v["status"]["user"]["linux"]["uid"];
    assert!(uid == "1000" || uid == 1000, "the user reported: {v}");
    let annotations = &v["info"]["runtimeSpec"]["annotations"];
    assert_eq!(
        annotations["io.kubernetes.cri.container-name"], "plain",
        "{v}"
    );
    assert_eq!(
        annotations["io.kubernetes.cri.sandbox-id"],
        pod.as_str(),
        "{v}"
    );

    let mut over = env.container_config("over", &script);
    over["envs"] = json!([{"key": "FOO", "value": "ctr"}]);
    over["working_dir"] = "/tmp".into();
    over["linux"]["security_context"] =
        json!({"run_as_user": {"value": 0}, "run_as_group": {"value": 0}});
    let overridden = output(&env, &pod, "cfg", &over);
    assert_eq!(overridden, ["ctr kept", "/tmp", "0", "0"]);

    let mut by_name = env.container_config("byname", &["id", "-un"]);
    by_name["linux"]["security_context"] = json!({"run_as_username": "root"});
    assert_eq!(output(&env, &pod, "cfg", &by_name), ["root"]);
}

#[test]
fn host_mounts_read_write_and_read_only_and_a_read_only_root() {
    let env = Env::new();
    let pod = env.pod("mnt");
    let host = env.dir.path().join("shared");
    std::fs::create_dir(&host).expect("mkdir");
    std::fs::write(host.join("from-host"), "hello\n").expect("write");
    let missing = env.dir.path().join("made-for-us");

    let mut c = env.container_config(
        "rw",
        &[
            "sh",
            "-c",
            "cat /data/from-host; echo back > /data/from-ctr; \
             echo x > /ro/f 2>/dev/null || echo ro-refused; ls -d /made",
        ],
    );
    c["mounts"] = json!([
        {"container_path": "/data", "host_path": path(&host)},
        {"container_path": "/ro", "host_path": path(&host), "readonly": true},
        {"container_path": "/made", "host_path": path(&missing)}
    ]);
    let lines = output(&env, &pod, "mnt", &c);
    assert_eq!(lines, ["hello", "ro-refused", "/made"]);
    assert_eq!(
        std::fs::read_to_string(host.join("from-ctr")).expect("written through"),
        "back\n"
    );
    assert!(!host.join("f").exists());
    assert!(missing.is_dir(), "a missing mount source is created");

    let mut ro = env.container_config(
        "roroot",
        &[
            "sh",
            "-c",
            "touch /etc/x 2>/dev/null || echo root-refused; echo ok > /tmp2/f && cat /tmp2/f",
        ],
    );
    ro["linux"]["security_context"] = json!({"readonly_rootfs": true});
    let scratch = env.dir.path().join("scratch");
    ro["mounts"] = json!([{"container_path": "/tmp2", "host_path": path(&scratch)}]);
    assert_eq!(output(&env, &pod, "mnt", &ro), ["root-refused", "ok"]);

    // The status reports the mounts as asked.
    let id = env.create(&pod, "mnt", &{
        let mut c = env.container_config("status", &["true"]);
        c["mounts"] =
            json!([{"container_path": "/ro", "host_path": path(&host), "readonly": true}]);
        c
    });
    let v = env.inspect(&id);
    let mounts = v["status"]["mounts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        mounts
            .iter()
            .any(|m| m["containerPath"] == "/ro" && m["readonly"] == true),
        "{v}"
    );
    assert!(
        v["info"]["runtimeSpec"]["process"].is_object(),
        "verbose spec: {v}"
    );
}

#[test]
fn stop_uses_the_images_stop_signal() {
    let env = Env::with_image(ImageBuilder::busybox().stop_signal("SIGUSR1"));
    let pod = env.pod("sig");
    let id = env.run(
        &pod,
        "sig",
        "usr1",
        &[
            "sh",
            "-c",
            "trap 'exit 7' USR1; trap '' TERM; echo ready; while true; do sleep 0.2; done",
        ],
    );
    env.wait_logged(&id, "ready");
    env.d.crictl(&["stop", "--timeout", "20", &id]).ok();
    // 7, not 137 (the kill after the timeout): SIGUSR1 was sent and ended it.
    let v = env.inspect(&id);
    assert_eq!(v["status"]["exitCode"], 7, "SIGUSR1 was sent: {v}");
}

#[test]
fn update_container_resources_changes_the_cgroup_live() {
    let env = Env::new();
    let pod = env.pod("res");
    let mut c = env.container_config("res", &["sleep", "3600"]);
    c["linux"]["resources"] = json!({"memory_limit_in_bytes": 67108864});
    let id = env.create(&pod, "res", &c);
    env.d.crictl(&["start", &id]).ok();
    let v = env.inspect(&id);
    let cgroup = v["info"]["runtimeSpec"]["linux"]["cgroupsPath"]
        .as_str()
        .expect("cgroups path")
        .to_string();
    let limit = || {
        let h = corten_runtime::cgroups::detect().expect("cgroups");
        corten_runtime::cgroups::Cgroup::open(&h, &cgroup)
            .expect("container cgroup")
            .stats()
            .expect("stats")
            .memory_limit_bytes
    };
    assert_eq!(limit(), Some(64 << 20));
    env.d.crictl(&["update", "--memory", "134217728", &id]).ok();
    assert_eq!(limit(), Some(128 << 20));
    let v = env.inspect(&id);
    assert_eq!(
        v["status"]["resources"]["linux"]["memoryLimitInBytes"], "134217728",
        "{v}"
    );
}

#[test]
fn security_context_reaches_the_process() {
    let env = Env::new();
    let pod = env.pod("sec");
    let status = "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status";

    let mut dropped = env.container_config("dropped", &["sh", "-c", status]);
    dropped["linux"]["security_context"] = json!({
        "capabilities": {"drop_capabilities": ["ALL"], "add_capabilities": ["NET_BIND_SERVICE"]},
        "no_new_privs": true,
        "seccomp": {"profile_type": 0}
    });
    let lines = output(&env, &pod, "sec", &dropped);
    // CAP_NET_BIND_SERVICE is bit 10.
    assert!(
        lines.contains(&"CapEff:\t0000000000000400".to_string()),
        "{lines:?}"
    );
    assert!(lines.contains(&"NoNewPrivs:\t1".to_string()), "{lines:?}");
    assert!(
        lines.contains(&"Seccomp:\t2".to_string()),
        "a filter: {lines:?}"
    );

    let mut default = env.container_config("default", &["sh", "-c", status]);
    default["linux"]["security_context"] = json!({});
    let lines = output(&env, &pod, "sec", &default);
    assert!(
        lines.contains(&"Seccomp:\t0".to_string()),
        "unconfined: {lines:?}"
    );
    assert!(lines.contains(&"NoNewPrivs:\t0".to_string()), "{lines:?}");

    let mut privileged =
        env.container_config("privileged", &["grep", "CapEff", "/proc/self/status"]);
    privileged["linux"]["security_context"] = json!({"privileged": true});
    let lines = output(&env, &pod, "sec", &privileged);
    // Every capability the runtime has (ours, as we are root too).
    let ours = std::fs::read_to_string("/proc/self/status").expect("status");
    let bounding = ours
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .expect("CapBnd")
        .trim()
        .to_string();
    assert_eq!(lines, [format!("CapEff:\t{bounding}")]);

    let mut masked = env.container_config(
        "masked",
        &[
            "sh",
            "-c",
            "cat /etc/passwd | wc -c; echo x > /tmp/t 2>/dev/null || echo ro-tmp",
        ],
    );
    masked["linux"]["security_context"] = json!({
        "masked_paths": ["/etc/passwd"],
        "readonly_paths": ["/tmp"],
        "supplemental_groups": [4242],
        "run_as_user": {"value": 1000}
    });
    let lines = output(&env, &pod, "sec", &masked);
    assert_eq!(lines, ["0", "ro-tmp"]);
    let mut device = env.container_config(
        "device",
        &[
            "sh",
            "-c",
            "echo hi > /dev/xnull && echo dev-ok; ls /dev/kmsg 2>/dev/null || echo no-kmsg",
        ],
    );
    device["devices"] =
        json!([{"container_path": "/dev/xnull", "host_path": "/dev/null", "permissions": "rwm"}]);
    assert_eq!(output(&env, &pod, "sec", &device), ["dev-ok", "no-kmsg"]);

    let mut groups = env.container_config("groups", &["id", "-G"]);
    groups["linux"]["security_context"] =
        json!({"supplemental_groups": [4242], "run_as_user": {"value": 1000}});
    let lines = output(&env, &pod, "sec", &groups);
    assert!(
        lines[0].split_whitespace().any(|g| g == "4242"),
        "{lines:?}"
    );
}

/// Unmounts (lazily) what a test mounted on the host, even when it fails.
struct HostMounts(Vec<std::path::PathBuf>);

impl Drop for HostMounts {
    fn drop(&mut self) {
        for m in self.0.iter().rev() {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(m)
                .output();
        }
    }
}

fn sh(cmd: &str) {
    let out = std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn host_to_container_propagation_and_private_mounts() {
    let env = Env::new();
    let pod = env.pod("prop");
    let mut mounted = HostMounts(Vec::new());
    let source = env.dir.path().join("shared-src");
    let extra = env.dir.path().join("extra");
    std::fs::create_dir_all(source.join("later")).expect("mkdir");
    std::fs::create_dir_all(&extra).expect("mkdir");
    std::fs::write(extra.join("flag"), "x").expect("flag");
    let (src, ext) = (path(&source).to_string(), path(&extra).to_string());
    sh(&format!(
        "mount --bind {src} {src} && mount --make-rshared {src}"
    ));
    mounted.0.push(source.clone());

    let start = |name: &str, propagation: i32| {
        let mut c = env.container_config(name, &["sleep", "3600"]);
        c["mounts"] =
            json!([{"container_path": "/data", "host_path": src, "propagation": propagation}]);
        let id = env.create(&pod, "prop", &c);
        env.d.crictl(&["start", &id]).ok();
        id
    };
    let slave = start("slave", 1);
    let private = start("private", 0);
    let mut c = env.container_config("both", &["sleep", "3600"]);
    c["mounts"] = json!([{"container_path": "/data", "host_path": src, "propagation": 2}]);
    c["linux"]["security_context"] = json!({"privileged": true});
    let both = env.create(&pod, "prop", &c);
    env.d.crictl(&["start", &both]).ok();
    let v = env.inspect(&slave);
    assert_eq!(
        v["status"]["mounts"][0]["propagation"], "PROPAGATION_HOST_TO_CONTAINER",
        "{v}"
    );

    // Mounted on the host after the containers started.
    sh(&format!("mount --bind {ext} {src}/later"));
    mounted.0.push(source.join("later"));
    let ls = |id: &str| env.d.crictl(&["exec", "-s", id, "ls", "/data/later"]).ok();
    assert_eq!(
        ls(&slave).trim(),
        "flag",
        "host mounts reach a rslave mount"
    );
    assert_eq!(ls(&private).trim(), "", "but not a private one");
    assert_eq!(ls(&both).trim(), "flag", "and a bidirectional one");

    // A bidirectional mount also carries the container's mounts to the host.
    let from_ctr = source.join("from-ctr");
    std::fs::create_dir(&from_ctr).expect("mkdir");
    mounted.0.push(from_ctr.clone());
    env.d
        .crictl(&[
            "exec",
            "-s",
            &both,
            "mount",
            "--bind",
            "/etc",
            "/data/from-ctr",
        ])
        .ok();
    assert!(
        from_ctr.join("passwd").exists(),
        "the container's mount shows on the host"
    );
    // A rslave one does not, and nothing of the shim's shows on the host.
    let from_slave = source.join("from-slave");
    std::fs::create_dir(&from_slave).expect("mkdir");
    let _ = env.d.crictl(&[
        "exec",
        "-s",
        &slave,
        "mount",
        "--bind",
        "/etc",
        "/data/from-slave",
    ]);
    assert!(!from_slave.join("passwd").exists());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mountinfo.contains(&env.d.dir().join("state/containers").display().to_string()),
        "shim mounts leaked to the host: {mountinfo}"
    );
}
