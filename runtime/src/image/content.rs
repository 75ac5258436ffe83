//! The content store: small blobs (manifests, indexes, image configs) by
//! digest, verified before they are stored. Layers are not kept here; they
//! live unpacked in the snapshot store.
//!
//! ```text
//! <root>/sha256/<hex>   a verified blob
//! <root>/ingest/        blobs being written (cleared by `open`)
//! ```

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::Digest as _;

use super::{Algorithm, Digest, Error};

const INGEST_DIR: &str = "ingest";
const ALGORITHMS: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

/// A directory of verified blobs by digest.
#[derive(Debug)]
pub struct ContentStore {
    root: PathBuf,
    ingest: PathBuf,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The digest of `bytes` with the algorithm of `like`.
fn digest_like(like: &Digest, bytes: &[u8]) -> String {
    match like.algorithm() {
        Algorithm::Sha256 => format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes))),
        Algorithm::Sha512 => format!("sha512:{}", hex::encode(sha2::Sha512::digest(bytes))),
    }
}

impl ContentStore {
    /// Opens the store at `root`, creating it if needed, and removes every
    /// partly written blob left in `ingest/`.
    pub fn open(root: &Path) -> Result<ContentStore, Error> {
        let ingest = root.join(INGEST_DIR);
        let blobs = root.join(Algorithm::Sha256.as_str());
        for dir in [&ingest, &blobs] {
            fs::create_dir_all(dir).map_err(io_err("create content directory", dir))?;
        }
        for entry in fs::read_dir(&ingest).map_err(io_err("list", &ingest))? {
            let path = entry.map_err(io_err("list", &ingest))?.path();
            let removed = match fs::remove_file(&path) {
                Err(e) if e.kind() == io::ErrorKind::IsADirectory => fs::remove_dir_all(&path),
                other => other,
            };
            match removed {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove leftover", &path)(e)),
            }
        }
        Ok(ContentStore {
            root: root.to_path_buf(),
            ingest,
        })
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// Stores `bytes` as the blob `digest` after checking that they hash to
    /// it; nothing is stored when they do not. Durable when it returns.
    pub fn put(&self, digest: &Digest, bytes: &[u8]) -> Result<(), Error> {
        let actual = digest_like(digest, bytes);
        if actual != digest.to_string() {
            return Err(Error::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        let path = self.blob_path(digest);
        if path.is_file() {
            return Ok(());
        }
        let dir = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(io_err("create content directory", dir))?;

        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp = self
            .ingest
            .join(format!("{}-{}-{n}", digest.hex(), std::process::id()));
        let written = (|| {
            let mut file = fs::File::create_new(&temp)?;
            file.write_all(bytes)?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(io_err("write blob", &temp)(e));
        }
        if let Err(e) = fs::rename(&temp, &path) {
            let _ = fs::remove_file(&temp);
            return Err(io_err("commit blob", &path)(e));
        }
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("sync", dir))
    }

    /// The blob `digest`; [`Error::BlobNotFound`] when it is absent.
    pub fn get(&self, digest: &Digest) -> Result<Vec<u8>, Error> {
        let path = self.blob_path(digest);
        fs::read(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::BlobNotFound {
                    digest: digest.clone(),
                }
            } else {
                io_err("read blob", &path)(e)
            }
        })
    }

    /// Whether the blob `digest` is stored.
    pub fn exists(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Removes the blob `digest`; an absent one is a success.
    pub fn remove(&self, digest: &Digest) -> Result<(), Error> {
        let path = self.blob_path(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove blob", &path)(e)),
        }
    }

    /// The digests of all stored blobs, sorted. Names that are not digests
    /// are ignored.
    pub fn list(&self) -> Result<Vec<Digest>, Error> {
        let mut out = Vec::new();
        for algorithm in ALGORITHMS {
            let dir = self.root.join(algorithm.as_str());
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("list", &dir)(e)),
            };
            for entry in entries {
                let entry = entry.map_err(io_err("list", &dir))?;
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if !entry.file_type().is_ok_and(|t| t.is_file()) {
                    continue;
                }
                if let Ok(digest) = Digest::parse(&format!("{algorithm}:{name}")) {
                    out.push(digest);
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, ContentStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ContentStore::open(&dir.path().join("content")).expect("open");
        (dir, store)
    }

    #[test]
    fn put_verifies_and_stores_nothing_on_mismatch() {
        let (_dir, store) = open();
        let claimed = Digest::sha256_of(b"manifest");
        let err = store.put(&claimed, b"tampered").expect_err("mismatch");
        let msg = err.to_string();
        assert!(msg.contains(&claimed.to_string()), "{msg}");
        assert!(
            msg.contains(&Digest::sha256_of(b"tampered").to_string()),
            "{msg}"
        );
        assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
        assert!(!store.exists(&claimed));
        assert!(store.list().expect("list").is_empty());
        assert_eq!(fs::read_dir(&store.ingest).expect("ingest").count(), 0);
    }

    #[test]
    fn put_get_exists_remove_list() {
        let (_dir, store) = open();
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        assert!(!store.exists(&a));
        let err = store.get(&a).expect_err("absent");
        assert_eq!(err.kind(), crate::ErrorKind::NotFound);
        assert!(err.to_string().contains(&a.to_string()), "{err}");

        store.put(&a, b"a").expect("put a");
        store.put(&a, b"a").expect("put a again");
        store.put(&b, b"b").expect("put b");
        assert!(store.exists(&a));
        assert_eq!(store.get(&a).expect("get"), b"a");
        let mut want = vec![a.clone(), b.clone()];
        want.sort();
        assert_eq!(store.list().expect("list"), want);

        let long = Digest::parse(&format!(
            "sha512:{}",
            hex::encode(sha2::Sha512::digest(b"long"))
        ))
        .expect("sha512");
        store.put(&long, b"long").expect("put sha512");
        assert_eq!(store.get(&long).expect("get"), b"long");

        // Junk in the blob directory is not listed.
        fs::write(store.root.join("sha256/not-a-digest"), b"x").expect("junk");
        store.remove(&a).expect("remove");
        store.remove(&a).expect("remove again");
        assert!(!store.exists(&a));
        let mut want = vec![b, long];
        want.sort();
        assert_eq!(store.list().expect("list"), want);
        assert_eq!(fs::read_dir(&store.ingest).expect("ingest").count(), 0);
    }

    #[test]
    fn open_clears_ingest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("content");
        let store = ContentStore::open(&root).expect("open");
        let a = Digest::sha256_of(b"a");
        store.put(&a, b"a").expect("put");
        fs::write(root.join("ingest/half-written"), b"ha").expect("write");
        fs::create_dir(root.join("ingest/odd-dir")).expect("mkdir");

        let store = ContentStore::open(&root).expect("reopen");
        assert_eq!(fs::read_dir(&store.ingest).expect("ingest").count(), 0);
        assert_eq!(store.get(&a).expect("kept"), b"a");
    }
}
