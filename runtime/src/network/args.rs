//! What a pod contributes to a plugin invocation: its identity and ports,
//! `CNI_ARGS`, and each plugin's stdin.

use std::path::PathBuf;

use serde_json::{json, Map, Value};

use super::{Error, NetworkConfig};

/// A port of the pod published on the host (CRI `PortMapping`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortMapping {
    /// The port inside the pod.
    pub container_port: u16,
    /// The port on the host; 0 means not published.
    pub host_port: u16,
    /// `tcp`, `udp` or `sctp` (any case).
    pub protocol: String,
    /// The host address to bind; empty for all.
    pub host_ip: String,
}

/// What CNI needs to know about a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNetwork {
    /// The sandbox id (CNI container id, cache key).
    pub id: String,
    /// The pod name.
    pub name: String,
    /// The pod namespace.
    pub namespace: String,
    /// The pod UID.
    pub uid: String,
    /// The pinned network namespace.
    pub netns_path: PathBuf,
    /// Ports to publish.
    pub port_mappings: Vec<PortMapping>,
}

/// The stdin of one plugin: its config with the network's name and version,
/// the previous result and the runtime config it asked for.
pub(crate) fn plugin_stdin(
    config: &NetworkConfig,
    plugin: &Value,
    prev: Option<&Value>,
    ports: &Value,
) -> Value {
    let mut conf: Map<String, Value> = plugin.as_object().cloned().unwrap_or_default();
    conf.insert("name".into(), json!(config.name));
    conf.insert("cniVersion".into(), json!(config.cni_version));
    if let Some(prev) = prev {
        conf.insert("prevResult".into(), prev.clone());
    }
    let wants_ports = plugin
        .pointer("/capabilities/portMappings")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if wants_ports && ports.as_array().is_some_and(|p| !p.is_empty()) {
        conf.insert("runtimeConfig".into(), json!({ "portMappings": ports }));
    }
    Value::Object(conf)
}

pub(crate) fn plugin_type(plugin: Option<&Value>) -> String {
    plugin
        .and_then(|p| p.get("type"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// `CNI_ARGS` for a pod; without the pod (DEL with no cache) only the id.
pub(crate) fn cni_args(id: &str, pod: Option<&PodNetwork>) -> String {
    let mut args = String::from("IgnoreUnknown=1");
    if let Some(pod) = pod {
        args.push_str(&format!(
            ";K8S_POD_NAMESPACE={};K8S_POD_NAME={}",
            pod.namespace, pod.name
        ));
    }
    args.push_str(&format!(";K8S_POD_INFRA_CONTAINER_ID={id}"));
    if let Some(pod) = pod {
        args.push_str(&format!(";K8S_POD_UID={}", pod.uid));
    }
    args
}

/// `runtimeConfig.portMappings` for the published ports.
pub(crate) fn port_mappings_json(ports: &[PortMapping]) -> Value {
    Value::Array(
        ports
            .iter()
            .filter(|p| p.host_port != 0)
            .map(|p| {
                let mut m = json!({
                    "hostPort": p.host_port,
                    "containerPort": p.container_port,
                    "protocol": p.protocol.to_ascii_lowercase(),
                });
                if !p.host_ip.is_empty() {
                    m["hostIP"] = json!(p.host_ip);
                }
                m
            })
            .collect(),
    )
}

pub(crate) fn check_id(id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidPodId(id.into()))
    }
}

/// Whether a spec version string is at least `major.minor`.
pub(crate) fn version_at_least(version: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let v = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    v >= (major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> PodNetwork {
        PodNetwork {
            id: "abc".into(),
            name: "web".into(),
            namespace: "default".into(),
            uid: "u-1".into(),
            netns_path: "/run/netns/x".into(),
            port_mappings: vec![
                PortMapping {
                    container_port: 80,
                    host_port: 8080,
                    protocol: "TCP".into(),
                    host_ip: "127.0.0.1".into(),
                },
                PortMapping {
                    container_port: 53,
                    host_port: 0,
                    protocol: "UDP".into(),
                    host_ip: String::new(),
                },
                PortMapping {
                    container_port: 53,
                    host_port: 5353,
                    protocol: "UDP".into(),
                    host_ip: String::new(),
                },
            ],
        }
    }

    #[test]
    fn cni_args_carry_the_pod() {
        assert_eq!(
            cni_args("abc", Some(&pod())),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;\
             K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1"
        );
        assert_eq!(
            cni_args("abc", None),
            "IgnoreUnknown=1;K8S_POD_INFRA_CONTAINER_ID=abc"
        );
    }

    #[test]
    fn only_published_ports_are_mapped() {
        assert_eq!(
            port_mappings_json(&pod().port_mappings),
            json!([
                {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"},
                {"hostPort": 5353, "containerPort": 53, "protocol": "udp"},
            ])
        );
    }

    #[test]
    fn stdin_gets_name_version_prev_result_and_asked_for_ports() {
        let config = NetworkConfig {
            path: "x".into(),
            name: "net".into(),
            cni_version: "1.0.0".into(),
            plugins: vec![],
        };
        let ports = port_mappings_json(&pod().port_mappings);
        let prev = json!({"cniVersion": "1.0.0", "ips": []});
        let bridge = json!({"type": "bridge", "bridge": "br0"});
        let s = plugin_stdin(&config, &bridge, None, &ports);
        assert_eq!(
            s,
            json!({"type": "bridge", "bridge": "br0", "name": "net", "cniVersion": "1.0.0"})
        );
        let portmap = json!({"type": "portmap", "capabilities": {"portMappings": true}});
        let s = plugin_stdin(&config, &portmap, Some(&prev), &ports);
        assert_eq!(s["prevResult"], prev);
        assert_eq!(s["runtimeConfig"]["portMappings"], ports);
        let s = plugin_stdin(&config, &portmap, None, &json!([]));
        assert!(s.get("runtimeConfig").is_none(), "{s}");
    }

    #[test]
    fn pod_ids_must_be_plain_names() {
        for ok in ["abc", "a-b_c.d", "0123456789abcdef"] {
            assert!(check_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "../x", "a b"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(version_at_least("1.0.0", (0, 4)));
        assert!(version_at_least("0.4.0", (0, 4)));
        assert!(version_at_least("0.10.0", (0, 4)));
        assert!(!version_at_least("0.3.1", (0, 4)));
        assert!(!version_at_least("", (0, 4)));
    }
}
