//! Issue 15, RuntimeClass: `[runtimes.<name>]` handlers through the real
//! crictl. Debian's runc and crun (crictl-tests/run.sh installs them) are
//! the handlers; pods run with one get their containers made by it, and
//! Status lists every handler with what its runtime declares.

mod container_env;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use container_env::{path, Env};
use crictl_tests::DaemonBuilder;
use serde_json::{json, Value};

const RUNC: &str = "/usr/sbin/runc";
const CRUN: &str = "/usr/bin/crun";

fn require(binary: &str) {
    assert!(
        Path::new(binary).is_file(),
        "{binary} is missing: crictl-tests/run.sh installs Debian's runc and crun"
    );
}

/// A handler table for the config.
fn handler(path: &str, pod_annotations: &[&str]) -> toml::Value {
    let mut t = toml::Table::new();
    t.insert("path".into(), toml::Value::String(path.into()));
    t.insert(
        "pod_annotations".into(),
        toml::Value::Array(
            pod_annotations
                .iter()
                .map(|p| toml::Value::String(p.to_string()))
                .collect(),
        ),
    );
    toml::Value::Table(t)
}

/// crun's `--root` (its `root` key), under the daemon's directory; runc
/// keeps its state in each bundle (no `root`).
fn crun_root(d: &std::path::Path) -> std::path::PathBuf {
    d.join("crun-root")
}

fn with_handlers(b: DaemonBuilder) -> DaemonBuilder {
    let root = crun_root(b.dir());
    b.config(|c| {
        let mut runtimes = toml::Table::new();
        runtimes.insert("runc".into(), handler(RUNC, &["example.com/*"]));
        let mut crun = handler(CRUN, &[]);
        if let Some(t) = crun.as_table_mut() {
            t.insert(
                "root".into(),
                toml::Value::String(root.display().to_string()),
            );
        }
        runtimes.insert("crun".into(), crun);
        c.insert("runtimes".into(), toml::Value::Table(runtimes));
    })
}

fn env() -> Env {
    require(RUNC);
    require(CRUN);
    Env::with_daemon(crictl_tests::ImageBuilder::busybox(), with_handlers)
}

/// The runtime's state directory (`--root`) for container `id`.
fn root_of(env: &Env, runtime: &str, id: &str) -> std::path::PathBuf {
    match runtime {
        CRUN => crun_root(env.d.dir()),
        _ => env.d.state_dir().join("containers").join(id).join("runc"),
    }
}

/// The runtime's own view of container `id` (`<runtime> --root <root>
/// state <id>`): proof that this runtime, not the built-in core, made it.
fn runtime_state(env: &Env, runtime: &str, id: &str) -> Value {
    let root = root_of(env, runtime, id);
    let out = Command::new(runtime)
        .arg("--root")
        .arg(&root)
        .args(["state", id])
        .output()
        .expect("run the runtime");
    assert!(
        out.status.success(),
        "{runtime} state {id}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("state JSON")
}

/// Runs a pod with `handler` and one container of `command` in it.
fn pod_and_container(env: &Env, name: &str, handler: &str, command: &[&str]) -> (String, String) {
    let mut pod = env.pod_config(name);
    pod["annotations"] = json!({"example.com/gpu-mode": "shared", "other.org/x": "1"});
    let pod_id = env
        .pod_from(name, &pod, &["--runtime", handler])
        .ok()
        .trim()
        .to_string();
    let id = env.run(&pod_id, name, "main", command);
    (pod_id, id)
}

#[test]
fn status_lists_every_handler_with_its_features() {
    let env = env();
    let info = env.d.crictl(&["info", "-o", "json"]).json();
    let handlers = info["runtimeHandlers"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no runtimeHandlers in {info}"));
    let names: Vec<&str> = handlers
        .iter()
        .map(|h| h["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["", "crun", "runc"], "{info}");
    // crictl leaves out the empty name of the default handler.
    let features = |name: &str| {
        handlers
            .iter()
            .find(|h| h["name"].as_str().unwrap_or("") == name)
            .map(|h| h["features"].clone())
            .unwrap_or_default()
    };
    // The built-in core and Debian's runc 1.1.5 (its `features` lists
    // "rro") make recursive read-only mounts; crun 1.8.1 has no `features`.
    assert_eq!(features("")["recursive_read_only_mounts"], true, "{info}");
    // User namespaces: the built-in core's (with id-mapped mounts); not
    // Debian's runc 1.1.5 (no idmap mount extension) nor crun 1.8.1.
    assert_eq!(features("")["user_namespaces"], true, "{info}");
    for name in ["runc", "crun"] {
        assert_ne!(features(name)["user_namespaces"], true, "{name}: {info}");
    }
    assert_eq!(
        features("runc")["recursive_read_only_mounts"],
        true,
        "{info}"
    );
    assert_ne!(
        features("crun")["recursive_read_only_mounts"],
        true,
        "{info}"
    );
    // The verbose info says the same of each, and what CRI has no field for.
    let verbose = &info["handlerFeatures"];
    assert_eq!(verbose["userNamespacesHostNetwork"], false, "{info}");
    assert_eq!(verbose["supplementalGroupsPolicy"], true, "{info}");
    for name in ["", "runc", "crun"] {
        let shown = &verbose["handlers"][name];
        let cri = features(name);
        for (key, cri_key) in [
            ("recursiveReadOnlyMounts", "recursive_read_only_mounts"),
            ("userNamespaces", "user_namespaces"),
        ] {
            let asked = cri[cri_key].as_bool().unwrap_or(false);
            assert_eq!(shown[key], asked, "{name} {key}: {info}");
        }
        // The shim mounts image volumes for every handler (critest's image
        // volume specs pass with each: tests/critest.rs).
        assert_eq!(shown["imageVolumes"], true, "{name}: {info}");
    }
}

#[test]
fn a_pod_run_with_a_handler_has_its_containers_made_by_that_runtime() {
    let env = env();
    for (handler, runtime) in [("runc", RUNC), ("crun", CRUN)] {
        let name = format!("h-{handler}");
        let (pod, id) = pod_and_container(&env, &name, handler, &["sleep", "3600"]);
        env.wait_state(&id, "CONTAINER_RUNNING", Duration::from_secs(30));
        let state = runtime_state(&env, runtime, &id);
        assert_eq!(state["status"], "running", "{handler}: {state}");
        let shown = env.d.crictl(&["inspectp", "-o", "json", &pod]).json();
        assert_eq!(shown["status"]["runtimeHandler"], handler, "{shown}");

        // The container is in the pod: its network namespace, its hostname.
        let out = env
            .d
            .crictl(&["exec", &id, "hostname"])
            .ok()
            .trim()
            .to_string();
        assert_eq!(out, name);

        // Exit codes and logs come back as from the built-in core.
        let exits = env.run(
            &pod,
            &name,
            "exits",
            &["sh", "-c", "echo from-$0; exit 7", handler],
        );
        let v = env.wait_state(&exits, "CONTAINER_EXITED", Duration::from_secs(30));
        assert_eq!(v["status"]["exitCode"], 7, "{v}");
        let (logs, _) = env.logs(&exits, &[]);
        assert_eq!(logs.trim(), format!("from-{handler}"));

        // Stop and remove leave nothing of the runtime's state.
        env.d.crictl(&["stopp", &pod]).ok();
        env.d.crictl(&["rmp", &pod]).ok();
        let bundle = env.d.state_dir().join("containers").join(&id);
        assert!(!bundle.exists(), "{handler}: {} left", bundle.display());
        let state = root_of(&env, runtime, &id).join(&id);
        assert!(!state.exists(), "{handler}: {} left", state.display());
    }
}

/// The OCI spec in container `id`'s bundle.
fn bundle_spec(env: &Env, id: &str) -> Value {
    let path = env
        .d
        .state_dir()
        .join("containers")
        .join(id)
        .join("config.json");
    serde_json::from_slice(&std::fs::read(&path).expect("read spec")).expect("spec JSON")
}

#[test]
fn only_the_pod_annotations_a_handler_allows_reach_the_containers_spec() {
    let env = env();
    let (_pod, id) = pod_and_container(&env, "annotated", "runc", &["sleep", "3600"]);
    let spec = bundle_spec(&env, &id);
    let annotations = &spec["annotations"];
    assert_eq!(
        annotations["example.com/gpu-mode"], "shared",
        "{annotations}"
    );
    assert!(annotations.get("other.org/x").is_none(), "{annotations}");
    // crun allows none.
    let (_pod, id) = pod_and_container(&env, "annotated-crun", "crun", &["sleep", "3600"]);
    let spec = bundle_spec(&env, &id);
    assert!(
        spec["annotations"].get("example.com/gpu-mode").is_none(),
        "{}",
        spec["annotations"]
    );
}

#[test]
fn a_tty_container_of_a_handler_gets_the_runtimes_terminal() {
    let env = env();
    let pod = env
        .pod_from("tty", &env.pod_config("tty"), &["--runtime", "runc"])
        .ok()
        .trim()
        .to_string();
    let mut config = env.container_config(
        "tty",
        &["sh", "-c", "tty; test -t 1 && echo is-a-tty; sleep 3600"],
    );
    config["tty"] = json!(true);
    let id = env.create(&pod, "tty", &config);
    env.d.crictl(&["start", &id]).ok();
    env.wait_logged(&id, "is-a-tty");
    // `tty` named the terminal runc made (a pts of its own pty).
    let (logs, _) = env.logs(&id, &[]);
    assert!(
        logs.lines()
            .next()
            .is_some_and(|l| l.starts_with("/dev/pts/")),
        "{logs}"
    );
}

#[test]
fn an_unknown_handler_is_refused_naming_it_and_nothing_is_made() {
    let env = env();
    let out = env.pod_from(
        "nosuch",
        &env.pod_config("nosuch"),
        &["--runtime", "gvisor"],
    );
    let err = out.fails();
    assert!(err.contains("InvalidArgument"), "{err}");
    // crictl prints the message with its quotes escaped.
    assert!(
        err.contains("gvisor") && err.contains("is not configured"),
        "{err}"
    );
    assert!(
        err.contains("runc") && err.contains("crun"),
        "the configured ones are named: {err}"
    );
    let pods = env.d.crictl(&["pods", "-q"]).ok();
    assert!(pods.trim().is_empty(), "{pods}");
}

#[test]
fn a_recursive_read_only_mount_is_refused_by_a_handler_without_it() {
    let env = env();
    let pod = env
        .pod_from("rro", &env.pod_config("rro"), &["--runtime", "crun"])
        .ok()
        .trim()
        .to_string();
    let mut config = env.container_config("rro", &["sleep", "3600"]);
    config["mounts"] = json!([{
        "container_path": "/data",
        "host_path": path(env.dir.path()),
        "readonly": true,
        "recursive_read_only": true
    }]);
    let err = env.try_create(&pod, "rro", &config).fails();
    assert!(err.contains("InvalidArgument"), "{err}");
    assert!(
        err.contains("recursive read-only mounts are not supported by runtime handler")
            && err.contains("crun"),
        "{err}"
    );
    let all = env.d.crictl(&["ps", "-a", "-q"]).ok();
    assert!(all.trim().is_empty(), "{all}");
}

#[test]
fn a_handler_whose_runtime_cannot_run_refuses_the_start_naming_it() {
    let started = with_handlers(DaemonBuilder::new())
        .config(|c| {
            let runtimes = c
                .get_mut("runtimes")
                .and_then(toml::Value::as_table_mut)
                .expect("runtimes");
            runtimes.insert("ghost".into(), handler("/nonexistent/ghost-runtime", &[]));
        })
        .start();
    // The socket is bound before the runtime opens (callers queue during
    // recovery): the start may be seen, then the exit.
    let err = match started {
        Err(err) => err,
        Ok(mut d) => {
            let status = d.wait_exit();
            assert!(!status.success(), "cortend ran with a missing runtime");
            d.log()
        }
    };
    assert!(
        err.contains("runtimes.ghost: cannot use /nonexistent/ghost-runtime"),
        "{err}"
    );
}

/// The shim of container `id`: the peer of a connection to its socket.
fn shim_pid(env: &Env, id: &str) -> i32 {
    let socket = env
        .d
        .state_dir()
        .join("containers")
        .join(id)
        .join("shim.sock");
    let (_dir, addr) =
        corten_runtime::shim::protocol::socket_address(&socket).expect("socket address");
    let stream = std::os::unix::net::UnixStream::connect(&addr).expect("the shim answers");
    let cred = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
        .expect("SO_PEERCRED");
    cred.pid()
}

/// A shim killed with SIGKILL under an external runtime whose state lives
/// outside the bundle (crun's `root`): the container is ended through its
/// cgroup, and its removal deletes the runtime's state too.
#[test]
fn a_killed_shim_of_a_handler_leaves_no_runtime_state_after_removal() {
    let env = env();
    let (pod, id) = pod_and_container(&env, "orphan", "crun", &["sleep", "3600"]);
    env.wait_state(&id, "CONTAINER_RUNNING", Duration::from_secs(30));
    let state_dir = root_of(&env, CRUN, &id).join(&id);
    assert!(state_dir.exists(), "crun keeps {}", state_dir.display());
    let shim = shim_pid(&env, &id);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the shim");
    env.wait_state(&id, "CONTAINER_EXITED", Duration::from_secs(30));
    env.d.crictl(&["rm", &id]).ok();
    assert!(!state_dir.exists(), "{} left", state_dir.display());
    env.d.crictl(&["rmp", "-f", &pod]).ok();
}

/// A user namespace asked of a handler that does not support them (Status
/// says so; kubelet would not ask) is refused before anything is made.
#[test]
fn a_user_namespace_is_refused_by_a_handler_without_them() {
    let env = env();
    let mapping = json!([{"host_id": 100000, "container_id": 0, "length": 65536}]);
    let mut pod = env.pod_config("userns");
    pod["linux"] = json!({"security_context": {"namespace_options": {
        "userns_options": {"mode": 0, "uids": mapping, "gids": mapping}
    }}});
    let err = env.pod_from("userns", &pod, &["--runtime", "runc"]).fails();
    assert!(err.contains("InvalidArgument"), "{err}");
    assert!(err.contains("does not support user namespaces"), "{err}");
    let pods = env.d.crictl(&["pods", "-q"]).ok();
    assert!(pods.trim().is_empty(), "{pods}");
}

/// The shim aborted (crash point `shim.external.after_create`, as a
/// `kill -9` would end it) once the handler's runtime has created the
/// container and before the daemon hears of it: StartContainer fails with
/// the reason, and RemoveContainer deletes what the runtime made (its
/// state, its waiting init, its cgroup) as well as the bundle.
#[test]
fn a_shim_aborted_after_the_runtimes_create_leaves_nothing_after_removal() {
    use corten_runtime::crash;
    let mut env = env();
    env.d
        .set_env(crash::ENV, Some("shim.external.after_create"));
    env.d.restart();
    for (handler, runtime) in [("runc", RUNC), ("crun", CRUN)] {
        let name = format!("aborted-{handler}");
        let pod = env
            .pod_from(&name, &env.pod_config(&name), &["--runtime", handler])
            .ok()
            .trim()
            .to_string();
        let id = env.create(&pod, &name, &env.container_config("c", &["sleep", "3600"]));
        let err = env.d.crictl(&["start", &id]).fails();
        assert!(
            err.contains(&id[..12]) || err.contains("shim"),
            "{handler}: {err}"
        );
        let cgroup = bundle_spec(&env, &id)["linux"]["cgroupsPath"]
            .as_str()
            .expect("cgroups path")
            .to_string();
        let state = root_of(&env, runtime, &id).join(&id);
        assert!(
            state.exists(),
            "{handler}: the runtime's create ran: {}",
            state.display()
        );
        let hierarchy = corten_runtime::cgroups::detect().expect("cgroups");
        let cg = corten_runtime::cgroups::Cgroup::open(&hierarchy, &cgroup)
            .expect("the runtime made the cgroup");
        assert!(
            !cg.pids().expect("pids").is_empty(),
            "{handler}: its init waits"
        );

        let v = env.wait_state(&id, "CONTAINER_EXITED", Duration::from_secs(30));
        assert_eq!(v["status"]["reason"], "StartError", "{v}");
        env.d.crictl(&["rm", &id]).ok();
        assert!(!state.exists(), "{handler}: {} left", state.display());
        assert!(
            corten_runtime::cgroups::Cgroup::open(&hierarchy, &cgroup).is_err(),
            "{handler}: cgroup {cgroup} left"
        );
        env.d.crictl(&["rmp", "-f", &pod]).ok();
    }
    env.d.set_env(crash::ENV, None);
    env.d.restart();
}

/// A pod run with a handler that a later configuration no longer has: the
/// pod stays listable and removable, and a new container in it is
/// FailedPrecondition naming the handler, with nothing made.
#[test]
fn a_handler_removed_from_the_config_refuses_new_containers_of_its_pods() {
    let mut env = env();
    let pod = env
        .pod_from("gone", &env.pod_config("gone"), &["--runtime", "crun"])
        .ok()
        .trim()
        .to_string();
    let path = env.d.config_path().to_path_buf();
    let mut config: toml::Table = std::fs::read_to_string(&path)
        .expect("read config")
        .parse()
        .expect("config parses");
    if let Some(runtimes) = config
        .get_mut("runtimes")
        .and_then(toml::Value::as_table_mut)
    {
        runtimes.remove("crun");
    }
    std::fs::write(&path, toml::to_string(&config).expect("render")).expect("write config");
    env.d.restart();
    let err = env
        .try_create(&pod, "gone", &env.container_config("c", &["true"]))
        .fails();
    assert!(err.contains("FailedPrecondition"), "{err}");
    assert!(
        err.contains("crun") && err.contains("not configured"),
        "{err}"
    );
    let all = env.d.crictl(&["ps", "-a", "-q"]).ok();
    assert!(all.trim().is_empty(), "{all}");
    env.d.crictl(&["stopp", &pod]).ok();
    env.d.crictl(&["rmp", &pod]).ok();
}
