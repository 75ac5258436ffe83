//! Running a network's plugin chain for a pod, per the CNI spec 1.0/1.1:
//! ADD in chain order with each plugin's result as the next one's
//! `prevResult`, DEL in reverse order with the cached result, CHECK in
//! order. Plugins run as child processes (tokio), each under a timeout,
//! started off the async workers ([`crate::blocking::spawn`]).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::args::{
    check_id, cni_args, plugin_stdin, plugin_type, port_mappings_json, version_at_least,
};
pub use super::args::{PodNetwork, PortMapping};
use super::cache::{Cache, Entry};
use super::result::{CniResult, PluginError};
use super::{find_network, Error, NetworkConfig};

/// How long one plugin invocation may take before it is killed.
pub const DEFAULT_PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The interface name inside the pod.
const IFNAME: &str = "eth0";

/// A CNI plugin runner for one conf dir.
#[derive(Debug, Clone)]
pub struct Cni {
    conf_dir: PathBuf,
    bin_dirs: Vec<PathBuf>,
    cache: Cache,
    timeout: Duration,
}

/// One invocation's environment, shared by the plugins of a chain.
struct Call<'a> {
    command: &'static str,
    id: &'a str,
    netns: String,
    args: &'a str,
    port_mappings: &'a Value,
}

impl Cni {
    /// A runner reading configs from `conf_dir`, plugins from `bin_dirs`
    /// and keeping per-pod state in `cache_dir`.
    pub fn new(
        conf_dir: impl Into<PathBuf>,
        bin_dirs: Vec<PathBuf>,
        cache_dir: impl Into<PathBuf>,
    ) -> Cni {
        Cni {
            conf_dir: conf_dir.into(),
            bin_dirs,
            cache: Cache::new(cache_dir.into()),
            timeout: DEFAULT_PLUGIN_TIMEOUT,
        }
    }

    /// The same runner with another per-plugin timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Cni {
        self.timeout = timeout;
        self
    }

    /// The network configuration ADD would use now (the conf dir is read
    /// off the async workers).
    pub fn network(&self) -> Result<NetworkConfig, Error> {
        crate::blocking::run(|| find_network(&self.conf_dir, &self.bin_dirs))
    }

    /// Attaches the pod to the network. On failure the plugins already run
    /// are undone (DEL), so nothing stays allocated. A cache left by an
    /// earlier ADD of the same id (say, cut short by a crash) is DELeted
    /// first.
    pub async fn add(&self, pod: &PodNetwork) -> Result<CniResult, Error> {
        check_id(&pod.id)?;
        let config = self.network()?;
        if matches!(self.cache.load(&pod.id), Ok(Some(_))) {
            tracing::info!(pod = %pod.id, "stale CNI cache: deleting the earlier attachment first");
            self.del(&pod.id, Some(&pod.netns_path)).await?;
        }
        for plugin in &config.plugins {
            self.plugin_path(&config, plugin)?;
        }
        let mut entry = Entry {
            config_path: config.path.clone(),
            name: config.name.clone(),
            cni_version: config.cni_version.clone(),
            plugins: config.plugins.clone(),
            cni_args: cni_args(&pod.id, Some(pod)),
            netns: pod.netns_path.clone(),
            port_mappings: port_mappings_json(&pod.port_mappings),
            result: None,
        };
        // Cached before the first plugin runs: a crash mid-ADD still leaves
        // DEL the config to undo it with.
        self.cache.store(&pod.id, &entry)?;
        let call = Call {
            command: "ADD",
            id: &pod.id,
            netns: pod.netns_path.to_string_lossy().into_owned(),
            args: &entry.cni_args,
            port_mappings: &entry.port_mappings,
        };
        let (ran, outcome) = self.add_chain(&config, &call).await;
        let outcome = match outcome {
            Ok(raw) => {
                entry.result = Some(raw.clone());
                match CniResult::parse(raw) {
                    Ok(result) => self.cache.store(&pod.id, &entry).map(|()| result),
                    Err(reason) => Err(Error::BadResult {
                        plugin: plugin_type(config.plugins.last()),
                        reason,
                    }),
                }
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(result) => {
                tracing::info!(pod = %pod.id, network = %config.name, ips = ?result.pod_ips(), "CNI ADD done");
                Ok(result)
            }
            Err(e) => {
                tracing::warn!(pod = %pod.id, network = %config.name, error = %e, "CNI ADD failed, undoing");
                let undo = Call {
                    command: "DEL",
                    ..call
                };
                if let Err(del) = self
                    .del_chain(&config, &config.plugins[..ran], &undo, None)
                    .await
                {
                    tracing::warn!(pod = %pod.id, error = %del, "CNI DEL after a failed ADD failed");
                } else if let Err(rm) = self.cache.remove(&pod.id) {
                    tracing::warn!(pod = %pod.id, error = %rm, "cannot remove CNI cache");
                }
                Err(e)
            }
        }
    }

    /// Runs ADD through the chain; returns how many plugins were started
    /// and the last result or the first error.
    async fn add_chain(
        &self,
        config: &NetworkConfig,
        call: &Call<'_>,
    ) -> (usize, Result<Value, Error>) {
        let mut prev: Option<Value> = None;
        for (i, plugin) in config.plugins.iter().enumerate() {
            match self.run(config, plugin, call, prev.as_ref()).await {
                Ok(out) => prev = out,
                Err(e) => return (i + 1, Err(e)),
            }
        }
        let last = plugin_type(config.plugins.last());
        let result = prev.ok_or(Error::BadResult {
            plugin: last,
            reason: "empty result".into(),
        });
        (config.plugins.len(), result)
    }

    /// Runs DEL through `plugins` in reverse order.
    async fn del_chain(
        &self,
        config: &NetworkConfig,
        plugins: &[Value],
        call: &Call<'_>,
        prev: Option<&Value>,
    ) -> Result<(), Error> {
        let prev = prev.filter(|_| version_at_least(&config.cni_version, (0, 4)));
        for plugin in plugins.iter().rev() {
            self.run(config, plugin, call, prev).await?;
        }
        Ok(())
    }

    /// Detaches the pod from the network it was attached to (the cached
    /// config; the current one when there is no cache). Idempotent: a
    /// network already deleted or a netns already gone is not an error.
    pub async fn del(&self, pod_id: &str, netns_path: Option<&Path>) -> Result<(), Error> {
        check_id(pod_id)?;
        let entry = match self.cache.load(pod_id) {
            Ok(entry) => entry,
            Err(e) => {
                tracing::warn!(pod = %pod_id, error = %e, "ignoring unreadable CNI cache");
                None
            }
        };
        let (config, args, port_mappings, prev) = match entry {
            Some(e) => (
                e.config(),
                e.cni_args.clone(),
                e.port_mappings.clone(),
                e.result.clone(),
            ),
            None => match self.network() {
                Ok(config) => (config, cni_args(pod_id, None), json!([]), None),
                Err(Error::NoConfig { .. }) => {
                    tracing::info!(pod = %pod_id, "no CNI cache and no network config: nothing to delete");
                    return Ok(());
                }
                Err(e) => return Err(e),
            },
        };
        // The spec lets a runtime pass an empty CNI_NETNS on DEL once the
        // namespace is gone (or its file is no longer a pinned namespace,
        // after a reboot); plugins then clean up only host-side state.
        let netns = netns_path
            .filter(|p| is_netns(p))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let call = Call {
            command: "DEL",
            id: pod_id,
            netns,
            args: &args,
            port_mappings: &port_mappings,
        };
        self.del_chain(&config, &config.plugins, &call, prev.as_ref())
            .await?;
        self.cache.remove(pod_id)?;
        tracing::info!(pod = %pod_id, network = %config.name, "CNI DEL done");
        Ok(())
    }

    /// Asks the plugins whether the pod's network is as ADD left it (spec
    /// 0.4.0 and later; older networks are not checked).
    pub async fn check(&self, pod_id: &str) -> Result<(), Error> {
        check_id(pod_id)?;
        let Some(entry) = self.cache.load(pod_id)? else {
            return Err(Error::NotCached {
                pod_id: pod_id.to_string(),
            });
        };
        let config = entry.config();
        if !version_at_least(&config.cni_version, (0, 4)) {
            return Ok(());
        }
        let call = Call {
            command: "CHECK",
            id: pod_id,
            netns: entry.netns.to_string_lossy().into_owned(),
            args: &entry.cni_args,
            port_mappings: &entry.port_mappings,
        };
        for plugin in &config.plugins {
            self.run(&config, plugin, &call, entry.result.as_ref())
                .await?;
        }
        Ok(())
    }

    fn plugin_path(&self, config: &NetworkConfig, plugin: &Value) -> Result<PathBuf, Error> {
        let ty = plugin_type(Some(plugin));
        crate::blocking::run(|| {
            self.bin_dirs
                .iter()
                .map(|d| d.join(&ty))
                .find(|p| !ty.is_empty() && !ty.contains('/') && p.is_file())
        })
        .ok_or_else(|| Error::PluginNotFound {
            network: config.name.clone(),
            plugin: ty,
            dirs: self.bin_dirs.clone(),
        })
    }

    /// Runs one plugin; its parsed stdout on success (`None` when empty).
    async fn run(
        &self,
        config: &NetworkConfig,
        plugin: &Value,
        call: &Call<'_>,
        prev: Option<&Value>,
    ) -> Result<Option<Value>, Error> {
        let path = self.plugin_path(config, plugin)?;
        let ty = plugin_type(Some(plugin));
        let stdin = plugin_stdin(config, plugin, prev, call.port_mappings);
        let stdin = serde_json::to_vec(&stdin).map_err(|source| Error::Json {
            plugin: ty.clone(),
            what: "config cannot be encoded",
            source,
        })?;
        let cni_path = std::env::join_paths(&self.bin_dirs).map_err(|e| Error::Exec {
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        })?;
        tracing::debug!(plugin = %ty, command = call.command, pod = call.id, "running CNI plugin");
        let mut command = tokio::process::Command::new(&path);
        command
            .env("CNI_COMMAND", call.command)
            .env("CNI_CONTAINERID", call.id)
            .env("CNI_NETNS", &call.netns)
            .env("CNI_IFNAME", IFNAME)
            .env("CNI_ARGS", call.args)
            .env("CNI_PATH", cni_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = crate::blocking::spawn(&mut command).map_err(|source| Error::Exec {
            path: path.clone(),
            source,
        })?;
        let pipe = child.stdin.take();
        let run = async move {
            if let Some(mut pipe) = pipe {
                // A plugin may exit without reading its config; its
                // status then says what happened.
                let _ = pipe.write_all(&stdin).await;
            }
            child.wait_with_output().await
        };
        let output = tokio::time::timeout(self.timeout, run)
            .await
            .map_err(|_| Error::Timeout {
                plugin: ty.clone(),
                command: call.command.into(),
                timeout: self.timeout,
            })?
            .map_err(|source| Error::Exec {
                path: path.clone(),
                source,
            })?;
        if !output.status.success() {
            let e = PluginError::parse(&output.stdout, &output.stderr, &output.status.to_string());
            return Err(Error::Plugin {
                plugin: ty,
                command: call.command.into(),
                code: e.code,
                msg: e.msg,
                details: e.details,
            });
        }
        if output.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&output.stdout)
            .map(Some)
            .map_err(|source| Error::Json {
                plugin: ty,
                what: "returned an invalid result: invalid JSON",
                source,
            })
    }
}

/// Whether `path` is a namespace file (pinned by a bind mount, or under
/// /proc), rather than an empty file left where one was.
fn is_netns(path: &Path) -> bool {
    use nix::sys::statfs::{statfs, NSFS_MAGIC, PROC_SUPER_MAGIC};
    crate::blocking::run(|| statfs(path)).is_ok_and(|s| {
        let t = s.filesystem_type();
        t == NSFS_MAGIC || t == PROC_SUPER_MAGIC
    })
}
