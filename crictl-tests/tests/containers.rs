//! Issue 6, end to end: the Docker tutorial's flow through the real crictl
//! against cortend, with a real registry and real pods.

mod container_env;

use std::time::Duration;

use container_env::Env;
use corten_cri_api::v1::ExecSyncRequest;
use crictl_tests::{cri, wait};

#[test]
fn tutorial_pull_run_list_exec_logs_stop_remove() {
    let env = Env::new();
    let images = env.d.crictl(&["images"]).ok();
    assert!(images.contains("docker.io/library/busybox"), "{images}");

    let pod = env.pod("tutorial");
    let ls = env.run(&pod, "tutorial", "ls", &["ls", "-l", "/"]);
    env.wait_state(&ls, "CONTAINER_EXITED", Duration::from_secs(20));
    let (out, _) = env.logs(&ls, &[]);
    assert!(out.contains("bin") && out.contains("etc"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("total ")), "{out}");

    // `crictl run`: a pod of its own, a container created and started in it.
    let run_pod = env.file("pod-run.json", &env.pod_config("tutorial-run"));
    let sleep = env.file(
        "sleep.json",
        &env.container_config("sleep", &["sleep", "3600"]),
    );
    let sleeper = env
        .d
        .crictl(&[
            "run",
            "--no-pull",
            container_env::path(&sleep),
            container_env::path(&run_pod),
        ])
        .ok()
        .trim()
        .to_string();
    assert_eq!(env.state(&sleeper), "CONTAINER_RUNNING");

    let ps = env.d.crictl(&["ps", "-a", "-o", "json"]).json();
    let listed = ps["containers"].as_array().cloned().unwrap_or_default();
    let state_of = |id: &str| {
        listed
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["state"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(state_of(&ls).as_deref(), Some("CONTAINER_EXITED"), "{ps}");
    assert_eq!(
        state_of(&sleeper).as_deref(),
        Some("CONTAINER_RUNNING"),
        "{ps}"
    );
    let sleeper_pod = listed
        .iter()
        .find(|c| c["id"] == sleeper.as_str())
        .and_then(|c| c["podSandboxId"].as_str())
        .unwrap_or("")
        .to_string();
    assert!(!sleeper_pod.is_empty() && sleeper_pod != pod, "{ps}");
    let running = env.d.crictl(&["ps", "-q"]).ok();
    assert!(
        running.contains(&sleeper) && !running.contains(&ls),
        "{running}"
    );

    let ls_out = env.d.crictl(&["exec", "-s", &sleeper, "ls", "/"]).ok();
    assert!(ls_out.contains("bin"), "{ls_out}");
    let uname = env.d.crictl(&["exec", "-s", &sleeper, "uname", "-a"]).ok();
    assert!(uname.starts_with("Linux"), "{uname}");
    // It is in the pod: its hostname, its network namespace and address.
    let host = env.d.crictl(&["exec", "-s", &sleeper, "hostname"]).ok();
    assert_eq!(host.trim(), "tutorial-run");
    // And in its cgroup: in the container's cgroup namespace, each of the
    // hierarchies corten makes cgroups in is rooted at the exec'd process's.
    let cgroups = env
        .d
        .crictl(&["exec", "-s", &sleeper, "cat", "/proc/self/cgroup"])
        .ok();
    let mut seen = 0;
    for line in cgroups.lines() {
        let parts: Vec<&str> = line.splitn(3, ':').collect();
        if let [_, ctrls, path] = parts[..] {
            if corten_runtime::cgroups::Controller::any_managed(ctrls) {
                assert_eq!(path, "/", "{cgroups}");
                seen += 1;
            }
        }
    }
    assert!(seen > 0, "{cgroups}");
    let pod_ip = env.d.crictl(&["inspectp", &sleeper_pod]).json()["status"]["network"]["ip"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(!pod_ip.is_empty());
    let addrs = env
        .d
        .crictl(&["exec", "-s", &sleeper, "ip", "-4", "addr"])
        .ok();
    assert!(addrs.contains(&format!("inet {pod_ip}/")), "{addrs}");
    let hosts = env
        .d
        .crictl(&["exec", "-s", &sleeper, "cat", "/etc/hosts"])
        .ok();
    assert!(
        hosts.contains("tutorial-run"),
        "the pod's /etc/hosts: {hosts}"
    );

    env.d.crictl(&["stop", "--timeout", "0", &sleeper]).ok();
    let v = env.inspect(&sleeper);
    assert_eq!(v["status"]["state"], "CONTAINER_EXITED", "{v}");
    assert_eq!(v["status"]["exitCode"], 137, "{v}");
    env.d.crictl(&["rm", &sleeper, &ls]).ok();
    let ps = env.d.crictl(&["ps", "-a", "-q"]).ok();
    assert!(ps.trim().is_empty(), "{ps}");
    env.d.crictl(&["stopp", &pod, &sleeper_pod]).ok();
    env.d.crictl(&["rmp", &pod, &sleeper_pod]).ok();
    env.d.crictl(&["rmi", "busybox"]).ok();
    let images = env.d.crictl(&["images", "-q"]).ok();
    assert!(images.trim().is_empty(), "{images}");
}

#[test]
fn two_containers_of_one_image_see_neither_files_nor_processes_of_the_other() {
    let env = Env::new();
    // A pid namespace per container, as kubelet asks unless the pod shares one.
    let pod = env.pod_with(
        "iso",
        serde_json::json!({"security_context": {"namespace_options": {"pid": 1}}}),
    );
    let a = env.run(
        &pod,
        "iso",
        "a",
        &["sh", "-c", "echo secret > /tmp/mine; exec sleep 3600"],
    );
    let b = env.run(&pod, "iso", "b", &["sleep", "3600"]);
    // The file a wrote is there for a, and not for b.
    let mut got = None;
    let wrote = wait::within(Duration::from_secs(30), || {
        let out = env.d.crictl(&["exec", "-s", &a, "cat", "/tmp/mine"]);
        let done = out.stdout().trim() == "secret";
        got = Some((out.stdout(), out.stderr()));
        done
    });
    assert!(wrote, "a never wrote its file: {got:?}");
    let err = env.d.crictl(&["exec", "-s", &b, "cat", "/tmp/mine"]);
    assert!(!err.output.status.success(), "b sees a's file");
    // Each sees its own processes only (pid namespaces of their own).
    let ps_b = env
        .d
        .crictl(&["exec", "-s", &b, "ps", "-o", "pid,args"])
        .ok();
    assert!(ps_b.contains("sleep 3600"), "{ps_b}");
    assert!(!ps_b.contains("/tmp/mine"), "{ps_b}");
    let pid1 = env
        .d
        .crictl(&["exec", "-s", &a, "cat", "/proc/1/cmdline"])
        .ok();
    assert!(pid1.starts_with("sleep"), "a's pid 1 is its own: {pid1:?}");
    let procs = env.d.crictl(&["exec", "-s", &b, "ls", "/proc"]).ok();
    let pids = procs
        .split_whitespace()
        .filter(|p| p.parse::<u32>().is_ok())
        .count();
    assert!(pids <= 3, "b sees foreign processes: {procs}");

    // Unless one asks for another's pid namespace (TARGET).
    let mut c = env.container_config("c", &["sleep", "3600"]);
    c["linux"]["security_context"] =
        serde_json::json!({"namespace_options": {"pid": 3, "target_id": a}});
    let c = env.create(&pod, "iso", &c);
    env.d.crictl(&["start", &c]).ok();
    let pid1 = env
        .d
        .crictl(&["exec", "-s", &c, "cat", "/proc/1/cmdline"])
        .ok();
    assert!(pid1.starts_with("sleep"), "c shares a's: {pid1:?}");
    let n = env.d.crictl(&["exec", "-s", &c, "ps", "-o", "args"]).ok();
    assert_eq!(n.matches("sleep 3600").count(), 2, "{n}");
}

#[test]
fn exit_codes_reasons_and_exits_seen_at_once() {
    let env = Env::new();
    let pod = env.pod("codes");
    let zero = env.run(&pod, "codes", "zero", &["sh", "-c", "exit 0"]);
    let one = env.run(&pod, "codes", "one", &["sh", "-c", "echo bye >&2; exit 1"]);
    for (id, code, reason) in [(&zero, 0, "Completed"), (&one, 1, "Error")] {
        let v = env.wait_state(id, "CONTAINER_EXITED", Duration::from_secs(30));
        assert_eq!(v["status"]["exitCode"], code, "{v}");
        assert_eq!(v["status"]["reason"], reason, "{v}");
        let started = v["status"]["startedAt"].as_str().unwrap_or("");
        let finished = v["status"]["finishedAt"].as_str().unwrap_or("");
        assert!(!started.is_empty() && finished >= started, "{v}");
    }
    let killed = env.run(&pod, "codes", "killed", &["sleep", "3600"]);
    env.d.crictl(&["stop", "--timeout", "0", &killed]).ok();
    let v = env.inspect(&killed);
    assert_eq!(v["status"]["state"], "CONTAINER_EXITED", "{v}");
    assert_eq!(v["status"]["exitCode"], 137, "{v}");

    let mut oom = env.container_config(
        "oom",
        &[
            "sh",
            "-c",
            "x=$(head -c 134217728 /dev/zero | tr '\\0' x); echo survived",
        ],
    );
    oom["linux"]["resources"] = serde_json::json!({"memory_limit_in_bytes": 33554432});
    let id = env.create(&pod, "codes", &oom);
    env.d.crictl(&["start", &id]).ok();
    let v = env.wait_state(&id, "CONTAINER_EXITED", Duration::from_secs(60));
    assert_eq!(v["status"]["reason"], "OOMKilled", "{v}");
    assert_ne!(v["status"]["exitCode"], 0, "{v}");
}

#[test]
fn stop_waits_the_timeout_for_a_container_ignoring_sigterm_then_kills() {
    let env = Env::new();
    let pod = env.pod("stop");
    let stubborn = env.run(
        &pod,
        "stop",
        "stubborn",
        &[
            "sh",
            "-c",
            "trap '' TERM; echo ready; while true; do sleep 0.2; done",
        ],
    );
    let polite = env.run(
        &pod,
        "stop",
        "polite",
        &[
            "sh",
            "-c",
            "trap 'exit 0' TERM; echo ready; while true; do sleep 0.2; done",
        ],
    );
    // The traps are set.
    env.wait_logged(&stubborn, "ready");
    env.wait_logged(&polite, "ready");

    // Waiting the timeout is a lower bound, which no slowness can break;
    // the SIGKILL after it shows in the exit code.
    let t = std::time::Instant::now();
    env.d.crictl(&["stop", "--timeout", "3", &stubborn]).ok();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(3),
        "killed before the timeout: {took:?}"
    );
    let v = env.inspect(&stubborn);
    assert_eq!(v["status"]["exitCode"], 137, "{v}");

    // Exit code 0, not 137: SIGTERM ended it, not the kill 30 s later.
    env.d.crictl(&["stop", "--timeout", "30", &polite]).ok();
    let v = env.inspect(&polite);
    assert_eq!(v["status"]["exitCode"], 0, "SIGTERM handled: {v}");

    // Stopping and removing again, or what never existed, succeeds.
    env.d.crictl(&["stop", &polite]).ok();
    env.d.crictl(&["rm", &polite]).ok();
    env.d.crictl(&["rm", &polite]).fails();
}

#[test]
fn names_are_unique_per_pod_and_attempt() {
    let env = Env::new();
    let pod = env.pod("names");
    let config = env.container_config("web", &["sleep", "3600"]);
    env.create(&pod, "names", &config);
    let err = env.try_create(&pod, "names", &config).fails();
    assert!(
        err.contains("AlreadyExists") || err.contains("already in use"),
        "{err}"
    );
    let mut next = config.clone();
    next["metadata"]["attempt"] = 1.into();
    env.create(&pod, "names", &next);
    let mut bad = config.clone();
    bad["image"]["image"] = "docker.io/library/nonexistent:1".into();
    bad["metadata"]["name"] = "other".into();
    let err = env.try_create(&pod, "names", &bad).fails();
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
}

#[test]
fn exec_sync_codes_output_timeout_and_stopped_containers() {
    let env = Env::new();
    let pod = env.pod("exec");
    let id = env.run(&pod, "exec", "box", &["sleep", "3600"]);
    let out = env.d.crictl(&[
        "exec",
        "-s",
        &id,
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    // crictl reports a non-zero code in its error and exits 1.
    assert!(!out.output.status.success());
    assert!(out.stderr().contains("exited with 3"), "{}", out.stderr());
    let out = env
        .d
        .crictl(&["exec", "-s", &id, "sh", "-c", "echo out; echo err >&2"]);
    // crictl prints the stdout it got, then the stderr.
    let printed: Vec<String> = out.ok().split_whitespace().map(str::to_string).collect();
    assert_eq!(printed, ["out", "err"]);

    let slow = env.d.crictl(&[
        "exec",
        "-s",
        "--timeout",
        "2",
        &id,
        "sh",
        "-c",
        "sleep 30; echo late",
    ]);
    // No "late": the command was cut short, not waited for.
    assert!(!slow.output.status.success());
    assert!(!slow.stdout().contains("late"));
    assert!(
        slow.stderr().contains("DeadlineExceeded") || slow.stderr().contains("timed out"),
        "{}",
        slow.stderr()
    );
    assert!(
        slow.stderr().contains("sleep 30") && slow.stderr().contains(&id),
        "the error names the command and the container: {}",
        slow.stderr()
    );
    // The timed-out command was killed.
    let ps = env.d.crictl(&["exec", "-s", &id, "ps", "-o", "args"]).ok();
    assert!(!ps.contains("sleep 30"), "{ps}");
    // A command run directly is killed and reaped: not even a zombie stays
    // (every process's name, zombies included; only the container's sleep).
    env.d
        .crictl(&["exec", "-s", "--timeout", "1", &id, "sleep", "4321"])
        .fails();
    let names = env
        .d
        .crictl(&["exec", "-s", &id, "sh", "-c", "cat /proc/[0-9]*/comm"])
        .ok();
    assert_eq!(names.matches("sleep").count(), 1, "{names}");

    env.d.crictl(&["stop", "--timeout", "0", &id]).ok();
    let err = env.d.crictl(&["exec", "-s", &id, "ls"]).fails();
    assert!(
        err.contains("not running") || err.contains("exited"),
        "{err}"
    );
}

/// 17 MiB: over the ExecSync cap (16 MiB less 64 KiB, both streams
/// together, so a response fits crictl's and kubelet's 16 MiB limit).
const OVER_CAP: usize = 17 << 20;
const CAP: usize = (16 << 20) - (64 << 10);

/// How many NUL bytes `b` starts with.
fn leading_nuls(b: &[u8]) -> usize {
    b.iter().take_while(|c| **c == 0).count()
}

#[test]
fn exec_sync_output_over_the_cap_is_truncated_and_says_so() {
    let env = Env::new();
    let pod = env.pod("flood");
    let id = env.run(&pod, "flood", "box", &["sleep", "3600"]);
    let marker = "corten: ExecSync output truncated";

    // One stream over the cap: it keeps the whole budget; the response
    // still reaches crictl (a bigger one would fail there as "received
    // message larger than max"), with the command's exit code, 0.
    let n = OVER_CAP.to_string();
    let out = env
        .d
        .crictl(&["exec", "-s", &id, "head", "-c", &n, "/dev/zero"]);
    assert!(out.output.status.success(), "{}", out.stderr());
    // crictl prints stdout, a newline, stderr, a newline.
    let printed = &out.output.stdout;
    assert_eq!(leading_nuls(printed), CAP);
    let rest = String::from_utf8_lossy(&printed[CAP..]);
    assert!(rest.starts_with('\n') && rest.contains(marker), "{rest:?}");
    let kept = format!("kept {CAP} of {OVER_CAP} bytes of stdout, 0 of 0 bytes of stderr");
    assert!(rest.contains(&kept), "{rest:?}");

    // Both streams over it, and a failing exit: half each, the code kept.
    // (crictl prints no stdout for a non-zero code: asked directly, by a
    // client with kubelet's 16 MiB limit.)
    let script = format!("head -c {n} /dev/zero; head -c {n} /dev/zero >&2; exit 3");
    let resp = cri::block_on(async {
        let mut client = cri::runtime(env.d.socket())
            .await
            .expect("connect")
            .max_decoding_message_size(16 << 20);
        client
            .exec_sync(ExecSyncRequest {
                container_id: id.clone(),
                cmd: vec!["sh".into(), "-c".into(), script],
                timeout: 0,
            })
            .await
            .expect("the response fits a 16 MiB message")
            .into_inner()
    });
    assert_eq!(resp.exit_code, 3);
    let half = CAP / 2;
    assert_eq!(
        (resp.stdout.len(), leading_nuls(&resp.stdout)),
        (half, half)
    );
    assert_eq!(leading_nuls(&resp.stderr), CAP - half, "stderr's share");
    let rest = String::from_utf8_lossy(&resp.stderr[CAP - half..]);
    let kept = format!(
        "kept {half} of {OVER_CAP} bytes of stdout, {} of {OVER_CAP} bytes of stderr",
        CAP - half
    );
    assert!(
        rest.starts_with('\n') && rest.contains(marker) && rest.contains(&kept),
        "{rest:?}"
    );

    // Output within the cap carries no marker.
    let out = env
        .d
        .crictl(&["exec", "-s", &id, "head", "-c", "100000", "/dev/zero"]);
    let printed = &out.output.stdout;
    assert!(out.output.status.success(), "{}", out.stderr());
    assert_eq!(leading_nuls(printed), 100_000);
    assert_eq!(&printed[100_000..], b"\n\n");
}

#[test]
fn a_container_its_shim_cannot_create_fails_start_with_the_reason_and_is_exited() {
    let env = Env::new();
    let pod = env.pod("uncreatable");
    // A working directory that is a file of the image: the init's setup
    // fails in the shim, after CreateContainer has returned (as with
    // containerd, the runtime's create is the start's to report).
    let mut config = env.container_config("cwd", &["true"]);
    config["working_dir"] = "/bin/sh".into();
    let id = env.create(&pod, "uncreatable", &config);
    let out = env.d.crictl(&["start", &id]);
    assert!(!out.output.status.success(), "started: {}", out.stdout());
    assert!(
        out.stderr().contains("creating the container") && out.stderr().contains("/bin/sh"),
        "{}",
        out.stderr()
    );
    let v = env.inspect(&id);
    assert_eq!(v["status"]["state"], "CONTAINER_EXITED", "{v}");
    assert_eq!(v["status"]["reason"], "StartError", "{v}");
    assert_eq!(v["status"]["exitCode"], 128, "{v}");
    let message = v["status"]["message"].as_str().unwrap_or("");
    assert!(message.contains("/bin/sh"), "{v}");
    // A second start is refused; removal leaves nothing of it.
    assert!(!env.d.crictl(&["start", &id]).output.status.success());
    env.d.crictl(&["rm", &id]).ok();
    assert!(env.d.crictl(&["ps", "-a", "-q"]).ok().trim().is_empty());
    let bundle = env.d.state_dir().join("containers").join(&id);
    assert!(!bundle.exists(), "{bundle:?}");
}

#[test]
fn a_command_that_cannot_run_fails_start_and_leaves_an_exited_container() {
    let env = Env::new();
    let pod = env.pod("bad");
    let id = env.create(
        &pod,
        "bad",
        &env.container_config("nope", &["/no/such/binary"]),
    );
    let out = env.d.crictl(&["start", &id]);
    let v = env.inspect(&id);
    if out.output.status.success() {
        // The exec failure shows as the process's end.
        let v = env.wait_state(&id, "CONTAINER_EXITED", Duration::from_secs(10));
        assert_ne!(v["status"]["exitCode"], 0, "{v}");
    } else {
        assert!(out.stderr().contains("/no/such/binary"), "{}", out.stderr());
        assert_eq!(v["status"]["state"], "CONTAINER_EXITED", "{v}");
        assert_ne!(v["status"]["exitCode"], 0, "{v}");
        let message = v["status"]["message"].as_str().unwrap_or("");
        assert!(message.contains("/no/such/binary"), "{v}");
    }
    env.d.crictl(&["rm", &id]).ok();
    // Bad input is refused before anything is made.
    let mut bad = env.container_config("badmount", &["true"]);
    bad["mounts"] = serde_json::json!([{"container_path": "relative", "host_path": "/tmp"}]);
    let err = env.try_create(&pod, "bad", &bad).fails();
    assert!(
        err.contains("InvalidArgument") && err.contains("container_path"),
        "{err}"
    );
    assert!(env.d.crictl(&["ps", "-a", "-q"]).ok().trim().is_empty());
}

/// A protobuf-JSON `UInt64Value` (`{"value": "123"}`) as a number.
fn uint64(v: &serde_json::Value) -> Option<u64> {
    match &v["value"] {
        serde_json::Value::String(s) => s.parse().ok(),
        n => n.as_u64(),
    }
}

#[test]
fn pod_and_container_stats_name_the_pod_its_containers_and_their_usage() {
    let env = Env::new();
    let pod = env.pod("stats");
    let id = env.run(&pod, "stats", "box", &["sleep", "3600"]);
    let other = env.pod("quiet");

    let out = env.d.crictl(&["statsp", "-o", "json", "--id", &pod]).ok();
    let v: serde_json::Value = serde_json::from_str(&out).expect("statsp json");
    let stats = v["stats"].as_array().expect("stats");
    assert_eq!(stats.len(), 1, "{v}");
    let s = &stats[0];
    assert_eq!(s["attributes"]["id"], pod.as_str(), "{v}");
    assert_eq!(s["attributes"]["metadata"]["name"], "stats", "{v}");
    // The pod cgroup holds the sleeping container: memory and a process.
    assert!(
        uint64(&s["linux"]["memory"]["workingSetBytes"]).is_some_and(|b| b > 0),
        "{v}"
    );
    assert!(
        uint64(&s["linux"]["process"]["processCount"]).is_some_and(|n| n >= 1),
        "{v}"
    );
    let containers = s["linux"]["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "{v}");
    assert_eq!(containers[0]["attributes"]["id"], id.as_str(), "{v}");

    // Every pod, by id.
    let out = env.d.crictl(&["statsp", "-o", "json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&out).expect("statsp json");
    let mut ids: Vec<&str> = v["stats"]
        .as_array()
        .expect("stats")
        .iter()
        .filter_map(|s| s["attributes"]["id"].as_str())
        .collect();
    ids.sort();
    let mut want = vec![pod.as_str(), other.as_str()];
    want.sort();
    assert_eq!(ids, want, "{v}");

    let out = env.d.crictl(&["stats", "-o", "json", "--id", &id]).ok();
    let v: serde_json::Value = serde_json::from_str(&out).expect("stats json");
    let c = &v["stats"][0];
    assert_eq!(c["attributes"]["id"], id.as_str(), "{v}");
    let mountpoint = c["writableLayer"]["fsId"]["mountpoint"]
        .as_str()
        .expect("mountpoint");
    assert!(mountpoint.ends_with("/containers"), "{v}");
}
