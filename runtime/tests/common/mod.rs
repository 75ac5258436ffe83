//! Shared helpers of the root integration tests: what they require of the
//! host, waiting for a condition, a busybox root filesystem built from
//! Debian's busybox-static, and a container runtime on tempdirs.

#![allow(dead_code)]

pub mod block_device;
pub mod wait;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use corten_runtime::container::{ContainerRuntime, CreateRequest};
use corten_runtime::spec::{self, ContainerConfig, ImageConfig, LayeredRootfs};

/// Panics unless running as root. These tests make namespaces, mounts and
/// cgroups; CI runs them as root, and one that returned early instead would
/// pass without testing anything.
pub fn require_root(why: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root ({why}): run the tests as root, as CI does"
    );
}

/// Panics unless `path` exists: a test dependency, Debian's `package`, that
/// crictl-tests/run.sh installs (missing, it is an install bug).
pub fn require_installed(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: apt-get install {package} (crictl-tests/run.sh does)"
    );
}

/// A busybox layer: /bin/busybox with every applet as a hard link, and
/// /etc/passwd + /etc/group with root, nobody and `tester` (1000:1000).
pub fn busybox_layer(dir: &Path) {
    require_installed("/bin/busybox", "busybox-static");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir bin");
    let busybox = bin.join("busybox");
    std::fs::copy("/bin/busybox", &busybox).expect("copy /bin/busybox (install busybox-static)");
    std::fs::set_permissions(&busybox, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let list = Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            let _ = std::fs::hard_link(&busybox, bin.join(applet));
        }
    }
    for d in [
        "etc",
        "tmp",
        "root",
        "proc",
        "sys",
        "dev",
        "home/tester",
        "var",
    ] {
        std::fs::create_dir_all(dir.join(d)).expect("mkdir");
    }
    std::fs::set_permissions(dir.join("tmp"), std::fs::Permissions::from_mode(0o1777))
        .expect("chmod tmp");
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
         tester:x:1000:1000:tester:/home/tester:/bin/sh\n",
    )
    .expect("passwd");
    std::fs::write(
        dir.join("etc/group"),
        "root:x:0:\nnogroup:x:65534:\ntester:x:1000:\nextra:x:1001:tester\n",
    )
    .expect("group");
}

/// A runtime on its own tempdirs, with the shim built by cargo for this test.
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub runtime: ContainerRuntime,
    pub layer: PathBuf,
    /// The OCI runtime binary containers are created with (`None`: built-in).
    pub oci_runtime: Option<PathBuf>,
}

impl Env {
    pub fn new() -> Env {
        Env::with_oci_runtime(None)
    }

    /// An env whose containers are created by `oci_runtime` (e.g. runc).
    pub fn with_oci_runtime(oci_runtime: Option<PathBuf>) -> Env {
        require_root("containers");
        let tmp = tempfile::Builder::new()
            .prefix("corten-ct-")
            .tempdir()
            .expect("tempdir");
        let layer = tmp.path().join("layer");
        busybox_layer(&layer);
        let runtime = ContainerRuntime::new(
            &tmp.path().join("state"),
            &tmp.path().join("root"),
            Path::new(env!("CARGO_BIN_EXE_corten-shim")),
        );
        Env {
            tmp,
            runtime,
            layer,
            oci_runtime,
        }
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.tmp.path().join("logs").join(format!("{id}.log"))
    }

    /// Creates container `id` running `args` with `edit` applied to its config.
    pub async fn create(&self, id: &str, args: &[&str], edit: impl FnOnce(&mut ContainerConfig)) {
        self.try_create(id, args, edit).await.expect("create")
    }

    /// [`Env::create`], returning the runtime's error.
    pub async fn try_create(
        &self,
        id: &str,
        args: &[&str],
        edit: impl FnOnce(&mut ContainerConfig),
    ) -> Result<(), corten_runtime::container::Error> {
        let mut config = ContainerConfig {
            id: id.to_string(),
            command: args.iter().map(|s| s.to_string()).collect(),
            cgroup_path: format!("/corten-test/{}-{id}", std::process::id()),
            ..ContainerConfig::default()
        };
        edit(&mut config);
        let image = ImageConfig {
            env: vec!["PATH=/bin".to_string()],
            cmd: vec!["sh".to_string()],
            ..ImageConfig::default()
        };
        let view = LayeredRootfs {
            layers: vec![self.layer.clone()],
        };
        let spec = spec::generate(&config, &image, &view).expect("spec");
        self.runtime
            .create(CreateRequest {
                id: id.to_string(),
                spec,
                layers: vec![self.layer.clone()],
                readonly_rootfs: config.security.readonly_rootfs,
                log_path: self.log_path(id),
                runtime: self.oci_runtime.clone(),
                runtime_root: None,
                image_volumes: Vec::new(),
                stdin: config.stdin,
                stdin_once: config.stdin_once,
            })
            .await
    }

    /// Kills every container still running (a failed test must not leave
    /// any), through each shim's socket.
    fn kill_all(&self) {
        use std::io::{BufRead as _, Write as _};
        let bundles = self.tmp.path().join("state/containers");
        for entry in std::fs::read_dir(bundles).into_iter().flatten().flatten() {
            let socket = entry.path().join("shim.sock");
            if let Ok(mut s) = std::os::unix::net::UnixStream::connect(&socket) {
                let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                let _ = s.write_all(b"{\"op\":\"kill\",\"signal\":9,\"all\":true}\n");
                let _ = s.write_all(b"");
                let mut line = String::new();
                let _ = std::io::BufReader::new(&s).read_line(&mut line);
            }
            // Wait for the shim to finish (it removes its socket); in a
            // drop, so no panic when it does not.
            wait::within(std::time::Duration::from_secs(5), || !socket.exists());
        }
    }

    /// The log's content lines (stream tag, F/P, text).
    pub fn log_lines(&self, id: &str) -> Vec<String> {
        std::fs::read_to_string(self.log_path(id))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.splitn(4, ' ').nth(3).map(str::to_string))
            .collect()
    }
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.kill_all();
        // The tests' parent cgroup, once no test uses it (busy: left for the last).
        for controller in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(controller.path().join("corten-test"));
        }
    }
}
