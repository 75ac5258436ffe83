//! A [`PodPlumbing`] that makes nothing: it records each call, keeps track
//! of what would exist (cgroups, shm mounts, pins, inits, CNI leases), and
//! fails a chosen call on demand. Injected through [`super::Pods::open`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use super::{BoxFuture, DnsConfig, Error, Namespace, PodFiles, PodInit, PodPlumbing};
use crate::cgroups::CgroupStats;
use crate::linux::{InterfaceCounters, PinOptions};
use crate::network::{NetworkConfig, PodNetwork};
use crate::spec::Resources;

/// A call that changes something, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    CreateCgroup(String),
    SetCgroupResources(String, Resources),
    RemoveCgroup(String),
    MountShm(PathBuf),
    UnmountShm(PathBuf),
    Pin(PathBuf, Vec<Namespace>),
    Unpin(PathBuf),
    /// The cgroup the init is born in.
    SpawnInit(Option<String>),
    KillInit(i32),
    CniAdd {
        pod: String,
        netns: PathBuf,
    },
    CniDel {
        pod: String,
        netns: PathBuf,
    },
    WriteFiles(PathBuf),
}

/// The kind of a [`Call`], to aim a fault at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    CreateCgroup,
    SetCgroupResources,
    RemoveCgroup,
    MountShm,
    UnmountShm,
    Pin,
    Unpin,
    SpawnInit,
    CniAdd,
    CniDel,
    WriteFiles,
}

/// What exists, as far as the fake knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Existing {
    pub cgroups: BTreeSet<String>,
    /// cgroup -> the limits last set on it.
    pub limits: BTreeMap<String, Resources>,
    pub shm: BTreeSet<PathBuf>,
    pub pins: BTreeMap<PathBuf, Vec<Namespace>>,
    /// pid -> the cgroup it was born in.
    pub inits: BTreeMap<i32, Option<String>>,
    /// Pod ids holding a CNI attachment (and its address lease).
    pub leases: BTreeSet<String>,
}

type MakeError = Box<dyn Fn() -> crate::Error + Send + Sync>;

struct Fault {
    step: Step,
    /// Calls of `step` still to let through before failing one.
    skip: usize,
    error: MakeError,
}

#[derive(Default)]
struct World {
    calls: Vec<Call>,
    exists: Existing,
    faults: Vec<Fault>,
    next_pid: i32,
}

/// The fake plumbing.
#[derive(Default)]
pub struct FakePlumbing {
    no_cgroups: bool,
    world: Mutex<World>,
}

impl std::fmt::Debug for FakePlumbing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakePlumbing").finish_non_exhaustive()
    }
}

/// An error as a failing step would return it.
pub fn injected(step: Step) -> crate::Error {
    Error::PodInit(format!("injected failure of {step:?}")).into()
}

impl FakePlumbing {
    /// A fake for a host without a cgroup hierarchy.
    pub fn without_cgroups() -> FakePlumbing {
        FakePlumbing {
            no_cgroups: true,
            ..FakePlumbing::default()
        }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fails the `nth` call (1 = the next) of `step` from now on, once,
    /// with the error `error` makes.
    pub fn fail(
        &self,
        step: Step,
        nth: usize,
        error: impl Fn() -> crate::Error + Send + Sync + 'static,
    ) {
        self.world().faults.push(Fault {
            step,
            skip: nth.saturating_sub(1),
            error: Box::new(error),
        });
    }

    /// Fails the next call of `step` with [`injected`].
    pub fn fail_next(&self, step: Step) {
        self.fail(step, 1, move || injected(step));
    }

    /// Forgets every fault not yet fired.
    pub fn clear_faults(&self) {
        self.world().faults.clear();
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.world().calls.clone()
    }

    /// Forgets the calls so far.
    pub fn clear_calls(&self) {
        self.world().calls.clear();
    }

    /// What exists now.
    pub fn existing(&self) -> Existing {
        self.world().exists.clone()
    }

    /// Changes what exists, as something outside the daemon would (a
    /// reboot, a crash part way).
    pub fn alter(&self, f: impl FnOnce(&mut Existing)) {
        f(&mut self.world().exists);
    }

    /// Records `call` and answers whether it fails.
    fn enter(&self, step: Step, call: Call) -> Result<MutexGuard<'_, World>, crate::Error> {
        let mut w = self.world();
        w.calls.push(call);
        if let Some(i) = w.faults.iter().position(|f| f.step == step) {
            if w.faults[i].skip == 0 {
                let fault = w.faults.remove(i);
                return Err((fault.error)());
            }
            w.faults[i].skip -= 1;
        }
        Ok(w)
    }
}

impl PodPlumbing for FakePlumbing {
    fn has_cgroups(&self) -> bool {
        !self.no_cgroups
    }

    fn cgroup_exists(&self, path: &str) -> bool {
        self.world().exists.cgroups.contains(path)
    }

    fn create_cgroup(&self, path: &str) -> Result<(), crate::Error> {
        let mut w = self.enter(Step::CreateCgroup, Call::CreateCgroup(path.into()))?;
        w.exists.cgroups.insert(path.into());
        Ok(())
    }

    fn set_cgroup_resources(&self, path: &str, resources: &Resources) -> Result<(), crate::Error> {
        let mut w = self.enter(
            Step::SetCgroupResources,
            Call::SetCgroupResources(path.into(), resources.clone()),
        )?;
        if !w.exists.cgroups.contains(path) {
            return Err(Error::Refused(format!("no cgroup {path}")).into());
        }
        w.exists.limits.insert(path.into(), resources.clone());
        Ok(())
    }

    fn remove_cgroup(&self, path: &str) -> Result<(), crate::Error> {
        let mut w = self.enter(Step::RemoveCgroup, Call::RemoveCgroup(path.into()))?;
        w.exists.limits.remove(path);
        // kill_all: whatever was born in it dies with it.
        w.exists.inits.retain(|_, cg| cg.as_deref() != Some(path));
        w.exists.cgroups.remove(path);
        Ok(())
    }

    fn cgroup_stats(&self, path: &str) -> Result<Option<CgroupStats>, crate::Error> {
        // A cgroup that exists counts the inits born in it.
        let w = self.world();
        Ok(w.exists.cgroups.contains(path).then(|| CgroupStats {
            pids_current: w
                .exists
                .inits
                .values()
                .filter(|cg| cg.as_deref() == Some(path))
                .count() as u64,
            timestamp_ns: 1,
            ..CgroupStats::default()
        }))
    }

    fn mount_shm(&self, dir: &Path) -> Result<(), crate::Error> {
        let mut w = self.enter(Step::MountShm, Call::MountShm(dir.into()))?;
        w.exists.shm.insert(dir.into());
        Ok(())
    }

    fn unmount_shm(&self, dir: &Path) -> Result<(), crate::Error> {
        let mut w = self.enter(Step::UnmountShm, Call::UnmountShm(dir.into()))?;
        w.exists.shm.remove(dir);
        Ok(())
    }

    fn pin<'a>(
        &'a self,
        dir: &'a Path,
        opts: &'a PinOptions,
    ) -> BoxFuture<'a, Result<(), crate::Error>> {
        let result = self
            .enter(Step::Pin, Call::Pin(dir.into(), opts.namespaces.clone()))
            .map(|mut w| {
                w.exists.pins.insert(dir.into(), opts.namespaces.clone());
            });
        Box::pin(async move { result })
    }

    fn unpin(&self, dir: &Path) -> Result<(), crate::Error> {
        let mut w = self.enter(Step::Unpin, Call::Unpin(dir.into()))?;
        w.exists.pins.remove(dir);
        Ok(())
    }

    fn interfaces(&self, netns: &Path) -> Result<Vec<InterfaceCounters>, crate::Error> {
        // A pinned netns has the one interface CNI made, with fixed counts.
        let w = self.world();
        let pinned = netns.parent().and_then(|dir| w.exists.pins.get(dir));
        match pinned {
            Some(ns) if ns.contains(&Namespace::Net) => Ok(vec![InterfaceCounters {
                name: "eth0".into(),
                rx_bytes: 100,
                tx_bytes: 50,
                ..InterfaceCounters::default()
            }]),
            _ => Err(Error::Io {
                path: netns.to_path_buf(),
                source: std::io::ErrorKind::NotFound.into(),
            }
            .into()),
        }
    }

    fn pinned(&self, dir: &Path, namespaces: &[Namespace]) -> bool {
        let w = self.world();
        dir.is_dir()
            && (namespaces.is_empty()
                || w.exists
                    .pins
                    .get(dir)
                    .is_some_and(|p| namespaces.iter().all(|ns| p.contains(ns))))
    }

    fn spawn_init<'a>(
        &'a self,
        cgroup: Option<&'a str>,
        _userns: Option<&'a Path>,
    ) -> BoxFuture<'a, Result<PodInit, crate::Error>> {
        let cgroup = cgroup.map(str::to_owned);
        let result = self
            .enter(Step::SpawnInit, Call::SpawnInit(cgroup.clone()))
            .map(|mut w| {
                w.next_pid += 1;
                let pid = 1000 + w.next_pid;
                w.exists.inits.insert(pid, cgroup);
                PodInit { pid, start_time: 7 }
            });
        Box::pin(async move { result })
    }

    fn kill_init(&self, init: PodInit) -> BoxFuture<'_, ()> {
        let mut w = self.world();
        w.calls.push(Call::KillInit(init.pid));
        w.exists.inits.remove(&init.pid);
        Box::pin(async {})
    }

    fn init_alive(&self, init: PodInit) -> bool {
        self.world().exists.inits.contains_key(&init.pid)
    }

    fn network(&self) -> Result<NetworkConfig, crate::network::Error> {
        Err(crate::network::Error::NoConfig {
            dir: "/fake".into(),
            skipped: vec![],
        })
    }

    fn cni_add<'a>(
        &'a self,
        pod: &'a PodNetwork,
    ) -> BoxFuture<'a, Result<Vec<IpAddr>, crate::Error>> {
        let call = Call::CniAdd {
            pod: pod.id.clone(),
            netns: pod.netns_path.clone(),
        };
        let result = self.enter(Step::CniAdd, call).map(|mut w| {
            w.exists.leases.insert(pod.id.clone());
            let n = w.exists.leases.len() as u8;
            vec![IpAddr::V4(Ipv4Addr::new(10, 88, 0, n))]
        });
        Box::pin(async move { result })
    }

    fn cni_del<'a>(
        &'a self,
        id: &'a str,
        netns: &'a Path,
    ) -> BoxFuture<'a, Result<(), crate::Error>> {
        let call = Call::CniDel {
            pod: id.into(),
            netns: netns.into(),
        };
        let result = self.enter(Step::CniDel, call).map(|mut w| {
            w.exists.leases.remove(id);
        });
        Box::pin(async move { result })
    }

    fn write_files(
        &self,
        dir: &Path,
        _hostname: &str,
        _dns: Option<&DnsConfig>,
        _ips: &[IpAddr],
        _host_network: bool,
    ) -> Result<PodFiles, crate::Error> {
        drop(self.enter(Step::WriteFiles, Call::WriteFiles(dir.into()))?);
        Ok(PodFiles {
            hostname: dir.join("hostname"),
            hosts: dir.join("hosts"),
            resolv_conf: dir.join("resolv.conf"),
        })
    }
}
