//! The side effects of a pod, behind one seam: [`PodPlumbing`]. [`Pods`]
//! decides what to make and undo, and in which order; the plumbing makes
//! and undoes it. [`HostPlumbing`] is the real one (cgroups, tmpfs,
//! `corten-shim pin` and `pod-init`, CNI plugins, files); tests inject a
//! fake through [`Pods::open`].
//!
//! [`Pods`]: super::Pods
//! [`Pods::open`]: super::Pods::open

use std::future::Future;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;

use super::{write_pod_files, DnsConfig, Error, Namespace, PodFiles, PodInit, PodNamespaces};
use crate::cgroups::{Cgroup, CgroupStats, Hierarchy};
use crate::linux::{self, InterfaceCounters, PinOptions, DEFAULT_SHM_SIZE};
use crate::network::{Cni, NetworkConfig, PodNetwork};
use crate::spec::{linux_resources, Resources};

/// How long a killed pod init gets to disappear.
const INIT_EXIT_WAIT: Duration = Duration::from_secs(2);

/// A future the plumbing returns (boxed, so the trait stays object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Every side effect of making, stopping and removing a pod. Undoing
/// steps (`remove_cgroup`, `unmount_shm`, `unpin`, `kill_init`, `cni_del`)
/// succeed when there is nothing to undo.
pub trait PodPlumbing: Send + Sync + std::fmt::Debug {
    /// Whether pods get a cgroup at all (a hierarchy was found).
    fn has_cgroups(&self) -> bool;
    /// Whether the cgroup `path` exists (then it is not ours to remove).
    fn cgroup_exists(&self, path: &str) -> bool;
    /// Creates (or adopts) the cgroup `path`.
    fn create_cgroup(&self, path: &str) -> Result<(), crate::Error>;
    /// Sets the limits of the cgroup `path` to `resources` (a pod's, from
    /// [`super::pod_cgroup_resources`]); a limit `resources` leaves unset
    /// (memory, cpu quota) is lifted.
    fn set_cgroup_resources(&self, path: &str, resources: &Resources) -> Result<(), crate::Error>;
    /// Kills every process in the cgroup `path` and removes it.
    fn remove_cgroup(&self, path: &str) -> Result<(), crate::Error>;
    /// The counters of the cgroup `path`; `None` when it is gone (or pods
    /// get no cgroups). Blocking reads.
    fn cgroup_stats(&self, path: &str) -> Result<Option<CgroupStats>, crate::Error>;
    /// The traffic counters of the interfaces (loopback left out) of the
    /// network namespace pinned at `netns`. Blocking reads.
    fn interfaces(&self, netns: &Path) -> Result<Vec<InterfaceCounters>, crate::Error>;

    /// Mounts the pod's /dev/shm at `dir`.
    fn mount_shm(&self, dir: &Path) -> Result<(), crate::Error>;
    /// Unmounts and removes `dir`.
    fn unmount_shm(&self, dir: &Path) -> Result<(), crate::Error>;

    /// Creates the namespaces of `opts` and pins them under `dir`; on
    /// failure nothing is pinned.
    fn pin<'a>(
        &'a self,
        dir: &'a Path,
        opts: &'a PinOptions,
    ) -> BoxFuture<'a, Result<(), crate::Error>>;
    /// Unpins every namespace file under `dir`.
    fn unpin(&self, dir: &Path) -> Result<(), crate::Error>;
    /// Whether `dir` exists and each of `namespaces` is still pinned in it.
    fn pinned(&self, dir: &Path, namespaces: &[Namespace]) -> bool;

    /// Starts the init of a shared pid namespace, born in `cgroup`; with
    /// `userns` (a pinned user namespace), the pid namespace is owned by it.
    fn spawn_init<'a>(
        &'a self,
        cgroup: Option<&'a str>,
        userns: Option<&'a Path>,
    ) -> BoxFuture<'a, Result<PodInit, crate::Error>>;
    /// Kills `init` if it is still that process, and waits briefly for it.
    fn kill_init(&self, init: PodInit) -> BoxFuture<'_, ()>;
    /// Whether `init` is still that process, alive.
    fn init_alive(&self, init: PodInit) -> bool;

    /// The network configuration pods would be attached with now.
    fn network(&self) -> Result<NetworkConfig, crate::network::Error>;
    /// CNI ADD; the pod's addresses, primary first.
    fn cni_add<'a>(
        &'a self,
        pod: &'a PodNetwork,
    ) -> BoxFuture<'a, Result<Vec<IpAddr>, crate::Error>>;
    /// CNI DEL of the pod `id`, whose netns is (or was) `netns`.
    fn cni_del<'a>(
        &'a self,
        id: &'a str,
        netns: &'a Path,
    ) -> BoxFuture<'a, Result<(), crate::Error>>;

    /// Writes the pod's hostname, hosts and resolv.conf under `dir`
    /// (a host-network pod gets the host's hosts).
    fn write_files(
        &self,
        dir: &Path,
        hostname: &str,
        dns: Option<&DnsConfig>,
        ips: &[IpAddr],
        host_network: bool,
    ) -> Result<PodFiles, crate::Error>;
}

/// The real plumbing: this host's cgroups, mounts, `corten-shim` and CNI.
/// Its file system work (cgroupfs, mounts, the pod's files) runs off the
/// async workers ([`crate::blocking`]).
#[derive(Debug)]
pub struct HostPlumbing {
    shim: PathBuf,
    cni: Cni,
    cgroups: Option<Hierarchy>,
}

impl HostPlumbing {
    /// Plumbing that runs `shim` for pins and inits and `cni` for the
    /// network, with the cgroup hierarchy detected now (none: pods get no
    /// cgroup, with a warning).
    pub fn new(shim: &Path, cni: Cni) -> HostPlumbing {
        let cgroups = match crate::cgroups::detect() {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "no cgroup hierarchy: pods get no cgroup");
                None
            }
        };
        HostPlumbing {
            shim: shim.to_owned(),
            cni,
            cgroups,
        }
    }

    async fn start_init(
        &self,
        cgroup: Option<&str>,
        userns: Option<&Path>,
    ) -> Result<PodInit, Error> {
        let mut command = tokio::process::Command::new(&self.shim);
        command.arg("pod-init");
        if let Some(path) = cgroup {
            command.arg("--cgroup").arg(path);
        }
        if let Some(path) = userns {
            command.arg("--userns").arg(path);
        }
        command.stdin(Stdio::null()).kill_on_drop(true);
        let out = crate::blocking::output(&mut command)
            .await
            .map_err(|source| Error::Spawn {
                binary: self.shim.clone(),
                source,
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        let pid = match text.trim().parse::<i32>() {
            Ok(pid) if out.status.success() && pid > 0 => pid,
            _ => {
                return Err(Error::PodInit(format!(
                    "corten-shim pod-init {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )))
            }
        };
        let start_time = start_time(pid)
            .ok_or_else(|| Error::PodInit(format!("the pod init (pid {pid}) is gone at once")))?;
        Ok(PodInit { pid, start_time })
    }
}

impl PodPlumbing for HostPlumbing {
    fn has_cgroups(&self) -> bool {
        self.cgroups.is_some()
    }

    fn cgroup_exists(&self, path: &str) -> bool {
        crate::blocking::run(|| {
            self.cgroups
                .as_ref()
                .is_some_and(|h| Cgroup::open(h, path).is_ok())
        })
    }

    fn create_cgroup(&self, path: &str) -> Result<(), crate::Error> {
        if let Some(h) = &self.cgroups {
            crate::blocking::run(|| Cgroup::create(h, path))?;
        }
        Ok(())
    }

    fn set_cgroup_resources(&self, path: &str, resources: &Resources) -> Result<(), crate::Error> {
        let Some(h) = &self.cgroups else {
            return Ok(());
        };
        let mut limits = linux_resources(resources);
        if resources.memory_limit_bytes.is_none() {
            let mut memory = limits.memory().unwrap_or_default();
            memory.set_limit(Some(-1));
            limits.set_memory(Some(memory));
        }
        if resources.cpu_quota.is_none() {
            let mut cpu = limits.cpu().clone().unwrap_or_default();
            cpu.set_quota(Some(-1));
            limits.set_cpu(Some(cpu));
        }
        crate::blocking::run(|| Ok(Cgroup::open(h, path)?.apply(&limits)?))
    }

    fn remove_cgroup(&self, path: &str) -> Result<(), crate::Error> {
        let Some(h) = &self.cgroups else {
            return Ok(());
        };
        crate::blocking::run(|| match Cgroup::open(h, path) {
            Ok(cg) => {
                cg.kill_all()?;
                cg.destroy()?;
                Ok(())
            }
            Err(e) if e.kind() == crate::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        })
    }

    fn cgroup_stats(&self, path: &str) -> Result<Option<CgroupStats>, crate::Error> {
        let Some(h) = &self.cgroups else {
            return Ok(None);
        };
        match Cgroup::open(h, path) {
            Ok(cg) => Ok(Some(cg.stats()?)),
            Err(e) if e.kind() == crate::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn interfaces(&self, netns: &Path) -> Result<Vec<InterfaceCounters>, crate::Error> {
        linux::interfaces_in_netns(netns).map_err(|source| {
            Error::Io {
                path: netns.to_path_buf(),
                source,
            }
            .into()
        })
    }

    fn mount_shm(&self, dir: &Path) -> Result<(), crate::Error> {
        Ok(crate::blocking::run(|| {
            linux::mount_shm(dir, DEFAULT_SHM_SIZE)
        })?)
    }

    fn unmount_shm(&self, dir: &Path) -> Result<(), crate::Error> {
        Ok(crate::blocking::run(|| linux::unmount_shm(dir))?)
    }

    fn pin<'a>(
        &'a self,
        dir: &'a Path,
        opts: &'a PinOptions,
    ) -> BoxFuture<'a, Result<(), crate::Error>> {
        Box::pin(async move {
            let pinned = PodNamespaces::create(&self.shim, dir, opts).await?;
            debug_assert_eq!(pinned.dir(), dir);
            Ok(())
        })
    }

    fn unpin(&self, dir: &Path) -> Result<(), crate::Error> {
        Ok(crate::blocking::run(|| linux::unpin(dir))?)
    }

    fn pinned(&self, dir: &Path, namespaces: &[Namespace]) -> bool {
        crate::blocking::run(|| {
            let Ok(dir_dev) = std::fs::metadata(dir).map(|m| m.dev()) else {
                return false;
            };
            namespaces.iter().all(|ns| {
                // A pinned file is a bind mount of nsfs: another device than its dir.
                std::fs::metadata(dir.join(ns.name())).is_ok_and(|m| m.dev() != dir_dev)
            })
        })
    }

    fn spawn_init<'a>(
        &'a self,
        cgroup: Option<&'a str>,
        userns: Option<&'a Path>,
    ) -> BoxFuture<'a, Result<PodInit, crate::Error>> {
        Box::pin(async move { Ok(self.start_init(cgroup, userns).await?) })
    }

    fn kill_init(&self, init: PodInit) -> BoxFuture<'_, ()> {
        Box::pin(kill_init(init))
    }

    fn init_alive(&self, init: PodInit) -> bool {
        start_time(init.pid) == Some(init.start_time)
    }

    fn network(&self) -> Result<NetworkConfig, crate::network::Error> {
        self.cni.network()
    }

    fn cni_add<'a>(
        &'a self,
        pod: &'a PodNetwork,
    ) -> BoxFuture<'a, Result<Vec<IpAddr>, crate::Error>> {
        Box::pin(async move { Ok(self.cni.add(pod).await?.pod_ips()) })
    }

    fn cni_del<'a>(
        &'a self,
        id: &'a str,
        netns: &'a Path,
    ) -> BoxFuture<'a, Result<(), crate::Error>> {
        Box::pin(async move { Ok(self.cni.del(id, Some(netns)).await?) })
    }

    fn write_files(
        &self,
        dir: &Path,
        hostname: &str,
        dns: Option<&DnsConfig>,
        ips: &[IpAddr],
        host_network: bool,
    ) -> Result<PodFiles, crate::Error> {
        crate::blocking::run(|| {
            let files = write_pod_files(dir, hostname, dns, ips).map_err(Error::Files)?;
            if host_network {
                // The host's names, as containerd and CRI-O give host-network pods.
                if let Ok(hosts) = std::fs::read("/etc/hosts") {
                    std::fs::write(&files.hosts, hosts).map_err(|source| Error::Io {
                        path: files.hosts.clone(),
                        source,
                    })?;
                }
            }
            Ok(files)
        })
    }
}

/// Field 22 of /proc/PID/stat, the process's start time, while the
/// process lives (a zombie, awaiting its reaper, counts as gone).
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the command come fields 3 (state) .. ; start time is field 22.
    let mut fields = rest.split_whitespace();
    if matches!(fields.next(), Some("Z" | "X")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// SIGKILLs the pod's init (which ends its pid namespace) if it is still
/// the same process, and waits briefly until it is gone.
async fn kill_init(init: PodInit) {
    if start_time(init.pid) != Some(init.start_time) {
        return;
    }
    let pid = nix::unistd::Pid::from_raw(init.pid);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    let deadline = tokio::time::Instant::now() + INIT_EXIT_WAIT;
    while start_time(init.pid) == Some(init.start_time) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_of_this_process() {
        let me = std::process::id() as i32;
        assert!(start_time(me).is_some_and(|t| t > 0));
        assert_eq!(start_time(i32::MAX), None);
    }

    #[test]
    fn writing_the_pod_files_does_not_hold_up_the_worker() {
        // hosts' temp file is a FIFO: writing it blocks until someone reads.
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("hosts.tmp");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        let cni = Cni::new(dir.path(), vec![], dir.path().join("cache"));
        let plumbing = HostPlumbing::new(Path::new("/nonexistent"), cni);
        let pod_dir = dir.path().to_path_buf();
        let (answer, written) = crate::testing::while_blocked(
            async move { plumbing.write_files(&pod_dir, "web-0", None, &[], false) },
            || "answered",
            || drop(std::fs::read(&fifo).expect("read the fifo")),
        );
        assert_eq!(answer, "answered");
        // (hosts is the FIFO, renamed into place.)
        let files = written.expect("the files are written");
        assert_eq!(
            std::fs::read_to_string(files.hostname).expect("hostname"),
            "web-0\n"
        );
    }

    #[test]
    fn an_unpinned_dir_is_not_pinned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cni = Cni::new(dir.path(), vec![], dir.path().join("cache"));
        let p = HostPlumbing::new(Path::new("/nonexistent"), cni);
        assert!(p.pinned(dir.path(), &[]));
        assert!(!p.pinned(dir.path(), &[Namespace::Net]));
        assert!(!p.pinned(&dir.path().join("gone"), &[]));
    }
}
