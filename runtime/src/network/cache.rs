//! The per-pod CNI cache: `<cache_dir>/<pod id>.json`, holding the network
//! configuration ADD ran with, the pod's CNI arguments and (once ADD is done)
//! the result, so DEL replays exactly that even if the conf dir changed.
//! Its files are read and written off the async workers ([`crate::blocking`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Error, NetworkConfig};

/// What is cached for one pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Entry {
    /// The configuration file ADD used (informational).
    pub config_path: PathBuf,
    /// The network name.
    pub name: String,
    /// The network's spec version.
    pub cni_version: String,
    /// The plugin configurations, in chain order.
    pub plugins: Vec<Value>,
    /// `CNI_ARGS` used on ADD.
    pub cni_args: String,
    /// The netns path ADD used.
    pub netns: PathBuf,
    /// The `runtimeConfig.portMappings` ADD passed.
    pub port_mappings: Value,
    /// The chain's result; `None` while ADD is under way.
    #[serde(default)]
    pub result: Option<Value>,
}

impl Entry {
    /// The network configuration of this entry.
    pub fn config(&self) -> NetworkConfig {
        NetworkConfig {
            path: self.config_path.clone(),
            name: self.name.clone(),
            cni_version: self.cni_version.clone(),
            plugins: self.plugins.clone(),
        }
    }
}

/// The cache directory.
#[derive(Debug, Clone)]
pub(crate) struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn new(dir: PathBuf) -> Cache {
        Cache { dir }
    }

    fn path(&self, pod_id: &str) -> PathBuf {
        self.dir.join(format!("{pod_id}.json"))
    }

    fn err(
        path: &Path,
        what: &'static str,
        e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        Error::Cache {
            path: path.to_path_buf(),
            what,
            source: e.into(),
        }
    }

    /// Reads a pod's entry; `None` when there is none.
    pub fn load(&self, pod_id: &str) -> Result<Option<Entry>, Error> {
        let path = self.path(pod_id);
        match crate::blocking::run(|| std::fs::read(&path)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Self::err(&path, "invalid cache file", e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Self::err(&path, "cannot read", e)),
        }
    }

    /// Writes a pod's entry atomically (temp file, fsync, rename), off
    /// the async workers.
    pub fn store(&self, pod_id: &str, entry: &Entry) -> Result<(), Error> {
        let path = self.path(pod_id);
        let bytes = serde_json::to_vec(entry).map_err(|e| Self::err(&path, "cannot encode", e))?;
        let tmp = self.dir.join(format!(".{pod_id}.json.tmp"));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        crate::blocking::run(|| {
            std::fs::create_dir_all(&self.dir)
                .map_err(|e| Self::err(&self.dir, "cannot create", e))?;
            write().map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                Self::err(&path, "cannot write", e)
            })
        })
    }

    /// Removes a pod's entry; a missing one is fine.
    pub fn remove(&self, pod_id: &str) -> Result<(), Error> {
        let path = self.path(pod_id);
        match crate::blocking::run(|| std::fs::remove_file(&path)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Self::err(&path, "cannot remove", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_load_remove_round_trip() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = Cache::new(tmp.path().join("cache"));
        assert_eq!(cache.load("p1").expect("load"), None);
        let entry = Entry {
            config_path: "/etc/cni/net.d/10.conflist".into(),
            name: "n".into(),
            cni_version: "1.0.0".into(),
            plugins: vec![serde_json::json!({"type": "bridge"})],
            cni_args: "IgnoreUnknown=1".into(),
            netns: "/run/netns/x".into(),
            port_mappings: serde_json::json!([]),
            result: Some(serde_json::json!({"cniVersion": "1.0.0"})),
        };
        cache.store("p1", &entry).expect("store");
        assert_eq!(cache.load("p1").expect("load"), Some(entry.clone()));
        assert_eq!(
            cache.load("p1").expect("load").map(|e| e.config().name),
            Some("n".into())
        );
        let names: Vec<_> = std::fs::read_dir(tmp.path().join("cache"))
            .expect("readdir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["p1.json"], "no temp file left");
        cache.remove("p1").expect("remove");
        cache.remove("p1").expect("remove twice");
        assert_eq!(cache.load("p1").expect("load"), None);
    }

    #[test]
    fn a_read_that_blocks_does_not_hold_up_the_worker() {
        // The entry is a FIFO: reading it blocks until someone writes.
        let tmp = tempfile::tempdir().expect("tempdir");
        let fifo = tmp.path().join("p.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        let cache = Cache::new(tmp.path().to_path_buf());
        let (answer, loaded) = crate::testing::while_blocked(
            async move { cache.load("p") },
            || "answered",
            || std::fs::write(&fifo, "{").expect("write the fifo"),
        );
        assert_eq!(answer, "answered");
        assert!(loaded.is_err(), "what was written is no entry");
    }

    #[test]
    fn corrupt_cache_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("p.json"), "{").expect("write");
        let err = Cache::new(tmp.path().to_path_buf())
            .load("p")
            .expect_err("corrupt");
        assert!(err.to_string().contains("invalid cache file"), "{err}");
    }
}
