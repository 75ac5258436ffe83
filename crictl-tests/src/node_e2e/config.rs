//! The base KubeletConfiguration the suite is given (`--kubelet-config-file`):
//! the suite keeps it and sets on top the API server access, its fixed
//! ports, its static pod dir and its cgroup flags (those the fixture
//! overrides on kubelet's command line, see [`super::Node::run`]).
//!
//! As the suite's own default (test/e2e_node/services/kubelet.go): cgroup
//! root `/`, no serialized pulls, 10 s volume stats and file checks. As the
//! kubelet fixture's ([`crate::kubelet::config`]): cgroupfs, healthz on
//! loopback, pods resolving names on loopback, nothing of the machine's set
//! up or managed (iptables chains, kernel defaults, OOM score, image GC,
//! eviction: the disk and memory are shared with other work).

use std::path::Path;

use serde_json::{json, Value};

/// Where the configuration points.
pub struct Paths<'a> {
    pub runtime_socket: &'a Path,
    pub resolv_conf: &'a Path,
}

/// The configuration as JSON (kubelet reads YAML, and so JSON); kubelet
/// serves on `address` (the node's), its healthz on loopback.
pub fn kubelet_configuration(paths: &Paths<'_>, address: &str) -> Value {
    json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": address,
        "healthzBindAddress": "127.0.0.1",
        "containerRuntimeEndpoint": format!("unix://{}", paths.runtime_socket.display()),
        "resolvConf": paths.resolv_conf,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": "/",
        "cgroupsPerQOS": true,
        "enforceNodeAllocatable": ["pods"],
        "volumeStatsAggPeriod": "10s",
        "fileCheckFrequency": "10s",
        "serializeImagePulls": false,
        "failSwapOn": false,
        "failCgroupV1": false,
        "makeIPTablesUtilChains": false,
        "protectKernelDefaults": false,
        "oomScoreAdj": 0,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionPressureTransitionPeriod": "30s",
        // Absolute and tiny: the shared disk may be 99 % full, and kubelet
        // meeting a threshold removes every image it can.
        "evictionHard": {
            "memory.available": "1Mi",
            "nodefs.available": "1Mi",
            "nodefs.inodesFree": "1",
            "imagefs.available": "1Mi"
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_cgroupfs_root_cgroup_and_the_test_runtime() {
        let c = kubelet_configuration(
            &Paths {
                runtime_socket: Path::new("/t/cortend.sock"),
                resolv_conf: Path::new("/t/resolv.conf"),
            },
            "10.210.7.1",
        );
        assert_eq!(c["address"], "10.210.7.1");
        assert_eq!(c["healthzBindAddress"], "127.0.0.1");
        assert_eq!(c["containerRuntimeEndpoint"], "unix:///t/cortend.sock");
        assert_eq!(c["cgroupRoot"], "/");
        assert_eq!(c["cgroupDriver"], "cgroupfs");
        assert_eq!(c["makeIPTablesUtilChains"], false);
        assert_eq!(c["imageGCHighThresholdPercent"], 100);
    }
}
