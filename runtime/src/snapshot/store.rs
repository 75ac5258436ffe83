//! The layer snapshot store: one directory per committed snapshot, named by
//! the layer's chain id, usable as an overlayfs lower directory as it is.
//!
//! ```text
//! <root>/<chain-id-hex>/   a committed snapshot (the layer's files)
//! <root>/usage/<hex>       its disk usage, measured once ("bytes inodes")
//! <root>/tmp/              work in progress and snapshots being removed
//! ```
//!
//! A snapshot becomes visible only by an atomic rename out of `tmp/`, and
//! disappears by an atomic rename back into it, so a crash never leaves a
//! half-made or half-deleted snapshot under its chain id. `open` clears
//! whatever a crash left in `tmp/`.
//!
//! A snapshot never changes once committed, so its disk usage is measured
//! once (right after its unpack, while its files are in the cache) and
//! kept beside it: `usage` (ImageFsInfo, which kubelet polls) costs one
//! directory listing, whatever the number of stored files. The usage
//! files are derived data: one that is missing (a crash, a snapshot
//! committed unmeasured) is measured again when first needed, one whose
//! snapshot is gone is removed by `open`.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
use sha2::Digest as _;

use super::Error;
use crate::image::Digest;

/// The name of the work directory under the root.
const TMP_DIR: &str = "tmp";
/// The name of the directory of measured usages under the root.
const USAGE_DIR: &str = "usage";

/// Disk usage of the committed snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes allocated (`st_blocks * 512`), each inode counted once.
    pub bytes: u64,
    /// Distinct inodes.
    pub inodes: u64,
}

impl std::ops::Add for Usage {
    type Output = Usage;
    fn add(self, other: Usage) -> Usage {
        Usage {
            bytes: self.bytes + other.bytes,
            inodes: self.inodes + other.inodes,
        }
    }
}

/// The snapshot store rooted at one directory.
#[derive(Debug)]
pub struct Snapshotter {
    root: PathBuf,
    tmp: PathBuf,
    usage_dir: PathBuf,
    /// Measured usages by chain id hex (what `usage/` holds, read once).
    usages: Mutex<HashMap<String, Usage>>,
    /// Whether `usages` holds every committed snapshot (after one full
    /// listing; until a snapshot is committed unmeasured): then
    /// [`Snapshotter::cached_usage`] answers without touching the disk.
    complete: std::sync::atomic::AtomicBool,
}

/// A snapshot taken out of sight by [`Snapshotter::discard`], not yet
/// deleted.
#[derive(Debug)]
#[must_use = "a discarded snapshot stays on disk until deleted (or the next start)"]
pub struct Discarded {
    path: PathBuf,
}

impl Discarded {
    /// Deletes its files (the slow part of a removal).
    pub fn delete(self) -> Result<(), Error> {
        fs::remove_dir_all(&self.path).map_err(io_err("remove snapshot", &self.path))
    }
}

/// A new, empty snapshot directory under `tmp/`, removed when dropped unless
/// it was committed with [`Snapshotter::commit`].
#[derive(Debug)]
pub struct TempSnapshot {
    path: PathBuf,
    committed: bool,
    /// Its disk usage, once [`TempSnapshot::measure`]d.
    usage: Option<Usage>,
}

impl TempSnapshot {
    /// The directory to unpack into.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Measures its disk usage, to be kept when it is committed: call it
    /// once its files are complete, on a thread that may block (it walks
    /// every file).
    pub fn measure(&mut self) -> Result<Usage, Error> {
        let usage = disk_usage(&self.path)?;
        self.usage = Some(usage);
        Ok(usage)
    }
}

impl Drop for TempSnapshot {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        match fs::remove_dir_all(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %self.path.display(), error = %e,
                "cannot remove temporary snapshot; the next start removes it"),
        }
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A name unique within this host for a directory under `tmp/`.
fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

/// What rename(2) reports when the target directory exists.
fn is_exists_error(e: &io::Error) -> bool {
    e.raw_os_error()
        .is_some_and(|c| c == Errno::EEXIST as i32 || c == Errno::ENOTEMPTY as i32)
}

/// Parses a directory name that is a digest's hex part.
fn chain_id_of(name: &str) -> Option<Digest> {
    let algorithm = match name.len() {
        64 => "sha256",
        128 => "sha512",
        _ => return None,
    };
    Digest::parse(&format!("{algorithm}:{name}")).ok()
}

impl Snapshotter {
    /// Opens the store at `root`, creating it if needed, and removes every
    /// leftover of interrupted work from `tmp/`.
    pub fn open(root: &Path) -> Result<Snapshotter, Error> {
        let tmp = root.join(TMP_DIR);
        fs::create_dir_all(&tmp).map_err(io_err("create snapshot directory", &tmp))?;
        for entry in fs::read_dir(&tmp).map_err(io_err("list", &tmp))? {
            let entry = entry.map_err(io_err("list", &tmp))?;
            let path = entry.path();
            let is_dir = entry.file_type().map_err(io_err("stat", &path))?.is_dir();
            let removed = if is_dir {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match removed {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove leftover", &path)(e)),
            }
        }
        let usage_dir = root.join(USAGE_DIR);
        fs::create_dir_all(&usage_dir).map_err(io_err("create snapshot directory", &usage_dir))?;
        // Usages whose snapshot is gone (a crash during its removal).
        for entry in fs::read_dir(&usage_dir).map_err(io_err("list", &usage_dir))? {
            let entry = entry.map_err(io_err("list", &usage_dir))?;
            let name = entry.file_name();
            if !root.join(&name).is_dir() {
                let path = entry.path();
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("remove leftover", &path)(e)),
                }
            }
        }
        Ok(Snapshotter {
            root: root.to_path_buf(),
            tmp,
            usage_dir,
            usages: Mutex::new(HashMap::new()),
            complete: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Whether the snapshot `chain_id` is committed.
    pub fn exists(&self, chain_id: &Digest) -> bool {
        self.path(chain_id).is_dir()
    }

    /// Where the snapshot `chain_id` is (or would be) committed.
    pub fn path(&self, chain_id: &Digest) -> PathBuf {
        self.root.join(chain_id.hex())
    }

    /// A new empty directory (mode 0755) to unpack a layer into.
    pub fn prepare(&self) -> Result<TempSnapshot, Error> {
        loop {
            let path = self.tmp.join(unique_name("new"));
            match fs::DirBuilder::new().mode(0o755).create(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("create temporary snapshot", &path)(e)),
            }
            let snapshot = TempSnapshot {
                path,
                committed: false,
                usage: None,
            };
            // The umask may have narrowed the mode; a lower dir must be 0755.
            fs::set_permissions(
                &snapshot.path,
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .map_err(io_err("chmod temporary snapshot", &snapshot.path))?;
            return Ok(snapshot);
        }
    }

    /// Makes `tmp` the snapshot `chain_id` by an atomic rename. If that
    /// snapshot exists already (a concurrent pull committed it first), `tmp`
    /// is discarded and this is still a success.
    pub fn commit(&self, mut tmp: TempSnapshot, chain_id: &Digest) -> Result<(), Error> {
        let target = self.path(chain_id);
        let renamed = match renameat2(
            AT_FDCWD,
            tmp.path.as_path(),
            AT_FDCWD,
            target.as_path(),
            RenameFlags::RENAME_NOREPLACE,
        ) {
            // File systems without RENAME_NOREPLACE: a plain rename still
            // refuses to replace a non-empty directory.
            Err(Errno::EINVAL) => fs::rename(&tmp.path, &target),
            other => other.map_err(io::Error::from),
        };
        match renamed {
            Ok(()) => {
                tmp.committed = true;
                match tmp.usage {
                    Some(usage) => self.keep_usage(chain_id, usage),
                    None => self.complete.store(false, Ordering::SeqCst),
                }
                Ok(())
            }
            // A racing pull committed the same layer first: use theirs.
            Err(e) if is_exists_error(&e) && target.is_dir() => Ok(()),
            Err(e) => Err(io_err("commit snapshot", &target)(e)),
        }
    }

    /// Removes the snapshot `chain_id`; an absent one is a success.
    pub fn remove(&self, chain_id: &Digest) -> Result<(), Error> {
        match self.discard(chain_id)? {
            Some(doomed) => doomed.delete(),
            None => Ok(()),
        }
    }

    /// Takes the snapshot `chain_id` out of sight (an atomic rename into
    /// `tmp/`, cheap whatever its size) and returns it for deleting later,
    /// outside any lock; `None` when there is no such snapshot. A crash in
    /// between leaves it in `tmp/`, which `open` clears.
    pub fn discard(&self, chain_id: &Digest) -> Result<Option<Discarded>, Error> {
        let path = self.path(chain_id);
        let doomed = self.tmp.join(unique_name("rm"));
        match fs::rename(&path, &doomed) {
            Ok(()) => {
                self.forget_usage(chain_id);
                Ok(Some(Discarded { path: doomed }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("move snapshot out of sight", &path)(e)),
        }
    }

    /// The chain ids of all committed snapshots, sorted.
    pub fn list(&self) -> Result<Vec<Digest>, Error> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(io_err("list", &self.root))? {
            let entry = entry.map_err(io_err("list", &self.root))?;
            let Some(chain_id) = entry.file_name().to_str().and_then(chain_id_of) else {
                continue;
            };
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                out.push(chain_id);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Disk usage of all committed snapshots, without following symlinks;
    /// hard-linked files are counted once (a hard link never crosses
    /// layers). Each snapshot's usage was measured once; this lists them.
    pub fn usage(&self) -> Result<Usage, Error> {
        let mut total = Usage::default();
        for chain_id in self.list()? {
            total = total + self.usage_of(&chain_id)?;
        }
        // Every snapshot is in memory now. (Pulls always measure; only a
        // commit left unmeasured, which tests make, clears this again.)
        self.complete.store(true, Ordering::SeqCst);
        Ok(total)
    }

    /// [`Snapshotter::usage`] from memory, once a full listing has
    /// measured every snapshot (`None` before): no disk access, so cheap
    /// enough for an async worker.
    pub fn cached_usage(&self) -> Option<Usage> {
        if !self.complete.load(Ordering::SeqCst) {
            return None;
        }
        Some(
            self.lock_usages()
                .values()
                .fold(Usage::default(), |total, u| total + *u),
        )
    }

    /// The usage of one committed snapshot: kept in memory, else in its
    /// usage file, else measured now (and kept).
    fn usage_of(&self, chain_id: &Digest) -> Result<Usage, Error> {
        let hex = chain_id.hex();
        if let Some(usage) = self.lock_usages().get(hex) {
            return Ok(*usage);
        }
        let file = self.usage_dir.join(hex);
        let kept = fs::read_to_string(&file).ok().and_then(|text| {
            let (bytes, inodes) = text.trim().split_once(' ')?;
            Some(Usage {
                bytes: bytes.parse().ok()?,
                inodes: inodes.parse().ok()?,
            })
        });
        let usage = match kept {
            Some(usage) => usage,
            None => {
                let path = self.path(chain_id);
                let usage = disk_usage(&path)?;
                if !path.is_dir() {
                    // Removed while it was measured.
                    return Ok(Usage::default());
                }
                self.write_usage(chain_id, usage);
                usage
            }
        };
        // Checked under the lock that a removal's forget takes after its
        // rename: a snapshot removed meanwhile leaves no entry behind.
        let mut usages = self.lock_usages();
        if self.path(chain_id).is_dir() {
            usages.insert(hex.to_string(), usage);
        }
        Ok(usage)
    }

    /// Keeps the usage of the snapshot `chain_id`, just committed.
    fn keep_usage(&self, chain_id: &Digest, usage: Usage) {
        self.write_usage(chain_id, usage);
        self.lock_usages().insert(chain_id.hex().to_string(), usage);
    }

    /// Writes the usage file of `chain_id` (by a rename, so it is never
    /// read half-written). Derived data: no fsync, and a failure only
    /// costs a measurement later.
    fn write_usage(&self, chain_id: &Digest, usage: Usage) {
        let tmp = self.tmp.join(unique_name("usage"));
        let file = self.usage_dir.join(chain_id.hex());
        let written = fs::write(&tmp, format!("{} {}\n", usage.bytes, usage.inodes))
            .and_then(|()| fs::rename(&tmp, &file));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            tracing::debug!(file = %file.display(), error = %e, "cannot keep a snapshot's usage");
        }
    }

    fn forget_usage(&self, chain_id: &Digest) {
        self.lock_usages().remove(chain_id.hex());
        let file = self.usage_dir.join(chain_id.hex());
        if let Err(e) = fs::remove_file(&file) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::debug!(file = %file.display(), error = %e,
                    "cannot remove a snapshot's usage; the next start does");
            }
        }
    }

    fn lock_usages(&self) -> std::sync::MutexGuard<'_, HashMap<String, Usage>> {
        // A panic while holding it cannot leave the map inconsistent.
        self.usages.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Disk usage of one directory tree (a container's writable layer), with
/// the same rules as [`Snapshotter::usage`].
pub fn disk_usage(path: &Path) -> Result<Usage, Error> {
    let mut walk = UsageWalk::default();
    walk.visit(path)?;
    Ok(walk.usage)
}

#[derive(Default)]
struct UsageWalk {
    usage: Usage,
    /// Inodes with more than one link seen so far.
    linked: HashSet<(u64, u64)>,
}

impl UsageWalk {
    /// Adds `path` and, if it is a directory, everything below it. Entries
    /// that vanish meanwhile (a concurrent remove) are skipped.
    fn visit(&mut self, path: &Path) -> Result<(), Error> {
        let mut stack = vec![path.to_path_buf()];
        while let Some(path) = stack.pop() {
            let meta = match fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("stat", &path)(e)),
            };
            let is_dir = meta.is_dir();
            if is_dir || meta.nlink() <= 1 || self.linked.insert((meta.dev(), meta.ino())) {
                self.usage.bytes += meta.blocks() * 512;
                self.usage.inodes += 1;
            }
            if !is_dir {
                continue;
            }
            let entries = match fs::read_dir(&path) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("list", &path)(e)),
            };
            for entry in entries {
                stack.push(entry.map_err(io_err("list", &path))?.path());
            }
        }
        Ok(())
    }
}

/// The chain ids of a stack of layers, bottom first (OCI image spec):
/// `chain(0) = diff(0)`, `chain(n) = sha256(chain(n-1) + " " + diff(n))`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match out.last() {
            None => diff_id.clone(),
            Some(parent) => {
                let mut hasher = sha2::Sha256::new();
                hasher.update(parent.to_string().as_bytes());
                hasher.update(b" ");
                hasher.update(diff_id.to_string().as_bytes());
                Digest::from_sha256(hasher.finalize().into())
            }
        };
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests;
