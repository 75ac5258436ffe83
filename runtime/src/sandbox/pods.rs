//! The pod sandboxes of a node: [`Pods::run`], [`Pods::stop`],
//! [`Pods::remove`], look-ups, and reconciliation after a daemon restart.
//!
//! A pod is made in this order, each step undone in reverse when a later
//! one fails: directory, cgroup, `/dev/shm`, pinned namespaces (with
//! hostname and sysctls), the shared pid namespace's init, CNI ADD, the
//! hostname/hosts/resolv.conf files. Its record is written (NotReady)
//! before the first step and (Ready) after the last, so a crash in between
//! leaves a NotReady pod that removal or the next start cleans up.
//!
//! Stop undoes everything but the directory, the cgroup and the record;
//! remove undoes the rest. Both are idempotent and tolerate parts that were
//! never made or are already gone.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::record::{PidMode, Pod, PodConfig, PodInit, PodState};
use super::{write_pod_files, Error, Namespace, PodNamespaces};
use crate::cgroups::{Cgroup, Hierarchy};
use crate::linux::{self, PinOptions, DEFAULT_SHM_SIZE};
use crate::locks::KeyedLocks;
use crate::network::{Cni, NetworkConfig, PodNetwork};
use crate::store::{Change, MetaStore, Table};

/// How long a killed pod init gets to disappear.
const INIT_EXIT_WAIT: Duration = Duration::from_secs(2);

/// The pod sandboxes.
#[derive(Debug)]
pub struct Pods {
    store: Arc<MetaStore>,
    dir: PathBuf,
    shim: PathBuf,
    cni: Cni,
    cgroups: Option<Hierarchy>,
    pods: Mutex<BTreeMap<String, Pod>>,
    /// Names of pods being made, not yet in `pods`.
    reserved: Mutex<HashSet<String>>,
    locks: KeyedLocks,
}

impl Pods {
    /// Opens the pods recorded in `store`; their files live under
    /// `state_dir/pods`. A Ready pod whose namespaces did not survive (a
    /// reboot emptied the state dir, say) is torn down and marked NotReady.
    pub async fn open(
        store: Arc<MetaStore>,
        state_dir: &Path,
        shim: &Path,
        cni: Cni,
    ) -> Result<Pods, crate::Error> {
        let cgroups = match crate::cgroups::detect() {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "no cgroup hierarchy: pods get no cgroup");
                None
            }
        };
        let records: Vec<(String, Pod)> = store.load_all(Table::Pods)?;
        let pods = Pods {
            store,
            dir: state_dir.join("pods"),
            shim: shim.to_owned(),
            cni,
            cgroups,
            pods: Mutex::new(BTreeMap::new()),
            reserved: Mutex::new(HashSet::new()),
            locks: KeyedLocks::default(),
        };
        for (_, mut pod) in records {
            if pod.creating {
                // RunPodSandbox was cut short (a crash): nobody was given
                // this pod. Undo whatever of it was made, record included.
                tracing::warn!(pod = %pod.id, "removing a pod whose creation was cut short");
                pods.discard(&mut pod).await;
                continue;
            }
            if pod.state == PodState::Ready && !intact(&pod) {
                tracing::warn!(pod = %pod.id, "pod did not survive (namespaces or init gone): stopping it");
                if let Err(e) = pods.teardown(&mut pod, true).await {
                    tracing::warn!(pod = %pod.id, error = %e, "cleaning up the lost pod");
                }
                pod.state = PodState::NotReady;
                pods.save(&pod)?;
            }
            pods.map().insert(pod.id.clone(), pod);
        }
        Ok(pods)
    }

    fn map(&self) -> MutexGuard<'_, BTreeMap<String, Pod>> {
        self.pods.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, pod: &Pod) -> Result<(), crate::Error> {
        let change = self.store.encode(&pod.id, pod)?;
        self.store.apply(Table::Pods, vec![change])?;
        Ok(())
    }

    /// The network configuration pods would be attached with now.
    pub fn network(&self) -> Result<NetworkConfig, crate::network::Error> {
        self.cni.network()
    }

    /// Every pod.
    pub fn list(&self) -> Vec<Pod> {
        self.map().values().cloned().collect()
    }

    /// The pod `id`, or the only one whose id starts with it.
    pub fn get(&self, id: &str) -> Result<Pod, Error> {
        let map = self.map();
        if let Some(pod) = map.get(id) {
            return Ok(pod.clone());
        }
        let mut found = map
            .range(id.to_string()..)
            .take_while(|(k, _)| k.starts_with(id))
            .map(|(_, p)| p);
        match (id.is_empty(), found.next(), found.next()) {
            (false, Some(pod), None) => Ok(pod.clone()),
            (false, Some(_), Some(_)) => Err(Error::Ambiguous { id: id.to_string() }),
            _ => Err(Error::NotFound { id: id.to_string() }),
        }
    }

    /// Makes a pod. On failure nothing of it is left.
    pub async fn run(&self, config: PodConfig) -> Result<Pod, crate::Error> {
        if config.name.is_empty() {
            return Err(Error::Refused("pod metadata needs a name".into()).into());
        }
        let key = name_key(&config);
        let id = random_id().map_err(|source| Error::Io {
            path: "/dev/urandom".into(),
            source,
        })?;
        let _reservation = self.reserve(&key, &config)?;
        let _lock = self.locks.lock(&id).await;
        let mut pod = Pod {
            dir: self.dir.join(&id),
            id,
            config,
            state: PodState::NotReady,
            created_at: now_ns(),
            creating: true,
            ..Pod::default()
        };
        self.plan(&mut pod);
        self.save(&pod)?;
        crate::crash::point("pod.run.after_record");
        match self.make(&mut pod).await {
            Ok(()) => {
                pod.state = PodState::Ready;
                pod.creating = false;
                crate::crash::point("pod.run.before_ready");
                if let Err(e) = self.save(&pod) {
                    self.discard(&mut pod).await;
                    return Err(e);
                }
                self.map().insert(pod.id.clone(), pod.clone());
                tracing::info!(pod = %pod.id, name = %pod.config.name, ips = ?pod.ips, "pod ready");
                Ok(pod)
            }
            Err(e) => {
                tracing::warn!(pod = %pod.id, error = %e, "pod failed: undoing it");
                self.discard(&mut pod).await;
                Err(e)
            }
        }
    }

    /// Undoes a pod that never became Ready, record included. Everything
    /// the plan names is undone, made or not (each undo tolerates absence).
    async fn discard(&self, pod: &mut Pod) {
        if let Err(e) = self.teardown(pod, true).await {
            tracing::warn!(pod = %pod.id, error = %e, "undoing the failed pod");
        }
        if let Err(e) = self.remove_rest(pod) {
            tracing::warn!(pod = %pod.id, error = %e, "removing the failed pod");
        }
    }

    fn reserve(&self, key: &str, config: &PodConfig) -> Result<Reservation<'_>, Error> {
        let taken = self
            .map()
            .values()
            .find(|p| name_key(&p.config) == key)
            .map(|p| p.id.clone());
        let mut reserved = self.reserved.lock().unwrap_or_else(|p| p.into_inner());
        if taken.is_some() || !reserved.insert(key.to_string()) {
            return Err(Error::NameTaken {
                name: format!(
                    "{}/{} (uid {}, attempt {})",
                    config.namespace, config.name, config.uid, config.attempt
                ),
                id: taken.unwrap_or_else(|| "being created".into()),
            });
        }
        Ok(Reservation {
            set: &self.reserved,
            key: key.to_string(),
        })
    }

    /// Writes into the record, before anything is made, every part the pod
    /// will have that a crash could leave behind: its cgroup (and whether
    /// it is ours), its /dev/shm, its network. Undoing tolerates parts
    /// that were never made, so a record that says more than was done is
    /// safe, and one that said less would leak.
    fn plan(&self, pod: &mut Pod) {
        if let Some(h) = &self.cgroups {
            let path = if pod.config.cgroup_parent.is_empty() {
                format!("/corten/{}", pod.id)
            } else {
                pod.config.cgroup_parent.clone()
            };
            pod.cgroup_created = Cgroup::open(h, &path).is_err();
            pod.cgroup = Some(path);
        }
        pod.shm = !pod.config.host_ipc;
        pod.network_attached = !pod.config.host_network;
    }

    async fn make(&self, pod: &mut Pod) -> Result<(), crate::Error> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        std::fs::create_dir(&pod.dir).map_err(io(&pod.dir))?;
        let config = pod.config.clone();
        pod.hostname = if config.hostname.is_empty() {
            nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "localhost".into())
        } else {
            config.hostname.clone()
        };

        if let (Some(h), Some(path)) = (&self.cgroups, &pod.cgroup) {
            Cgroup::create(h, path)?;
        }
        crate::crash::point("pod.run.after_cgroup");

        if pod.shm {
            linux::mount_shm(&pod.shm_path(), DEFAULT_SHM_SIZE)?;
        }
        crate::crash::point("pod.run.after_shm");

        let mut namespaces = Vec::new();
        if !config.host_network {
            namespaces.extend([Namespace::Net, Namespace::Uts]);
        }
        if !config.host_ipc {
            namespaces.push(Namespace::Ipc);
        }
        let sysctls: Vec<(String, String)> = config
            .sysctls
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if namespaces.is_empty() {
            if let Some((name, _)) = sysctls.first() {
                return Err(Error::Refused(format!(
                    "sysctl {name} needs a namespace of the pod's own, but the pod uses the host's network and IPC"
                ))
                .into());
            }
        } else {
            let opts = PinOptions {
                hostname: namespaces
                    .contains(&Namespace::Uts)
                    .then(|| pod.hostname.clone()),
                namespaces,
                sysctls,
            };
            let pinned = PodNamespaces::create(&self.shim, &pod.dir, &opts).await?;
            pod.namespaces = opts.namespaces.clone();
            debug_assert_eq!(pinned.dir(), pod.dir);
        }
        crate::crash::point("pod.run.after_pin");

        if config.pid == PidMode::Pod {
            // Born in the pod's cgroup, so that removing the pod kills it
            // even if its pid was never recorded (a crash right here).
            let init = self.spawn_init(pod.cgroup.as_deref()).await?;
            pod.init = Some(init);
        }
        crate::crash::point("pod.run.after_init");

        if let Some(netns) = pod.namespace_path(Namespace::Net) {
            let result = self
                .cni
                .add(&PodNetwork {
                    id: pod.id.clone(),
                    name: config.name.clone(),
                    namespace: config.namespace.clone(),
                    uid: config.uid.clone(),
                    netns_path: netns,
                    port_mappings: config.port_mappings.clone(),
                })
                .await?;
            pod.network_attached = true;
            pod.ips = result.pod_ips();
        }
        crate::crash::point("pod.run.after_cni_add");

        let files = write_pod_files(&pod.dir, &pod.hostname, config.dns.as_ref(), &pod.ips)
            .map_err(Error::Files)?;
        if config.host_network {
            // The host's names, as containerd and CRI-O give host-network pods.
            if let Ok(hosts) = std::fs::read("/etc/hosts") {
                std::fs::write(&files.hosts, hosts).map_err(io(&files.hosts))?;
            }
        }
        pod.files = Some(files);
        Ok(())
    }

    async fn spawn_init(&self, cgroup: Option<&str>) -> Result<PodInit, Error> {
        let mut command = tokio::process::Command::new(&self.shim);
        command.arg("pod-init");
        if let Some(path) = cgroup {
            command.arg("--cgroup").arg(path);
        }
        let out = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output()
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

    /// Stops a pod: detaches its network, ends its init, unpins its
    /// namespaces, unmounts its /dev/shm. Its containers must be stopped
    /// first (the CRI layer does that). Idempotent.
    pub async fn stop(&self, id: &str) -> Result<Pod, crate::Error> {
        let id = self.get(id)?.id;
        let _lock = self.locks.lock(&id).await;
        // Read under the lock: a concurrent stop or remove may have run.
        let mut pod = self.get(&id)?;
        let result = self.teardown(&mut pod, false).await;
        pod.state = PodState::NotReady;
        crate::crash::point("pod.stop.before_record");
        self.save(&pod)?;
        self.map().insert(pod.id.clone(), pod.clone());
        result?;
        tracing::info!(pod = %pod.id, "pod stopped");
        Ok(pod)
    }

    /// Removes a pod: stops it if needed, then removes its cgroup, files and
    /// record. An unknown id is success (CRI removal is idempotent).
    pub async fn remove(&self, id: &str) -> Result<(), crate::Error> {
        let Ok(pod) = self.get(id) else {
            return Ok(());
        };
        let _lock = self.locks.lock(&pod.id).await;
        let Some(mut pod) = self.map().get(&pod.id).cloned() else {
            return Ok(());
        };
        let torn = self.teardown(&mut pod, false).await;
        crate::crash::point("pod.remove.after_teardown");
        if torn.is_err() {
            // Keep what is left findable for a retry.
            pod.state = PodState::NotReady;
            self.save(&pod)?;
            self.map().insert(pod.id.clone(), pod.clone());
            return torn;
        }
        self.remove_rest(&pod)?;
        self.map().remove(&pod.id);
        tracing::info!(pod = %pod.id, "pod removed");
        Ok(())
    }

    /// Removes the cgroup (if ours), the directory and the record.
    fn remove_rest(&self, pod: &Pod) -> Result<(), crate::Error> {
        if let (Some(h), Some(path), true) = (&self.cgroups, &pod.cgroup, pod.cgroup_created) {
            match Cgroup::open(h, path) {
                Ok(cg) => {
                    cg.kill_all()?;
                    cg.destroy()?;
                }
                Err(e) if e.kind() == crate::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        match std::fs::remove_dir_all(&pod.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::Io {
                    path: pod.dir.clone(),
                    source: e,
                }
                .into())
            }
            _ => {}
        }
        crate::crash::point("pod.remove.after_files");
        self.store
            .apply(Table::Pods, vec![Change::Delete(pod.id.clone())])?;
        Ok(())
    }

    /// Undoes everything but the directory, the cgroup and the record.
    /// `force` runs CNI DEL even when no ADD is recorded (a pod whose
    /// record predates a crash).
    async fn teardown(&self, pod: &mut Pod, force: bool) -> Result<(), crate::Error> {
        let mut first_error: Option<crate::Error> = None;
        let id = pod.id.clone();
        let mut keep = |r: Result<(), crate::Error>| {
            if let Err(e) = r {
                tracing::warn!(pod = %id, error = %e, "pod teardown step failed");
                first_error.get_or_insert(e);
            }
        };
        if pod.network_attached || (force && !pod.config.host_network) {
            let netns = pod.dir.join(Namespace::Net.name());
            match self.cni.del(&pod.id, Some(&netns)).await {
                Ok(()) => pod.network_attached = false,
                Err(e) => keep(Err(e.into())),
            }
            crate::crash::point("pod.stop.after_cni_del");
        }
        if let Some(init) = pod.init {
            kill_init(init).await;
            pod.init = None;
        }
        keep(
            linux::unpin(&pod.dir)
                .map(|()| pod.namespaces.clear())
                .map_err(Into::into),
        );
        if pod.shm || force {
            keep(
                linux::unmount_shm(&pod.shm_path())
                    .map(|()| pod.shm = false)
                    .map_err(Into::into),
            );
        }
        pod.ips.clear();
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Holds a pod name while the pod is being made.
struct Reservation<'a> {
    set: &'a Mutex<HashSet<String>>,
    key: String,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

/// Pods are unique by namespace, name, uid and attempt (as containerd
/// reserves them).
fn name_key(c: &PodConfig) -> String {
    format!("{}\0{}\0{}\0{}", c.namespace, c.name, c.uid, c.attempt)
}

fn random_id() -> std::io::Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode(bytes))
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
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

/// Whether what the record says is there is still there.
fn intact(pod: &Pod) -> bool {
    let dir_dev = std::fs::metadata(&pod.dir).map(|m| m.dev()).ok();
    let pinned = pod.namespaces.iter().all(|ns| {
        let file = pod.dir.join(ns.name());
        // A pinned file is a bind mount of nsfs: another device than its dir.
        matches!((std::fs::metadata(file).map(|m| m.dev()), dir_dev), (Ok(f), Some(d)) if f != d)
    });
    let init_alive = pod
        .init
        .is_none_or(|init| start_time(init.pid) == Some(init.start_time));
    dir_dev.is_some() && pinned && init_alive
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
    fn names_are_keyed_by_namespace_name_uid_attempt() {
        let a = PodConfig {
            name: "web".into(),
            namespace: "default".into(),
            uid: "u1".into(),
            ..PodConfig::default()
        };
        let mut b = a.clone();
        assert_eq!(name_key(&a), name_key(&b));
        b.attempt = 1;
        assert_ne!(name_key(&a), name_key(&b));
    }

    #[test]
    fn ids_are_64_hex_digits() {
        let id = random_id().expect("urandom");
        assert_eq!(id.len(), 64);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(id, random_id().expect("urandom"));
    }
}
