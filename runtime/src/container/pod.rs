//! The pod's part of a container: namespaces to join, hostname, the pod's
//! files and /dev/shm, the cgroup beneath the pod's; and the host side of
//! its mounts.

use std::path::PathBuf;

use super::Error;
use crate::sandbox::PodContext;
use crate::spec::{ContainerConfig, MountConfig, NsMode};

/// The pod's side of a container's config: namespaces to join, hostname,
/// the pod's files and /dev/shm, the cgroup beneath the pod's.
pub(super) fn apply_pod(config: &mut ContainerConfig, pod: &PodContext) {
    config.namespaces.network = pod.network.clone();
    config.namespaces.ipc = pod.ipc.clone();
    config.namespaces.uts = pod.uts.clone();
    config.namespaces.pid = pod.pid.clone();
    config.namespaces.user = pod.user.clone();
    config.hostname = match pod.uts {
        // A joined UTS namespace has the pod's hostname already.
        NsMode::New if !pod.hostname.is_empty() => Some(pod.hostname.clone()),
        _ => None,
    };
    config.hostname_env = (!pod.hostname.is_empty()).then(|| pod.hostname.clone());
    let ro = config.security.readonly_rootfs;
    let mut pod_mounts: Vec<(PathBuf, &str, bool)> = Vec::new();
    if let Some(files) = &pod.files {
        pod_mounts.push((files.hostname.clone(), "/etc/hostname", ro));
        pod_mounts.push((files.hosts.clone(), "/etc/hosts", ro));
        pod_mounts.push((files.resolv_conf.clone(), "/etc/resolv.conf", ro));
    }
    if let Some(shm) = &pod.shm {
        pod_mounts.push((shm.clone(), "/dev/shm", false));
    }
    for (host_path, dest, readonly) in pod_mounts {
        // The container's own mount of the same path wins.
        if config
            .mounts
            .iter()
            .any(|m| m.container_path.trim_end_matches('/') == dest)
        {
            continue;
        }
        config.mounts.push(MountConfig {
            host_path,
            container_path: dest.to_string(),
            readonly,
            ..MountConfig::default()
        });
    }
    let parent = pod.cgroup_parent.trim_end_matches('/');
    config.cgroup_path = if parent.is_empty() {
        format!("/corten/{}", config.id)
    } else {
        format!("{parent}/{}", config.id)
    };
}

/// Creates the host directories of bind mounts that do not exist yet, as
/// containerd and kubelet do (a missing source would fail the mount).
pub(super) fn create_missing_sources(id: &str, mounts: &[MountConfig]) -> Result<(), Error> {
    // Each source once: 10,000 mounts of one directory are one lookup.
    let mut seen = std::collections::HashSet::new();
    // An image volume's source is made by the container's shim.
    for m in mounts.iter().filter(|m| m.image.is_none()) {
        if !seen.insert(m.host_path.as_path()) {
            continue;
        }
        if std::fs::symlink_metadata(&m.host_path).is_err() {
            std::fs::create_dir_all(&m.host_path).map_err(|source| Error::Io {
                id: id.to_string(),
                path: m.host_path.clone(),
                source,
            })?;
        }
    }
    Ok(())
}

/// The daemon's own `oom_score_adj`: without CAP_SYS_RESOURCE nothing lower
/// can be set, so lower requests are raised to it.
pub(super) fn own_oom_score_adj() -> Option<i32> {
    std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::PodFiles;

    #[test]
    fn pod_context_shapes_the_config() {
        let pod = PodContext {
            pod_id: crate::ids::SandboxId::parse("p1").expect("a pod id"),
            hostname: "web-0".into(),
            network: NsMode::Path("/run/p1/net".into()),
            ipc: NsMode::Path("/run/p1/ipc".into()),
            uts: NsMode::Path("/run/p1/uts".into()),
            pid: NsMode::New,
            files: Some(PodFiles {
                hostname: "/run/p1/hostname".into(),
                hosts: "/run/p1/hosts".into(),
                resolv_conf: "/run/p1/resolv.conf".into(),
            }),
            shm: Some("/run/p1/shm".into()),
            cgroup_parent: "/corten/p1/".into(),
            ..PodContext::default()
        };
        let mut c = ContainerConfig {
            id: "c1".into(),
            mounts: vec![MountConfig {
                host_path: "/srv/hosts".into(),
                container_path: "/etc/hosts".into(),
                ..MountConfig::default()
            }],
            ..ContainerConfig::default()
        };
        c.security.readonly_rootfs = true;
        apply_pod(&mut c, &pod);
        assert_eq!(c.namespaces.network, NsMode::Path("/run/p1/net".into()));
        assert_eq!(c.namespaces.pid, NsMode::New);
        assert_eq!(c.hostname, None, "the pod's UTS namespace has it");
        assert_eq!(c.hostname_env.as_deref(), Some("web-0"));
        assert_eq!(c.cgroup_path, "/corten/p1/c1");
        let dests: Vec<(&str, bool)> = c
            .mounts
            .iter()
            .map(|m| (m.container_path.as_str(), m.readonly))
            .collect();
        assert_eq!(
            dests,
            vec![
                ("/etc/hosts", false),
                ("/etc/hostname", true),
                ("/etc/resolv.conf", true),
                ("/dev/shm", false)
            ]
        );
        assert_eq!(c.mounts[0].host_path, PathBuf::from("/srv/hosts"));

        let mut alone = ContainerConfig {
            id: "c2".into(),
            ..ContainerConfig::default()
        };
        let no_pod = PodContext {
            hostname: "solo".into(),
            ..PodContext::default()
        };
        apply_pod(&mut alone, &no_pod);
        assert_eq!(alone.hostname.as_deref(), Some("solo"));
        assert_eq!(alone.hostname_env.as_deref(), Some("solo"));
        assert_eq!(alone.cgroup_path, "/corten/c2");
        assert!(alone.mounts.is_empty());
    }
}
