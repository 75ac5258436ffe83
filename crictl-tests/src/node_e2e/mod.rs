//! Kubernetes' node e2e suite (`e2e_node.test` of k8s.io/kubernetes v1.34,
//! built by `crictl-tests/k8s-tools.sh`) against a test cortend: a node of
//! the test's own, which the suite drives as it drives a containerd node.
//!
//! The suite starts etcd and kube-apiserver itself (linked into its binary)
//! and launches kubelet from the Kubernetes binary dir with a configuration
//! it derives from ours ([`config`]). What a node needs besides is the
//! fixture's:
//!
//! - a registry with the images the specs run ([`images`]), which cortend
//!   reaches for every registry (`*` mirror, final: no pull leaves the
//!   machine), and a test network for the pods;
//! - a mount namespace ([`namespace`]) in which cortend, the suite and its
//!   kubelet all run, where the kernel tunables kubelet sets and the fixed
//!   paths it writes are the test's;
//! - cgroups of its own for the suite (and so kubelet, its child) and for
//!   cortend (kubelet's `--runtime-cgroups`, which it only reads stats of),
//!   and the system and kubelet cgroup flags empty: with them set, kubelet
//!   moves every process of the machine's root cgroup into its own.
//!
//! Pods go under `/kubepods` of every hierarchy (the suite's specs look for
//! them there: kubelet's cgroup root is `/`), so a node must be alone on
//! the machine: the fixture takes a lock, checks that no `/kubepods` and no
//! listener on the suite's fixed ports (6443, 10248, 10250, 10255) exist,
//! and removes `/kubepods` with what is left in it when dropped.
//!
//! The node's address (its InternalIP, where kubelet listens and the API
//! server dials it) is the pods' bridge gateway, made before kubelet
//! starts: an address of the machine's that only the machine and its pods
//! reach. The API server refuses to proxy to a loopback address (the
//! suite's `/configz` and `/stats` requests), so the node cannot be
//! 127.0.0.1; the specs that ask kubelet on `localhost:10255` get relays
//! from loopback to it.

pub mod config;
pub mod images;
pub mod namespace;
pub mod report;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use tempfile::TempDir;

use crate::kubelet::host::{self, CgroupRoot};
use crate::proxy::SlowProxy;
use crate::{tools, wait, Daemon, DaemonBuilder, Registry, RegistryOptions, TestNetwork};
use namespace::{quote, Namespace};
pub use report::{Outcome, Report, Spec, Summary};

/// The node's name.
pub const NODE: &str = "corten-node";
/// The ports the suite uses whatever it is told: kube-apiserver's, and
/// kubelet's healthz, secure and read-only ones.
pub const FIXED_PORTS: [u16; 4] = [6443, 10248, 10250, 10255];
/// kubelet's secure and read-only ports, relayed from loopback to the
/// node's address.
const RELAYED_PORTS: [u16; 2] = [10250, 10255];
/// The cgroup kubelet puts pods under, at the root of every hierarchy.
pub const KUBEPODS: &str = "/kubepods";
/// The cgroups kubelet makes and fills with the machine's processes when
/// given the suite's default flags; none may appear.
pub const MACHINE_CGROUPS: [&str; 3] = ["/system", "/kubelet", "/docker-daemon"];

/// Serialises the nodes of every test process on the machine.
const LOCK_FILE: &str = "corten-node-e2e.lock";

/// A node, ready to run the suite (see the module doc). Fields drop in
/// order: cortend removes every pod and stops, then the namespace holder,
/// `/kubepods`, the cgroups, network, registry and files go, and the lock
/// last.
pub struct Node {
    daemon: Daemon,
    _relays: Vec<SlowProxy>,
    namespace: Namespace,
    kubepods: Kubepods,
    runtime_cgroup: CgroupRoot,
    suite_cgroup: CgroupRoot,
    net: TestNetwork,
    address: String,
    registry: Registry,
    images: Vec<images::Pushed>,
    dir: TempDir,
    _lock: Flock<File>,
}

/// What one run of the suite did.
pub struct Run {
    pub status: ExitStatus,
    pub report: Report,
    /// The suite's output (ginkgo's and the framework's).
    pub log: PathBuf,
    /// Where the suite put kubelet's and the services' logs.
    pub report_dir: PathBuf,
    pub wall: Duration,
    /// What changed on the machine that must not have (see [`Node::run`]).
    pub host_changes: Vec<String>,
}

/// What the suite is asked to run.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `--ginkgo.focus`.
    pub focus: String,
    /// `--ginkgo.skip` (empty: none).
    pub skip: String,
    /// Feature gates for kubelet and the suite (`--feature-gates`).
    pub feature_gates: Vec<(String, bool)>,
    /// Suite processes running parallel specs at once (Serial specs run
    /// alone whatever this says).
    pub procs: usize,
}

impl Node {
    /// Sets the node up; waits for the machine's lock first.
    pub fn start() -> Result<Node> {
        // First, so that what is missing fails before anything starts.
        tools::k8s_binary("e2e_node.test");
        tools::k8s_binary("ginkgo");
        tools::k8s_binary("kubelet");
        let agnhost = tools::k8s_binary("agnhost");
        tools::crictl();
        tools::require_root("node e2e: mount namespaces, cgroups, pods");
        let lock = lock()?;
        for port in FIXED_PORTS {
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
                bail!("port {port}, which the node e2e suite always uses, is taken");
            }
        }
        let found = crate::cgroups::dirs(KUBEPODS);
        if !found.is_empty() {
            bail!("{KUBEPODS} exists ({found:?}): another node runs on this machine");
        }

        let dir = tempfile::Builder::new()
            .prefix("corten-node-e2e-")
            .tempdir()
            .context("node tempdir")?;
        let registry = Registry::start(RegistryOptions::plain()).context("registry starts")?;
        let images = images::push_images(&registry, &agnhost, &tools::critest_double())
            .context("build and push the suite's images")?;

        let name = format!("corten-node-e2e-{}", std::process::id());
        let runtime_cgroup = CgroupRoot::create(&format!("{name}-runtime"))?;
        let suite_cgroup = CgroupRoot::create(&format!("{name}-suite"))?;
        let kubepods = Kubepods;
        let namespace = Namespace::create(&dir.path().join("ns"))?;

        let mut prefix = namespace.enter()?;
        prefix.extend(join_cgroup_and_exec(&runtime_cgroup, None));
        let builder = DaemonBuilder::new()
            .mirror("*", &registry.url())
            .config(|c| {
                c.insert("log_level".into(), toml::Value::String("info".into()));
            })
            .command_prefix(prefix);
        let net = TestNetwork::new(&builder);
        let address = gateway(&net)?;
        let daemon = builder.start().map_err(anyhow::Error::msg)?;
        let mut relays = Vec::new();
        for port in RELAYED_PORTS {
            relays.push(
                SlowProxy::start_on(
                    &format!("127.0.0.1:{port}"),
                    &format!("{address}:{port}"),
                    usize::MAX,
                )
                .with_context(|| format!("relay 127.0.0.1:{port} to {address}"))?,
            );
        }
        let node = Node {
            daemon,
            _relays: relays,
            namespace,
            kubepods,
            runtime_cgroup,
            suite_cgroup,
            net,
            address,
            registry,
            images,
            dir,
            _lock: lock,
        };
        node.write_pid_file()?;
        for image in &node.images {
            node.daemon.crictl(&["pull", &image.name]).ok();
        }
        Ok(node)
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// cortend's pid, where the suite looks for it
    /// (`--container-runtime-pid-file`).
    fn write_pid_file(&self) -> Result<()> {
        let pid = self.daemon.pid().context("cortend is not running")?;
        std::fs::write(self.path("cortend.pid"), pid.to_string()).context("write cortend.pid")
    }

    /// Runs the suite on the node once and reads its report. Also checks
    /// that the machine kept its kernel tunables, that no cgroup of
    /// [`MACHINE_CGROUPS`] appeared and that this process (in the root
    /// cgroup of most hierarchies) was not moved: see [`Run::host_changes`].
    pub fn run(&self, selection: &Selection) -> Result<Run> {
        let work = self.path("work");
        let report_dir = self.path("report");
        for d in [&work, &report_dir] {
            std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
        }
        std::fs::write(self.path("resolv.conf"), "nameserver 127.0.0.1\n")
            .context("write resolv.conf")?;
        let kubelet_config = self.path("kubelet-config.json");
        let cfg = config::kubelet_configuration(
            &config::Paths {
                runtime_socket: self.daemon.socket(),
                resolv_conf: &self.path("resolv.conf"),
            },
            &self.address,
        );
        std::fs::write(
            &kubelet_config,
            serde_json::to_string_pretty(&cfg).context("render the kubelet config")?,
        )
        .context("write the kubelet config")?;

        let tunables = host::tunables();
        let machine_cgroups: Vec<_> = MACHINE_CGROUPS
            .iter()
            .flat_map(|c| crate::cgroups::dirs(c))
            .collect();
        let own_cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();

        let log_path = self.path("e2e_node.log");
        let log = File::create(&log_path).context("create e2e_node.log")?;
        let err = log.try_clone().context("e2e_node.log")?;
        let endpoint = format!("unix://{}", self.daemon.socket().display());
        let bin_dir = tools::k8s_binary("kubelet")
            .parent()
            .map(Path::to_path_buf)
            .context("the Kubernetes binary dir")?;
        // ginkgo's CLI runs the suite binary on `procs` processes: the
        // first starts the services (etcd, kube-apiserver, kubelet) for
        // all, the parallel specs are shared out, and the Serial ones run
        // after them on the first process alone. It merges the processes'
        // reports into one.
        let mut ginkgo = vec![
            format!("--procs={}", selection.procs.max(1)),
            format!("--focus={}", selection.focus),
            "--no-color".into(),
            // The suite's own limit, not ours: far above what a run takes.
            "--timeout=6h".into(),
            format!("--json-report={}", report_dir.join("report.json").display()),
        ];
        if !selection.skip.is_empty() {
            ginkgo.push(format!("--skip={}", selection.skip));
        }
        let mut args = vec![
            format!("--report-dir={}", report_dir.display()),
            format!("--k8s-bin-dir={}", bin_dir.display()),
            format!("--container-runtime-endpoint={endpoint}"),
            "--container-runtime-process-name=cortend".into(),
            format!(
                "--container-runtime-pid-file={}",
                self.path("cortend.pid").display()
            ),
            // The images are in the node's registry already; the suite's
            // own list names many no spec of the focus runs.
            "--prepull-images=false".into(),
            format!("--node-name={NODE}"),
            format!("--kubelet-config-file={}", kubelet_config.display()),
            format!(
                "--kubelet-flags=--node-ip={} --kubelet-cgroups= --system-cgroups= \
                 --runtime-cgroups={}",
                self.address,
                self.runtime_cgroup.path()
            ),
        ];
        if !selection.feature_gates.is_empty() {
            let gates: Vec<String> = selection
                .feature_gates
                .iter()
                .map(|(g, on)| format!("{g}={on}"))
                .collect();
            args.push(format!("--feature-gates={}", gates.join(",")));
        }
        let mut prefix = self.namespace.enter()?;
        prefix.extend(join_cgroup_and_exec(&self.suite_cgroup, Some(&work)));
        let started = Instant::now();
        let status = Command::new(&prefix[0])
            .args(&prefix[1..])
            .arg(tools::k8s_binary("ginkgo"))
            .args(&ginkgo)
            .arg(tools::k8s_binary("e2e_node.test"))
            .arg("--")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .status()
            .context("run e2e_node.test")?;
        let wall = started.elapsed();

        let mut host_changes = Vec::new();
        let after = host::tunables();
        if after != tunables {
            host_changes.push(format!(
                "kernel tunables changed: {tunables:?} -> {after:?}"
            ));
        }
        for c in MACHINE_CGROUPS {
            for d in crate::cgroups::dirs(c) {
                if !machine_cgroups.contains(&d) {
                    host_changes.push(format!("cgroup {} appeared", d.display()));
                }
            }
        }
        let own_after = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        if own_after != own_cgroups {
            host_changes.push(format!(
                "this process was moved: {own_cgroups:?} -> {own_after:?}"
            ));
        }
        if let Some(keep) = std::env::var_os("CORTEN_NODE_E2E_LOGS") {
            self.keep_logs(Path::new(&keep));
        }
        let report = Report::read(&report_dir.join("report.json"))
            .with_context(|| format!("the suite exited with {status}: {}", tail(&log_path, 60)))?;
        Ok(Run {
            status,
            report,
            log: log_path,
            report_dir,
            wall,
            host_changes,
        })
    }

    /// Copies the suite's log, its report dir (kubelet's and the services'
    /// logs, the report) and cortend's log into `dest`, which outlives the
    /// node (`CORTEN_NODE_E2E_LOGS`).
    fn keep_logs(&self, dest: &Path) {
        let copy = |from: &Path, to: &str| {
            let status = Command::new("cp")
                .arg("-r")
                .arg(from)
                .arg(dest.join(to))
                .status();
            if !matches!(status, Ok(s) if s.success()) {
                eprintln!("cannot copy {} to {}", from.display(), dest.display());
            }
        };
        if let Err(e) = std::fs::create_dir_all(dest) {
            eprintln!("cannot create {}: {e}", dest.display());
            return;
        }
        copy(&self.path("e2e_node.log"), "e2e_node.log");
        copy(&self.path("report"), "report");
        copy(&self.daemon.dir().join("cortend.log"), "cortend.log");
    }

    /// The node's cortend.
    pub fn daemon(&self) -> &Daemon {
        &self.daemon
    }

    /// The images in the node's registry, by their upstream names.
    pub fn images(&self) -> impl Iterator<Item = &str> {
        self.images.iter().map(|i| i.name.as_str())
    }

    /// The node's registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The pods' network.
    pub fn network(&self) -> &TestNetwork {
        &self.net
    }

    /// The node's address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The node's mount namespace.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// The fixture's directory (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = &self.kubepods;
        if let Err(e) = self.daemon.ensure_running() {
            eprintln!("cortend does not start again to remove the pods: {e}");
        }
    }
}

/// Brings up `net`'s bridge with its gateway address (what the CNI bridge
/// plugin would do at the first pod) and returns the address.
fn gateway(net: &TestNetwork) -> Result<String> {
    let address = format!("{}1", net.prefix());
    let cidr = format!("{address}/24");
    for args in [
        vec!["link", "add", "name", net.bridge.as_str(), "type", "bridge"],
        vec!["addr", "add", cidr.as_str(), "dev", net.bridge.as_str()],
        vec!["link", "set", net.bridge.as_str(), "up"],
    ] {
        let out = Command::new("ip")
            .args(&args)
            .output()
            .context("run ip (iproute2)")?;
        if !out.status.success() {
            bail!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(address)
}

/// Takes the machine's node lock (waiting for it).
fn lock() -> Result<Flock<File>> {
    let path = std::env::temp_dir().join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .with_context(|| format!("lock {}", path.display()))
}

/// `/bin/sh -c SCRIPT sh`: joins `cgroup` in every hierarchy, changes to
/// `dir` when given, and execs the rest of the command line.
fn join_cgroup_and_exec(cgroup: &CgroupRoot, dir: Option<&Path>) -> Vec<String> {
    let mut script = String::from("set -e\n");
    for d in crate::cgroups::dirs(cgroup.path()) {
        script.push_str(&format!(
            "echo $$ > {}\n",
            quote(&d.join("cgroup.procs").display().to_string())
        ));
    }
    if let Some(dir) = dir {
        script.push_str(&format!("cd {}\n", quote(&dir.display().to_string())));
    }
    script.push_str("exec \"$@\"\n");
    vec!["/bin/sh".into(), "-c".into(), script, "sh".into()]
}

/// The last `lines` lines of the file at `path`.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `/kubepods` in every hierarchy, which the node's kubelet makes: dropping
/// it kills what is left in it (only the node's pods can be there, the
/// fixture having checked it was absent under the machine's lock) and
/// removes it.
struct Kubepods;

impl Drop for Kubepods {
    fn drop(&mut self) {
        let gone = wait::within(Duration::from_secs(20), || {
            let pids = processes_under(KUBEPODS);
            for pid in &pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            pids.is_empty()
        });
        if !gone {
            eprintln!(
                "{KUBEPODS}: processes {:?} would not go",
                processes_under(KUBEPODS)
            );
        }
        crate::cgroups::remove_all(KUBEPODS);
        let left = crate::cgroups::dirs(KUBEPODS);
        if !left.is_empty() {
            eprintln!("{KUBEPODS} could not be removed: {left:?}");
        }
    }
}

/// The processes in cgroup `path` or below it, in any hierarchy.
fn processes_under(path: &str) -> Vec<i32> {
    fn walk(dir: &Path, out: &mut Vec<i32>) {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        out.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                walk(&e.path(), out);
            }
        }
    }
    let mut pids = Vec::new();
    for d in crate::cgroups::dirs(path) {
        walk(&d, &mut pids);
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}
