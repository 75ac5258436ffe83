//! `/dev` inside the container: device nodes and the standard symlinks.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, readlink, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{fchmodat, makedev, mknodat, FchmodatFlags, Mode, SFlag};
use nix::unistd::{fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Spec};

use super::confined::{proc_path, Kind, Root};
use super::error::{Context, Error, Result};

/// A device node to make.
#[derive(Debug, Clone)]
struct Node {
    path: PathBuf,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// The devices every container gets (as runc and crun make them).
fn defaults() -> Vec<Node> {
    crate::spec::DEFAULT_DEVICES
        .iter()
        .map(|&(path, major, minor)| Node {
            path: path.into(),
            kind: SFlag::S_IFCHR,
            major: major.unsigned_abs(),
            minor: minor.unsigned_abs(),
            mode: 0o666,
            uid: 0,
            gid: 0,
        })
        .collect()
}

fn from_spec(d: &LinuxDevice) -> Result<Node> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(Error::InvalidSpec(format!(
                "device {} has type \"a\"",
                d.path().display()
            )))
        }
    };
    let number = |n: i64| {
        u64::try_from(n).map_err(|_| {
            Error::InvalidSpec(format!(
                "device {} has a negative number",
                d.path().display()
            ))
        })
    };
    Ok(Node {
        path: d.path().clone(),
        kind,
        major: number(d.major())?,
        minor: number(d.minor())?,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

/// Fills the container's `/dev` (a tmpfs the spec mounted): device nodes,
/// the standard symlinks, `/dev/shm` when the spec has no mount for it, and
/// `/dev/console` for a terminal.
pub(super) fn populate(root: &Root, spec: &Spec, terminal: bool) -> Result<()> {
    let mut nodes = defaults();
    if let Some(devices) = spec.linux().as_ref().and_then(|l| l.devices().as_ref()) {
        for d in devices {
            let node = from_spec(d)?;
            nodes.retain(|n| n.path != node.path);
            nodes.push(node);
        }
    }
    for node in &nodes {
        make_node(root, node)?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let (dir, _) = root.parent_of(&Path::new("/dev").join(name))?;
        if name == "ptmx" {
            let _ = unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir);
        }
        match symlinkat(target, &dir, name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => {
                return Err(Error::Sys {
                    op: format!(
                        "symlink {} -> {target}",
                        root.show(&Path::new("/dev").join(name))
                    ),
                    source: e,
                })
            }
        }
    }
    let has_shm = spec
        .mounts()
        .as_ref()
        .is_some_and(|ms| ms.iter().any(|m| m.destination() == Path::new("/dev/shm")));
    if !has_shm {
        let shm = root.ensure(Path::new("/dev/shm"), Kind::Dir)?;
        mount(
            Some("shm"),
            &proc_path(&shm),
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("mode=1777,size=65536k"),
        )
        .ctx(|| format!("mount tmpfs on {}", root.show(Path::new("/dev/shm"))))?;
    }
    if terminal {
        console(root)?;
    }
    Ok(())
}

fn make_node(root: &Root, node: &Node) -> Result<()> {
    let (dir, name) = root.parent_of(&node.path)?;
    let shown = root.show(&node.path);
    let dev = makedev(node.major, node.minor);
    let perm = Mode::from_bits_truncate(node.mode);
    match mknodat(&dir, &name, node.kind, perm, dev) {
        Ok(()) => {}
        Err(Errno::EEXIST) => return Ok(()),
        Err(Errno::EPERM) => return bind_host_device(root, node),
        Err(e) => {
            return Err(Error::Sys {
                op: format!("mknod {shown}"),
                source: e,
            })
        }
    }
    fchmodat(&dir, &name, perm, FchmodatFlags::NoFollowSymlink).ctx(|| format!("chmod {shown}"))?;
    fchownat(
        &dir,
        &name,
        Some(Uid::from_raw(node.uid)),
        Some(Gid::from_raw(node.gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .ctx(|| format!("chown {shown}"))
}

/// Where `mknod` is not allowed: an empty file with the host's device
/// bind-mounted on it.
fn bind_host_device(root: &Root, node: &Node) -> Result<()> {
    let target = root.ensure(&node.path, Kind::File)?;
    mount(
        Some(&node.path),
        &proc_path(&target),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(|| {
        format!(
            "bind host {} on {}",
            node.path.display(),
            root.show(&node.path)
        )
    })
}

/// `/dev/console`: the pty slave the init has as stdin, bind-mounted.
fn console(root: &Root) -> Result<()> {
    let slave = readlink("/proc/self/fd/0").ctx(|| "readlink /proc/self/fd/0")?;
    let (dir, name) = root.parent_of(Path::new("/dev/console"))?;
    match openat(
        &dir,
        &name,
        OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::from_bits_truncate(0o600),
    ) {
        Ok(_) | Err(Errno::EEXIST) => {}
        Err(e) => {
            return Err(Error::Sys {
                op: "create /dev/console".into(),
                source: e,
            })
        }
    }
    let target = root.resolve(Path::new("/dev/console"))?;
    mount(
        Some(Path::new(&slave)),
        &proc_path(&target),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(|| format!("bind {} on /dev/console", Path::new(&slave).display()))
}
