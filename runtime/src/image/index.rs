//! The image index: every pulled image by id, in [`Records`] (kept in
//! memory, written through to the metadata store, one transaction per
//! change), found by id, id prefix, tag or digest reference.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{OwnedRwLockReadGuard, RwLock};

use super::{Algorithm, ContentStore, Digest, Error, ImageRecord, LayerHolds, Reference};
use crate::ids::ImageId;
use crate::snapshot::{self, Snapshotter};
use crate::store::{Edit, Lookup, MetaStore, Record, Records, Table, View};

/// Shortest image id prefix accepted by [`ImageIndex::resolve`].
const MIN_ID_PREFIX: usize = 3;

impl Record for ImageRecord {
    const TABLE: Table = Table::Images;
    fn id(&self) -> &str {
        self.id.as_str()
    }
    /// Its tags and digest references: the names it is found by.
    fn aliases(&self) -> Vec<&str> {
        self.repo_tags
            .iter()
            .chain(&self.repo_digests)
            .map(String::as_str)
            .collect()
    }
}

/// The images the runtime has, with their content and snapshots.
#[derive(Debug)]
pub struct ImageIndex {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) content: ContentStore,
    pub(super) snapshots: Arc<Snapshotter>,
    pub(super) records: Records<ImageRecord>,
    /// Pulls in flight hold the read side, garbage collection the write side.
    pub(super) gc_lock: Arc<RwLock<()>>,
    /// Snapshots containers still run on, kept by garbage collection.
    pub(super) holds: Arc<LayerHolds>,
}

/// How a name matched an image.
#[derive(Debug, PartialEq)]
enum Matched {
    /// By id, full or prefix.
    Id,
    /// By this full tag reference.
    Tag(String),
    /// By a digest reference.
    Digest,
}

/// What [`ImageIndex::remove`] took away.
enum Removed {
    /// One tag of an image that keeps others.
    Tag(ImageId, String),
    /// The whole image.
    Image(ImageId),
}

impl ImageIndex {
    /// Opens the index over the image records in `store`.
    pub fn open(
        store: Arc<MetaStore>,
        content: ContentStore,
        snapshots: Arc<Snapshotter>,
    ) -> Result<ImageIndex, crate::Error> {
        let inner = Arc::new(Inner {
            content,
            snapshots,
            records: Records::load(store)?,
            gc_lock: Arc::new(RwLock::new(())),
            holds: Arc::new(LayerHolds::default()),
        });
        let weak = Arc::downgrade(&inner);
        inner.holds.on_release(Box::new(move || {
            if let Some(inner) = weak.upgrade() {
                super::gc::collect_in_background(inner);
            }
        }));
        Ok(ImageIndex { inner })
    }

    /// The content store of image manifests and configs.
    pub fn content(&self) -> &ContentStore {
        &self.inner.content
    }

    /// The layer snapshot store.
    pub fn snapshots(&self) -> &Arc<Snapshotter> {
        &self.inner.snapshots
    }

    /// Records a pulled image and returns the record as stored.
    ///
    /// Names are merged into an existing record with the same id (its other
    /// fields are replaced by the new pull's). A tag that pointed to another
    /// image moves here; an image left without tags and digest references is
    /// removed, and a garbage collection is started in the background for
    /// it (it waits for pulls in flight, including the caller's). All
    /// affected records change in one metadata transaction.
    pub fn add(&self, record: ImageRecord) -> Result<ImageRecord, crate::Error> {
        let (merged, dropped) = self.inner.records.transact(|v| {
            let mut merged = record.clone();
            if let Some(old) = v.get(record.id.as_str()) {
                merged.repo_tags = old.repo_tags.clone();
                merged.repo_digests = old.repo_digests.clone();
                merged.merge_names(&record);
            }
            // The other images holding one of the new tags, by id.
            let mut others = BTreeMap::new();
            for tag in &record.repo_tags {
                for other in v.by_alias(tag) {
                    if other.id != merged.id && other.repo_tags.contains(tag) {
                        others.insert(other.id.clone(), other.clone());
                    }
                }
            }
            // A pull of an image already recorded as it is (kubelet's
            // `Always` policy, a cached pull) commits nothing.
            if let Some(old) = v.get(merged.id.as_str()).filter(|_| others.is_empty()) {
                let unchanged = ImageRecord {
                    pulled_at_ns: old.pulled_at_ns,
                    ..merged.clone()
                };
                if unchanged == *old {
                    return Ok((Vec::new(), (old.clone(), Vec::new())));
                }
            }
            let mut edits = vec![Edit::Put(merged.clone())];
            let mut dropped = Vec::new();
            for (id, mut other) in others {
                other.repo_tags.retain(|t| !record.repo_tags.contains(t));
                if other.is_named() {
                    edits.push(Edit::Put(other));
                } else {
                    edits.push(Edit::Delete(id.to_string()));
                    dropped.push(id);
                }
            }
            Ok::<_, crate::Error>((edits, (merged, dropped)))
        })?;
        for id in &dropped {
            tracing::info!(image = %id, "image lost its last name to a newer pull; removed");
        }
        if !dropped.is_empty() {
            self.gc_in_background();
        }
        Ok(merged)
    }

    /// Finds an image by full id (`sha256:<hex>`), bare 64-hex id, unique id
    /// prefix (at least 3 hex characters, optionally after `sha256:`), or
    /// any reference form (`busybox`, `busybox:1`, `x@sha256:…`), normalised.
    ///
    /// A hex string that prefixes no id is tried as a repository name. Ok(None)
    /// when nothing matches; a string that is neither an id form nor a valid
    /// reference is an `InvalidArgument` error, and so is an ambiguous prefix.
    pub fn resolve(&self, name_or_id: &str) -> Result<Option<ImageRecord>, crate::Error> {
        let found = self
            .inner
            .records
            .with(|v| find(v, name_or_id).map(|m| m.map(|(r, _)| r.clone())))?;
        Ok(found)
    }

    /// Every image, by pull time then id.
    pub fn list(&self) -> Vec<ImageRecord> {
        let mut out = self.inner.records.filtered(|_| true);
        out.sort_by(|a, b| (a.pulled_at_ns, &a.id).cmp(&(b.pulled_at_ns, &b.id)));
        out
    }

    /// Removes an image or one of its names, with CRI-O's semantics: a tag
    /// reference to an image that has other tags removes only that tag; its
    /// last tag, its id or a digest reference removes the image. Unused
    /// snapshots and blobs are then garbage-collected (a failure of that is
    /// logged, and the next collection retries).
    ///
    /// Returns whether anything was removed: CRI's RemoveImage must succeed
    /// for an image that does not exist, so an unknown name is `Ok(false)`.
    pub async fn remove(&self, name_or_id: &str) -> Result<bool, crate::Error> {
        let removed = self.inner.records.transact(|v| {
            let Some((record, matched)) = find(v, name_or_id)? else {
                return Ok::<_, crate::Error>((Vec::new(), None));
            };
            Ok(match matched {
                Matched::Tag(tag) if record.repo_tags.len() > 1 => {
                    let mut record = record.clone();
                    record.repo_tags.retain(|t| *t != tag);
                    let id = record.id.clone();
                    (vec![Edit::Put(record)], Some(Removed::Tag(id, tag)))
                }
                _ => (
                    vec![Edit::Delete(record.id.to_string())],
                    Some(Removed::Image(record.id.clone())),
                ),
            })
        })?;
        match removed {
            None => Ok(false),
            Some(Removed::Tag(id, tag)) => {
                tracing::info!(image = %id, %tag, "image tag removed");
                Ok(true)
            }
            Some(Removed::Image(id)) => {
                tracing::info!(image = %id, "image removed");
                // The record is gone: the caller need not wait for the
                // layers' files. Pulls wait for the collection (the GC
                // lock), and whatever an interrupted one leaves is
                // collected at the next start.
                self.gc_in_background();
                Ok(true)
            }
        }
    }

    /// Held (read side) by a pull from before its first blob or snapshot is
    /// stored until its [`add`](Self::add): garbage collection waits for it.
    pub async fn pull_guard(&self) -> OwnedRwLockReadGuard<()> {
        self.inner.gc_lock.clone().read_owned().await
    }

    /// The holds garbage collection honours besides the image records.
    pub fn holds(&self) -> &Arc<LayerHolds> {
        &self.inner.holds
    }

    /// Makes `holder` keep the layers of image `id` (it must exist), with
    /// garbage collection kept out meanwhile so none is deleted between
    /// the lookup and the hold. Returns the record.
    pub async fn hold_image(
        &self,
        holder: &str,
        id: &Digest,
    ) -> Result<Option<ImageRecord>, crate::Error> {
        self.hold_image_as(holder, id, false).await
    }

    /// [`Self::hold_image`], keeping what `holder` holds already too (the
    /// images of a container's image volumes, besides its own).
    pub async fn hold_image_also(
        &self,
        holder: &str,
        id: &Digest,
    ) -> Result<Option<ImageRecord>, crate::Error> {
        self.hold_image_as(holder, id, true).await
    }

    async fn hold_image_as(
        &self,
        holder: &str,
        id: &Digest,
        also: bool,
    ) -> Result<Option<ImageRecord>, crate::Error> {
        let _no_gc = self.pull_guard().await;
        let Some(record) = self.inner.records.get(id.as_str()) else {
            return Ok(None);
        };
        let chain_ids = record.chain_ids().cloned().collect();
        if also {
            self.inner.holds.hold_also(holder, chain_ids);
        } else {
            self.inner.holds.hold(holder, chain_ids);
        }
        Ok(Some(record))
    }

    /// Disk usage of the layer snapshots.
    pub fn usage(&self) -> Result<snapshot::Usage, crate::Error> {
        Ok(self.inner.snapshots.usage()?)
    }

    /// [`ImageIndex::usage`] from memory, when it is known there.
    pub fn cached_usage(&self) -> Option<snapshot::Usage> {
        self.inner.snapshots.cached_usage()
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The image `name` names, and how.
fn find<'a>(
    v: &View<'a, ImageRecord>,
    name: &str,
) -> Result<Option<(&'a ImageRecord, Matched)>, Error> {
    if let Ok(id) = Digest::parse(name) {
        return Ok(v.get(id.as_str()).map(|r| (r, Matched::Id)));
    }
    let (hex, algorithms) = match name.strip_prefix("sha256:") {
        Some(hex) => (hex, &[Algorithm::Sha256][..]),
        None => (name, &[Algorithm::Sha256, Algorithm::Sha512][..]),
    };
    let explicit = algorithms.len() == 1;
    if hex.len() >= MIN_ID_PREFIX && hex.len() <= 64 && is_lower_hex(hex) {
        let ambiguous = || Error::AmbiguousId {
            prefix: name.to_string(),
        };
        let mut found = None;
        for algorithm in algorithms {
            match v.resolve(&format!("{algorithm}:{hex}")) {
                Lookup::Found(id) if found.is_none() => found = v.get(&id),
                Lookup::Found(_) | Lookup::Ambiguous => return Err(ambiguous()),
                Lookup::NotFound | Lookup::Empty => {}
            }
        }
        match found {
            Some(r) => return Ok(Some((r, Matched::Id))),
            // A full id or an explicit sha256: prefix is never a name.
            None if explicit || hex.len() == 64 => return Ok(None),
            None => {}
        }
    }

    let reference = Reference::parse(name)?;
    if let Some(digest) = reference.digest() {
        let repo = reference.name();
        let wanted = format!("{repo}@{digest}");
        let by_name = v
            .by_alias(&wanted)
            .find(|r| r.repo_digests.contains(&wanted));
        // Pulled by tag, then asked for by the digest of the manifest used.
        let by_manifest = || {
            v.values().find(|r| {
                r.manifest_digest == *digest
                    && r.repo_tags
                        .iter()
                        .chain(&r.repo_digests)
                        .any(|n| repo_of(n) == repo)
            })
        };
        return Ok(by_name.or_else(by_manifest).map(|r| (r, Matched::Digest)));
    }
    let tag = reference.to_string();
    let found = v.by_alias(&tag).find(|r| r.repo_tags.contains(&tag));
    Ok(found.map(|r| (r, Matched::Tag(tag))))
}

/// `registry/repository` of a stored full name (`…:tag` or `…@digest`).
fn repo_of(name: &str) -> &str {
    if let Some((repo, _)) = name.split_once('@') {
        return repo;
    }
    match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => &name[..i],
        _ => name,
    }
}

#[cfg(test)]
pub(super) mod tests;
