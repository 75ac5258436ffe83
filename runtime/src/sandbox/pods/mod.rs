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
//!
//! Every side effect but the pod's directory goes through the
//! [`PodPlumbing`] given to [`Pods::open`].

mod run;
mod teardown;
#[cfg(test)]
mod tests;
mod update;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::record::{Pod, PodConfig, PodState};
use super::{Error, PodPlumbing};
use crate::locks::KeyedLocks;
use crate::network::NetworkConfig;
use crate::store::{Lookup, MetaStore, Record, Records, Table};

impl Record for Pod {
    const TABLE: Table = Table::Pods;
    fn id(&self) -> &str {
        &self.id
    }
}

/// The pod sandboxes.
#[derive(Debug)]
pub struct Pods {
    dir: PathBuf,
    plumbing: Arc<dyn PodPlumbing>,
    /// The pods that were made (a pod being made is only on disk).
    records: Records<Pod>,
    /// Names of pods being made, not yet in `pods`.
    reserved: Mutex<HashSet<String>>,
    locks: KeyedLocks,
}

impl Pods {
    /// Opens the pods recorded in `store`; their files live under
    /// `state_dir/pods`, their side effects go through `plumbing` (on a
    /// node, [`super::HostPlumbing`]). A Ready pod whose namespaces did not
    /// survive (a reboot emptied the state dir, say) is torn down and
    /// marked NotReady.
    pub async fn open(
        store: Arc<MetaStore>,
        state_dir: &Path,
        plumbing: Arc<dyn PodPlumbing>,
    ) -> Result<Pods, crate::Error> {
        let pods = Pods {
            dir: state_dir.join("pods"),
            plumbing,
            records: Records::load(store)?,
            reserved: Mutex::new(HashSet::new()),
            locks: KeyedLocks::default(),
        };
        for mut pod in pods.records.filtered(|_| true) {
            if pod.creating {
                // RunPodSandbox was cut short (a crash): nobody was given
                // this pod. Undo whatever of it was made, record included.
                tracing::warn!(pod = %pod.id, "removing a pod whose creation was cut short");
                pods.discard(&mut pod).await;
                continue;
            }
            if pod.state == PodState::Ready && !pods.intact(&pod) {
                tracing::warn!(pod = %pod.id, "pod did not survive (namespaces or init gone): stopping it");
                if let Err(e) = pods.teardown(&mut pod, true).await {
                    tracing::warn!(pod = %pod.id, error = %e, "cleaning up the lost pod");
                }
                pod.state = PodState::NotReady;
                pods.save(pod)?;
            }
        }
        Ok(pods)
    }

    /// Writes `pod` through and keeps it. A record write waits for the
    /// writer lock, which another pod's commit (an fsync) holds: it waits
    /// off the async worker ([`crate::blocking`]), as do the writes below.
    fn save(&self, pod: Pod) -> Result<(), crate::store::Error> {
        crate::blocking::run(|| self.records.put(pod))
    }

    /// Writes `pod` to disk only (see [`Records::persist`]).
    fn persist(&self, pod: &Pod) -> Result<(), crate::store::Error> {
        crate::blocking::run(|| self.records.persist(pod))
    }

    /// Deletes the record of `id`.
    fn forget(&self, id: &str) -> Result<(), crate::store::Error> {
        crate::blocking::run(|| self.records.delete(id))
    }

    /// Whether what the record says is there is still there.
    fn intact(&self, pod: &Pod) -> bool {
        self.plumbing.pinned(&pod.dir, &pod.namespaces)
            && pod.init.is_none_or(|init| self.plumbing.init_alive(init))
    }

    /// The network configuration pods would be attached with now.
    pub fn network(&self) -> Result<NetworkConfig, crate::network::Error> {
        self.plumbing.network()
    }

    /// Every pod.
    pub fn list(&self) -> Vec<Pod> {
        self.records.filtered(|_| true)
    }

    /// The pod `id`, or the only one whose id starts with it.
    pub fn get(&self, id: &str) -> Result<Pod, Error> {
        let found = match self.records.resolve(id) {
            Lookup::Found(full) => self.records.get(&full),
            Lookup::Ambiguous => return Err(Error::Ambiguous { id: id.to_string() }),
            Lookup::NotFound | Lookup::Empty => None,
        };
        found.ok_or_else(|| Error::NotFound { id: id.to_string() })
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

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
