//! The busybox fixture and the probe runner of `linux_init.rs`.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use oci_spec::runtime::{ProcessBuilder, RootBuilder, Spec};

use crate::common::wait;

pub const BUSYBOX: &str = "/bin/busybox";
const APPLETS: &[&str] = &[
    "sh", "ls", "ps", "hostname", "cat", "mount", "id", "echo", "wc", "kill", "sleep", "touch",
    "test", "mkdir", "grep",
];

/// A busybox image layer, an upper/work pair and a mount point.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    /// Panics unless root with busybox-static installed.
    pub fn new() -> Fixture {
        crate::common::require_root("makes containers");
        crate::common::require_installed(BUSYBOX, "busybox-static");
        let dir = tempfile::tempdir().unwrap();
        let lower = dir.path().join("lower");
        fs::create_dir_all(lower.join("bin")).unwrap();
        fs::copy(BUSYBOX, lower.join("bin/busybox")).unwrap();
        for applet in APPLETS {
            fs::hard_link(lower.join("bin/busybox"), lower.join("bin").join(applet)).unwrap();
        }
        fs::create_dir_all(lower.join("etc")).unwrap();
        fs::write(lower.join("etc/image-file"), "from the image\n").unwrap();
        fs::create_dir_all(lower.join("image-marker")).unwrap();
        for d in ["upper", "work", "rootfs"] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        Fixture { dir }
    }

    pub fn lower(&self) -> PathBuf {
        self.dir.path().join("lower")
    }

    /// Runs the probe; returns (container stdout, probe stderr, status line).
    pub fn run(&self, spec: &Spec) -> (String, String, String) {
        self.run_with(spec, &[])
    }

    /// [`Fixture::run`] with extra environment for the probe.
    pub fn run_with(&self, spec: &Spec, env: &[(&str, &str)]) -> (String, String, String) {
        let spec_path = self.dir.path().join("config.json");
        spec.save(&spec_path).unwrap();
        let out = self.dir.path().join("out");
        let err = self.dir.path().join("err");
        let d = self.dir.path();
        let mut child = Command::new(env!("CARGO_BIN_EXE_corten-linux-probe"))
            .arg(&spec_path)
            .arg(d.join("rootfs"))
            .arg(d.join("upper"))
            .arg(d.join("work"))
            .arg(self.lower())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        if !wait::within(Duration::from_secs(30), || {
            child.try_wait().unwrap().is_some()
        }) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("probe hung; stderr: {}", fs::read_to_string(&err).unwrap());
        }
        let stdout = fs::read_to_string(&out).unwrap();
        let stderr = fs::read_to_string(&err).unwrap();
        let line = stderr
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("probe: "))
            .unwrap_or_else(|| panic!("no status line; stderr: {stderr}"))
            .to_owned();
        (stdout, stderr, line)
    }
}

/// The default OCI spec (pid, net, ipc, uts, mount, cgroup namespaces; the
/// standard mounts, masked and read-only paths) running `args`.
pub fn spec(args: &[&str]) -> Spec {
    let mut spec = Spec::default();
    let process = ProcessBuilder::default()
        .args(args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
        .env(vec!["PATH=/bin".to_string()])
        .cwd("/")
        .build()
        .unwrap();
    let mut p = spec.process().clone().unwrap();
    p.set_args(process.args().clone());
    p.set_env(process.env().clone());
    spec.set_process(Some(p));
    spec.set_root(Some(
        RootBuilder::default()
            .path("rootfs")
            .readonly(false)
            .build()
            .unwrap(),
    ));
    spec.set_hostname(Some("probe-host".into()));
    spec
}
