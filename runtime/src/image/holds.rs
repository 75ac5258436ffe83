//! Layer holds: the snapshots a container runs on stay on disk after its
//! image is removed, until the container is removed (containerd's way:
//! `RemoveImage` of an image in use succeeds, the running containers keep
//! their layers, and garbage collection skips them).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use super::Digest;

type OnRelease = Box<dyn Fn() + Send + Sync>;

/// Who holds which snapshots (by chain id), shared by the image index's
/// garbage collector and the container manager.
#[derive(Default)]
pub struct LayerHolds {
    holders: Mutex<HashMap<String, Vec<Digest>>>,
    /// Run when a hold goes: the index collects what nothing needs now.
    on_release: OnceLock<OnRelease>,
}

impl std::fmt::Debug for LayerHolds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerHolds")
            .field("holders", &self.map().len())
            .finish_non_exhaustive()
    }
}

impl LayerHolds {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Vec<Digest>>> {
        // Each change is one insert or remove: a poisoned map is consistent.
        self.holders.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `holder` (a container id) keeps `chain_ids` alive; replaces what it held.
    pub fn hold(&self, holder: &str, chain_ids: Vec<Digest>) {
        self.map().insert(holder.to_string(), chain_ids);
    }

    /// `holder` keeps `chain_ids` alive too, besides what it holds.
    pub fn hold_also(&self, holder: &str, chain_ids: Vec<Digest>) {
        self.map()
            .entry(holder.to_string())
            .or_default()
            .extend(chain_ids);
    }

    /// `holder` needs nothing any more; layers no image uses either are
    /// then collected (in the background).
    pub fn release(&self, holder: &str) {
        let released = self.map().remove(holder).is_some();
        if released {
            if let Some(on_release) = self.on_release.get() {
                on_release();
            }
        }
    }

    /// Sets what runs when a hold is released (once; later calls are ignored).
    pub(super) fn on_release(&self, f: OnRelease) {
        let _ = self.on_release.set(f);
    }

    /// Every chain id someone holds.
    pub fn held(&self) -> HashSet<Digest> {
        self.map().values().flatten().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_union_and_release() {
        let holds = LayerHolds::default();
        let (a, b) = (Digest::sha256_of(b"a"), Digest::sha256_of(b"b"));
        holds.hold("c1", vec![a.clone()]);
        holds.hold("c2", vec![a.clone(), b.clone()]);
        assert_eq!(holds.held().len(), 2);
        holds.release("c2");
        assert_eq!(holds.held(), HashSet::from([a]));
        holds.release("c1");
        holds.release("never");
        assert!(holds.held().is_empty());
    }
}
