//! A small disk of the test's own: a tmpfs mounted on a directory (a
//! daemon's root or state dir) that a test can fill and free again.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// A tmpfs on `dir`; unmounted (and the directory removed) on drop, so
/// declare it before the daemon that uses it.
pub struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (e.g. `"16m"`) on `dir`, made if missing.
    /// Panics without root.
    pub fn mount(dir: &Path, size: &str) -> SmallDisk {
        crate::tools::require_root("mounts a tmpfs");
        std::fs::create_dir_all(dir).expect("mount point");
        mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(format!("size={size}").as_str()),
        )
        .expect("mount tmpfs");
        SmallDisk {
            dir: dir.to_path_buf(),
        }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Fills the disk with one file, to the last byte; returns its path.
    pub fn fill(&self) -> PathBuf {
        let filler = self.dir.join("filler");
        let mut f = std::fs::File::create(&filler).expect("filler");
        let block = vec![0u8; 64 << 10];
        loop {
            match f.write(&block) {
                Ok(n) if n > 0 => {}
                Ok(_) => break,
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", self.dir.display()),
            }
        }
        while f.write(&block[..1]).is_ok_and(|n| n > 0) {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = umount2(&self.dir, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
