//! RunPodSandbox: [`Pods::run`] plans a pod into its record, makes it step
//! by step, and undoes all of it on failure.

use std::path::Path;

use super::{name_key, now_ns, Pods, Reservation};
use crate::ids::SandboxId;
use crate::linux::PinOptions;
use crate::network::PodNetwork;
use crate::sandbox::record::{PidMode, Pod, PodConfig, PodState};
use crate::sandbox::{pod_cgroup_resources, Error, Namespace};
use crate::spec::Resources;

impl Pods {
    /// Makes a pod. On failure nothing of it is left.
    pub async fn run(&self, config: PodConfig) -> Result<Pod, crate::Error> {
        if config.name.is_empty() {
            return Err(Error::Refused("pod metadata needs a name".into()).into());
        }
        if let Some(maps) = &config.userns {
            maps.check().map_err(Error::Invalid)?;
            let host = [
                (config.host_network, "network"),
                (config.host_ipc, "IPC"),
                (config.pid == PidMode::Host, "PID"),
            ];
            if let Some((_, what)) = host.iter().find(|(on, _)| *on) {
                return Err(Error::Refused(format!(
                    "a pod with a user namespace cannot use the host's {what} namespace"
                ))
                .into());
            }
        }
        let key = name_key(&config);
        let id = SandboxId::random()?;
        let _reservation = self.reserve(&key, &config)?;
        let _lock = self.locks.lock(&id).await;
        let mut pod = Pod {
            dir: self.dir.join(id.as_str()),
            id,
            config,
            state: PodState::NotReady,
            created_at: now_ns(),
            creating: true,
            ..Pod::default()
        };
        self.plan(&mut pod);
        self.persist(&pod)?;
        crate::crash::point("pod.run.after_record");
        match self.make(&mut pod).await {
            Ok(()) => {
                pod.state = PodState::Ready;
                pod.creating = false;
                crate::crash::point("pod.run.before_ready");
                if let Err(e) = self.save(pod.clone()) {
                    self.discard(&mut pod).await;
                    return Err(e.into());
                }
                tracing::info!(pod = %pod.id, name = %pod.config.name, ips = ?pod.ips, "pod ready");
                Ok(pod)
            }
            Err(e) => {
                tracing::warn!(pod = %pod.id, error = %e, "pod failed: undoing it");
                self.discard(&mut pod).await;
                Err(e)
            }
        }
    }

    /// Undoes a pod that never became Ready, record included. Everything
    /// the plan names is undone, made or not (each undo tolerates absence).
    pub(super) async fn discard(&self, pod: &mut Pod) {
        if let Err(e) = self.teardown(pod, true).await {
            tracing::warn!(pod = %pod.id, error = %e, "undoing the failed pod");
        }
        if let Err(e) = self.remove_rest(pod) {
            tracing::warn!(pod = %pod.id, error = %e, "removing the failed pod");
        }
    }

    pub(super) fn reserve(&self, key: &str, config: &PodConfig) -> Result<Reservation<'_>, Error> {
        let taken = self
            .records
            .filtered(|p| name_key(&p.config) == key)
            .first()
            .map(|p| p.id.to_string());
        let mut reserved = self.reserved.lock().unwrap_or_else(|p| p.into_inner());
        if taken.is_some() || !reserved.insert(key.to_string()) {
            return Err(Error::NameTaken {
                name: format!(
                    "{}/{} (uid {}, attempt {})",
                    config.namespace, config.name, config.uid, config.attempt
                ),
                id: taken.unwrap_or_else(|| "being created".into()),
            });
        }
        Ok(Reservation {
            set: &self.reserved,
            key: key.to_string(),
        })
    }

    /// Writes into the record, before anything is made, every part the pod
    /// will have that a crash could leave behind: its cgroup (and whether
    /// it is ours), its /dev/shm, its network. Undoing tolerates parts
    /// that were never made, so a record that says more than was done is
    /// safe, and one that said less would leak.
    fn plan(&self, pod: &mut Pod) {
        if self.plumbing.has_cgroups() {
            let path = if pod.config.cgroup_parent.is_empty() {
                format!("/corten/{}", pod.id)
            } else {
                pod.config.cgroup_parent.clone()
            };
            pod.cgroup_created = !self.plumbing.cgroup_exists(&path);
            pod.cgroup = Some(path);
        }
        pod.shm = !pod.config.host_ipc;
        pod.network_attached = !pod.config.host_network;
    }

    async fn make(&self, pod: &mut Pod) -> Result<(), crate::Error> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { path, source }
        };
        crate::blocking::run(|| {
            std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
            std::fs::create_dir(&pod.dir).map_err(io(&pod.dir))
        })?;
        let config = pod.config.clone();
        pod.hostname = if config.hostname.is_empty() {
            nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "localhost".into())
        } else {
            config.hostname.clone()
        };

        if let Some(path) = &pod.cgroup {
            self.plumbing.create_cgroup(path)?;
            // Only a cgroup of ours: kubelet sizes its own pod cgroups
            // before it runs the pod (see `update_resources`).
            let limits = pod_cgroup_resources(&config.resources, &config.overhead);
            if pod.cgroup_created && limits != Resources::default() {
                self.plumbing.set_cgroup_resources(path, &limits)?;
            }
        }
        crate::crash::point("pod.run.after_cgroup");

        if pod.shm {
            self.plumbing.mount_shm(&pod.shm_path())?;
        }
        crate::crash::point("pod.run.after_shm");

        let mut namespaces = Vec::new();
        if config.userns.is_some() {
            // The user namespace first: it owns the others.
            namespaces.push(Namespace::User);
        }
        if !config.host_network {
            namespaces.extend([Namespace::Net, Namespace::Uts]);
        }
        if !config.host_ipc {
            namespaces.push(Namespace::Ipc);
        }
        let sysctls: Vec<(String, String)> = config
            .sysctls
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if namespaces.is_empty() {
            if let Some((name, _)) = sysctls.first() {
                return Err(Error::Refused(format!(
                    "sysctl {name} needs a namespace of the pod's own, but the pod uses the host's network and IPC"
                ))
                .into());
            }
        } else {
            let opts = PinOptions {
                hostname: namespaces
                    .contains(&Namespace::Uts)
                    .then(|| pod.hostname.clone()),
                namespaces,
                sysctls,
                id_mappings: config.userns.clone(),
            };
            self.plumbing.pin(&pod.dir, &opts).await?;
            pod.namespaces = opts.namespaces.clone();
        }
        crate::crash::point("pod.run.after_pin");

        if config.pid == PidMode::Pod {
            // Born in the pod's cgroup, so that removing the pod kills it
            // even if its pid was never recorded (a crash right here).
            let userns = pod.namespace_path(Namespace::User);
            let init = self
                .plumbing
                .spawn_init(pod.cgroup.as_deref(), userns.as_deref())
                .await?;
            pod.init = Some(init);
        }
        crate::crash::point("pod.run.after_init");

        if let Some(netns) = pod.namespace_path(Namespace::Net) {
            let network = PodNetwork {
                id: pod.id.to_string(),
                name: config.name.clone(),
                namespace: config.namespace.clone(),
                uid: config.uid.clone(),
                netns_path: netns,
                port_mappings: config.port_mappings.clone(),
            };
            pod.ips = self.plumbing.cni_add(&network).await?;
            pod.network_attached = true;
        }
        crate::crash::point("pod.run.after_cni_add");

        let files = self.plumbing.write_files(
            &pod.dir,
            &pod.hostname,
            config.dns.as_ref(),
            &pod.ips,
            config.host_network,
        )?;
        pod.files = Some(files);
        Ok(())
    }
}
