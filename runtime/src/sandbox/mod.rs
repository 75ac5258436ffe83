//! Pod sandboxes, daemon side: [`Pods`] runs, stops and removes them;
//! [`PodNamespaces`] pins a pod's namespaces.
//!
//! [`PodNamespaces::create`] runs `corten-shim pin` (a fresh process, since
//! the daemon is threaded and never unshares or forks Rust code) and waits
//! for it; the namespaces then live on as bind mounts DIR/user (a pod with
//! a user namespace), DIR/net, DIR/ipc, DIR/uts until
//! [`PodNamespaces::remove`]. CNI plugins get
//! [`PodNamespaces::path`] of [`Namespace::Net`] as their netns; containers
//! of the pod join the files by path.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::linux::{self, PinOptions};
use crate::shim::pin::{command_line, kind_of_exit};
use crate::ErrorKind;

pub use crate::linux::Namespace;
pub use context::PodContext;
pub use files::{write_pod_files, DnsConfig, FilesError, PodFiles};
pub use plumbing::{BoxFuture, HostPlumbing, PodPlumbing};
pub use pods::Pods;
pub use record::{PidMode, Pod, PodConfig, PodInit, PodState};
pub use resources::pod_cgroup_resources;

mod context;
#[cfg(test)]
pub(crate) mod fake_plumbing;
mod files;
mod plumbing;
mod pods;
mod record;
mod resources;

/// Errors of the sandbox module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is refused before anything runs (no namespace, a sysctl
    /// that is not namespaced, a bad hostname).
    #[error("pod namespaces: {0}")]
    Invalid(#[source] linux::Error),
    /// The helper could not be started or waited for.
    #[error("run {binary}: {source}")]
    Spawn {
        /// The helper binary.
        binary: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `corten-shim pin` failed; `message` is what it said.
    #[error("pin pod namespaces in {dir}: {message}")]
    Pin {
        /// The directory of the namespace files.
        dir: PathBuf,
        /// The kind the helper's exit code stands for.
        kind: ErrorKind,
        /// The helper's error message.
        message: String,
    },
    /// No pod has this id (or id prefix).
    #[error("pod sandbox {id} not found")]
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// More than one pod id starts with this prefix.
    #[error("pod sandbox id prefix {id} is ambiguous")]
    Ambiguous {
        /// The prefix asked for.
        id: String,
    },
    /// A pod of this name (namespace, name, uid, attempt) exists.
    #[error("pod sandbox name {name} is reserved for {id}")]
    NameTaken {
        /// The pod's full name.
        name: String,
        /// The pod that holds it.
        id: String,
    },
    /// The request cannot be honoured as asked.
    #[error("pod sandbox: {0}")]
    Refused(String),
    /// The pod is not Ready, which what was asked needs.
    #[error("pod sandbox {id} is not ready: cannot {what}")]
    NotReady {
        /// The pod's id.
        id: String,
        /// What was asked.
        what: &'static str,
    },
    /// The init of the pod's shared pid namespace did not start.
    #[error("pod init: {0}")]
    PodInit(String),
    /// A file of the pod cannot be written or removed.
    #[error("pod sandbox {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The pod's hostname, hosts or resolv.conf.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// Unpinning failed.
    #[error("remove pod namespaces in {dir}: {source}")]
    Unpin {
        /// The directory of the namespace files.
        dir: PathBuf,
        /// The underlying error.
        #[source]
        source: linux::Error,
    },
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid(e) => e.kind(),
            Error::Pin { kind, .. } => *kind,
            Error::Files(e) => e.kind(),
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Ambiguous { .. } | Error::Refused(_) => ErrorKind::InvalidArgument,
            Error::NameTaken { .. } => ErrorKind::AlreadyExists,
            Error::NotReady { .. } => ErrorKind::FailedPrecondition,
            Error::Spawn { .. } | Error::Unpin { .. } | Error::PodInit(_) | Error::Io { .. } => {
                ErrorKind::Internal
            }
        }
    }
}

/// A pod's pinned namespaces: the files DIR/net, DIR/ipc, DIR/uts (those
/// that were asked for). Dropping it does *not* unpin; call
/// [`PodNamespaces::remove`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNamespaces {
    dir: PathBuf,
    namespaces: Vec<Namespace>,
}

impl PodNamespaces {
    /// Creates and pins the namespaces of `opts` under `dir` with
    /// `shim_binary pin ...`. On failure nothing is left behind (the helper
    /// undoes its own work; this unpins once more in case it was killed).
    pub async fn create(shim_binary: &Path, dir: &Path, opts: &PinOptions) -> Result<Self, Error> {
        linux::check_pin_options(opts).map_err(Error::Invalid)?;
        let mut command = tokio::process::Command::new(shim_binary);
        command
            .args(command_line(dir, opts))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let output = crate::blocking::output(&mut command)
            .await
            .map_err(|source| Error::Spawn {
                binary: shim_binary.to_owned(),
                source,
            })?;
        if output.status.success() {
            return Ok(PodNamespaces {
                dir: dir.to_owned(),
                namespaces: opts.namespaces.clone(),
            });
        }
        let kind = kind_of_exit(output.status.code());
        if kind != ErrorKind::AlreadyExists {
            // Files found already there belong to someone else: leave them.
            let _ = crate::blocking::run(|| linux::unpin(dir));
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let line = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let message = match line.strip_prefix("corten-shim pin: ") {
            Some(m) => m.to_owned(),
            None if line.is_empty() => format!("corten-shim pin {}", output.status),
            None => format!("corten-shim pin {}: {line}", output.status),
        };
        Err(Error::Pin {
            dir: dir.to_owned(),
            kind,
            message,
        })
    }

    /// The handle of namespaces pinned earlier under `dir` (after a daemon
    /// restart), for [`PodNamespaces::remove`] and [`PodNamespaces::path`].
    pub fn open(dir: &Path, namespaces: &[Namespace]) -> Self {
        PodNamespaces {
            dir: dir.to_owned(),
            namespaces: namespaces.to_vec(),
        }
    }

    /// The directory of the namespace files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The pinned file of `ns` (to pass to CNI or setns), or `None` when
    /// the pod does not have its own namespace of that type.
    pub fn path(&self, ns: Namespace) -> Option<PathBuf> {
        self.namespaces
            .contains(&ns)
            .then(|| self.dir.join(ns.name()))
    }

    /// Unpins (detach + unlink) every namespace file. Idempotent.
    pub fn remove(&self) -> Result<(), Error> {
        linux::unpin(&self.dir).map_err(|source| Error::Unpin {
            dir: self.dir.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refused_before_running_anything() {
        let opts = PinOptions {
            namespaces: vec![Namespace::Net],
            sysctls: vec![("vm.swappiness".into(), "1".into())],
            ..PinOptions::default()
        };
        let e = PodNamespaces::create(Path::new("/nonexistent"), Path::new("/x"), &opts)
            .await
            .err();
        assert!(matches!(&e, Some(e) if e.kind() == ErrorKind::InvalidArgument));
    }

    #[tokio::test]
    async fn missing_helper_is_a_spawn_error() {
        let opts = PinOptions {
            namespaces: vec![Namespace::Net],
            ..PinOptions::default()
        };
        let e = PodNamespaces::create(Path::new("/nonexistent/shim"), Path::new("/x"), &opts)
            .await
            .err();
        assert!(matches!(e, Some(Error::Spawn { .. })));
    }

    #[test]
    fn paths_only_for_pinned_namespaces() {
        let p = PodNamespaces::open(Path::new("/run/p"), &[Namespace::Net]);
        assert_eq!(p.path(Namespace::Net), Some(PathBuf::from("/run/p/net")));
        assert_eq!(p.path(Namespace::Uts), None);
    }
}
