//! Resource usage from the runtime into CRI stats messages.

use std::collections::HashMap;
use std::path::Path;

use corten_cri_api::v1 as cri;
use corten_runtime::cgroups::CgroupStats;
use corten_runtime::linux::InterfaceCounters;
use corten_runtime::{ContainerUsage, NetworkStats, PodStats};

use super::pod::pod_sandbox;

fn value(v: u64) -> Option<cri::UInt64Value> {
    Some(cri::UInt64Value { value: v })
}

fn ts(ns: u64) -> i64 {
    i64::try_from(ns).unwrap_or(i64::MAX)
}

/// CPU usage of a cgroup snapshot, with the rate if known.
pub fn cpu(c: &CgroupStats, nano_cores: Option<u64>) -> cri::CpuUsage {
    cri::CpuUsage {
        timestamp: ts(c.timestamp_ns),
        usage_core_nano_seconds: value(c.cpu_usage_ns),
        // Unknown is None, not 0: kubelet then computes the rate itself.
        usage_nano_cores: nano_cores.and_then(value),
        // Pressure stall information is not read yet.
        psi: None,
    }
}

/// Memory usage of a cgroup snapshot.
pub fn memory(c: &CgroupStats) -> cri::MemoryUsage {
    cri::MemoryUsage {
        timestamp: ts(c.timestamp_ns),
        working_set_bytes: value(c.memory_working_set_bytes),
        available_bytes: c
            .memory_limit_bytes
            .map(|l| l.saturating_sub(c.memory_working_set_bytes))
            .and_then(value),
        usage_bytes: value(c.memory_usage_bytes),
        rss_bytes: value(c.memory_rss_bytes),
        page_faults: value(c.page_faults),
        major_page_faults: value(c.major_page_faults),
        psi: None,
    }
}

/// The CRI stats of one container; `layers_dir` is where writable layers live.
pub fn container_stats(u: &ContainerUsage, layers_dir: &Path) -> cri::ContainerStats {
    let (r, s) = (&u.record, &u.stats);
    let now = s
        .cgroup
        .as_ref()
        .map(|c| ts(c.timestamp_ns))
        .unwrap_or_else(now_ns);
    let labels: HashMap<String, String> = r.labels.clone().into_iter().collect();
    let annotations: HashMap<String, String> = r.annotations.clone().into_iter().collect();
    cri::ContainerStats {
        attributes: Some(cri::ContainerAttributes {
            id: r.id.to_string(),
            metadata: Some(cri::ContainerMetadata {
                name: r.name.clone(),
                attempt: r.attempt,
            }),
            labels,
            annotations,
        }),
        cpu: s.cgroup.as_ref().map(|c| cpu(c, u.nano_cores)),
        memory: s.cgroup.as_ref().map(memory),
        // Block I/O (and its pressure) is not read yet.
        io: None,
        writable_layer: Some(cri::FilesystemUsage {
            timestamp: now,
            fs_id: Some(cri::FilesystemIdentifier {
                mountpoint: layers_dir.display().to_string(),
            }),
            used_bytes: value(s.writable_layer.bytes),
            inodes_used: value(s.writable_layer.inodes),
        }),
        swap: None,
    }
}

/// A pod's traffic: CNI names its interface in the pod `eth0`, which is
/// the default one (as containerd reports it); every one is listed.
/// `None` when the pod has no interface but loopback (its network is being
/// torn down, or CNI gave it none): kubelet v1.34 reads the default
/// interface of any network stats it gets without a nil check, so stats
/// without one would crash it (its `criInterfaceToSummary`).
fn network(n: &NetworkStats) -> Option<cri::NetworkUsage> {
    let usage = |i: &InterfaceCounters| cri::NetworkInterfaceUsage {
        name: i.name.clone(),
        rx_bytes: value(i.rx_bytes),
        rx_errors: value(i.rx_errors),
        tx_bytes: value(i.tx_bytes),
        tx_errors: value(i.tx_errors),
    };
    let default = n
        .interfaces
        .iter()
        .find(|i| i.name == "eth0")
        .or(n.interfaces.first())?;
    Some(cri::NetworkUsage {
        timestamp: ts(n.timestamp_ns),
        default_interface: Some(usage(default)),
        interfaces: n.interfaces.iter().map(usage).collect(),
    })
}

/// The CRI stats of one pod and its containers.
pub fn pod_stats(p: &PodStats, layers_dir: &Path) -> cri::PodSandboxStats {
    let summary = pod_sandbox(&p.pod);
    let cgroup = p.cgroup.as_ref();
    cri::PodSandboxStats {
        attributes: Some(cri::PodSandboxAttributes {
            id: p.pod.id.to_string(),
            metadata: summary.metadata,
            labels: summary.labels,
            annotations: summary.annotations,
        }),
        linux: Some(cri::LinuxPodSandboxStats {
            cpu: cgroup.map(|c| cpu(c, p.nano_cores)),
            memory: cgroup.map(memory),
            io: None,
            network: p.network.as_ref().and_then(network),
            process: cgroup.map(|c| cri::ProcessUsage {
                timestamp: ts(c.timestamp_ns),
                process_count: value(c.pids_current),
            }),
            containers: p
                .containers
                .iter()
                .map(|c| container_stats(c, layers_dir))
                .collect(),
        }),
        windows: None,
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(name: &str, rx: u64) -> InterfaceCounters {
        InterfaceCounters {
            name: name.into(),
            rx_bytes: rx,
            ..InterfaceCounters::default()
        }
    }

    #[test]
    fn a_pod_without_interfaces_has_no_network_stats() {
        // What a pod whose CNI DEL is under way reads: loopback only (left
        // out). kubelet v1.34 dereferences the default interface of any
        // network stats it is given.
        let torn_down = NetworkStats {
            timestamp_ns: 5,
            interfaces: Vec::new(),
        };
        assert_eq!(network(&torn_down), None);
    }

    #[test]
    fn eth0_is_the_default_interface_and_every_one_is_listed() {
        let n = NetworkStats {
            timestamp_ns: 5,
            interfaces: vec![counters("net1", 1), counters("eth0", 2)],
        };
        let usage = network(&n).expect("stats");
        assert_eq!(usage.timestamp, 5);
        let default = usage.default_interface.expect("a default");
        assert_eq!(
            (default.name.as_str(), default.rx_bytes),
            ("eth0", value(2))
        );
        assert_eq!(usage.interfaces.len(), 2);
        let other = NetworkStats {
            timestamp_ns: 5,
            interfaces: vec![counters("net1", 1)],
        };
        assert_eq!(
            network(&other)
                .and_then(|u| u.default_interface)
                .map(|i| i.name),
            Some("net1".to_string()),
            "without eth0, the first"
        );
    }
}
