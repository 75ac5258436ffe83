//! Garbage collection of snapshots and content blobs no image refers to.

use std::collections::HashSet;
use std::sync::Arc;

use super::index::{ImageIndex, Inner};
use super::{Digest, Error};

/// What a garbage collection removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Layer snapshots removed.
    pub snapshots: usize,
    /// Content blobs removed.
    pub blobs: usize,
}

impl ImageIndex {
    /// Deletes the snapshots and content blobs that no image record refers
    /// to and no container holds. An image refers to its layers' chain ids, its config and manifest
    /// digests, and the digests its digest references name.
    ///
    /// Waits for pulls in flight (see [`pull_guard`](Self::pull_guard)) and
    /// keeps new ones waiting until it is done. The file system work runs
    /// on the blocking thread pool.
    pub async fn gc(&self) -> Result<GcStats, crate::Error> {
        collect(self.inner.clone()).await
    }

    /// Starts a collection as a background task, if there is a runtime to
    /// run it; otherwise the next collection does the work.
    pub(super) fn gc_in_background(&self) {
        collect_in_background(self.inner.clone());
    }
}

/// Starts a collection as a background task, if there is a runtime to run
/// it; otherwise the next collection does the work.
pub(super) fn collect_in_background(inner: Arc<Inner>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::debug!("no async runtime; garbage left for the next collection");
        return;
    };
    runtime.spawn(async move {
        if let Err(e) = collect(inner).await {
            tracing::warn!(error = %e, "background garbage collection failed");
        }
    });
}

async fn collect(inner: Arc<Inner>) -> Result<GcStats, crate::Error> {
    let guard = inner.gc_lock.clone().write_owned().await;
    tokio::task::spawn_blocking(move || {
        let _no_pulls = guard;
        collect_blocking(&inner)
    })
    .await
    .map_err(|source| Error::Background {
        task: "garbage collection",
        source,
    })?
}

fn collect_blocking(inner: &Inner) -> Result<GcStats, crate::Error> {
    let (mut chain_ids, blobs) = inner.records.with(|v| {
        let chain_ids: HashSet<Digest> = v.values().flat_map(|r| r.chain_ids().cloned()).collect();
        let blobs: HashSet<Digest> = v.values().flat_map(|r| r.blobs()).collect();
        (chain_ids, blobs)
    });
    chain_ids.extend(inner.holds.held());
    let mut stats = GcStats::default();
    for chain_id in inner.snapshots.list()? {
        if !chain_ids.contains(&chain_id) {
            inner.snapshots.remove(&chain_id)?;
            tracing::debug!(%chain_id, "snapshot removed");
            stats.snapshots += 1;
        }
    }
    for digest in inner.content.list()? {
        if !blobs.contains(&digest) {
            inner.content.remove(&digest)?;
            tracing::debug!(%digest, "blob removed");
            stats.blobs += 1;
        }
    }
    if stats != GcStats::default() {
        tracing::info!(
            snapshots = stats.snapshots,
            blobs = stats.blobs,
            "garbage collected"
        );
    }
    Ok(stats)
}

#[cfg(test)]
mod tests;
