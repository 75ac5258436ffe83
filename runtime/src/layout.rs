//! [`Layout`]: where the runtime keeps everything on disk, named in one
//! place. Two roots come from the configuration: the root dir (persistent:
//! metadata, images, writable layers, CNI results) and the state dir (gone
//! after a reboot: container bundles with their shims' sockets, pods'
//! pinned namespaces and files).

use std::path::{Path, PathBuf};

/// The on-disk layout under the root and state directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root_dir: PathBuf,
    state_dir: PathBuf,
}

impl Layout {
    /// The layout under `root_dir` (persistent) and `state_dir` (volatile).
    pub fn new(root_dir: &Path, state_dir: &Path) -> Layout {
        Layout {
            root_dir: root_dir.to_path_buf(),
            state_dir: state_dir.to_path_buf(),
        }
    }

    /// The persistent root.
    pub fn root_dir(&self) -> &Path {
        &self.root_dir
    }

    /// The volatile root.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The metadata database: images, pods, containers.
    pub fn meta_db(&self) -> PathBuf {
        self.root_dir.join("meta.redb")
    }

    /// Image blobs by digest.
    pub fn content(&self) -> PathBuf {
        self.root_dir.join("content")
    }

    /// Unpacked layers by chain id.
    pub fn snapshots(&self) -> PathBuf {
        self.root_dir.join("snapshots")
    }

    /// What CNI ADD returned per pod: DEL must see it even after a reboot
    /// (host-local keeps its leases on disk).
    pub fn cni_cache(&self) -> PathBuf {
        self.root_dir.join("cni")
    }

    /// Containers' writable layers (`<id>/upper`, `<id>/work`), which
    /// survive reboots.
    pub fn writable_layers(&self) -> PathBuf {
        self.root_dir.join("containers")
    }

    /// Container bundles (`<id>/`: spec, shim socket, state and exit files).
    pub fn bundles(&self) -> PathBuf {
        self.state_dir.join("containers")
    }

    /// Removed containers' writable layers, renamed here (one atomic
    /// step) and deleted afterwards, off the request's path.
    pub fn writable_layers_trash(&self) -> PathBuf {
        self.root_dir.join("containers.trash")
    }

    /// Removed containers' bundles, as [`Layout::writable_layers_trash`].
    pub fn bundles_trash(&self) -> PathBuf {
        self.state_dir.join("containers.trash")
    }

    /// Pod directories (`<id>/`: pinned namespaces, shm, hostname, hosts,
    /// resolv.conf).
    pub fn pods(&self) -> PathBuf {
        self.state_dir.join("pods")
    }

    /// Every directory of the layout, roots first.
    pub fn dirs(&self) -> Vec<PathBuf> {
        vec![
            self.root_dir.clone(),
            self.state_dir.clone(),
            self.content(),
            self.snapshots(),
            self.cni_cache(),
            self.writable_layers(),
            self.writable_layers_trash(),
            self.bundles(),
            self.bundles_trash(),
            self.pods(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persistent_and_volatile_parts_under_their_roots() {
        let l = Layout::new(Path::new("/var/lib/corten"), Path::new("/run/corten"));
        assert_eq!(l.meta_db(), Path::new("/var/lib/corten/meta.redb"));
        assert_eq!(l.cni_cache(), Path::new("/var/lib/corten/cni"));
        assert_eq!(l.bundles(), Path::new("/run/corten/containers"));
        assert_eq!(l.pods(), Path::new("/run/corten/pods"));
        for dir in [l.content(), l.snapshots(), l.writable_layers()] {
            assert!(dir.starts_with("/var/lib/corten"), "{}", dir.display());
        }
    }
}
