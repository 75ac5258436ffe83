//! The spec's mounts, made inside the rootfs before `pivot_root`.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{fstat, stat, FileStat};
use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
use oci_spec::runtime::Mount;

use super::confined::{proc_path, Kind, Root};
use super::error::{Context, Error, Result};
use super::mount_api::{self, Attr};
use super::targets::{Target, Targets};

/// A mount's options, split into flags, propagation and filesystem data.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Options {
    /// Flags for the mount itself (and a bind remount).
    pub flags: MsFlags,
    /// Propagation flags, applied with a separate call.
    pub propagation: MsFlags,
    /// `bind` or `rbind`.
    pub bind: bool,
    /// `rbind`.
    pub recursive: bool,
    /// `rro`: read-only recursively (mount_setattr with AT_RECURSIVE).
    pub recursive_readonly: bool,
    /// Everything else, passed to the filesystem (`mode=755,size=65536k`).
    pub data: String,
}

/// Parses OCI mount options (the mount(8) words).
pub(super) fn parse_options(options: &[String]) -> Options {
    let mut o = Options {
        flags: MsFlags::empty(),
        propagation: MsFlags::empty(),
        bind: false,
        recursive: false,
        recursive_readonly: false,
        data: String::new(),
    };
    let mut data = Vec::new();
    for opt in options {
        let (set, clear) = match opt.as_str() {
            "bind" => {
                o.bind = true;
                continue;
            }
            "rbind" => {
                o.bind = true;
                o.recursive = true;
                continue;
            }
            "rro" => {
                o.recursive_readonly = true;
                continue;
            }
            "private" => (MsFlags::MS_PRIVATE, MsFlags::empty()),
            "rprivate" => (MsFlags::MS_PRIVATE | MsFlags::MS_REC, MsFlags::empty()),
            "shared" => (MsFlags::MS_SHARED, MsFlags::empty()),
            "rshared" => (MsFlags::MS_SHARED | MsFlags::MS_REC, MsFlags::empty()),
            "slave" => (MsFlags::MS_SLAVE, MsFlags::empty()),
            "rslave" => (MsFlags::MS_SLAVE | MsFlags::MS_REC, MsFlags::empty()),
            "unbindable" => (MsFlags::MS_UNBINDABLE, MsFlags::empty()),
            "runbindable" => (MsFlags::MS_UNBINDABLE | MsFlags::MS_REC, MsFlags::empty()),
            other => {
                let (set, clear) = match flag(other) {
                    Some(f) => f,
                    None => {
                        // tmpcopyup and friends are runtime hints; the rest is data.
                        if other != "tmpcopyup" {
                            data.push(other.to_owned());
                        }
                        continue;
                    }
                };
                o.flags = (o.flags | set) & !clear;
                continue;
            }
        };
        o.propagation |= set & !clear;
    }
    o.data = data.join(",");
    o
}

/// The flag a mount(8) word sets, and the one it clears.
fn flag(word: &str) -> Option<(MsFlags, MsFlags)> {
    let none = MsFlags::empty();
    Some(match word {
        "ro" => (MsFlags::MS_RDONLY, none),
        "rw" => (none, MsFlags::MS_RDONLY),
        "nosuid" => (MsFlags::MS_NOSUID, none),
        "suid" => (none, MsFlags::MS_NOSUID),
        "nodev" => (MsFlags::MS_NODEV, none),
        "dev" => (none, MsFlags::MS_NODEV),
        "noexec" => (MsFlags::MS_NOEXEC, none),
        "exec" => (none, MsFlags::MS_NOEXEC),
        "sync" => (MsFlags::MS_SYNCHRONOUS, none),
        "async" => (none, MsFlags::MS_SYNCHRONOUS),
        "dirsync" => (MsFlags::MS_DIRSYNC, none),
        "remount" => (MsFlags::MS_REMOUNT, none),
        "mand" => (MsFlags::MS_MANDLOCK, none),
        "nomand" => (none, MsFlags::MS_MANDLOCK),
        "atime" => (none, MsFlags::MS_NOATIME),
        "noatime" => (MsFlags::MS_NOATIME, none),
        "diratime" => (none, MsFlags::MS_NODIRATIME),
        "nodiratime" => (MsFlags::MS_NODIRATIME, none),
        "relatime" => (MsFlags::MS_RELATIME, none),
        "norelatime" => (none, MsFlags::MS_RELATIME),
        "strictatime" => (MsFlags::MS_STRICTATIME, none),
        "nostrictatime" => (none, MsFlags::MS_STRICTATIME),
        "defaults" => (none, none),
        _ => return None,
    })
}

/// For a container joining a user namespace: an id-mapped detached copy
/// of each bind mount's source (with `rbind`, of its submounts too), by
/// the index of the spec's mount; `None` for the other mounts. Made while
/// the process is still root on the host (id-mapping needs it), attached by
/// [`mount_one`] inside the container's mount namespace. Sources under
/// `premapped` (the image volumes, whose layers the shim id-mapped) are
/// bound as they are.
pub(super) fn idmapped_binds(
    spec: &oci_spec::runtime::Spec,
    userns: &OwnedFd,
    premapped: &Path,
) -> Result<Vec<Option<OwnedFd>>> {
    let mut out = Vec::new();
    for m in spec.mounts().as_deref().unwrap_or_default() {
        let opts = parse_options(m.options().as_deref().unwrap_or_default());
        if !(opts.bind || m.typ().as_deref() == Some("bind")) {
            out.push(None);
            continue;
        }
        let Some(source) = m.source().as_ref().filter(|s| !s.starts_with(premapped)) else {
            out.push(None);
            continue;
        };
        let tree = mount_api::clone_tree(source, opts.recursive)
            .ctx(|| format!("clone the mount of {}", source.display()))?;
        mount_api::set_idmap(&tree, opts.recursive, userns).ctx(|| {
            format!(
                "id-map {} for {} (its filesystem may not support id-mapped mounts)",
                source.display(),
                m.destination().display()
            )
        })?;
        out.push(Some(tree));
    }
    Ok(out)
}

/// Makes one spec mount inside the rootfs of `targets`; a bind mount
/// attaches `mapped` when given (an id-mapped copy of its source).
pub(super) fn mount_one(
    targets: &mut Targets<'_>,
    m: &Mount,
    mapped: Option<OwnedFd>,
) -> Result<()> {
    let root = targets.root();
    let dest = m.destination();
    if !dest.is_absolute() {
        return Err(Error::InvalidSpec(format!(
            "mount destination {} is not absolute",
            dest.display()
        )));
    }
    let opts = parse_options(m.options().as_deref().unwrap_or_default());
    let typ = m.typ().as_deref().unwrap_or("");
    let shown = Shown { root, dest };
    if opts.bind || typ == "bind" {
        // Flags and propagation included.
        return bind(targets, m, &opts, &shown, mapped);
    }
    if typ == "cgroup" || typ == "cgroup2" {
        cgroup(targets, dest, &opts, &shown)?;
    } else {
        let target = targets
            .ensure(dest, Kind::Dir)?
            .into_fd()
            .ctx(|| format!("open mount target {shown}"))?;
        let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
        let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
        mount(
            Some(&source),
            &proc_path(&target),
            Some(typ),
            opts.flags,
            data,
        )
        .ctx(|| format!("mount {typ} on {shown}"))?;
    }
    if !opts.propagation.is_empty() {
        let target = root.resolve(dest)?;
        mount(
            None::<&str>,
            &proc_path(&target),
            None::<&str>,
            opts.propagation,
            None::<&str>,
        )
        .ctx(|| format!("set propagation of {shown}"))?;
    }
    Ok(())
}

/// A destination as the host names it (`/…/rootfs/m/0`), for messages:
/// formatted only when one is made.
struct Shown<'a> {
    root: &'a Root,
    dest: &'a Path,
}

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.root.show(self.dest))
    }
}

/// A bind mount: a detached copy of the source moved onto the target, its
/// flags and propagation set through its descriptor (see [`mount_api`]);
/// with `mount(2)` and paths where the kernel has no such calls.
fn bind(
    targets: &mut Targets<'_>,
    m: &Mount,
    opts: &Options,
    shown: &Shown<'_>,
    mapped: Option<OwnedFd>,
) -> Result<()> {
    let source = m
        .source()
        .as_ref()
        .ok_or_else(|| Error::InvalidSpec(format!("bind mount on {shown} has no source")))?;
    let cloned = match mapped {
        Some(tree) => Ok(tree),
        None => mount_api::clone_tree(source, opts.recursive),
    };
    let tree = match cloned {
        Ok(tree) => tree,
        Err(Errno::ENOSYS) => return bind_classic(targets, m, source, opts, shown),
        Err(e) => {
            return Err(Error::Sys {
                op: format!("bind {} on {shown}", source.display()),
                source: e,
            })
        }
    };
    let meta = fstat(&tree).ctx(|| format!("stat bind source {}", source.display()))?;
    let moved = match targets.ensure(m.destination(), kind_of(&meta))? {
        Target::Open(fd) => mount_api::move_tree(&tree, &fd, c""),
        Target::Made { dir, name } => mount_api::move_tree(&tree, dir, &name),
    };
    moved.ctx(|| format!("bind {} on {shown}", source.display()))?;
    // As the classic calls do, after the mount is in place: the flags on
    // its top, `rro` and a recursive propagation on all of it.
    let (propagation, recursive) = Attr::propagation(opts.propagation);
    let extra = opts.flags & !MsFlags::MS_REMOUNT;
    let mut top = if extra.is_empty() {
        Attr::default()
    } else {
        Attr::remount(extra)
    };
    let mut all = if opts.recursive_readonly {
        Attr::readonly()
    } else {
        Attr::default()
    };
    if recursive {
        all.propagation = propagation.propagation;
    } else {
        top.propagation = propagation.propagation;
    }
    for (attr, rec) in [(top, false), (all, true)] {
        if attr.is_empty() {
            continue;
        }
        match mount_api::set_attr(&tree, rec, &attr) {
            Ok(()) => {}
            Err(Errno::ENOSYS) if !(rec && opts.recursive_readonly) => {
                let flags = if rec { MsFlags::empty() } else { extra };
                let prop = if rec == recursive {
                    opts.propagation
                } else {
                    MsFlags::empty()
                };
                classic_attrs(&proc_path(&tree), flags, prop, shown)?;
            }
            Err(e) => {
                let beneath = if rec {
                    " and the mounts beneath it"
                } else {
                    ""
                };
                return Err(Error::Sys {
                    op: format!("set {attr:?} on {shown}{beneath}"),
                    source: e,
                });
            }
        }
    }
    Ok(())
}

fn kind_of(meta: &FileStat) -> Kind {
    if meta.st_mode & libc::S_IFMT == libc::S_IFDIR {
        Kind::Dir
    } else {
        Kind::File
    }
}

/// [`bind`] with `mount(2)` on `/proc/self/fd` paths, for kernels without
/// `open_tree` (before 5.2).
fn bind_classic(
    targets: &mut Targets<'_>,
    m: &Mount,
    source: &Path,
    opts: &Options,
    shown: &Shown<'_>,
) -> Result<()> {
    let root = targets.root();
    let meta = stat(source).ctx(|| format!("stat bind source {}", source.display()))?;
    let target = targets
        .ensure(m.destination(), kind_of(&meta))?
        .into_fd()
        .ctx(|| format!("open mount target {shown}"))?;
    let mut flags = MsFlags::MS_BIND;
    if opts.recursive {
        flags |= MsFlags::MS_REC;
    }
    mount(
        Some(source),
        &proc_path(&target),
        None::<&str>,
        flags,
        None::<&str>,
    )
    .ctx(|| format!("bind {} on {shown}", source.display()))?;
    // The remount must reach the new mount, not the dentry under it.
    let top = root.resolve(m.destination())?;
    let extra = opts.flags & !MsFlags::MS_REMOUNT;
    classic_attrs(&proc_path(&top), extra, MsFlags::empty(), shown)?;
    if opts.recursive_readonly {
        mount_api::set_attr_at(&proc_path(&top), true, &Attr::readonly())
            .ctx(|| format!("make {shown} read-only recursively"))?;
    }
    classic_attrs(&proc_path(&top), MsFlags::empty(), opts.propagation, shown)
}

/// A bind remount with `flags` (when any) and a propagation change (when
/// asked) of the mount at `path`, with `mount(2)`.
fn classic_attrs(
    path: &Path,
    flags: MsFlags,
    propagation: MsFlags,
    shown: &Shown<'_>,
) -> Result<()> {
    if !flags.is_empty() {
        mount(
            None::<&str>,
            path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
            None::<&str>,
        )
        .ctx(|| format!("remount bind {shown} with {flags:?}"))?;
    }
    if !propagation.is_empty() {
        mount(None::<&str>, path, None::<&str>, propagation, None::<&str>)
            .ctx(|| format!("set propagation of {shown}"))?;
    }
    Ok(())
}

/// Mounts the container's view of the cgroup hierarchies.
///
/// On cgroup v2 a `cgroup2` mount (the cgroup namespace makes the
/// container's cgroup its root). On v1 or hybrid hosts a tmpfs with a fresh
/// mount of each v1 hierarchy found on the host (again rooted at the
/// namespace) and the unified hierarchy, then the tmpfs is made read-only.
fn cgroup(targets: &mut Targets<'_>, dest: &Path, opts: &Options, shown: &Shown<'_>) -> Result<()> {
    let root = targets.root();
    let flags = opts.flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let target = targets
        .ensure(dest, Kind::Dir)?
        .into_fd()
        .ctx(|| format!("open mount target {shown}"))?;
    let v2 = statfs("/sys/fs/cgroup")
        .map(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC)
        .unwrap_or(false);
    if v2 {
        return mount(
            Some("cgroup"),
            &proc_path(&target),
            Some("cgroup2"),
            flags,
            None::<&str>,
        )
        .ctx(|| format!("mount cgroup2 on {shown}"));
    }
    let tmpfs_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some("tmpfs"),
        &proc_path(&target),
        Some("tmpfs"),
        tmpfs_flags,
        Some("mode=755"),
    )
    .ctx(|| format!("mount tmpfs on {shown}"))?;
    for (dir, fstype, options) in host_cgroup_mounts()? {
        let sub = dest.join(&dir);
        let sub_fd = root.ensure(&sub, Kind::Dir)?;
        let data = (fstype == "cgroup").then_some(options.as_str());
        mount(
            Some("cgroup"),
            &proc_path(&sub_fd),
            Some(fstype.as_str()),
            flags,
            data,
        )
        .ctx(|| format!("mount {fstype} ({options}) on {}", root.show(&sub)))?;
    }
    let top = root.resolve(dest)?;
    mount(
        None::<&str>,
        &proc_path(&top),
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | tmpfs_flags,
        Some("mode=755"),
    )
    .ctx(|| format!("remount {shown} read-only"))
}

/// The host's cgroup mounts directly under /sys/fs/cgroup: (name, fstype,
/// controller options for v1).
fn host_cgroup_mounts() -> Result<Vec<(String, String, String)>> {
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").ctx(|| "read /proc/self/mountinfo")?;
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(point) = left.split(' ').nth(4) else {
            continue;
        };
        let Some(name) = point.strip_prefix("/sys/fs/cgroup/") else {
            continue;
        };
        if name.contains('/') || name.is_empty() {
            continue;
        }
        let mut r = right.split(' ');
        let fstype = r.next().unwrap_or("");
        let super_opts = r.nth(1).unwrap_or("");
        match fstype {
            "cgroup2" => out.push((name.to_owned(), fstype.to_owned(), String::new())),
            "cgroup" => {
                let controllers: Vec<&str> = super_opts
                    .split(',')
                    .filter(|o| !matches!(*o, "rw" | "ro") && !o.starts_with("release_agent"))
                    .collect();
                out.push((name.to_owned(), fstype.to_owned(), controllers.join(",")));
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(',').map(str::to_owned).collect()
    }

    #[test]
    fn tmpfs_options() {
        let o = parse_options(&words("nosuid,strictatime,mode=755,size=65536k"));
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        assert!(!o.bind);
    }

    #[test]
    fn bind_options() {
        let o = parse_options(&words("rbind,ro,rprivate,nosuid"));
        assert!(o.bind && o.recursive);
        assert_eq!(o.flags, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID);
        assert_eq!(o.propagation, MsFlags::MS_PRIVATE | MsFlags::MS_REC);
        let o = parse_options(&words("bind,ro,rw"));
        assert_eq!(o.flags, MsFlags::empty());
        assert!(!o.recursive && !o.recursive_readonly);
        let o = parse_options(&words("rbind,ro,rro"));
        assert!(o.recursive_readonly);
        assert!(o.data.is_empty(), "rro is ours, not the filesystem's");
    }
}
