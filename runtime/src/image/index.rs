//! The image index: every pulled image by id, kept in memory and written
//! through to the metadata store, one transaction per change.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{OwnedRwLockReadGuard, RwLock};

use super::{ContentStore, Digest, Error, ImageRecord, LayerHolds, Reference};
use crate::snapshot::{self, Snapshotter};
use crate::store::{Change, MetaStore, Table};

/// Shortest image id prefix accepted by [`ImageIndex::resolve`].
const MIN_ID_PREFIX: usize = 3;

/// The images the runtime has, with their content and snapshots.
#[derive(Debug)]
pub struct ImageIndex {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) store: Arc<MetaStore>,
    pub(super) content: ContentStore,
    pub(super) snapshots: Arc<Snapshotter>,
    pub(super) images: Mutex<BTreeMap<Digest, ImageRecord>>,
    /// Pulls in flight hold the read side, garbage collection the write side.
    pub(super) gc_lock: Arc<RwLock<()>>,
    /// Snapshots containers still run on, kept by garbage collection.
    pub(super) holds: Arc<LayerHolds>,
}

impl Inner {
    pub(super) fn images(&self) -> MutexGuard<'_, BTreeMap<Digest, ImageRecord>> {
        // Records change only after their transaction commits, with nothing
        // that can panic in between: a poisoned map is still consistent.
        self.images.lock().unwrap_or_else(PoisonError::into_inner)
    }
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

impl ImageIndex {
    /// Opens the index over the image records in `store`.
    pub fn open(
        store: Arc<MetaStore>,
        content: ContentStore,
        snapshots: Arc<Snapshotter>,
    ) -> Result<ImageIndex, crate::Error> {
        let images = store
            .load_all::<ImageRecord>(Table::Images)?
            .into_iter()
            .map(|(_, record)| (record.id.clone(), record))
            .collect();
        let inner = Arc::new(Inner {
            store,
            content,
            snapshots,
            images: Mutex::new(images),
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
        let mut images = self.inner.images();
        let mut merged = record.clone();
        if let Some(old) = images.get(&record.id) {
            merged.repo_tags = old.repo_tags.clone();
            merged.repo_digests = old.repo_digests.clone();
            merged.merge_names(&record);
        }

        let mut changes = vec![self.encode(&merged)?];
        let mut untagged = Vec::new();
        for other in images.values() {
            if other.id == merged.id
                || !other.repo_tags.iter().any(|t| record.repo_tags.contains(t))
            {
                continue;
            }
            let mut other = other.clone();
            other.repo_tags.retain(|t| !record.repo_tags.contains(t));
            changes.push(if other.is_named() {
                self.encode(&other)?
            } else {
                Change::Delete(other.id.to_string())
            });
            untagged.push(other);
        }
        self.inner.store.apply(Table::Images, changes)?;

        let mut dropped = false;
        for other in untagged {
            if other.is_named() {
                images.insert(other.id.clone(), other);
            } else {
                tracing::info!(image = %other.id, "image lost its last name to a newer pull; removed");
                images.remove(&other.id);
                dropped = true;
            }
        }
        images.insert(merged.id.clone(), merged.clone());
        drop(images);
        if dropped {
            self.gc_in_background();
        }
        Ok(merged)
    }

    fn encode(&self, record: &ImageRecord) -> Result<Change, crate::Error> {
        Ok(self.inner.store.encode(&record.id.to_string(), record)?)
    }

    /// Finds an image by full id (`sha256:<hex>`), bare 64-hex id, unique id
    /// prefix (at least 3 hex characters, optionally after `sha256:`), or
    /// any reference form (`busybox`, `busybox:1`, `x@sha256:…`), normalised.
    ///
    /// A hex string that prefixes no id is tried as a repository name. Ok(None)
    /// when nothing matches; a string that is neither an id form nor a valid
    /// reference is an `InvalidArgument` error, and so is an ambiguous prefix.
    pub fn resolve(&self, name_or_id: &str) -> Result<Option<ImageRecord>, crate::Error> {
        let images = self.inner.images();
        Ok(find(&images, name_or_id)?.and_then(|(id, _)| images.get(&id).cloned()))
    }

    /// Every image, by pull time then id.
    pub fn list(&self) -> Vec<ImageRecord> {
        let mut out: Vec<ImageRecord> = self.inner.images().values().cloned().collect();
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
        {
            let mut images = self.inner.images();
            let Some((id, matched)) = find(&images, name_or_id)? else {
                return Ok(false);
            };
            let Some(record) = images.get(&id) else {
                return Ok(false);
            };
            match matched {
                Matched::Tag(tag) if record.repo_tags.len() > 1 => {
                    let mut record = record.clone();
                    record.repo_tags.retain(|t| *t != tag);
                    self.inner
                        .store
                        .apply(Table::Images, vec![self.encode(&record)?])?;
                    tracing::info!(image = %id, %tag, "image tag removed");
                    images.insert(id, record);
                    return Ok(true);
                }
                _ => {
                    self.inner
                        .store
                        .apply(Table::Images, vec![Change::Delete(id.to_string())])?;
                    tracing::info!(image = %id, "image removed");
                    images.remove(&id);
                }
            }
        }
        // The record is gone: the caller need not wait for the layers'
        // files. Pulls wait for the collection (the GC lock), and whatever
        // an interrupted one leaves is collected at the next start.
        self.gc_in_background();
        Ok(true)
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
        let _no_gc = self.pull_guard().await;
        let Some(record) = self.inner.images().get(id).cloned() else {
            return Ok(None);
        };
        self.inner
            .holds
            .hold(holder, record.chain_ids().cloned().collect());
        Ok(Some(record))
    }

    /// Disk usage of the layer snapshots.
    pub fn usage(&self) -> Result<snapshot::Usage, crate::Error> {
        Ok(self.inner.snapshots.usage()?)
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The image `name` names, and how.
fn find(
    images: &BTreeMap<Digest, ImageRecord>,
    name: &str,
) -> Result<Option<(Digest, Matched)>, Error> {
    if let Ok(id) = Digest::parse(name) {
        return Ok(images.contains_key(&id).then_some((id, Matched::Id)));
    }
    let (hex, explicit) = match name.strip_prefix("sha256:") {
        Some(hex) => (hex, true),
        None => (name, false),
    };
    if hex.len() >= MIN_ID_PREFIX && hex.len() <= 64 && is_lower_hex(hex) {
        let mut matches = images.keys().filter(|id| id.hex().starts_with(hex));
        match (matches.next(), matches.next()) {
            (Some(id), None) => return Ok(Some((id.clone(), Matched::Id))),
            (Some(_), Some(_)) => {
                return Err(Error::AmbiguousId {
                    prefix: name.to_string(),
                })
            }
            // A full id or an explicit sha256: prefix is never a name.
            (None, _) if explicit || hex.len() == 64 => return Ok(None),
            (None, _) => {}
        }
    }

    let reference = Reference::parse(name)?;
    if let Some(digest) = reference.digest() {
        let repo = reference.name();
        let wanted = format!("{repo}@{digest}");
        let by_name = images.values().find(|r| r.repo_digests.contains(&wanted));
        // Pulled by tag, then asked for by the digest of the manifest used.
        let by_manifest = || {
            images.values().find(|r| {
                r.manifest_digest == *digest
                    && r.repo_tags
                        .iter()
                        .chain(&r.repo_digests)
                        .any(|n| repo_of(n) == repo)
            })
        };
        return Ok(by_name
            .or_else(by_manifest)
            .map(|r| (r.id.clone(), Matched::Digest)));
    }
    let tag = reference.to_string();
    Ok(images
        .values()
        .find(|r| r.repo_tags.contains(&tag))
        .map(|r| (r.id.clone(), Matched::Tag(tag))))
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
