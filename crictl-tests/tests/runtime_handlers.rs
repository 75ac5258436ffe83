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

fn with_handlers(b: DaemonBuilder) -> DaemonBuilder {
    b.config(|c| {
        let mut runtimes = toml::Table::new();
        runtimes.insert("runc".into(), handler(RUNC, &["example.com/*"]));
        runtimes.insert("crun".into(), handler(CRUN, &[]));
        c.insert("runtimes".into(), toml::Value::Table(runtimes));
    })
}

fn env() -> Env {
    require(RUNC);
    require(CRUN);
    Env::with_daemon(crictl_tests::ImageBuilder::busybox(), with_handlers)
}

/// The runtime's own view of container `id` (`<runtime> --root <bundle>/runc
/// state <id>`): proof that this runtime, not the built-in core, made it.
fn runtime_state(env: &Env, runtime: &str, id: &str) -> Value {
    let root = env.d.state_dir().join("containers").join(id).join("runc");
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
    }
}

#[test]
fn only_the_pod_annotations_a_handler_allows_reach_the_containers_spec() {
    let env = env();
    let (_pod, id) = pod_and_container(&env, "annotated", "runc", &["sleep", "3600"]);
    let spec_path = env
        .d
        .state_dir()
        .join("containers")
        .join(&id)
        .join("config.json");
    let spec: Value =
        serde_json::from_slice(&std::fs::read(&spec_path).expect("read spec")).expect("spec JSON");
    let annotations = &spec["annotations"];
    assert_eq!(
        annotations["example.com/gpu-mode"], "shared",
        "{annotations}"
    );
    assert!(annotations.get("other.org/x").is_none(), "{annotations}");
    // crun allows none.
    let (_pod, id) = pod_and_container(&env, "annotated-crun", "crun", &["sleep", "3600"]);
    let spec_path = env
        .d
        .state_dir()
        .join("containers")
        .join(&id)
        .join("config.json");
    let spec: Value =
        serde_json::from_slice(&std::fs::read(&spec_path).expect("read spec")).expect("spec JSON");
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
