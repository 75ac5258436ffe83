//! User namespaces between CRI and the runtime: a pod's `userns_options`
//! (mode POD with its uid/gid maps: a user namespace of the pod's own;
//! NODE or none: the host's) and a container's, which must be its pod's.

use corten_cri_api::v1 as cri;
use corten_runtime::linux::{IdMapping, IdMappings};
use corten_runtime::spec::UserNamespace;
use tonic::Status;

use super::validate::invalid;

/// Where a pod's options are.
pub const POD_FIELD: &str =
    "PodSandboxConfig.linux.security_context.namespace_options.userns_options";
/// Where a container's options are.
pub const CONTAINER_FIELD: &str = "config.linux.security_context.namespace_options.userns_options";

/// The maps of a pod's user namespace, or `None` for the host's. Modes
/// CONTAINER and TARGET are refused (kubelet sends only POD and NODE), as
/// are maps the kernel or a container could not use.
pub fn pod_userns(ns: Option<&cri::UserNamespace>) -> Result<Option<IdMappings>, Status> {
    mappings(POD_FIELD, ns)
}

/// The maps a container's options ask for (`None`: the host's), checked
/// as a pod's are.
fn mappings(field: &str, ns: Option<&cri::UserNamespace>) -> Result<Option<IdMappings>, Status> {
    let Some(ns) = ns else {
        return Ok(None);
    };
    let mode = cri::NamespaceMode::try_from(ns.mode).map_err(|_| {
        invalid(
            &format!("{field}.mode"),
            format_args!("{} is unknown", ns.mode),
        )
    })?;
    let maps = IdMappings {
        uids: ns.uids.iter().map(mapping).collect(),
        gids: ns.gids.iter().map(mapping).collect(),
    };
    match mode {
        cri::NamespaceMode::Node if maps.uids.is_empty() && maps.gids.is_empty() => Ok(None),
        cri::NamespaceMode::Node => Err(invalid(
            field,
            "has uid or gid mappings with mode NODE (mappings are for mode POD)",
        )),
        cri::NamespaceMode::Pod => {
            maps.check().map_err(|e| invalid(field, e))?;
            Ok(Some(maps))
        }
        other => Err(invalid(
            &format!("{field}.mode"),
            format_args!(
                "{} is not supported (only POD and NODE)",
                other.as_str_name()
            ),
        )),
    }
}

fn mapping(m: &cri::IdMapping) -> IdMapping {
    IdMapping {
        container_id: m.container_id,
        host_id: m.host_id,
        size: m.length,
    }
}

/// Refuses a container config that cannot join its pod's user namespace
/// (`pod`): options other than the pod's, or the host's pid namespace.
pub fn check_container_config(
    c: &cri::ContainerConfig,
    pod: Option<&UserNamespace>,
) -> Result<(), Status> {
    let ns = c
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref());
    if pod.is_some() && ns.is_some_and(|n| n.pid == cri::NamespaceMode::Node as i32) {
        return Err(invalid(
            "config.linux.security_context.namespace_options.pid",
            "is NODE, but the pod has a user namespace of its own",
        ));
    }
    check_container(ns.and_then(|n| n.userns_options.as_ref()), pod)
}

/// Refuses a container whose user namespace options are not its pod's:
/// it joins the pod's user namespace (absent options mean the pod's too).
fn check_container(
    ns: Option<&cri::UserNamespace>,
    pod: Option<&UserNamespace>,
) -> Result<(), Status> {
    if ns.is_none() {
        return Ok(());
    }
    let asked = mappings(CONTAINER_FIELD, ns)?;
    match (asked, pod) {
        (None, None) => Ok(()),
        (Some(maps), Some(pod)) if maps == pod.mappings => Ok(()),
        (Some(_), Some(_)) => Err(invalid(
            CONTAINER_FIELD,
            "has mappings other than its pod's user namespace",
        )),
        (Some(_), None) => Err(invalid(
            CONTAINER_FIELD,
            "asks for mode POD, but the pod uses the host's user namespace",
        )),
        (None, Some(_)) => Err(invalid(
            CONTAINER_FIELD,
            "asks for the host's user namespace, but its pod has one of its own",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn one(c: u32, h: u32, l: u32) -> Vec<cri::IdMapping> {
        vec![cri::IdMapping {
            container_id: c,
            host_id: h,
            length: l,
        }]
    }

    fn pod(uids: Vec<cri::IdMapping>, gids: Vec<cri::IdMapping>) -> cri::UserNamespace {
        cri::UserNamespace {
            mode: cri::NamespaceMode::Pod as i32,
            uids,
            gids,
        }
    }

    fn refused(r: Result<impl std::fmt::Debug, Status>, says: &str) {
        let e = r.expect_err(says);
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains(says), "{says}: {}", e.message());
    }

    #[test]
    fn pod_modes_and_mappings() {
        assert_eq!(pod_userns(None).expect("none"), None);
        let node = cri::UserNamespace {
            mode: cri::NamespaceMode::Node as i32,
            ..Default::default()
        };
        assert_eq!(pod_userns(Some(&node)).expect("node"), None);
        let good = pod(one(0, 100_000, 65_536), one(0, 100_000, 65_536));
        let maps = pod_userns(Some(&good)).expect("pod").expect("maps");
        assert_eq!(maps.host_root(), Some((100_000, 100_000)));

        for mode in [cri::NamespaceMode::Container, cri::NamespaceMode::Target] {
            let ns = cri::UserNamespace {
                mode: mode as i32,
                ..Default::default()
            };
            refused(pod_userns(Some(&ns)), "userns_options.mode");
        }
        refused(
            pod_userns(Some(&pod(vec![], one(0, 1, 1)))),
            "uid map: is empty",
        );
        refused(
            pod_userns(Some(&pod(one(0, 1000, 0), one(0, 1, 1)))),
            "size 0",
        );
        refused(
            pod_userns(Some(&pod(one(0, u32::MAX, 2), one(0, 1, 1)))),
            "past 2^32",
        );
        refused(
            pod_userns(Some(&pod(one(1, 1000, 10), one(0, 1, 1)))),
            "container id 0 (root) is not mapped",
        );
        let mut two = one(0, 1000, 100_000);
        two.extend(one(0, 2000, 100_000));
        refused(pod_userns(Some(&pod(two.clone(), two))), "has 2 ranges");
        let node_maps = cri::UserNamespace {
            mode: cri::NamespaceMode::Node as i32,
            uids: one(0, 1, 1),
            gids: vec![],
        };
        refused(pod_userns(Some(&node_maps)), "mode NODE");
    }

    #[test]
    fn containers_join_their_pods() {
        let ns = pod(one(0, 100_000, 65_536), one(0, 100_000, 65_536));
        let maps = pod_userns(Some(&ns)).expect("pod").expect("maps");
        let pods = UserNamespace {
            path: "/run/p/user".into(),
            mappings: maps,
        };
        check_container(None, Some(&pods)).expect("absent: the pod's");
        check_container(Some(&ns), Some(&pods)).expect("the same");
        refused(
            check_container(
                Some(&pod(one(0, 200_000, 65_536), one(0, 100_000, 65_536))),
                Some(&pods),
            ),
            "other than its pod's",
        );
        refused(check_container(Some(&ns), None), "host's user namespace");
        let node = cri::UserNamespace {
            mode: cri::NamespaceMode::Node as i32,
            ..Default::default()
        };
        refused(check_container(Some(&node), Some(&pods)), "one of its own");
        check_container(Some(&node), None).expect("host and host");
    }
}
