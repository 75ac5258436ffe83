//! The runtime-handler seam: the shim either creates the container with the
//! built-in core or drives an external OCI runtime (runc, crun, youki) by
//! its command line on the same bundle.
//!
//! With an external runtime the shim still mounts the root filesystem (in
//! its own mount namespace, which the runtime it runs shares), holds stdio,
//! writes the log, reaps the init (reparented to the shim, a subreaper, when
//! `<runtime> create` exits) and records the exit. The runtime owns the
//! container's cgroup; the shim only opens it to read OOM events and to kill
//! everything in it.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio as ProcStdio};

use oci_spec::runtime::Spec;

use super::Error;
use crate::linux::{Init, Stdio};

/// The runtime's state directory, inside the bundle (`--root`).
pub const STATE_DIR: &str = "runc";
/// The file the runtime writes the init's pid to (`--pid-file`).
pub const PID_FILE: &str = "init.pid";
/// The runtime's own log (`--log`, JSON lines).
pub const LOG_FILE: &str = "runtime.log";
/// The socket a tty container's pty master comes back on
/// (`--console-socket`), in the bundle; given to the runtime relative to
/// the bundle, its working directory, so the path never exceeds sun_path.
pub const CONSOLE_SOCKET: &str = "console.sock";

/// The external runtime of a container, as its bundle records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuntimeRecord {
    /// The runtime binary.
    pub binary: PathBuf,
    /// Its `--root`, when not the bundle's [`STATE_DIR`].
    pub root: Option<PathBuf>,
}

impl RuntimeRecord {
    /// `delete --force` of container `id` of `bundle` when the runtime
    /// still has state of it (the shim died before it could delete it).
    pub fn delete_leftover(&self, bundle: &Path, id: &str) -> Result<(), Error> {
        OciRuntime::new(&self.binary, bundle, id, self.root.as_deref()).delete()
    }
}

/// Which code creates the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// corten's own core (`linux::spawn_init`).
    Builtin,
    /// An OCI runtime binary driven by its command line.
    External(PathBuf),
}

impl Backend {
    /// `--runtime PATH` given or not.
    pub fn from_flag(runtime: Option<&Path>) -> Backend {
        match runtime {
            Some(path) => Backend::External(path.to_path_buf()),
            None => Backend::Builtin,
        }
    }
}

/// A created container whose process waits for `Start`.
pub enum Created {
    /// Made by the built-in core.
    Builtin(Init),
    /// Made by an external runtime.
    External {
        /// The runtime that made it.
        runtime: OciRuntime,
        /// The init's pid.
        pid: i32,
    },
}

impl From<Init> for Created {
    fn from(init: Init) -> Created {
        Created::Builtin(init)
    }
}

impl Created {
    /// The init's pid, as the shim sees it.
    pub fn pid(&self) -> i32 {
        match self {
            Created::Builtin(init) => init.pid(),
            Created::External { pid, .. } => *pid,
        }
    }

    /// Lets the process exec its command.
    pub fn start(self) -> Result<(), Error> {
        match self {
            Created::Builtin(init) => Ok(init.start()?),
            Created::External { runtime, .. } => runtime.start(),
        }
    }
}

/// One container as seen through an external runtime's command line.
#[derive(Debug, Clone)]
pub struct OciRuntime {
    binary: PathBuf,
    bundle: PathBuf,
    /// The runtime's state directory (`--root`).
    root: PathBuf,
    id: String,
}

impl OciRuntime {
    /// `binary` driving container `id` of `bundle`, its state under
    /// `root` (default: [`STATE_DIR`] in the bundle).
    pub fn new(binary: &Path, bundle: &Path, id: &str, root: Option<&Path>) -> OciRuntime {
        OciRuntime {
            binary: binary.to_path_buf(),
            bundle: bundle.to_path_buf(),
            root: root.map_or_else(|| bundle.join(STATE_DIR), Path::to_path_buf),
            id: id.to_string(),
        }
    }

    fn command(&self, op: &str) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(self.bundle.join(LOG_FILE))
            .arg("--log-format")
            .arg("json")
            .arg(op);
        cmd
    }

    /// Rewrites the bundle's spec where the built-in core would clamp a
    /// value this process cannot grant (see [`clamp_to_host`]), so the
    /// runtime, which refuses instead, gets the same container.
    pub fn prepare(&self, spec: &Spec) -> Result<(), Error> {
        let mut spec = spec.clone();
        if !clamp_to_host(&mut spec, &HostLimits::current()) {
            return Ok(());
        }
        let path = self.bundle.join(super::protocol::files::SPEC);
        let json = serde_json::to_vec(&spec).map_err(|source| Error::Json {
            path: path.clone(),
            source,
        })?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| Error::Write { path, source })
    }

    /// `create --bundle DIR --pid-file DIR/init.pid ID` with the container's
    /// stdio; returns the init's pid. The init waits for [`Self::start`].
    pub fn create(&self, stdio: Stdio) -> Result<i32, Error> {
        let pid_file = self.bundle.join(PID_FILE);
        let _ = std::fs::remove_file(&pid_file);
        let stdin = match stdio.stdin {
            Some(fd) => ProcStdio::from(fd),
            None => ProcStdio::null(),
        };
        let mut cmd = self.command("create");
        cmd.arg("--bundle")
            .arg(&self.bundle)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(&self.id)
            .stdin(stdin)
            .stdout(ProcStdio::from(stdio.stdout))
            .stderr(ProcStdio::from(stdio.stderr));
        // The write ends go with `cmd`: after this only the init holds them.
        self.run(cmd, "create")?;
        crate::crash::point("shim.external.after_create");
        self.read_pid(&pid_file)
    }

    /// [`Self::create`] of a tty container: the runtime makes the pty, its
    /// slave the init's stdio, and sends the master over the console
    /// socket; returns the init's pid and the master.
    pub fn create_with_console(&self) -> Result<(i32, OwnedFd), Error> {
        let path = self.bundle.join(CONSOLE_SOCKET);
        let console = |op, source| Error::Console {
            path: path.clone(),
            op,
            source,
        };
        let _ = std::fs::remove_file(&path);
        let (_held, addr) =
            super::protocol::socket_address(&path).map_err(|e| console("resolve", e))?;
        let listener = UnixListener::bind(&addr).map_err(|e| console("bind", e))?;
        let pid_file = self.bundle.join(PID_FILE);
        let _ = std::fs::remove_file(&pid_file);
        let mut cmd = self.command("create");
        cmd.current_dir(&self.bundle)
            .arg("--bundle")
            .arg(&self.bundle)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg("--console-socket")
            .arg(CONSOLE_SOCKET)
            .arg(&self.id);
        self.null_stdio(&mut cmd);
        // The runtime connects and sends before it exits: the connection
        // waits in the backlog until it is accepted below.
        let created = self.run(cmd, "create");
        let received = created.and_then(|()| {
            listener
                .set_nonblocking(true)
                .map_err(|e| console("set non-blocking", e))?;
            let (stream, _) = listener.accept().map_err(|e| console("accept", e))?;
            stream
                .set_nonblocking(false)
                .map_err(|e| console("set blocking", e))?;
            Ok(crate::linux::recv_fd(&stream)?)
        });
        drop(listener);
        let _ = std::fs::remove_file(&path);
        let master = match received {
            Ok(master) => master,
            Err(e) => {
                let _ = self.delete();
                return Err(e);
            }
        };
        crate::crash::point("shim.external.after_create");
        Ok((self.read_pid(&pid_file)?, master))
    }

    fn read_pid(&self, pid_file: &Path) -> Result<i32, Error> {
        let text = std::fs::read_to_string(pid_file).map_err(|source| Error::Read {
            path: pid_file.to_path_buf(),
            source,
        })?;
        text.trim().parse().map_err(|_| Error::NotAPid {
            path: pid_file.to_path_buf(),
            text,
        })
    }

    /// `start ID`: the init execs the command.
    pub fn start(&self) -> Result<(), Error> {
        let mut cmd = self.command("start");
        cmd.arg(&self.id);
        self.null_stdio(&mut cmd);
        self.run(cmd, "start")
    }

    /// `delete --force ID`: kills what is left and removes the runtime's
    /// state and cgroup. Already gone is success.
    pub fn delete(&self) -> Result<(), Error> {
        if !self.root.join(&self.id).exists() {
            return Ok(());
        }
        let mut cmd = self.command("delete");
        cmd.arg("--force").arg(&self.id);
        self.null_stdio(&mut cmd);
        self.run(cmd, "delete")
    }

    fn null_stdio(&self, cmd: &mut Command) {
        cmd.stdin(ProcStdio::null())
            .stdout(ProcStdio::null())
            .stderr(ProcStdio::null());
    }

    fn run(&self, mut cmd: Command, op: &'static str) -> Result<(), Error> {
        let status = cmd.status().map_err(|source| Error::Run {
            binary: self.binary.clone(),
            source,
        })?;
        if status.success() {
            return Ok(());
        }
        let why = last_error(&self.bundle.join(LOG_FILE))
            .unwrap_or_else(|| format!("exited with {status}"));
        Err(Error::Runtime {
            binary: self.binary.clone(),
            op,
            id: self.id.clone(),
            why,
        })
    }
}

/// The message of the last error-level line of the runtime's JSON log.
fn last_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        match v.get("level")?.as_str()? {
            "error" | "fatal" => Some(v.get("msg")?.as_str()?.to_string()),
            _ => None,
        }
    })
}

/// What this process may grant without CAP_SYS_RESOURCE.
#[derive(Debug, Clone, Default)]
pub struct HostLimits {
    /// CAP_SYS_RESOURCE is effective: nothing needs clamping.
    pub sys_resource: bool,
    /// The hard limit of each rlimit type the spec names, as this process has it.
    pub hard: Vec<(oci_spec::runtime::PosixRlimitType, u64)>,
    /// This process's own oom_score_adj (the lowest it may give a child).
    pub oom_score_adj: Option<i32>,
}

impl HostLimits {
    /// The limits of the running process.
    pub fn current() -> HostLimits {
        use caps::{CapSet, Capability};
        let sys_resource =
            caps::has_cap(None, CapSet::Effective, Capability::CAP_SYS_RESOURCE).unwrap_or(false);
        let oom_score_adj = std::fs::read_to_string("/proc/self/oom_score_adj")
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let nofile = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .ok()
            .map(|(_, hard)| (oci_spec::runtime::PosixRlimitType::RlimitNofile, hard));
        HostLimits {
            sys_resource,
            hard: nofile.into_iter().collect(),
            oom_score_adj,
        }
    }
}

/// Lowers what `host` cannot grant, as the built-in core does at setrlimit
/// and oom_score_adj time: rlimits above the hard limit come down to it (a
/// soft limit with them), an oom_score_adj below the shim's own comes up to
/// it (containerd's `restrict_oom_score_adj`). Without CAP_SYS_RESOURCE runc
/// refuses both ("error setting rlimit type 7: operation not permitted").
/// Returns whether anything changed.
pub fn clamp_to_host(spec: &mut Spec, host: &HostLimits) -> bool {
    if host.sys_resource {
        return false;
    }
    let Some(mut process) = spec.process().clone() else {
        return false;
    };
    let mut changed = false;
    if let Some(mut limits) = process.rlimits().clone() {
        for l in &mut limits {
            let Some(&(_, hard)) = host.hard.iter().find(|(t, _)| *t == l.typ()) else {
                continue;
            };
            if l.hard() > hard {
                let lowered = oci_spec::runtime::PosixRlimitBuilder::default()
                    .typ(l.typ())
                    .soft(l.soft().min(hard))
                    .hard(hard)
                    .build();
                if let Ok(lowered) = lowered {
                    *l = lowered;
                    changed = true;
                }
            }
        }
        process.set_rlimits(Some(limits));
    }
    if let (Some(wanted), Some(own)) = (process.oom_score_adj(), host.oom_score_adj) {
        if wanted < own {
            process.set_oom_score_adj(Some(own));
            changed = true;
        }
    }
    if changed {
        spec.set_process(Some(process));
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_from_flag() {
        assert_eq!(Backend::from_flag(None), Backend::Builtin);
        assert_eq!(
            Backend::from_flag(Some(Path::new("/usr/sbin/runc"))),
            Backend::External(PathBuf::from("/usr/sbin/runc"))
        );
    }

    #[test]
    fn clamps_what_the_host_cannot_grant() {
        use oci_spec::runtime::{PosixRlimitBuilder, PosixRlimitType, Process};
        let nofile = PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .soft(1_048_576u64)
            .hard(1_048_576u64)
            .build()
            .expect("rlimit");
        let mut process = Process::default();
        process.set_rlimits(Some(vec![nofile]));
        process.set_oom_score_adj(Some(-998));
        let mut spec = Spec::default();
        spec.set_process(Some(process));
        let host = HostLimits {
            sys_resource: false,
            hard: vec![(PosixRlimitType::RlimitNofile, 20_000)],
            oom_score_adj: Some(0),
        };
        let mut privileged = spec.clone();
        let all = HostLimits {
            sys_resource: true,
            ..host.clone()
        };
        assert!(!clamp_to_host(&mut privileged, &all));
        assert!(clamp_to_host(&mut spec, &host));
        let p = spec.process().clone().expect("process");
        let l = &p.rlimits().clone().expect("rlimits")[0];
        assert_eq!((l.soft(), l.hard()), (20_000, 20_000));
        assert_eq!(p.oom_score_adj(), Some(0));
        assert!(!clamp_to_host(&mut spec, &host), "idempotent");
    }

    #[test]
    fn last_error_reads_the_runtime_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log");
        std::fs::write(
            &log,
            "{\"level\":\"warning\",\"msg\":\"w\"}\n{\"level\":\"error\",\"msg\":\"no such file\"}\n\
             {\"level\":\"info\",\"msg\":\"i\"}\n",
        )
        .expect("write");
        assert_eq!(last_error(&log).as_deref(), Some("no such file"));
        assert_eq!(last_error(&dir.path().join("none")), None);
    }
}
