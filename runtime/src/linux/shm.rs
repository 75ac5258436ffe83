//! A pod's `/dev/shm`: a tmpfs of its own, mounted on the host under the
//! pod's directory and bind-mounted into each container of the pod.

use std::path::Path;

use nix::mount::{mount, MsFlags};

use super::error::{Context, Result};
use super::pin::unmount_all;

/// The size of a pod's `/dev/shm` unless asked otherwise (Docker's and
/// containerd's default).
pub const DEFAULT_SHM_SIZE: u64 = 64 << 20;

/// Mounts a fresh tmpfs of `size` bytes at `dir` (created if missing),
/// mode 1777, nosuid, nodev, noexec.
pub fn mount_shm(dir: &Path, size: u64) -> Result<()> {
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(e).ctx(|| format!("create {}", dir.display()))?
        }
        _ => {}
    }
    let data = format!("mode=1777,size={size}");
    mount(
        Some("shm"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(data.as_str()),
    )
    .ctx(|| format!("mount a tmpfs on {}", dir.display()))
}

/// Detaches whatever is mounted at `dir` and removes the directory.
/// Idempotent.
pub fn unmount_shm(dir: &Path) -> Result<()> {
    unmount_all(dir)?;
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).ctx(|| format!("remove {}", dir.display()))
        }
        _ => Ok(()),
    }
}
