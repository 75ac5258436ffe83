//! Shared by the container tests: a registry with busybox, a cortend whose
//! docker.io is that registry, pods and containers made with the real
//! crictl from JSON configs, and cleanup of everything they started.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use crictl_tests::wait;
use crictl_tests::{
    Compression, Daemon, DaemonBuilder, ImageBuilder, Registry, RegistryOptions, TestNetwork,
};
use serde_json::{json, Value};

/// A registry, a daemon using it as docker.io with a test network for its
/// pods, and a directory for configs and pod logs. Dropping it removes
/// every container and pod it made (the daemon goes before the network).
pub struct Env {
    pub d: Daemon,
    pub net: TestNetwork,
    pub reg: Registry,
    pub dir: tempfile::TempDir,
}

impl Env {
    /// busybox pushed as `library/busybox:latest` and pulled.
    pub fn new() -> Env {
        Env::with_image(ImageBuilder::busybox())
    }

    /// `image` pushed as `library/busybox:latest` and pulled.
    pub fn with_image(image: ImageBuilder) -> Env {
        Env::with_daemon(image, |b| b)
    }

    /// As [`Env::with_image`], cortend running with `env` set.
    pub fn with_daemon_env(image: ImageBuilder, env: &[(&str, &str)]) -> Env {
        Env::with_daemon(image, |b| env.iter().fold(b, |b, (k, v)| b.env(k, v)))
    }

    /// As [`Env::with_image`], the daemon's config changed by `configure`.
    pub fn with_daemon(
        image: ImageBuilder,
        configure: impl FnOnce(DaemonBuilder) -> DaemonBuilder,
    ) -> Env {
        let reg = Registry::start(RegistryOptions::plain()).expect("registry starts");
        let img = image.build(Compression::Gzip).expect("build image");
        img.push(&reg, "library/busybox", "latest").expect("push");
        let builder = configure(DaemonBuilder::new().mirror("docker.io", &reg.url()));
        let net = TestNetwork::new(&builder);
        let d = builder.start().expect("cortend starts");
        d.crictl(&["pull", "busybox"]).ok();
        let dir = tempfile::Builder::new()
            .prefix("corten-ctr-")
            .tempdir()
            .expect("tempdir");
        Env { d, net, reg, dir }
    }

    /// Writes `value` as a JSON file named `name`.
    pub fn file(&self, name: &str, value: &Value) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, value.to_string()).expect("write config");
        path
    }

    /// The pod config of pod `name`, logs under our directory.
    pub fn pod_config(&self, name: &str) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "attempt": 0},
            "hostname": name,
            "log_directory": self.logs_dir(name).display().to_string(),
            "linux": {}
        })
    }

    /// The log directory of pod `name`.
    pub fn logs_dir(&self, pod: &str) -> PathBuf {
        self.dir.path().join("logs").join(pod)
    }

    /// Runs pod `name`; returns its id.
    pub fn pod(&self, name: &str) -> String {
        self.pod_with(name, json!({}))
    }

    /// Runs pod `name` with `linux` as its Linux config; returns its id.
    pub fn pod_with(&self, name: &str, linux: Value) -> String {
        let mut pod = self.pod_config(name);
        pod["linux"] = linux;
        self.pod_from(name, &pod, &[]).ok().trim().to_string()
    }

    /// `crictl runp [extra] <config>` of pod `name` from `pod`, whatever
    /// comes of it.
    pub fn pod_from(
        &self,
        name: &str,
        pod: &Value,
        extra: &[&str],
    ) -> crictl_tests::daemon::Crictl {
        let config = self.file(&format!("pod-{name}.json"), pod);
        let mut args = vec!["runp"];
        args.extend_from_slice(extra);
        args.push(path(&config));
        self.d.crictl(&args)
    }

    /// A busybox container config named `name` running `command`.
    pub fn container_config(&self, name: &str, command: &[&str]) -> Value {
        json!({
            "metadata": {"name": name},
            "image": {"image": "busybox"},
            "command": command,
            "log_path": format!("{name}.log"),
            "linux": {}
        })
    }

    /// Creates a container in `pod` (named `pod_name`) from `config`.
    pub fn create(&self, pod: &str, pod_name: &str, config: &Value) -> String {
        self.try_create(pod, pod_name, config)
            .ok()
            .trim()
            .to_string()
    }

    /// `crictl create` of `config`, whatever comes of it.
    pub fn try_create(
        &self,
        pod: &str,
        pod_name: &str,
        config: &Value,
    ) -> crictl_tests::daemon::Crictl {
        let name = config["metadata"]["name"].as_str().unwrap_or("c");
        let c = self.file(&format!("ctr-{pod_name}-{name}.json"), config);
        let p = self.dir.path().join(format!("pod-{pod_name}.json"));
        self.d
            .crictl(&["create", "--no-pull", pod, path(&c), path(&p)])
    }

    /// Creates and starts a container running `command`.
    pub fn run(&self, pod: &str, pod_name: &str, name: &str, command: &[&str]) -> String {
        let id = self.create(pod, pod_name, &self.container_config(name, command));
        self.d.crictl(&["start", &id]).ok();
        id
    }

    /// `crictl inspect` of a container.
    pub fn inspect(&self, id: &str) -> Value {
        self.d.crictl(&["inspect", "-o", "json", id]).json()
    }

    /// The container's CRI state (`CONTAINER_RUNNING`, ...).
    pub fn state(&self, id: &str) -> String {
        self.inspect(id)["status"]["state"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Waits until the container is in `state`; panics after `limit`.
    pub fn wait_state(&self, id: &str, state: &str, limit: Duration) -> Value {
        let mut v = Value::Null;
        let got = wait::within(limit, || {
            v = self.inspect(id);
            v["status"]["state"] == state
        });
        assert!(got, "{id} never got {state}: {v}");
        v
    }

    /// `crictl logs` of a container with extra flags.
    pub fn logs(&self, id: &str, flags: &[&str]) -> (String, String) {
        let mut args = vec!["logs"];
        args.extend_from_slice(flags);
        args.push(id);
        let out = self.d.crictl(&args);
        out.ok();
        (out.stdout(), out.stderr())
    }

    /// Waits until the container has logged the line `line` (a script's
    /// "ready" once its traps are set, say).
    pub fn wait_logged(&self, id: &str, line: &str) {
        let mut seen = String::new();
        let got = wait::within(Duration::from_secs(30), || {
            seen = self.logs(id, &[]).0;
            seen.lines().any(|l| l == line)
        });
        assert!(got, "{id} never logged {line:?}: {seen:?}");
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Containers outlive the daemon by design: remove them here.
        let _ = self.d.crictl(&["rm", "--all", "--force"]);
        let _ = self.d.crictl(&["rmp", "--all", "--force"]);
        kill_leftover_shims(&self.d.dir().join("state/containers"));
    }
}

/// SIGKILLs what still runs under any shim of `bundles` through the shim's
/// socket (never by name), and waits for each shim to go.
fn kill_leftover_shims(bundles: &Path) {
    use std::io::{BufRead as _, Write as _};
    for entry in std::fs::read_dir(bundles).into_iter().flatten().flatten() {
        let socket = entry.path().join("shim.sock");
        let Ok((_dir, addr)) = corten_runtime::shim::protocol::socket_address(&socket) else {
            continue;
        };
        if let Ok(mut s) = std::os::unix::net::UnixStream::connect(&addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(b"{\"op\":\"kill\",\"signal\":9,\"all\":true}\n");
            let mut line = String::new();
            let _ = std::io::BufReader::new(&s).read_line(&mut line);
        }
        // In a drop: no panic when it does not go.
        wait::within(Duration::from_secs(5), || !socket.exists());
    }
}

/// A path as a crictl argument.
pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
