//! The container's mount namespace: propagation, spec mounts, `/dev`,
//! `pivot_root`, read-only rootfs, masked and read-only paths, sysctls.

use std::path::Path;

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::stat;
use nix::sys::statvfs::{statvfs, FsFlags};
use nix::unistd::{chdir, pivot_root};
use oci_spec::runtime::Spec;

use super::confined::{Kind, Root};
use super::error::{Context, Error, Result};
use super::mounts;
use super::targets::Targets;

/// Parses `linux.rootfsPropagation` (default `rprivate`).
pub(super) fn propagation(spec: &Spec) -> Result<MsFlags> {
    let word = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
        .unwrap_or("rprivate");
    let rec = MsFlags::MS_REC;
    Ok(match word {
        "" | "rprivate" => MsFlags::MS_PRIVATE | rec,
        "private" => MsFlags::MS_PRIVATE,
        "rslave" => MsFlags::MS_SLAVE | rec,
        "slave" => MsFlags::MS_SLAVE,
        "rshared" => MsFlags::MS_SHARED | rec,
        "shared" => MsFlags::MS_SHARED,
        "runbindable" => MsFlags::MS_UNBINDABLE | rec,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        other => {
            return Err(Error::InvalidSpec(format!(
                "unknown rootfsPropagation {other:?}"
            )))
        }
    })
}

/// Builds the container's filesystem view and pivots into `rootfs`.
/// `cwd` is created (confined) before a read-only rootfs is sealed.
///
/// `mapped` holds, by the index of the spec's mount, the id-mapped copies
/// of bind sources made before a user namespace was joined (see
/// [`mounts::idmapped_binds`]); each is attached instead of a plain copy.
pub(super) fn enter_rootfs(
    spec: &Spec,
    rootfs: &Path,
    cwd: &Path,
    terminal: bool,
    mapped: &mut [Option<std::os::fd::OwnedFd>],
) -> Result<()> {
    let prop = propagation(spec)?;
    if prop.contains(MsFlags::MS_SHARED) {
        // Keep the copies of the host's mounts peers of theirs (host-path
        // mounts asked to be bidirectional), but the namespace's root must
        // not be shared for pivot_root.
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_SLAVE,
            None::<&str>,
        )
        .ctx(|| "make / a slave in the container's mount namespace")?;
    } else {
        // Never propagating back to the host: slave if asked (the host's
        // mounts still arrive), private otherwise.
        let first = if prop.contains(MsFlags::MS_SLAVE) {
            MsFlags::MS_SLAVE
        } else {
            MsFlags::MS_PRIVATE
        };
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            first | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| "set propagation of / in the container's mount namespace")?;
    }
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("bind {} on itself", rootfs.display()))?;

    let root = Root::open(rootfs)?;
    let mut dev_mounted = false;
    let mut targets = Targets::new(&root);
    for (i, m) in spec
        .mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let tree = mapped.get_mut(i).and_then(Option::take);
        mounts::mount_one(&mut targets, m, tree)?;
        dev_mounted |= m.destination() == Path::new("/dev");
    }
    drop(targets);
    if dev_mounted {
        super::dev::populate(&root, spec, terminal)?;
    }
    root.ensure(cwd, Kind::Dir)?;
    drop(root);

    chdir(rootfs).ctx(|| format!("chdir {}", rootfs.display()))?;
    pivot_root(".", ".").ctx(|| format!("pivot_root into {}", rootfs.display()))?;
    umount2(".", MntFlags::MNT_DETACH).ctx(|| "detach the old root")?;
    chdir("/").ctx(|| "chdir / after pivot_root")?;

    if prop.contains(MsFlags::MS_SHARED) || prop.contains(MsFlags::MS_UNBINDABLE) {
        mount(None::<&str>, "/", None::<&str>, prop, None::<&str>)
            .ctx(|| "set rootfsPropagation on /")?;
    }
    Ok(())
}

/// After `pivot_root`: sysctls, read-only root, masked and read-only paths.
pub(super) fn finish(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    if let Some(sysctl) = linux.and_then(|l| l.sysctl().as_ref()) {
        for (key, value) in sysctl {
            if key.contains("..") || key.contains('/') {
                return Err(Error::InvalidSpec(format!("sysctl name {key:?}")));
            }
            let path = format!("/proc/sys/{}", key.replace('.', "/"));
            std::fs::write(&path, value).ctx(|| format!("write sysctl {path}"))?;
        }
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        remount_readonly(Path::new("/"))?;
    }
    for path in linux
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
    {
        mask(Path::new(path))?;
    }
    for path in linux
        .and_then(|l| l.readonly_paths().as_ref())
        .into_iter()
        .flatten()
    {
        readonly_path(Path::new(path))?;
    }
    Ok(())
}

/// Remounts the mount at `path` read-only, keeping its other flags.
fn remount_readonly(path: &Path) -> Result<()> {
    let st = statvfs(path).ctx(|| format!("statvfs {}", path.display()))?;
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
    ] {
        if st.flags().contains(fs) {
            flags |= ms;
        }
    }
    mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
        .ctx(|| format!("remount {} read-only", path.display()))
}

/// Hides `path`: `/dev/null` over a file, a read-only tmpfs over a directory.
fn mask(path: &Path) -> Result<()> {
    let st = match stat(path) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => {
            return Err(Error::Sys {
                op: format!("stat masked path {}", path.display()),
                source: e,
            })
        }
    };
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .ctx(|| format!("mask directory {}", path.display()))
    } else {
        mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx(|| format!("mask {} with /dev/null", path.display()))
    }
}

fn readonly_path(path: &Path) -> Result<()> {
    match mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    ) {
        Ok(()) => remount_readonly(path),
        Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(Error::Sys {
            op: format!("bind read-only path {}", path.display()),
            source: e,
        }),
    }
}
