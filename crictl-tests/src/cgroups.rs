//! Where a cgroup path is on this host, for tests that check what a
//! daemon made or left: every hierarchy is looked into (v1 controllers,
//! the unified one of a hybrid host, or a pure v2 root).

use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// The directories of cgroup `path` that exist, in every hierarchy.
pub fn dirs(path: &str) -> Vec<PathBuf> {
    let rel = path.trim_start_matches('/');
    let mut found = Vec::new();
    let root = Path::new(ROOT);
    if root.join(rel).is_dir() && root.join("cgroup.controllers").exists() {
        found.push(root.join(rel));
    }
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let dir = entry.path().join(rel);
        if dir.is_dir() {
            found.push(dir);
        }
    }
    found
}

/// The child cgroups of `path`, in every hierarchy.
pub fn children(path: &str) -> Vec<PathBuf> {
    dirs(path)
        .iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect()
}

/// Removes cgroup `path` and what is under it, in every hierarchy, deepest
/// first (rmdir only: a cgroup that still has processes stays).
pub fn remove_all(path: &str) {
    fn rm(dir: &Path) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                rm(&entry.path());
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
    for dir in dirs(path) {
        rm(&dir);
    }
}
