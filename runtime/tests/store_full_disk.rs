//! The metadata store on a full disk (as root: a small tmpfs of its own).
//! A commit that finds no room fails as ResourceExhausted naming the file
//! and the cause; once there is room again the next commit succeeds, with
//! no restart (redb alone refuses every later transaction with "Previous
//! I/O error" until the database is reopened).

mod common;

use std::path::{Path, PathBuf};

use corten_runtime::store::{Change, MetaStore, Table};
use corten_runtime::ErrorKind;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// A tmpfs of `size` mounted on a fresh directory; unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn new(size: &str) -> SmallDisk {
        common::require_root("mounts a tmpfs");
        let dir = tempfile::Builder::new()
            .prefix("corten-full-")
            .tempdir()
            .expect("tempdir");
        mount(
            Some("tmpfs"),
            dir.path(),
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(format!("size={size}").as_str()),
        )
        .expect("mount tmpfs");
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk with one file; returns its path.
    fn fill(&self) -> PathBuf {
        use std::io::Write as _;
        let filler = self.path().join("filler");
        let mut f = std::fs::File::create(&filler).expect("filler");
        let block = vec![0u8; 64 << 10];
        loop {
            match f.write_all(&block) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        // What a partial write left in the last block.
        while f.write(&block[..512]).is_ok_and(|n| n > 0) {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = umount2(self.dir.path(), MntFlags::MNT_DETACH);
    }
}

fn put(store: &MetaStore, key: &str, size: usize) -> Result<(), corten_runtime::Error> {
    let change = store.encode(key, &"x".repeat(size))?;
    store.apply(Table::Pods, vec![change])?;
    Ok(())
}

#[test]
fn a_full_disk_fails_a_commit_precisely_and_the_next_one_succeeds_once_there_is_room() {
    let disk = SmallDisk::new("4m");
    let db = disk.path().join("meta.redb");
    let store = MetaStore::open(&db).expect("open");
    put(&store, "before", 100).expect("a commit with room");
    let filler = disk.fill();

    // Commits until one finds no room (redb may have some room of its own).
    let mut failed = None;
    for i in 0..64 {
        if let Err(e) = put(&store, &format!("k{i}"), 256 << 10) {
            failed = Some(e);
            break;
        }
    }
    let err = failed.expect("some commit found the disk full");
    assert_eq!(err.kind(), ErrorKind::ResourceExhausted, "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&db.display().to_string())
            && message.to_lowercase().contains("no space left on device"),
        "{message}"
    );
    // Still full: still refused, with the same precision.
    let again = put(&store, "still-full", 256 << 10).expect_err("no room yet");
    assert_eq!(again.kind(), ErrorKind::ResourceExhausted, "{again}");

    std::fs::remove_file(&filler).expect("make room");
    put(&store, "after", 100).expect("the next commit once there is room");
    let all: Vec<(String, String)> = store.load_all(Table::Pods).expect("load");
    let keys: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        keys.contains(&"before") && keys.contains(&"after"),
        "{keys:?}"
    );
    store
        .apply(Table::Pods, vec![Change::Delete("after".into())])
        .expect("delete");
}
