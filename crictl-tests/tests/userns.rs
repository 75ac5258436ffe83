//! Issue 15, end to end: pods with a user namespace of their own
//! (Kubernetes `hostUsers: false`, CRI `userns_options` mode POD) through
//! the real crictl: the mapping inside, container root, the image's files
//! and a hostPath volume through id-mapped mounts, one user namespace for
//! the whole pod, and precise refusals of what cannot be honoured.

mod container_env;

use std::os::unix::fs::MetadataExt as _;
use std::time::Duration;

use container_env::Env;
use serde_json::{json, Value};

/// Host 100000 -> container 0, 65536 ids, for uids and gids.
fn mapping(host: u32) -> Value {
    json!([{"host_id": host, "container_id": 0, "length": 65536}])
}

/// Namespace options with a user namespace (mode POD = 0) and `pid` mode.
fn options(pid: i32, host: u32) -> Value {
    json!({
        "pid": pid,
        "userns_options": {"mode": 0, "uids": mapping(host), "gids": mapping(host)}
    })
}

fn exec(env: &Env, id: &str, cmd: &[&str]) -> String {
    let mut args = vec!["exec", "-s", id];
    args.extend_from_slice(cmd);
    env.d.crictl(&args).ok().trim().to_string()
}

/// A sleeping container of `pod` with `ns` as its namespace options (what
/// kubelet sends: the pod's) and `mounts`.
fn sleeper(env: &Env, pod: &str, pod_name: &str, name: &str, ns: &Value, mounts: Value) -> String {
    let mut c = env.container_config(name, &["sleep", "3600"]);
    c["linux"] = json!({"security_context": {"namespace_options": ns}});
    c["mounts"] = mounts;
    let id = env.create(pod, pod_name, &c);
    env.d.crictl(&["start", &id]).ok();
    env.wait_state(&id, "CONTAINER_RUNNING", Duration::from_secs(30));
    id
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

#[test]
fn a_pods_containers_share_its_user_namespace_with_id_mapped_files() {
    let mut env = Env::new();
    // Kubelet's default: a pid namespace per container (pid CONTAINER).
    let ns = options(1, 100_000);
    let pod = env.pod_with(
        "uns",
        json!({"security_context": {"namespace_options": ns}}),
    );

    let vol = env.dir.path().join("vol");
    std::fs::create_dir(&vol).expect("mkdir vol");
    std::fs::write(vol.join("from-host"), "x").expect("write");
    std::os::unix::fs::chown(vol.join("from-host"), Some(4321), Some(4322)).expect("chown");
    let mounts = json!([{"container_path": "/vol", "host_path": vol.display().to_string()}]);
    let a = sleeper(&env, &pod, "uns", "a", &ns, mounts.clone());
    let b = sleeper(&env, &pod, "uns", "b", &ns, mounts);

    // The mapping, and root inside.
    assert_eq!(
        words(&exec(&env, &a, &["cat", "/proc/self/uid_map"])),
        ["0", "100000", "65536"]
    );
    assert_eq!(
        words(&exec(&env, &a, &["cat", "/proc/self/gid_map"])),
        ["0", "100000", "65536"]
    );
    assert_eq!(exec(&env, &a, &["id", "-u"]), "0");
    assert_eq!(exec(&env, &a, &["id", "-g"]), "0");
    // From the host, the container's processes are the mapped ids.
    let pid = env.inspect(&a)["info"]["pid"].as_u64().expect("init pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap_or("");
    assert_eq!(words(uid_line)[1..], ["100000"; 4], "{uid_line}");

    // The image's files (host uid 0) are container root's; so is `/`, and
    // root may write there.
    assert_eq!(
        exec(&env, &a, &["stat", "-c", "%u:%g", "/bin/busybox", "/"]),
        "0:0\n0:0"
    );
    exec(
        &env,
        &a,
        &["sh", "-c", "echo x > /made-in-rootfs && mkdir /etc/new"],
    );
    assert_eq!(
        exec(&env, &a, &["stat", "-c", "%u", "/made-in-rootfs"]),
        "0"
    );

    // The hostPath volume is an id-mapped mount of the pod's mapping: the
    // host's file keeps its ids inside, and a file root makes there is
    // owned by host uid 0 (as containerd and CRI-O make volumes).
    assert_eq!(
        exec(&env, &a, &["stat", "-c", "%u:%g", "/vol/from-host"]),
        "4321:4322"
    );
    exec(
        &env,
        &a,
        &[
            "sh",
            "-c",
            "echo y > /vol/by-root && touch /vol/by-1000 && chown 1000:1001 /vol/by-1000",
        ],
    );
    let meta = std::fs::metadata(vol.join("by-root")).expect("made on the volume");
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
    let meta = std::fs::metadata(vol.join("by-1000")).expect("chowned on the volume");
    assert_eq!((meta.uid(), meta.gid()), (1000, 1001));

    // One user namespace for the pod, not the host's.
    let ns_of = |id: &str| exec(&env, id, &["readlink", "/proc/self/ns/user"]);
    let host_ns = std::fs::read_link("/proc/self/ns/user").expect("host userns");
    assert_eq!(ns_of(&a), ns_of(&b));
    assert_ne!(ns_of(&a), host_ns.display().to_string());
    // Its own pid namespace (pid 1 is its sleep), proc and sysfs mounted.
    // A terminal, for an exec and for a container's own.
    let cmd = env
        .d
        .crictl_command(&["exec", "-it", &a, "sh", "-c", "tty; id -u; sleep 1"]);
    let line = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|w| format!("'{}'", w.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let out = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script");
    let t = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(
        t.contains("/dev/pts/") && t.lines().any(|l| l.trim() == "0"),
        "{t} {out:?}"
    );
    let mut tty = env.container_config("tty", &["sh", "-c", "tty; id -u; sleep 3600"]);
    tty["tty"] = true.into();
    tty["linux"] = json!({"security_context": {"namespace_options": ns}});
    let tty = env.create(&pod, "uns", &tty);
    env.d.crictl(&["start", &tty]).ok();
    env.wait_logged(&tty, "0");
    let cmdline = exec(&env, &b, &["cat", "/proc/1/cmdline"]);
    assert_eq!(cmdline.replace('\0', " ").trim(), "sleep 3600");
    assert!(words(&exec(&env, &b, &["ls", "/sys/class/net"])).contains(&"lo".to_string()));

    // A container that ends: its init (forked inside the user namespace's
    // pid namespace) is the shim's, whose exit code is reported.
    let mut ends = env.container_config("ends", &["sh", "-c", "exit 3"]);
    ends["linux"] = json!({"security_context": {"namespace_options": ns}});
    let ends = env.create(&pod, "uns", &ends);
    env.d.crictl(&["start", &ends]).ok();
    let v = env.wait_state(&ends, "CONTAINER_EXITED", Duration::from_secs(30));
    assert_eq!(v["status"]["exitCode"], 3, "{v}");
    // And one stopped: the host's signal reaches its pid 1.
    env.d.crictl(&["stop", "--timeout", "0", &b]).ok();
    env.wait_state(&b, "CONTAINER_EXITED", Duration::from_secs(30));

    // A restart of the daemon keeps the pod (its user namespace is still
    // pinned): new containers join it.
    env.d.restart();
    let c = sleeper(&env, &pod, "uns", "c", &ns, json!([]));
    let ns_of = |id: &str| exec(&env, id, &["readlink", "/proc/self/ns/user"]);
    assert_eq!(ns_of(&c), ns_of(&a));

    // Removing the pod leaves none of its namespaces pinned.
    env.d.crictl(&["stopp", &pod]).ok();
    env.d.crictl(&["rmp", &pod]).ok();
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!info.contains(&pod), "pod mounts left: {info}");
}

#[test]
fn a_shared_pid_namespace_lives_in_the_pods_user_namespace() {
    let env = Env::new();
    let ns = options(0, 200_000);
    let pod = env.pod_with(
        "shared",
        json!({"security_context": {"namespace_options": ns}}),
    );
    let a = sleeper(&env, &pod, "shared", "a", &ns, json!([]));
    assert_eq!(
        words(&exec(&env, &a, &["cat", "/proc/self/uid_map"])),
        ["0", "200000", "65536"]
    );
    // Pid 1 is the pod's init; the container's sleep is another pid.
    let ps = exec(&env, &a, &["ps", "-o", "pid,args"]);
    assert!(ps.lines().any(|l| l.contains("sleep 3600")), "{ps}");
    assert_eq!(exec(&env, &a, &["stat", "-c", "%u", "/bin/busybox"]), "0");

    // A read-only root in the user namespace: readable, not writable.
    let mut ro = env.container_config("ro", &["sleep", "3600"]);
    ro["linux"] = json!({"security_context": {"namespace_options": ns, "readonly_rootfs": true}});
    let ro = env.create(&pod, "shared", &ro);
    env.d.crictl(&["start", &ro]).ok();
    env.wait_state(&ro, "CONTAINER_RUNNING", Duration::from_secs(30));
    assert_eq!(exec(&env, &ro, &["stat", "-c", "%u", "/etc/passwd"]), "0");
    let refused = exec(&env, &ro, &["sh", "-c", "touch /x 2>&1 || echo refused"]);
    assert!(refused.contains("Read-only file system"), "{refused}");
}

#[test]
fn bad_user_namespace_options_are_invalid_arguments() {
    let env = Env::new();
    let info = env.d.crictl(&["info"]).json();
    let handlers = info["runtimeHandlers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let default = handlers
        .iter()
        .find(|h| h["name"].as_str().unwrap_or("").is_empty())
        .unwrap_or_else(|| panic!("no default handler: {info}"));
    assert_eq!(default["features"]["user_namespaces"], true, "{info}");

    let try_pod = |name: &str, userns: Value| {
        let mut pod = env.pod_config(name);
        pod["linux"] =
            json!({"security_context": {"namespace_options": {"userns_options": userns}}});
        let config = env.file(&format!("pod-{name}.json"), &pod);
        env.d
            .crictl(&["runp", container_env::path(&config)])
            .fails()
    };
    let cases = [
        (
            "zero",
            json!({"mode": 0, "uids": [{"host_id": 1000, "container_id": 0, "length": 0}], "gids": mapping(1000)}),
            "size 0",
        ),
        (
            "norootmap",
            json!({"mode": 0, "uids": [{"host_id": 1000, "container_id": 1, "length": 10}], "gids": mapping(1000)}),
            "container id 0 (root) is not mapped",
        ),
        (
            "overflow",
            json!({"mode": 0, "uids": [{"host_id": 4294967295u32, "container_id": 0, "length": 2}], "gids": mapping(1000)}),
            "past 2^32",
        ),
        (
            "nogids",
            json!({"mode": 0, "uids": mapping(1000)}),
            "gid map: is empty",
        ),
        (
            "two",
            json!({"mode": 0, "uids": [{"host_id": 1000, "container_id": 0, "length": 10}, {"host_id": 2000, "container_id": 10, "length": 10}], "gids": mapping(1000)}),
            "exactly one",
        ),
        (
            "container",
            json!({"mode": 1}),
            "CONTAINER is not supported",
        ),
        ("target", json!({"mode": 3}), "TARGET is not supported"),
    ];
    for (name, userns, says) in cases {
        let err = try_pod(name, userns);
        assert!(err.contains("InvalidArgument"), "{name}: {err}");
        assert!(err.contains("userns_options"), "{name}: {err}");
        assert!(err.contains(says), "{name}: {err}");
    }
    let pods = env.d.crictl(&["pods", "-q"]).ok();
    assert!(pods.trim().is_empty(), "refused pods left: {pods}");

    // A container whose options are not its pod's.
    let ns = options(1, 100_000);
    let pod = env.pod_with(
        "mismatch",
        json!({"security_context": {"namespace_options": ns}}),
    );
    let mut c = env.container_config("other", &["true"]);
    c["linux"] = json!({"security_context": {"namespace_options": options(1, 300_000)}});
    let err = env.try_create(&pod, "mismatch", &c).fails();
    assert!(
        err.contains("InvalidArgument") && err.contains("other than its pod's"),
        "{err}"
    );
    c["linux"] = json!({"security_context": {"namespace_options": {"pid": 2, "userns_options": ns["userns_options"]}}});
    let err = env.try_create(&pod, "mismatch", &c).fails();
    assert!(
        err.contains("InvalidArgument") && err.contains("namespace_options.pid"),
        "{err}"
    );
}
