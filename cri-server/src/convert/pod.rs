//! Pod sandboxes between CRI and the runtime.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use corten_cri_api::v1::{
    LinuxPodSandboxStatus, Namespace, NamespaceMode, NamespaceOption, PodIp, PodSandbox,
    PodSandboxConfig, PodSandboxMetadata, PodSandboxNetworkStatus, PodSandboxState,
    PodSandboxStatus, Protocol,
};
use corten_runtime::network::PortMapping;
use corten_runtime::sandbox::{DnsConfig, PidMode, Pod, PodConfig, PodState};
use tonic::Status;

use super::validate;

/// The runtime's pod config for a CRI `PodSandboxConfig`; what cannot be
/// honoured is refused here with the field it came from.
pub fn pod_config(c: &PodSandboxConfig, runtime_handler: &str) -> Result<PodConfig, Status> {
    let meta = c
        .metadata
        .as_ref()
        .ok_or_else(|| Status::invalid_argument("PodSandboxConfig.metadata is required"))?;
    if meta.name.is_empty() {
        return Err(Status::invalid_argument(
            "PodSandboxConfig.metadata.name is required",
        ));
    }
    validate::cni_name("PodSandboxConfig.metadata.name", &meta.name)?;
    validate::cni_name("PodSandboxConfig.metadata.namespace", &meta.namespace)?;
    validate::cni_name("PodSandboxConfig.metadata.uid", &meta.uid)?;
    validate::hostname(&c.hostname)?;
    let log_directory = match c.log_directory.as_str() {
        "" => None,
        dir if dir.contains('\0') => {
            return Err(Status::invalid_argument(format!(
                "PodSandboxConfig.log_directory {dir:?} holds NUL"
            )))
        }
        dir if dir.starts_with('/') => Some(PathBuf::from(dir)),
        dir => {
            return Err(Status::invalid_argument(format!(
                "PodSandboxConfig.log_directory must be absolute, got {dir:?}"
            )))
        }
    };
    let linux = c.linux.clone().unwrap_or_default();
    if let Some(s) = &linux.security_context {
        let field = |f: &str| format!("PodSandboxConfig.linux.security_context.{f}");
        for (f, v) in [
            ("run_as_user", &s.run_as_user),
            ("run_as_group", &s.run_as_group),
        ] {
            if let Some(v) = v {
                validate::id(&field(f), v.value)?;
            }
        }
        for g in &s.supplemental_groups {
            validate::id(&field("supplemental_groups"), *g)?;
        }
    }
    let sysctls = sorted(&linux.sysctls);
    validate::sysctls(&sysctls)?;
    let ns = linux
        .security_context
        .as_ref()
        .and_then(|s| s.namespace_options.clone())
        .unwrap_or_default();
    let mode = |field: &str, value: i32| {
        match NamespaceMode::try_from(value) {
        Ok(m @ (NamespaceMode::Pod | NamespaceMode::Container | NamespaceMode::Node)) => Ok(m),
        _ => Err(Status::invalid_argument(format!(
            "PodSandboxConfig.linux.security_context.namespace_options.{field}: unsupported mode {value}"
        ))),
    }
    };
    let network = mode("network", ns.network)?;
    let ipc = mode("ipc", ns.ipc)?;
    let pid = match mode("pid", ns.pid)? {
        NamespaceMode::Node => PidMode::Host,
        NamespaceMode::Pod => PidMode::Pod,
        _ => PidMode::Container,
    };
    let port_mappings = c
        .port_mappings
        .iter()
        .map(port_mapping)
        .collect::<Result<Vec<_>, _>>()?;
    validate::port_mappings(&port_mappings)?;
    Ok(PodConfig {
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        attempt: meta.attempt,
        hostname: c.hostname.clone(),
        log_directory,
        dns: c.dns_config.as_ref().map(|d| DnsConfig {
            servers: d.servers.clone(),
            searches: d.searches.clone(),
            options: d.options.clone(),
        }),
        port_mappings,
        labels: sorted(&c.labels),
        annotations: sorted(&c.annotations),
        cgroup_parent: linux.cgroup_parent.clone(),
        sysctls,
        host_network: network == NamespaceMode::Node,
        host_ipc: ipc == NamespaceMode::Node,
        pid,
        userns: super::userns::pod_userns(ns.userns_options.as_ref())?,
        runtime_handler: runtime_handler.to_string(),
        resources: pod_resources("PodSandboxConfig.linux.resources", linux.resources.as_ref())?,
        overhead: pod_resources("PodSandboxConfig.linux.overhead", linux.overhead.as_ref())?,
    })
}

/// A pod's `resources` or `overhead` (CRI `LinuxContainerResources`) in
/// runtime terms; errors name `field`.
pub fn pod_resources(
    field: &str,
    r: Option<&corten_cri_api::v1::LinuxContainerResources>,
) -> Result<corten_runtime::spec::Resources, Status> {
    super::container::resources(r).map_err(|e| {
        let message = e.message();
        let message = message.strip_prefix("linux.resources").unwrap_or(message);
        Status::invalid_argument(format!("{field}{message}"))
    })
}

/// The pod's user namespace as CRI says it: mode POD with its maps, or NODE.
fn userns_status(pod: &Pod) -> corten_cri_api::v1::UserNamespace {
    let ids = |maps: &[corten_runtime::linux::IdMapping]| {
        maps.iter()
            .map(|m| corten_cri_api::v1::IdMapping {
                host_id: m.host_id,
                container_id: m.container_id,
                length: m.size,
            })
            .collect()
    };
    match &pod.config.userns {
        Some(maps) => corten_cri_api::v1::UserNamespace {
            mode: NamespaceMode::Pod as i32,
            uids: ids(&maps.uids),
            gids: ids(&maps.gids),
        },
        None => corten_cri_api::v1::UserNamespace {
            mode: NamespaceMode::Node as i32,
            ..Default::default()
        },
    }
}

fn port_mapping(p: &corten_cri_api::v1::PortMapping) -> Result<PortMapping, Status> {
    let port = |field: &str, v: i32, zero_ok: bool| match u16::try_from(v) {
        Ok(p) if p > 0 || zero_ok => Ok(p),
        _ => Err(Status::invalid_argument(format!(
            "PodSandboxConfig.port_mappings.{field}: {v} is not a port"
        ))),
    };
    let protocol = Protocol::try_from(p.protocol).map_err(|_| {
        Status::invalid_argument(format!(
            "PodSandboxConfig.port_mappings.protocol: unknown protocol {}",
            p.protocol
        ))
    })?;
    Ok(PortMapping {
        container_port: port("container_port", p.container_port, false)?,
        host_port: port("host_port", p.host_port, true)?,
        protocol: protocol.as_str_name().to_ascii_lowercase(),
        host_ip: p.host_ip.clone(),
    })
}

fn sorted(m: &HashMap<String, String>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn unsorted(m: &BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The CRI state of a pod.
pub fn state(s: PodState) -> PodSandboxState {
    match s {
        PodState::Ready => PodSandboxState::SandboxReady,
        PodState::NotReady => PodSandboxState::SandboxNotready,
    }
}

fn metadata(pod: &Pod) -> PodSandboxMetadata {
    PodSandboxMetadata {
        name: pod.config.name.clone(),
        uid: pod.config.uid.clone(),
        namespace: pod.config.namespace.clone(),
        attempt: pod.config.attempt,
    }
}

/// The CRI list entry of a pod.
pub fn pod_sandbox(pod: &Pod) -> PodSandbox {
    PodSandbox {
        id: pod.id.to_string(),
        metadata: Some(metadata(pod)),
        state: state(pod.state) as i32,
        created_at: pod.created_at,
        labels: unsorted(&pod.config.labels),
        annotations: unsorted(&pod.config.annotations),
        runtime_handler: pod.config.runtime_handler.clone(),
    }
}

/// The CRI status of a pod.
pub fn pod_status(pod: &Pod) -> PodSandboxStatus {
    let mode = |host: bool| {
        if host {
            NamespaceMode::Node
        } else {
            NamespaceMode::Pod
        }
    };
    let pid = match pod.config.pid {
        PidMode::Container => NamespaceMode::Container,
        PidMode::Pod => NamespaceMode::Pod,
        PidMode::Host => NamespaceMode::Node,
    };
    let mut ips = pod.ips.iter().map(ToString::to_string);
    PodSandboxStatus {
        id: pod.id.to_string(),
        metadata: Some(metadata(pod)),
        state: state(pod.state) as i32,
        created_at: pod.created_at,
        network: Some(PodSandboxNetworkStatus {
            ip: ips.next().unwrap_or_default(),
            additional_ips: ips.map(|ip| PodIp { ip }).collect(),
        }),
        linux: Some(LinuxPodSandboxStatus {
            namespaces: Some(Namespace {
                options: Some(NamespaceOption {
                    network: mode(pod.config.host_network) as i32,
                    pid: pid as i32,
                    ipc: mode(pod.config.host_ipc) as i32,
                    target_id: String::new(),
                    userns_options: Some(userns_status(pod)),
                }),
            }),
        }),
        labels: unsorted(&pod.config.labels),
        annotations: unsorted(&pod.config.annotations),
        runtime_handler: pod.config.runtime_handler.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corten_cri_api::v1::{LinuxPodSandboxConfig, LinuxSandboxSecurityContext};

    fn config() -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "web".into(),
                uid: "u1".into(),
                namespace: "default".into(),
                attempt: 2,
            }),
            hostname: "web-0".into(),
            port_mappings: vec![corten_cri_api::v1::PortMapping {
                protocol: Protocol::Udp as i32,
                container_port: 53,
                host_port: 5353,
                host_ip: "127.0.0.1".into(),
            }],
            linux: Some(LinuxPodSandboxConfig {
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Node as i32,
                        pid: NamespaceMode::Container as i32,
                        ipc: NamespaceMode::Pod as i32,
                        ..NamespaceOption::default()
                    }),
                    ..LinuxSandboxSecurityContext::default()
                }),
                ..LinuxPodSandboxConfig::default()
            }),
            ..PodSandboxConfig::default()
        }
    }

    #[test]
    fn cri_config_to_runtime_config() {
        let c = pod_config(&config(), "").expect("valid");
        assert_eq!((c.name.as_str(), c.attempt), ("web", 2));
        assert!(c.host_network && !c.host_ipc);
        assert_eq!(c.pid, PidMode::Container);
        assert_eq!(c.port_mappings[0].protocol, "udp");
        assert_eq!(c.port_mappings[0].host_port, 5353);
    }

    #[test]
    fn bad_fields_are_named() {
        let mut c = config();
        c.metadata = None;
        assert!(pod_config(&c, "")
            .expect_err("refused")
            .message()
            .contains("metadata"));
        let mut c = config();
        c.port_mappings[0].container_port = 70000;
        let e = pod_config(&c, "").expect_err("refused");
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("container_port"), "{}", e.message());
        let mut c = config();
        c.log_directory = "relative/dir".into();
        assert!(pod_config(&c, "").is_err());
    }

    #[test]
    fn a_user_namespace_goes_to_the_config_and_comes_back_in_the_status() {
        let ids = vec![corten_cri_api::v1::IdMapping {
            host_id: 100_000,
            container_id: 0,
            length: 65_536,
        }];
        let mut c = config();
        if let Some(ns) = c
            .linux
            .as_mut()
            .and_then(|l| l.security_context.as_mut())
            .and_then(|s| s.namespace_options.as_mut())
        {
            ns.network = NamespaceMode::Pod as i32;
            ns.userns_options = Some(corten_cri_api::v1::UserNamespace {
                mode: NamespaceMode::Pod as i32,
                uids: ids.clone(),
                gids: ids.clone(),
            });
        }
        let pc = pod_config(&c, "").expect("valid");
        let maps = pc.userns.clone().expect("maps");
        assert_eq!(maps.host_root(), Some((100_000, 100_000)));
        let pod = Pod {
            config: pc,
            ..Pod::default()
        };
        let opts = pod_status(&pod)
            .linux
            .and_then(|l| l.namespaces)
            .and_then(|n| n.options)
            .and_then(|o| o.userns_options)
            .expect("userns in the status");
        assert_eq!(opts.mode, NamespaceMode::Pod as i32);
        assert_eq!(opts.uids, ids);
        let host = pod_status(&Pod::default())
            .linux
            .and_then(|l| l.namespaces)
            .and_then(|n| n.options)
            .and_then(|o| o.userns_options)
            .expect("userns in the status");
        assert_eq!(host.mode, NamespaceMode::Node as i32);
    }

    #[test]
    fn status_reports_ips_and_namespaces() {
        let pod = Pod {
            id: corten_runtime::SandboxId::parse("abc").expect("a pod id"),
            config: pod_config(&config(), "").expect("valid"),
            ips: vec![
                "10.0.0.2".parse().expect("ip"),
                "fd00::2".parse().expect("ip"),
            ],
            ..Pod::default()
        };
        let s = pod_status(&pod);
        let net = s.network.expect("network");
        assert_eq!(net.ip, "10.0.0.2");
        assert_eq!(net.additional_ips[0].ip, "fd00::2");
        let opts = s.linux.and_then(|l| l.namespaces).and_then(|n| n.options);
        assert_eq!(opts.map(|o| o.network), Some(NamespaceMode::Node as i32));
    }
}
