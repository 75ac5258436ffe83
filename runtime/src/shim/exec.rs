//! `corten-shim exec`: run a command in a running container, with the
//! helper's own stdio as the command's, and exit with its exit code.
//!
//! The helper's own failures go to stderr prefixed `corten-shim exec:` and
//! exit with 125; a command that is not found exits 127, one that cannot be
//! executed 126 (with the reason on stderr), as runc reports them.

use std::path::{Path, PathBuf};

use super::protocol::{files, State};
use crate::cgroups::{self, Cgroup};
use crate::linux::{self, ExecOptions, EXIT_SETUP_FAILED};

/// The command line of `corten-shim exec`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args {
    /// The container's bundle directory.
    pub bundle: PathBuf,
    /// Run on a new pty.
    pub tty: bool,
    /// The working directory inside the container.
    pub cwd: Option<PathBuf>,
    /// `K=V` entries added to the container's env.
    pub env: Vec<String>,
    /// With `tty`: a FIFO of `WIDTH HEIGHT` lines resizing the pty.
    pub resize_fifo: Option<PathBuf>,
    /// The command.
    pub args: Vec<String>,
}

impl Args {
    /// `exec --bundle DIR [--tty] [--resize-fifo PATH] [--cwd DIR] [--env K=V ...] -- ARGS...`
    pub fn parse(args: &[String]) -> Result<Args, String> {
        let mut it = args.iter();
        match it.next().map(String::as_str) {
            Some("exec") => {}
            other => return Err(format!("unknown command {other:?}")),
        }
        let mut out = Args::default();
        let mut bundle = None;
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--" => break,
                "--tty" => out.tty = true,
                "--bundle" => bundle = Some(PathBuf::from(value()?)),
                "--cwd" => out.cwd = Some(PathBuf::from(value()?)),
                "--resize-fifo" => out.resize_fifo = Some(PathBuf::from(value()?)),
                "--env" => {
                    let v = value()?;
                    if v.split_once('=').is_none_or(|(k, _)| k.is_empty()) {
                        return Err(format!("--env {v:?} is not KEY=VALUE"));
                    }
                    out.env.push(v.clone());
                }
                other => return Err(format!("unknown flag {other}")),
            }
        }
        out.args = it.cloned().collect();
        out.bundle = bundle.ok_or("--bundle is required")?;
        if out.args.is_empty() {
            return Err("no command after --".into());
        }
        Ok(out)
    }
}

/// Runs the exec; returns the exit code for the helper. Errors are printed
/// here, prefixed `corten-shim exec:`.
pub fn main(args: Args) -> i32 {
    match run(args) {
        Ok(code) => code,
        Err((code, message)) => {
            eprintln!("corten-shim exec: {message}");
            code
        }
    }
}

fn run(args: Args) -> Result<i32, (i32, String)> {
    let fail = |message: String| (EXIT_SETUP_FAILED, message);
    let bundle = &args.bundle;
    let init_pid = running_init(bundle).map_err(fail)?;
    let spec_path = bundle.join(files::SPEC);
    let spec =
        files::read_spec(&spec_path).map_err(|e| fail(format!("{}: {e}", spec_path.display())))?;
    let linux_cfg = spec.linux().as_ref();
    let seccomp = match linux_cfg.and_then(|l| l.seccomp().as_ref()) {
        Some(profile) => Some(crate::seccomp::compile(profile).map_err(|e| fail(e.to_string()))?),
        None => None,
    };
    // Opened here, in the host's namespaces: the process is born in it.
    let cgroup = match linux_cfg.and_then(|l| l.cgroups_path().as_ref()) {
        Some(path) => {
            let hierarchy = cgroups::detect().map_err(|e| fail(e.to_string()))?;
            let cg = Cgroup::open(&hierarchy, &path.to_string_lossy())
                .map_err(|e| fail(e.to_string()))?;
            Some(
                linux::CgroupBirth::open(cg.v1_dirs(), cg.unified_dir())
                    .map_err(|e| fail(e.to_string()))?,
            )
        }
        None => None,
    };
    let exit_file = bundle.join(files::EXIT);
    // Runs once the init's namespaces are open: if the container had exited
    // and its pid were reused, the shim would have written its exit first.
    let mut check = || {
        if exit_file.exists() {
            return Err(format!("container of {} has exited", bundle.display()));
        }
        Ok(())
    };
    // Opened before any namespace is joined: the path is the host's.
    let resize = match &args.resize_fifo {
        Some(path) => {
            use std::os::unix::fs::OpenOptionsExt as _;
            let file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(path)
                .map_err(|e| fail(format!("{}: {e}", path.display())))?;
            Some(std::os::fd::OwnedFd::from(file))
        }
        None => None,
    };
    let opts = ExecOptions {
        init_pid,
        spec: &spec,
        args: args.args,
        env: args.env,
        cwd: args.cwd,
        tty: args.tty,
        seccomp,
        resize,
    };
    linux::exec_process(opts, &mut check, cgroup.as_ref()).map_err(|e| match e {
        linux::Error::ExecProcess { code, message, .. } => (code, message),
        other => fail(other.to_string()),
    })
}

/// The host pid of the container's init, if the container is running.
fn running_init(bundle: &Path) -> Result<i32, String> {
    if bundle.join(files::EXIT).exists() {
        return Err(format!(
            "container of {} has exited: not running",
            bundle.display()
        ));
    }
    let state_path = bundle.join(files::STATE);
    let text = match std::fs::read(&state_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "container of {} has not been started: not running",
                bundle.display()
            ))
        }
        Err(e) => return Err(format!("{}: {e}", state_path.display())),
    };
    let state: State =
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", state_path.display()))?;
    if state.exit.is_some() || state.pid <= 0 {
        return Err(format!(
            "container of {} has exited: not running",
            bundle.display()
        ));
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(state.pid), None) {
        Err(nix::errno::Errno::ESRCH) => Err(format!(
            "container of {} has exited (init {} is gone): not running",
            bundle.display(),
            state.pid
        )),
        _ => Ok(state.pid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Result<Args, String> {
        Args::parse(&words.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn parses_flags_and_command() {
        let a = parse(&[
            "exec", "--bundle", "/b", "--tty", "--cwd", "/tmp", "--env", "A=1", "--", "sh", "-c",
            "--env",
        ])
        .unwrap();
        assert_eq!(a.bundle, Path::new("/b"));
        assert!(a.tty);
        assert_eq!(a.cwd.as_deref(), Some(Path::new("/tmp")));
        assert_eq!(a.env, ["A=1"]);
        assert_eq!(a.args, ["sh", "-c", "--env"]);
    }

    #[test]
    fn refuses_bad_command_lines() {
        assert!(parse(&["exec", "--", "true"]).is_err());
        assert!(parse(&["exec", "--bundle", "/b", "--"]).is_err());
        assert!(parse(&["exec", "--bundle", "/b", "--env", "x", "--", "true"]).is_err());
        assert!(parse(&["exec", "--bundle"]).is_err());
        assert!(parse(&["run", "--bundle", "/b"]).is_err());
    }
}
