//! The shim's start: from a bundle directory to a created container whose
//! init waits for `Start`, reported to the daemon on stdout.

use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use super::external::{self, Backend, Created, OciRuntime};
use super::protocol::{self, files};
use super::server::{sigchld_fd, Supervisor};
use super::Error;
use crate::cgroups::{self, Cgroup};
use crate::linux::{self, RootfsLayers, Stdio};
use crate::logs::LogWriter;
use crate::ErrorKind;

/// What `rootfs.json` holds: the layers of the container's root filesystem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleRootfs {
    /// Read-only layers, top first.
    pub lower: Vec<PathBuf>,
    /// The container's writable layer.
    pub upper: PathBuf,
    /// overlayfs's work directory, on the same filesystem as `upper`.
    pub work: PathBuf,
    /// Mount the root filesystem read-only.
    pub readonly: bool,
    /// Image volumes, mounted read-only in the shim's mount namespace
    /// (never on the host's: they go with the shim, whatever stops it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_volumes: Vec<BundleImageVolume>,
}

/// An image volume of `rootfs.json`: an image's layers and where the shim
/// mounts them (the source of the container's bind mount).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleImageVolume {
    /// The image's layers, top first.
    pub lower: Vec<PathBuf>,
    /// The mount point (absolute, inside the bundle).
    pub target: PathBuf,
}

/// The shim's command line.
#[derive(Debug, Clone)]
pub struct Args {
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The container id.
    pub id: String,
    /// The CRI log file.
    pub log: PathBuf,
    /// An external OCI runtime binary (`--runtime`); the built-in core if `None`.
    pub runtime: Option<PathBuf>,
    /// That runtime's state directory (`--runtime-root`); `None`: inside
    /// the bundle.
    pub runtime_root: Option<PathBuf>,
    /// Keep the container's stdin open for attach (`--stdin`).
    pub stdin: bool,
    /// Close stdin when the first attached client detaches (`--stdin-once`).
    pub stdin_once: bool,
}

impl Args {
    /// `run --bundle DIR --id ID --log FILE [--runtime PATH]`.
    pub fn parse(args: &[String]) -> Result<Args, String> {
        let mut bundle = None;
        let mut id = None;
        let mut log = None;
        let mut runtime = None;
        let mut runtime_root = None;
        let (mut stdin, mut stdin_once) = (false, false);
        let mut it = args.iter();
        match it.next().map(String::as_str) {
            Some("run") => {}
            other => return Err(format!("unknown command {other:?}")),
        }
        while let Some(flag) = it.next() {
            match flag.as_str() {
                "--stdin" => {
                    stdin = true;
                    continue;
                }
                "--stdin-once" => {
                    stdin_once = true;
                    continue;
                }
                _ => {}
            }
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--bundle" => bundle = Some(PathBuf::from(value)),
                "--id" => id = Some(value.clone()),
                "--log" => log = Some(PathBuf::from(value)),
                "--runtime" => runtime = Some(PathBuf::from(value)),
                "--runtime-root" => runtime_root = Some(PathBuf::from(value)),
                other => return Err(format!("unknown flag {other}")),
            }
        }
        Ok(Args {
            bundle: bundle.ok_or("--bundle is required")?,
            id: id.ok_or("--id is required")?,
            log: log.ok_or("--log is required")?,
            runtime,
            runtime_root,
            stdin,
            stdin_once,
        })
    }
}

/// Sets the container up and supervises it. The first line on stdout is
/// `ok <pid>` once the init waits for `Start`, or `error <kind> <why>`.
pub fn main(args: Args) -> Result<(), String> {
    let mut stdout = std::io::stdout();
    // Detach: the daemon may die or restart, the container stays.
    nix::unistd::daemon(true, true)
        .map_err(|source| Error::Sys {
            op: "daemon",
            source,
        })
        .map_err(|e| e.to_string())?;
    let _ = nix::sys::prctl::set_child_subreaper(true);
    // SIGCHLD must be blocked before the init exists.
    let sigchld = sigchld_fd()?;
    match create(&args) {
        Ok(supervisor) => {
            let _ = writeln!(stdout, "ok {}", supervisor.pid);
            let _ = stdout.flush();
            // Setup is over: its code need not stay resident while the
            // shim sleeps in poll for the container's lifetime.
            if let Err(e) = linux::shed_code_pages() {
                eprintln!("corten-shim: {e}");
            }
            // The daemon has its answer: stdout is not needed any more.
            if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
                let _ = nix::unistd::dup2_stdout(&null);
            }
            supervisor.run(sigchld)
        }
        Err(e) => {
            let _ = writeln!(stdout, "{}", handshake_error(&e));
            let _ = stdout.flush();
            Err(e.to_string())
        }
    }
}

/// The handshake's error line, `error <kind> <message>`: it carries the
/// kind, so a refusal the kernel or the spec makes (a missing command, a
/// bad mount) reaches the CRI as such, not as an internal error.
pub fn handshake_error(e: &Error) -> String {
    format!(
        "error {} {}",
        kind_word(e.kind()),
        e.to_string().replace('\n', " ")
    )
}

/// The handshake word of `kind` (its serde name).
pub fn kind_word(kind: ErrorKind) -> String {
    serde_json::to_string(&kind)
        .map(|w| w.trim_matches('"').to_string())
        .unwrap_or_else(|_| "internal".into())
}

/// What an `error ...` handshake line says: the kind, when the first word
/// names one (an older shim gives none: internal), and the message.
pub fn parse_error_line(rest: &str) -> (ErrorKind, String) {
    let (word, message) = rest.split_once(' ').unwrap_or((rest, ""));
    match serde_json::from_str::<ErrorKind>(&format!("\"{word}\"")) {
        Ok(kind) => (kind, message.to_string()),
        Err(_) => (ErrorKind::Internal, rest.to_string()),
    }
}

fn create(args: &Args) -> Result<Supervisor, Error> {
    let bundle = &args.bundle;
    let spec = read_spec(bundle)?;
    let rootfs: BundleRootfs = read_json(&bundle.join(files::ROOTFS))?;
    let target = bundle.join(files::ROOTFS_DIR);
    std::fs::create_dir_all(&target).map_err(|source| Error::Mkdir {
        path: target.clone(),
        source,
    })?;
    let idmap = rootfs_idmap(&spec);
    linux::mount_rootfs(
        &RootfsLayers {
            lower: rootfs.lower,
            upper: rootfs.upper,
            work: rootfs.work,
            readonly: rootfs.readonly,
            idmap: idmap.clone(),
        },
        &target,
    )?;
    for volume in &rootfs.image_volumes {
        linux::mount_image_volume(&volume.lower, &volume.target, idmap.as_ref())?;
    }

    let log = LogWriter::open(&args.log)?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let backend = Backend::from_flag(args.runtime.as_deref());
    let external_tty = terminal && matches!(backend, Backend::External(_));
    let mut stdin_writer = None;
    let (stdio, stdout, stderr, mut tty_master) = if external_tty {
        // The runtime makes the pty and hands its master over.
        (None, None, None, None)
    } else if terminal {
        let (master, slave) = linux::open_pty()?;
        let dup = |fd: &OwnedFd| {
            fd.try_clone().map_err(|source| Error::Dup {
                what: "pty",
                source,
            })
        };
        let stdio = Stdio {
            stdin: Some(dup(&slave)?),
            stdout: dup(&slave)?,
            stderr: slave,
        };
        (Some(stdio), None, None, Some(master))
    } else {
        let pipe = || nix::unistd::pipe().map_err(|source| Error::Sys { op: "pipe", source });
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let stdin = if args.stdin {
            let (in_r, in_w) = pipe()?;
            stdin_writer = Some(in_w);
            Some(in_r)
        } else {
            None
        };
        let stdio = Stdio {
            stdin,
            stdout: out_w,
            stderr: err_w,
        };
        (Some(stdio), Some(out_r), Some(err_r), None)
    };

    let (init, cgroup, oci) = match backend {
        Backend::Builtin => {
            let stdio = stdio.ok_or_else(|| Error::Console {
                path: bundle.join(external::CONSOLE_SOCKET),
                op: "be used by the built-in core",
                source: std::io::Error::other("only an external runtime makes its own pty"),
            })?;
            let (init, cgroup) = builtin(&spec, &target, stdio)?;
            (Created::from(init), cgroup, None)
        }
        Backend::External(binary) => {
            let oci = OciRuntime::new(&binary, bundle, &args.id, args.runtime_root.as_deref());
            oci.prepare(&spec)?;
            let pid = match stdio {
                Some(stdio) => oci.create(stdio)?,
                None => {
                    let (pid, master) = oci.create_with_console()?;
                    tty_master = Some(master);
                    pid
                }
            };
            // The runtime made the cgroup: opened for OOM events and kill-all.
            let cgroup = cgroup_path(&spec).and_then(|path| {
                let hierarchy = cgroups::detect().ok()?;
                Cgroup::open(&hierarchy, &path).ok()
            });
            let runtime = oci.clone();
            (Created::External { runtime, pid }, cgroup, Some(oci))
        }
    };
    let socket = bundle.join(files::SOCKET);
    let _ = std::fs::remove_file(&socket);
    let listener =
        match protocol::socket_address(&socket).and_then(|(_dir, addr)| UnixListener::bind(addr)) {
            Ok(l) => l,
            Err(e) => {
                // The init dies when dropped unstarted; the cgroup goes with it.
                drop(init);
                if let Some(oci) = &oci {
                    let _ = oci.delete();
                }
                if let Some(cg) = &cgroup {
                    let _ = cg.kill_all();
                    let _ = cg.destroy();
                }
                return Err(Error::Bind {
                    path: socket,
                    source: e,
                });
            }
        };
    let supervisor = Supervisor::new(
        bundle, init, cgroup, log, stdout, stderr, tty_master, listener,
    )
    .with_stdin(stdin_writer, args.stdin && terminal, args.stdin_once);
    Ok(match oci {
        Some(oci) => supervisor.with_external(oci),
        None => supervisor,
    })
}

/// The built-in core: the shim makes the cgroup and forks the init into it.
fn builtin(
    spec: &Spec,
    target: &Path,
    stdio: Stdio,
) -> Result<(linux::Init, Option<Cgroup>), Error> {
    let cgroup = match cgroup_path(spec) {
        Some(path) => {
            let hierarchy = cgroups::detect()?;
            let cg = Cgroup::create(&hierarchy, &path)?;
            if let Some(resources) = spec.linux().as_ref().and_then(|l| l.resources().clone()) {
                if let Err(e) = cg.apply(&resources) {
                    let _ = cg.destroy();
                    return Err(e.into());
                }
            }
            Some(cg)
        }
        None => None,
    };
    match spawn(spec, target, stdio, cgroup.as_ref()) {
        Ok(init) => Ok((init, cgroup)),
        Err(e) => {
            // Nothing half-made: the cgroup goes with the failed init.
            if let Some(cg) = &cgroup {
                let _ = cg.destroy();
            }
            Err(e)
        }
    }
}

/// The id-mapping of the rootfs when the container joins a user namespace
/// by path, with container root mapped.
fn rootfs_idmap(spec: &Spec) -> Option<linux::RootfsIdmap> {
    let l = spec.linux().as_ref()?;
    let userns = l
        .namespaces()
        .as_ref()?
        .iter()
        .find(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User)?
        .path()
        .clone()?;
    let root = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.as_ref()?
            .iter()
            .find(|m| m.container_id() == 0 && m.size() > 0)
            .map(|m| m.host_id())
    };
    Some(linux::RootfsIdmap {
        userns,
        host_uid: root(l.uid_mappings())?,
        host_gid: root(l.gid_mappings())?,
    })
}

fn cgroup_path(spec: &Spec) -> Option<String> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned())
}

fn spawn(
    spec: &Spec,
    rootfs: &Path,
    stdio: Stdio,
    cgroup: Option<&Cgroup>,
) -> Result<linux::Init, Error> {
    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().clone()) {
        Some(profile) => Some(crate::seccomp::compile(&profile)?),
        None => None,
    };
    let birth = match cgroup {
        Some(cg) => Some(linux::CgroupBirth::open(cg.v1_dirs(), cg.unified_dir())?),
        None => None,
    };
    Ok(linux::spawn_init(
        spec,
        rootfs,
        stdio,
        seccomp,
        birth.as_ref(),
    )?)
}

fn read_spec(bundle: &Path) -> Result<Spec, Error> {
    let path = bundle.join(files::SPEC);
    files::read_spec(&path).map_err(|source| Error::Spec { path, source })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, Error> {
    let text = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handshake_carries_the_kind() {
        let e = Error::from(linux::Error::InvalidSpec("no process".into()));
        let line = handshake_error(&e);
        assert!(line.starts_with("error invalid_argument "), "{line}");
        let (kind, message) = parse_error_line(line.strip_prefix("error ").unwrap_or(""));
        assert_eq!(kind, ErrorKind::InvalidArgument);
        assert!(message.contains("no process"), "{message}");
        // An older shim's line: no kind word.
        let (kind, message) = parse_error_line("mount failed: EBUSY");
        assert_eq!(kind, ErrorKind::Internal);
        assert_eq!(message, "mount failed: EBUSY");
        assert_eq!(
            parse_error_line("resource_exhausted write x: No space left on device").0,
            ErrorKind::ResourceExhausted
        );
    }
}
