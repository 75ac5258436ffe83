//! A cortend of the test's own, and the real crictl pointed at it.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::tools;

/// How long a daemon gets to come up or go down.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Prepares a daemon: a temporary directory holding its root dir, state dir,
/// socket, CNI conf dir and config file.
pub struct DaemonBuilder {
    dir: TempDir,
    config: toml::Table,
    args: Vec<String>,
    prefix: Vec<String>,
    env: Vec<(String, String)>,
}

impl DaemonBuilder {
    /// A builder with the test defaults: everything under a fresh tempdir,
    /// debug logs, an empty CNI conf dir and the Debian CNI plugins.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("corten-test-")
            .tempdir()
            .expect("create test tempdir");
        let p = |sub: &str| dir.path().join(sub).display().to_string();
        let text = format!(
            r#"
root_dir = "{root}"
state_dir = "{state}"
listen = "{sock}"
log_level = "debug"
shutdown_grace_seconds = 5

[cni]
conf_dir = "{netd}"
bin_dirs = ["/usr/lib/cni", "/opt/cni/bin"]
"#,
            root = p("root"),
            state = p("state"),
            sock = p("cortend.sock"),
            netd = p("net.d"),
        );
        let mut config = text.parse::<toml::Table>().expect("test config parses");
        // Tests never reach a registry off this machine: a registry's
        // mirrors are final, and one without mirrors is not contacted.
        registry_section(&mut config).insert(
            "mirrors_final".into(),
            toml::Value::Array(vec![toml::Value::String("*".into())]),
        );
        std::fs::create_dir(dir.path().join("net.d")).expect("create net.d");
        DaemonBuilder {
            dir,
            config,
            args: Vec::new(),
            prefix: Vec::new(),
            env: Vec::new(),
        }
    }

    /// The directory everything lives in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Changes the config before the daemon starts.
    pub fn config(mut self, edit: impl FnOnce(&mut toml::Table)) -> Self {
        edit(&mut self.config);
        self
    }

    /// Adds `endpoint` as a mirror of `registry` (e.g. `docker.io`).
    pub fn mirror(self, registry: &str, endpoint: &str) -> Self {
        self.config(|c| {
            let section = registry_section(c);
            let mirrors = section
                .entry("mirrors")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let Some(m) = mirrors.as_table_mut() {
                let list = m
                    .entry(registry)
                    .or_insert_with(|| toml::Value::Array(Vec::new()));
                if let Some(list) = list.as_array_mut() {
                    list.push(toml::Value::String(endpoint.to_string()));
                }
            }
        })
    }

    /// Trusts the CA in `pem` for registries.
    pub fn ca_file(self, pem: &Path) -> Self {
        let pem = pem.display().to_string();
        self.config(|c| {
            let section = registry_section(c);
            let files = section
                .entry("ca_files")
                .or_insert_with(|| toml::Value::Array(Vec::new()));
            if let Some(files) = files.as_array_mut() {
                files.push(toml::Value::String(pem));
            }
        })
    }

    /// Reads registry credentials from this docker-style config.json.
    pub fn auth_file(self, path: &Path) -> Self {
        let path = path.display().to_string();
        self.config(|c| {
            registry_section(c).insert("auth_file".into(), toml::Value::String(path));
        })
    }

    /// Extra command-line arguments for cortend.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Starts cortend through `prefix`, a command that ends by exec-ing the
    /// rest of its command line (the cortend command) in the same process,
    /// such as `nsenter --target PID --mount --`: cortend runs in that
    /// process, so the daemon's pid and signals stay cortend's.
    pub fn command_prefix(mut self, prefix: Vec<String>) -> Self {
        self.prefix = prefix;
        self
    }

    /// Sets an environment variable of cortend (and so of its shims).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Writes the config and starts cortend, waiting until its socket answers.
    pub fn start(self) -> Result<Daemon, String> {
        let config_path = self.dir.path().join("config.toml");
        std::fs::write(
            &config_path,
            toml::to_string(&self.config).expect("render config"),
        )
        .expect("write config");
        let socket = PathBuf::from(self.config["listen"].as_str().expect("listen is a string"));
        let log_path = self.dir.path().join("cortend.log");
        let crictl_config = self.dir.path().join("crictl.yaml");
        std::fs::write(&crictl_config, "").expect("write crictl.yaml");
        let mut daemon = Daemon {
            child: None,
            env: self.env,
            socket,
            log_path,
            crictl_config,
            config_path,
            args: self.args,
            prefix: self.prefix,
            dir: self.dir,
        };
        daemon.spawn()?;
        Ok(daemon)
    }
}

fn registry_section(config: &mut toml::Table) -> &mut toml::Table {
    let section = config
        .entry("registry")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if !section.is_table() {
        *section = toml::Value::Table(toml::Table::new());
    }
    match section {
        toml::Value::Table(t) => t,
        _ => unreachable!("made a table above"),
    }
}

impl Default for DaemonBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// A running cortend. Dropping it stops it (SIGTERM, then SIGKILL) and
/// removes its directory; a panicking test gets the daemon log printed.
pub struct Daemon {
    child: Option<Child>,
    env: Vec<(String, String)>,
    socket: PathBuf,
    log_path: PathBuf,
    crictl_config: PathBuf,
    config_path: PathBuf,
    args: Vec<String>,
    prefix: Vec<String>,
    dir: TempDir,
}

impl Daemon {
    /// Starts cortend on this daemon's directory and waits until it answers.
    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| format!("cannot open the daemon log: {e}"))?;
        let err_log = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = match self.prefix.split_first() {
            Some((program, rest)) => {
                let mut cmd = Command::new(program);
                cmd.args(rest).arg(tools::cortend());
                cmd
            }
            None => Command::new(tools::cortend()),
        };
        let child = cmd
            .arg("--config")
            .arg(&self.config_path)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .map_err(|e| format!("cannot start cortend: {e}"))?;
        self.child = Some(child);
        self.wait_ready()
    }

    /// Stops the daemon (SIGTERM) and starts it again on the same state.
    pub fn restart(&mut self) {
        let status = self.terminate();
        assert!(status.success(), "cortend exited with {status}");
        self.spawn().expect("cortend restarts");
    }

    /// Starts the daemon again after [`Daemon::terminate`].
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "cortend is still running");
        self.spawn().expect("cortend starts again");
    }

    /// Starts the daemon again unless it runs, without panicking (for a
    /// fixture's cleanup, which needs it to remove the pods).
    pub fn ensure_running(&mut self) -> Result<(), String> {
        if self.exited() {
            self.spawn()?;
        }
        Ok(())
    }

    /// A daemon with the test defaults.
    pub fn start() -> Daemon {
        DaemonBuilder::new().start().expect("cortend starts")
    }

    /// The test's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CRI socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The config file the daemon was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The daemon's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the daemon has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The daemon's root directory.
    pub fn root_dir(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The daemon's state directory (bundles under `containers/`).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Waits until a layer is being unpacked (a pull is under way): its
    /// temporary snapshot appears. Panics after 30 s.
    pub fn wait_until_unpacking(&self) {
        let tmp = self.root_dir().join("snapshots/tmp");
        let started = Instant::now();
        while std::fs::read_dir(&tmp)
            .map(|mut r| r.next().is_none())
            .unwrap_or(true)
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no pull started unpacking within 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The real crictl pointed at this daemon, ready to run with `args`
    /// (stdio left to the caller).
    pub fn crictl_command(&self, args: &[&str]) -> Command {
        let endpoint = format!("unix://{}", self.socket.display());
        let mut cmd = Command::new(tools::crictl());
        cmd.arg("--config")
            .arg(&self.crictl_config)
            .args([
                "--runtime-endpoint",
                &endpoint,
                "--image-endpoint",
                &endpoint,
            ])
            .args(["--timeout", "30s"])
            .args(args);
        cmd
    }

    /// Runs the real crictl against this daemon.
    pub fn crictl(&self, args: &[&str]) -> Crictl {
        let output = self
            .crictl_command(args)
            .stdin(Stdio::null())
            .output()
            .expect("run crictl");
        Crictl {
            args: args.iter().map(|s| s.to_string()).collect(),
            output,
        }
    }

    /// Sets (or, with `None`, unsets) an environment variable of the
    /// daemon's from its next start on.
    pub fn set_env(&mut self, key: &str, value: Option<&str>) {
        self.env.retain(|(k, _)| k != key);
        if let Some(v) = value {
            self.env.push((key.to_string(), v.to_string()));
        }
    }

    /// Waits for the daemon to exit by itself (a crash point, say).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("cortend was started");
        let status = child.wait().expect("wait for cortend");
        self.child = None;
        status
    }

    /// Whether the daemon process has exited (reaping it if so).
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(_))) => {
                self.child = None;
                true
            }
            Some(_) => false,
            None => true,
        }
    }

    /// Sends SIGKILL and reaps the daemon, as a crash would end it.
    pub fn kill9(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = child.kill();
        child.wait().ok()
    }

    /// Sends SIGTERM and waits for the daemon to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal_and_wait(Signal::SIGTERM)
            .expect("cortend exits after SIGTERM")
    }

    fn signal_and_wait(&mut self, signal: Signal) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        if let Ok(Some(status)) = child.try_wait() {
            self.child = None;
            return Some(status);
        }
        let pid = Pid::from_raw(i32::try_from(child.id()).ok()?);
        let _ = kill(pid, signal);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("cortend exited with {status}:\n{}", self.log()));
                }
            }
            if UnixStream::connect(&self.socket).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("cortend did not come up:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            // Pods hold mounts, namespaces, cgroups and addresses: let the
            // daemon undo them (with their containers) while it runs.
            let _ = self.crictl(&["rmp", "--all", "--force"]);
        }
        if self.signal_and_wait(Signal::SIGTERM).is_none() {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // Whatever is still mounted under the test's directory (a daemon
        // that could not clean up) would keep the directory from going.
        let mut left = crate::network::mounts_under(self.dir.path());
        left.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mount in &left {
            let _ = Command::new("umount").args(["-l", mount]).output();
        }
        if std::thread::panicking() {
            eprintln!("---- cortend log ----\n{}---- end of log ----", self.log());
        }
    }
}

/// What one crictl invocation did.
pub struct Crictl {
    args: Vec<String>,
    /// The process output.
    pub output: Output,
}

impl Crictl {
    /// Standard output as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// Standard error as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Standard output, after checking crictl succeeded.
    pub fn ok(&self) -> String {
        assert!(
            self.output.status.success(),
            "crictl {:?} failed ({}):\nstdout: {}\nstderr: {}",
            self.args,
            self.output.status,
            self.stdout(),
            self.stderr()
        );
        self.stdout()
    }

    /// Standard error, after checking crictl failed.
    pub fn fails(&self) -> String {
        assert!(
            !self.output.status.success(),
            "crictl {:?} should have failed:\nstdout: {}",
            self.args,
            self.stdout()
        );
        self.stderr()
    }

    /// Standard output parsed as JSON, after checking crictl succeeded.
    pub fn json(&self) -> serde_json::Value {
        let out = self.ok();
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("crictl output is not JSON ({e}): {out}"))
    }
}
