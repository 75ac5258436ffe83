//! Garbage collection of snapshots and content blobs no image refers to.

use std::collections::HashSet;
use std::sync::Arc;

use super::index::{ImageIndex, Inner};
use super::{Digest, Error};
use crate::snapshot::Discarded;

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
    /// keeps new ones (and new holds) waiting while it decides and takes
    /// what it removes out of sight: renames and unlinks only. The snapshot
    /// trees are deleted after that, with the lock released, so a
    /// CreateContainer or pull never waits for a big image's files to go.
    /// The file system work runs on the blocking thread pool.
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
        let no_pulls = guard;
        let (stats, discarded) = collect_blocking(&inner)?;
        drop(no_pulls);
        if !discarded.is_empty() {
            crate::crash::point("image.remove.gc_before_delete");
        }
        for doomed in discarded {
            // Out of sight already; what a failure leaves, the next start
            // clears from `tmp/`.
            if let Err(e) = doomed.delete() {
                tracing::warn!(error = %e, "cannot delete a collected snapshot");
            }
        }
        Ok(stats)
    })
    .await
    .map_err(|source| Error::Background {
        task: "garbage collection",
        source,
    })?
}

/// Under the lock: what no image and no holder uses, blobs unlinked and
/// snapshots taken out of sight (returned, for deleting without it).
fn collect_blocking(inner: &Inner) -> Result<(GcStats, Vec<Discarded>), crate::Error> {
    let (mut chain_ids, blobs) = inner.records.with(|v| {
        let chain_ids: HashSet<Digest> = v.values().flat_map(|r| r.chain_ids().cloned()).collect();
        let blobs: HashSet<Digest> = v.values().flat_map(|r| r.blobs()).collect();
        (chain_ids, blobs)
    });
    chain_ids.extend(inner.holds.held());
    let mut stats = GcStats::default();
    let mut discarded = Vec::new();
    for chain_id in inner.snapshots.list()? {
        if !chain_ids.contains(&chain_id) {
            if let Some(doomed) = inner.snapshots.discard(&chain_id)? {
                discarded.push(doomed);
            }
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
    Ok((stats, discarded))
}

#[cfg(test)]
mod tests;
