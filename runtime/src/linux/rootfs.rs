//! The shim's side of the root filesystem: a private mount namespace and the
//! overlay mounted in it.

use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, fchdir};

use super::error::{Context, Error, Result};
use super::mount_api::{self, Attr};
use super::userns;

/// The layers of a container's root filesystem.
#[derive(Debug, Clone, Default)]
pub struct RootfsLayers {
    /// Read-only layer directories, top layer first.
    pub lower: Vec<PathBuf>,
    /// The container's writable layer; an empty path means none (the
    /// overlay is then made of the lower layers only, read-only).
    pub upper: PathBuf,
    /// Overlay work directory, on the same filesystem as `upper`.
    pub work: PathBuf,
    /// Mount the overlay read-only.
    pub readonly: bool,
    /// Id-map the image layers with a user namespace (see
    /// [`super::userns`]); `None`: as they are.
    pub idmap: Option<RootfsIdmap>,
}

/// How a container's root filesystem is id-mapped: its image layers become
/// id-mapped mounts of `userns` (host uid 0 appears as container uid 0),
/// and the writable layer is owned by the host ids of container root.
#[derive(Debug, Clone, Default)]
pub struct RootfsIdmap {
    /// The user namespace (a pinned file or `/proc/<pid>/ns/user`).
    pub userns: PathBuf,
    /// The host uid of container root.
    pub host_uid: u32,
    /// The host gid of container root.
    pub host_gid: u32,
}

/// Mount option data is limited to one page by the kernel.
const MAX_OPTIONS: usize = 4096 - 1;

/// In the (single-threaded) shim: moves the shim into a mount namespace of
/// its own and mounts the overlay of `layers` at `target`.
///
/// The mount that holds `target` is made a slave of the host's, so the
/// overlay never propagates to the host (while unmounts on the host, such
/// as a pod's namespaces being unpinned, still reach the shim). The other
/// mounts stay peers of the host's: a container bind mount asked to be
/// bidirectional (rshared) then really shares mounts with the host.
///
/// The overlay lives and dies with the shim's mount namespace. When the
/// absolute option string exceeds a page, the layers are named relative to
/// their common parent directory (the shim `chdir`s there for the mount and
/// back); if even that does not fit, the mount is refused.
pub fn mount_rootfs(layers: &RootfsLayers, target: &Path) -> Result<()> {
    if layers.lower.is_empty() {
        return Err(Error::InvalidSpec("rootfs without layers".into()));
    }
    unshare(CloneFlags::CLONE_NEWNS).ctx(|| "unshare mount namespace for the shim")?;
    let parent = target.parent().unwrap_or(target);
    let holder = containing_mount(parent)?;
    mount(
        None::<&str>,
        &holder,
        None::<&str>,
        MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .ctx(|| {
        format!(
            "make {} a slave in the shim's mount namespace",
            holder.display()
        )
    })?;

    let mut flags = MsFlags::empty();
    if layers.readonly {
        flags |= MsFlags::MS_RDONLY;
    }
    let has_upper = !layers.upper.as_os_str().is_empty();
    let mapped;
    let layers = match &layers.idmap {
        Some(idmap) => {
            mapped = idmap_layers(layers, idmap, target, has_upper)?;
            &mapped
        }
        None => layers,
    };
    if !has_upper && layers.lower.len() == 1 && layers.idmap.is_some() {
        // Already an id-mapped mount of the one layer, at the target.
        return mount_api::set_attr_at(target, false, &Attr::readonly())
            .ctx(|| format!("make {} read-only", target.display()));
    }
    if !has_upper && layers.lower.len() == 1 {
        // overlayfs needs two lower layers without an upper one: a single
        // layer is bind-mounted read-only instead.
        let lower = &layers.lower[0];
        mount(
            Some(lower),
            target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx(|| format!("bind {} on {}", lower.display(), target.display()))?;
        return mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .ctx(|| format!("remount {} read-only", target.display()));
    }

    mount_overlay_of(layers, target, flags)
}

/// In the shim, after [`mount_rootfs`] (so in its mount namespace): mounts
/// the image layers `lower` (top first) read-only at `target` (made if
/// missing), an image volume's tree: an overlay without an upper layer, a
/// single layer bind-mounted. Not `noexec` (its programs may be run);
/// `nosuid` and `nodev`. With `idmap` (a container in a user namespace)
/// the layers are id-mapped as the root filesystem's are.
pub fn mount_image_volume(
    lower: &[PathBuf],
    target: &Path,
    idmap: Option<&RootfsIdmap>,
) -> Result<()> {
    if lower.is_empty() {
        return Err(Error::InvalidSpec(format!(
            "image volume at {} without layers",
            target.display()
        )));
    }
    std::fs::create_dir_all(target).ctx(|| format!("create {}", target.display()))?;
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    let layers = RootfsLayers {
        lower: lower.to_vec(),
        ..RootfsLayers::default()
    };
    if let Some(idmap) = idmap {
        let mapped = idmap_layers(&layers, idmap, target, false)?;
        if lower.len() == 1 {
            // The id-mapped layer is on the target already.
            return mount_api::set_attr_at(target, false, &Attr::remount(flags))
                .ctx(|| format!("make {} read-only", target.display()));
        }
        return mount_overlay_of(&mapped, target, flags);
    }
    if let [layer] = lower {
        mount(
            Some(layer),
            target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx(|| format!("bind {} on {}", layer.display(), target.display()))?;
        return mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
            None::<&str>,
        )
        .ctx(|| format!("remount {} read-only", target.display()));
    }
    mount_overlay_of(&layers, target, flags)
}

/// The overlay of `layers` at `target`, its options relative to the
/// layers' common parent when absolute ones exceed a page.
fn mount_overlay_of(layers: &RootfsLayers, target: &Path, flags: MsFlags) -> Result<()> {
    let absolute = overlay_options(layers, None)?;
    if absolute.len() <= MAX_OPTIONS {
        return mount_overlay(target, flags, &absolute);
    }
    let base = common_parent(layers);
    let relative = overlay_options(layers, Some(&base))?;
    if relative.len() > MAX_OPTIONS {
        return Err(Error::InvalidSpec(format!(
            "overlay options for {} layers are {} bytes, more than a page even relative to {}",
            layers.lower.len(),
            relative.len(),
            base.display()
        )));
    }
    let here = open(
        ".",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open the shim's working directory")?;
    chdir(&base).ctx(|| format!("chdir {}", base.display()))?;
    let mounted = mount_overlay(target, flags, &relative);
    fchdir(&here).ctx(|| "chdir back to the shim's working directory")?;
    mounted
}

/// Id-maps the image layers of `layers` with `idmap`'s user namespace:
/// each becomes an id-mapped mount in the shim's mount namespace, next to
/// `target` (`<target>-layers/<i>`; a single layer without an upper one
/// goes on `target` itself); the upper and work directories are given to
/// container root's host ids. Returns the layers to mount the overlay of.
fn idmap_layers(
    layers: &RootfsLayers,
    idmap: &RootfsIdmap,
    target: &Path,
    has_upper: bool,
) -> Result<RootfsLayers> {
    let userns = userns::open_userns(&idmap.userns)?;
    let mapped_tree = |source: &Path| -> Result<std::os::fd::OwnedFd> {
        let tree = mount_api::clone_tree(source, false)
            .ctx(|| format!("clone the mount of layer {}", source.display()))?;
        mount_api::set_idmap(&tree, false, &userns)
            .ctx(|| format!("id-map layer {}", source.display()))?;
        Ok(tree)
    };
    let here = |dir: &Path| -> Result<std::os::fd::OwnedFd> {
        open(
            dir,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("open {}", dir.display()))
    };
    if !has_upper && layers.lower.len() == 1 {
        let tree = mapped_tree(&layers.lower[0])?;
        mount_api::move_tree(&tree, &here(target)?, c"")
            .ctx(|| format!("attach the id-mapped layer on {}", target.display()))?;
        return Ok(layers.clone());
    }
    let mut name = target.as_os_str().to_owned();
    name.push("-layers");
    let dir = PathBuf::from(name);
    let mut lower = Vec::with_capacity(layers.lower.len());
    for (i, layer) in layers.lower.iter().enumerate() {
        let point = dir.join(i.to_string());
        std::fs::create_dir_all(&point).ctx(|| format!("create {}", point.display()))?;
        let tree = mapped_tree(layer)?;
        mount_api::move_tree(&tree, &here(&point)?, c"").ctx(|| {
            format!(
                "attach id-mapped layer {} on {}",
                layer.display(),
                point.display()
            )
        })?;
        lower.push(point);
    }
    if has_upper {
        let (uid, gid) = (
            Some(nix::unistd::Uid::from_raw(idmap.host_uid)),
            Some(nix::unistd::Gid::from_raw(idmap.host_gid)),
        );
        for d in [&layers.upper, &layers.work] {
            nix::unistd::chown(d, uid, gid).ctx(|| {
                format!(
                    "give {} to container root ({}:{})",
                    d.display(),
                    idmap.host_uid,
                    idmap.host_gid
                )
            })?;
        }
    }
    Ok(RootfsLayers {
        lower,
        ..layers.clone()
    })
}

/// The mount point of the mount that holds `path` (the longest mount point
/// of /proc/self/mountinfo that is `path` or one of its parents).
pub(super) fn containing_mount(path: &Path) -> Result<std::path::PathBuf> {
    let path = std::fs::canonicalize(path).ctx(|| format!("resolve {}", path.display()))?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ctx(|| "read mountinfo")?;
    let best = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|mp| path.starts_with(mp))
        .max_by_key(|mp| mp.as_os_str().len());
    Ok(best.unwrap_or_else(|| std::path::PathBuf::from("/")))
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape_mountinfo(field: &str) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStringExt as _;
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    std::path::PathBuf::from(std::ffi::OsString::from_vec(out))
}

fn mount_overlay(target: &Path, flags: MsFlags, options: &str) -> Result<()> {
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        flags,
        Some(options),
    )
    .ctx(|| format!("mount overlay on {} ({options})", target.display()))
}

/// `lowerdir=..[,upperdir=..,workdir=..]`, paths relative to `base` if given.
fn overlay_options(layers: &RootfsLayers, base: Option<&Path>) -> Result<String> {
    let name = |p: &Path| -> Result<String> {
        let shown = match base {
            Some(base) => p.strip_prefix(base).unwrap_or(p),
            None => p,
        };
        let text = shown
            .to_str()
            .ok_or_else(|| Error::InvalidSpec(format!("layer path {p:?} is not UTF-8")))?;
        if text.contains([',', ':', '\\']) || text.is_empty() {
            return Err(Error::InvalidSpec(format!(
                "layer path {p:?} cannot be named in overlay options"
            )));
        }
        Ok(text.to_owned())
    };
    let lower = layers
        .lower
        .iter()
        .map(|p| name(p))
        .collect::<Result<Vec<_>>>()?
        .join(":");
    let mut options = format!("lowerdir={lower}");
    if !layers.upper.as_os_str().is_empty() {
        options.push_str(&format!(
            ",upperdir={},workdir={}",
            name(&layers.upper)?,
            name(&layers.work)?
        ));
    }
    Ok(options)
}

/// The deepest directory that contains every layer path.
fn common_parent(layers: &RootfsLayers) -> PathBuf {
    let mut paths = layers.lower.iter().chain(
        [&layers.upper, &layers.work]
            .into_iter()
            .filter(|p| !p.as_os_str().is_empty()),
    );
    let Some(first) = paths.next() else {
        return PathBuf::from("/");
    };
    let mut common: Vec<Component<'_>> = first.components().collect();
    for p in paths {
        let n = common
            .iter()
            .zip(p.components())
            .take_while(|(a, b)| **a == *b)
            .count();
        common.truncate(n);
    }
    // Never the layer itself: its parent, so each layer keeps a name.
    let base: PathBuf = common.iter().collect();
    if layers.lower.iter().any(|l| l == &base) {
        return base.parent().map(Path::to_path_buf).unwrap_or_default();
    }
    if base.as_os_str().as_bytes().is_empty() {
        PathBuf::from("/")
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(n: usize) -> RootfsLayers {
        RootfsLayers {
            lower: (0..n)
                .map(|i| PathBuf::from(format!("/var/lib/corten/snapshots/{i:064}")))
                .collect(),
            upper: "/var/lib/corten/snapshots/c/upper".into(),
            work: "/var/lib/corten/snapshots/c/work".into(),
            readonly: false,
            idmap: None,
        }
    }

    #[test]
    fn options_absolute_and_relative() {
        let l = layers(2);
        let abs = overlay_options(&l, None).unwrap();
        assert!(abs.starts_with("lowerdir=/var/lib/corten/snapshots/0000"));
        assert!(abs.ends_with(
            ",upperdir=/var/lib/corten/snapshots/c/upper,workdir=/var/lib/corten/snapshots/c/work"
        ));
        let base = common_parent(&l);
        assert_eq!(base, Path::new("/var/lib/corten/snapshots"));
        let rel = overlay_options(&l, Some(&base)).unwrap();
        assert!(rel.starts_with("lowerdir=0000"), "{rel}");
        assert!(rel.ends_with("upperdir=c/upper,workdir=c/work"), "{rel}");
    }

    #[test]
    fn long_lists_fit_relative() {
        let l = layers(50);
        assert!(overlay_options(&l, None).unwrap().len() > MAX_OPTIONS);
        let rel = overlay_options(&l, Some(&common_parent(&l))).unwrap();
        assert!(rel.len() < MAX_OPTIONS);
    }

    #[test]
    fn separators_in_paths_are_refused() {
        let mut l = layers(1);
        l.lower.push("/a:b".into());
        assert!(matches!(
            overlay_options(&l, None),
            Err(Error::InvalidSpec(_))
        ));
    }
}

#[cfg(test)]
mod mountinfo_tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_and_holders() {
        assert_eq!(unescape_mountinfo("/a\\040b\\134c"), Path::new("/a b\\c"));
        assert_eq!(unescape_mountinfo("/plain"), Path::new("/plain"));
        // Every path has a holder, at worst /.
        let holder = containing_mount(Path::new("/proc/self")).expect("holder");
        assert_eq!(holder, Path::new("/proc"));
        assert!(containing_mount(Path::new("/")).is_ok());
    }
}
