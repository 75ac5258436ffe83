//! What a kubelet would change on the host, kept to the test's own:
//! the kernel tunables it insists on setting, the fixed directories it
//! writes whatever its flags say, and a cgroup root of the fixture's own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::wait;

/// The sysctls kubelet sets at start when they differ from what it wants
/// (`setupKernelTunables` of its container manager), under /proc/sys.
pub const TUNABLES: [&str; 6] = [
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
];

/// Directories kubelet writes at fixed paths whatever its root dir
/// (`/var/lib/kubelet/device-plugins`, `/var/log/containers`): in its mount
/// namespace each gets an overlay whose upper layer is the test's.
pub const SHADOWED: [&str; 2] = ["/var/lib", "/var/log"];

/// The host's value of each of [`TUNABLES`], in that order.
pub fn tunables() -> Vec<(String, String)> {
    TUNABLES
        .iter()
        .map(|t| {
            let value = std::fs::read_to_string(Path::new("/proc/sys").join(t))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|e| format!("unreadable: {e}"));
            (t.to_string(), value)
        })
        .collect()
}

/// The shell script that runs kubelet in its own mount namespace (under
/// `unshare --mount --propagation unchanged`, so that kubelet's root dir,
/// a [`SharedMount`], stays a peer of the host's): the mounts holding what
/// it covers are made private first, so nothing it mounts reaches the
/// host; each tunable's /proc/sys file gets a file of `dir` bind-mounted
/// over it, holding the host's value, so kubelet reads and writes that
/// file; each of [`SHADOWED`] gets an overlay with its upper layer in
/// `dir`. Then it execs its arguments (the kubelet command line), so the
/// namespace lives as long as kubelet, and its mounts go with it.
pub fn namespace_script(dir: &Path) -> Result<String> {
    let mut script = String::from("set -eu\n");
    let covered = TUNABLES
        .iter()
        .map(|t| format!("/proc/sys/{t}"))
        .chain(SHADOWED.iter().map(|s| s.to_string()));
    for target in covered {
        script.push_str(&format!(
            "mount --make-private \"$(findmnt -n -o TARGET -T {})\"\n",
            quote(&target)
        ));
    }
    for t in TUNABLES {
        let file = dir.join(t.replace('/', "."));
        let value = std::fs::read_to_string(Path::new("/proc/sys").join(t))
            .with_context(|| format!("read /proc/sys/{t}"))?;
        std::fs::write(&file, value).with_context(|| format!("write {}", file.display()))?;
        script.push_str(&format!(
            "mount --bind {} /proc/sys/{t}\n",
            quote(&file.display().to_string())
        ));
    }
    for shadowed in SHADOWED {
        let base = dir.join(shadowed.trim_start_matches('/').replace('/', "-"));
        let (upper, work) = (base.join("upper"), base.join("work"));
        for d in [&upper, &work] {
            std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
        }
        let opts = format!(
            "lowerdir={shadowed},upperdir={},workdir={}",
            upper.display(),
            work.display()
        );
        script.push_str(&format!(
            "mount -t overlay corten-kubelet-shadow -o {} {shadowed}\n",
            quote(&opts)
        ));
    }
    script.push_str("exec \"$@\"\n");
    Ok(script)
}

/// What kubelet wrote into one of [`SHADOWED`] (its overlay's upper layer).
pub fn shadow_upper(dir: &Path, shadowed: &str) -> PathBuf {
    dir.join(shadowed.trim_start_matches('/').replace('/', "-"))
        .join("upper")
}

/// The current value of `tunable` as kubelet sees it (the file in `dir`).
pub fn tunable_seen_by_kubelet(dir: &Path, tunable: &str) -> String {
    std::fs::read_to_string(dir.join(tunable.replace('/', ".")))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

/// `s` single-quoted for sh.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A directory bind-mounted on itself and made a shared mount on the host
/// (kubelet's root dir): what kubelet mounts under it in its namespace
/// (the tmpfs of a memory-backed emptyDir, say) is mounted on the host too,
/// where cortend bind-mounts it into containers, as it would be were
/// kubelet in the host's namespace. Dropping it unmounts everything under
/// the directory, and the directory itself.
pub struct SharedMount {
    path: PathBuf,
}

impl SharedMount {
    pub fn create(path: &Path) -> Result<SharedMount> {
        use nix::mount::{mount, MsFlags};
        mount(
            Some(path),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .with_context(|| format!("bind-mount {} on itself", path.display()))?;
        let shared = SharedMount {
            path: path.to_path_buf(),
        };
        mount(
            None::<&str>,
            path,
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        )
        .with_context(|| format!("make {} a shared mount", path.display()))?;
        Ok(shared)
    }

    /// The mounts under the directory (itself included), as the host sees
    /// them.
    pub fn mounts(&self) -> Vec<String> {
        crate::network::mounts_under(&self.path)
    }
}

impl Drop for SharedMount {
    fn drop(&mut self) {
        let mut mounts = self.mounts();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            if let Err(e) = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH) {
                eprintln!("cannot unmount {m}: {e}");
            }
        }
    }
}

const CGROUP_FS: &str = "/sys/fs/cgroup";

/// A cgroup root of the fixture's own (kubelet's `cgroupRoot`), made in
/// every mounted hierarchy, since kubelet refuses a root that is missing
/// from one. Dropping it kills what is still in it (only processes the
/// fixture's kubelet and cortend put there) and removes it.
pub struct CgroupRoot {
    path: String,
}

impl CgroupRoot {
    /// Makes `/<name>` in every hierarchy; a cpuset cgroup gets its
    /// parent's cpus and mems (an empty cpuset takes no process).
    pub fn create(name: &str) -> Result<CgroupRoot> {
        let root = CgroupRoot {
            path: format!("/{name}"),
        };
        for h in hierarchies() {
            let dir = h.join(name);
            std::fs::create_dir(&dir)
                .with_context(|| format!("create cgroup {}", dir.display()))?;
            for file in ["cpuset.cpus", "cpuset.mems"] {
                if let Ok(value) = std::fs::read_to_string(h.join(file)) {
                    std::fs::write(dir.join(file), value.trim())
                        .with_context(|| format!("write {}/{file}", dir.display()))?;
                }
            }
        }
        Ok(root)
    }

    /// The cgroup path, as kubelet's `cgroupRoot`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The cgroups under the root (the root included), in every hierarchy.
    pub fn tree(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            out.push(dir.to_path_buf());
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    walk(&e.path(), out);
                }
            }
        }
        let mut out = Vec::new();
        for h in hierarchies() {
            let dir = h.join(self.path.trim_start_matches('/'));
            if dir.is_dir() {
                walk(&dir, &mut out);
            }
        }
        out
    }

    /// The processes in the root's tree, in any hierarchy.
    pub fn processes(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .tree()
            .iter()
            .flat_map(|d| {
                std::fs::read_to_string(d.join("cgroup.procs"))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }
}

impl Drop for CgroupRoot {
    fn drop(&mut self) {
        // Whatever is left in the tree was started under the fixture's own
        // root by its kubelet and cortend: nothing else can be in it.
        let gone = wait::within(Duration::from_secs(20), || {
            let pids = self.processes();
            for pid in &pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            pids.is_empty()
        });
        if !gone {
            eprintln!(
                "cgroup root {}: processes {:?} would not go",
                self.path,
                self.processes()
            );
        }
        let mut tree = self.tree();
        tree.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for dir in tree {
            if let Err(e) = std::fs::remove_dir(&dir) {
                eprintln!("cannot remove cgroup {}: {e}", dir.display());
            }
        }
    }
}

/// Every mounted cgroup hierarchy: the v1 controllers (and a hybrid's
/// unified one) under /sys/fs/cgroup, or /sys/fs/cgroup itself on v2.
fn hierarchies() -> Vec<PathBuf> {
    let root = Path::new(CGROUP_FS);
    if root.join("cgroup.controllers").exists() {
        return vec![root.to_path_buf()];
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("cgroup.procs").exists() && !p.is_symlink())
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_for_the_shell() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn the_script_mounts_every_tunable_and_shadow_then_execs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = namespace_script(dir.path()).expect("script");
        for t in TUNABLES {
            assert!(script.contains(&format!(" /proc/sys/{t}\n")), "{script}");
            let saved = tunable_seen_by_kubelet(dir.path(), t);
            let host = std::fs::read_to_string(Path::new("/proc/sys").join(t)).unwrap_or_default();
            assert_eq!(saved, host.trim(), "{t}");
        }
        for s in SHADOWED {
            assert!(script.contains(&format!("lowerdir={s},")), "{script}");
            assert!(shadow_upper(dir.path(), s).is_dir());
        }
        assert!(script.contains("mount --make-private \"$(findmnt -n -o TARGET -T '/var/lib')\""));
        assert!(script.ends_with("exec \"$@\"\n"), "{script}");
    }
}
