//! The KubeletConfiguration of a test kubelet: standalone (no API server),
//! its servers on 127.0.0.1 only, anonymous and AlwaysAllow, cgroupfs under
//! the fixture's own cgroup root, nothing set up on the host that is not
//! the test's (no iptables chains, no system or kubelet cgroups, no OOM
//! score of its own, no image GC or eviction acting on the machine's disk).

use std::path::Path;

use serde_json::{json, Value};

/// The kubelet's ports on 127.0.0.1.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// The authenticated (here: anonymous, AlwaysAllow) HTTPS server.
    pub secure: u16,
    /// The read-only HTTP server (`/pods`, `/metrics`, `/metrics/probes`).
    pub read_only: u16,
    /// `/healthz`.
    pub healthz: u16,
}

/// Log rotation settings (`containerLogMaxSize` and friends).
#[derive(Debug, Clone)]
pub struct LogRotation {
    /// e.g. `"2Ki"`.
    pub max_size: String,
    /// At least 2.
    pub max_files: u32,
    /// How often kubelet looks at log sizes, e.g. `"3s"` (its minimum).
    pub monitor_interval: String,
}

/// Where the configuration points.
pub struct Paths<'a> {
    pub runtime_socket: &'a Path,
    pub manifests: &'a Path,
    pub pod_logs: &'a Path,
    pub volume_plugins: &'a Path,
    pub resolv_conf: &'a Path,
}

/// The configuration as JSON (kubelet reads YAML, and so JSON).
pub fn kubelet_configuration(
    paths: &Paths<'_>,
    ports: Ports,
    cgroup_root: &str,
    rotation: Option<&LogRotation>,
) -> Value {
    let mut config = json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": "127.0.0.1",
        "port": ports.secure,
        "readOnlyPort": ports.read_only,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": ports.healthz,
        "authentication": {
            "anonymous": {"enabled": true},
            "webhook": {"enabled": false},
            "x509": {}
        },
        "authorization": {"mode": "AlwaysAllow"},
        "containerRuntimeEndpoint": format!("unix://{}", paths.runtime_socket.display()),
        "staticPodPath": paths.manifests,
        "podLogsDir": paths.pod_logs,
        "volumePluginDir": paths.volume_plugins,
        "resolvConf": paths.resolv_conf,
        // Manifests are also watched with inotify; this is the fallback.
        "fileCheckFrequency": "2s",
        "syncFrequency": "10s",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root,
        "cgroupsPerQOS": true,
        "enforceNodeAllocatable": ["pods"],
        // Empty: kubelet moves no process of the machine into a cgroup.
        "kubeletCgroups": "",
        "systemCgroups": "",
        "failSwapOn": false,
        "failCgroupV1": false,
        "makeIPTablesUtilChains": false,
        "protectKernelDefaults": false,
        "oomScoreAdj": 0,
        "registerNode": false,
        // The machine's disk and memory are not the test's to manage.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "1Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%"
        },
        "serializeImagePulls": true,
        "logging": {"verbosity": 2},
    });
    if let (Some(r), Some(obj)) = (rotation, config.as_object_mut()) {
        obj.insert("containerLogMaxSize".into(), json!(r.max_size));
        obj.insert("containerLogMaxFiles".into(), json!(r.max_files));
        obj.insert(
            "containerLogMonitorInterval".into(),
            json!(r.monitor_interval),
        );
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_to_loopback_only_and_points_at_the_test_runtime() {
        let p = Path::new("/t");
        let paths = Paths {
            runtime_socket: &p.join("cortend.sock"),
            manifests: &p.join("manifests"),
            pod_logs: &p.join("logs"),
            volume_plugins: &p.join("plugins"),
            resolv_conf: &p.join("resolv.conf"),
        };
        let ports = Ports {
            secure: 1,
            read_only: 2,
            healthz: 3,
        };
        let c = kubelet_configuration(&paths, ports, "/corten-kubelet-x", None);
        assert_eq!(c["address"], "127.0.0.1");
        assert_eq!(c["healthzBindAddress"], "127.0.0.1");
        assert_eq!(c["containerRuntimeEndpoint"], "unix:///t/cortend.sock");
        assert_eq!(c["cgroupRoot"], "/corten-kubelet-x");
        assert_eq!(c["systemCgroups"], "");
        assert_eq!(c["makeIPTablesUtilChains"], false);
        assert!(c.get("containerLogMaxSize").is_none());
        let r = LogRotation {
            max_size: "2Ki".into(),
            max_files: 3,
            monitor_interval: "3s".into(),
        };
        let c = kubelet_configuration(&paths, ports, "/x", Some(&r));
        assert_eq!(c["containerLogMaxSize"], "2Ki");
        assert_eq!(c["containerLogMaxFiles"], 3);
    }
}
