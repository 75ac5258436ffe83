//! `ListMetricDescriptors` and `ListPodSandboxMetrics`: the `container_*`
//! series that kubelet's `/metrics/cadvisor` shows when it takes its stats
//! from the runtime (feature gate `PodAndContainerStatsFromCRI`), named and
//! labelled as kubelet's cAdvisor names them, so that dashboards and the
//! node conformance spec read them alike.
//!
//! Every series has the labels [`BASE`] (kubelet's cAdvisor labels: the
//! container, pod and namespace names, the image, the container id),
//! then its own. A pod's network is its own, not a container's: corten has
//! no pause container, so its series carry `container="POD"`, where
//! kubelet's cAdvisor puts the pause container's network.
//!
//! The CRI carries whole numbers: seconds are whole seconds, as the peers
//! report them through this RPC.

use corten_cri_api::v1 as cri;
use corten_runtime::container::{ContainerMetrics, ContainerRecord};
use corten_runtime::PodMetrics;

/// The labels of every series, in this order.
const BASE: [&str; 5] = ["container", "pod", "namespace", "image", "id"];

/// What kind of value a series holds.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// One series: name, help, its own labels after [`BASE`], its kind.
struct Series(&'static str, &'static str, &'static [&'static str], Kind);

use Kind::{Counter, Gauge};

/// Every series corten serves.
const SERIES: &[Series] = &[
    Series("container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", &[], Counter),
    Series("container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", &[], Counter),
    Series("container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.", &[], Counter),
    Series(
        "container_cpu_load_average_10s",
        "Value of container cpu load average over the last 10 seconds. As kubelet's cAdvisor \
         (which runs without its load reader) reports it: 0.",
        &[],
        Gauge,
    ),
    Series("container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed.", &[], Gauge),
    Series("container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes.", &[], Gauge),
    Series("container_memory_working_set_bytes", "Current working set in bytes.", &[], Gauge),
    Series("container_memory_cache", "Number of bytes of page cache memory.", &[], Gauge),
    Series("container_memory_rss", "Size of RSS in bytes.", &[], Gauge),
    Series("container_memory_mapped_file", "Size of memory mapped files in bytes.", &[], Gauge),
    Series("container_memory_swap", "Container swap usage in bytes.", &[], Gauge),
    Series("container_memory_failcnt", "Number of memory usage hits limits.", &[], Counter),
    Series("container_memory_failures_total", "Cumulative count of memory allocation failures.", &["failure_type", "scope"], Counter),
    Series("container_oom_events_total", "Count of out of memory events observed for the container.", &[], Counter),
    Series("container_spec_cpu_period", "CPU period of the container.", &[], Gauge),
    Series("container_spec_cpu_quota", "CPU quota of the container.", &[], Gauge),
    Series("container_spec_cpu_shares", "CPU share of the container.", &[], Gauge),
    Series("container_spec_memory_limit_bytes", "Memory limit for the container.", &[], Gauge),
    Series("container_spec_memory_reservation_limit_bytes", "Memory reservation limit for the container.", &[], Gauge),
    Series("container_spec_memory_swap_limit_bytes", "Memory swap limit for the container.", &[], Gauge),
    Series("container_blkio_device_usage_total", "Blkio device bytes usage.", &["device", "major", "minor", "operation"], Counter),
    Series("container_fs_reads_bytes_total", "Cumulative count of bytes read.", &["device"], Counter),
    Series("container_fs_reads_total", "Cumulative count of reads completed.", &["device"], Counter),
    Series("container_fs_writes_bytes_total", "Cumulative count of bytes written.", &["device"], Counter),
    Series("container_fs_writes_total", "Cumulative count of writes completed.", &["device"], Counter),
    Series("container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", &["device"], Gauge),
    Series("container_fs_limit_bytes", "Number of bytes that can be consumed by the container on this filesystem (the filesystem's capacity).", &["device"], Gauge),
    Series("container_fs_inodes_total", "Number of inodes of the filesystem.", &["device"], Gauge),
    Series("container_fs_inodes_free", "Number of available inodes of the filesystem.", &["device"], Gauge),
    Series("container_fs_sector_reads_total", "Cumulative count of sector reads completed (bytes read / 512).", &["device"], Counter),
    Series("container_fs_sector_writes_total", "Cumulative count of sector writes completed (bytes written / 512).", &["device"], Counter),
    Series("container_fs_reads_merged_total", UNCOUNTED, &["device"], Counter),
    Series("container_fs_writes_merged_total", UNCOUNTED, &["device"], Counter),
    Series("container_fs_read_seconds_total", UNCOUNTED, &["device"], Counter),
    Series("container_fs_write_seconds_total", UNCOUNTED, &["device"], Counter),
    Series("container_fs_io_current", UNCOUNTED, &["device"], Gauge),
    Series("container_fs_io_time_seconds_total", UNCOUNTED, &["device"], Counter),
    Series("container_fs_io_time_weighted_seconds_total", UNCOUNTED, &["device"], Counter),
    Series("container_processes", "Number of processes running inside the container.", &[], Gauge),
    Series("container_threads", "Number of threads running inside the container.", &[], Gauge),
    Series("container_threads_max", "Maximum number of threads allowed inside the container, 0 if unlimited.", &[], Gauge),
    Series("container_file_descriptors", "Number of open file descriptors for the container.", &[], Gauge),
    Series("container_sockets", "Number of open sockets for the container.", &[], Gauge),
    Series("container_ulimits_soft", "Soft ulimit values for the container root process. Unlimited if -1, except priority and nice.", &["ulimit"], Gauge),
    Series(
        "container_tasks_state",
        "Number of tasks in given state. As kubelet's cAdvisor (which counts them through \
         taskstats it does not enable) reports them: 0.",
        &["state"],
        Gauge,
    ),
    Series("container_start_time_seconds", "Start time of the container since unix epoch in seconds.", &[], Gauge),
    Series("container_last_seen", "Last time a container was seen by the exporter.", &[], Gauge),
    Series("container_network_receive_bytes_total", "Cumulative count of bytes received.", &["interface"], Counter),
    Series("container_network_receive_packets_total", "Cumulative count of packets received.", &["interface"], Counter),
    Series("container_network_receive_errors_total", "Cumulative count of errors encountered while receiving.", &["interface"], Counter),
    Series("container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving.", &["interface"], Counter),
    Series("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.", &["interface"], Counter),
    Series("container_network_transmit_packets_total", "Cumulative count of packets transmitted.", &["interface"], Counter),
    Series("container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting.", &["interface"], Counter),
    Series("container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting.", &["interface"], Counter),
];

/// The help of the block I/O series that a cgroup does not count: merges,
/// I/O time and I/O in flight are counted per device (/proc/diskstats),
/// not per cgroup, since the CFQ scheduler and its blkio files left the
/// kernel (5.0); v2's io.stat has none of them.
const UNCOUNTED: &str = "Not counted per cgroup by the kernel (v1 blkio since CFQ left Linux 5.0, \
     v2 io.stat): 0, as kubelet's cAdvisor reports it.";

/// The block I/O series of [`UNCOUNTED`].
const UNCOUNTED_IO: [&str; 7] = [
    "container_fs_reads_merged_total",
    "container_fs_writes_merged_total",
    "container_fs_read_seconds_total",
    "container_fs_write_seconds_total",
    "container_fs_io_current",
    "container_fs_io_time_seconds_total",
    "container_fs_io_time_weighted_seconds_total",
];

/// The task states kubelet's cAdvisor lists.
const TASK_STATES: [&str; 5] = [
    "sleeping",
    "running",
    "stopped",
    "uninterruptible",
    "iowait",
];

const NS_PER_S: u64 = 1_000_000_000;

/// Every series corten serves, with its labels.
pub fn descriptors() -> Vec<cri::MetricDescriptor> {
    SERIES
        .iter()
        .map(|Series(name, help, own, _)| cri::MetricDescriptor {
            name: name.to_string(),
            help: help.to_string(),
            label_keys: BASE
                .iter()
                .chain(own.iter())
                .map(|l| l.to_string())
                .collect(),
        })
        .collect()
}

/// Collects samples of one container (or of the pod's network), each
/// with [`BASE`] values first.
struct Samples<'a> {
    base: [String; 5],
    timestamp: i64,
    out: &'a mut Vec<cri::Metric>,
}

impl Samples<'_> {
    fn add(&mut self, name: &str, own: &[&str], value: u64) {
        let Some(Series(_, _, keys, kind)) = SERIES.iter().find(|s| s.0 == name) else {
            // A name missing from SERIES is a bug of this file; the unit
            // tests go through every one.
            debug_assert!(false, "series {name} is not described");
            return;
        };
        debug_assert_eq!(keys.len(), own.len(), "labels of {name}");
        self.out.push(cri::Metric {
            name: name.to_string(),
            timestamp: self.timestamp,
            metric_type: match kind {
                Counter => cri::MetricType::Counter,
                Gauge => cri::MetricType::Gauge,
            } as i32,
            label_values: self
                .base
                .iter()
                .cloned()
                .chain(own.iter().map(|v| v.to_string()))
                .collect(),
            value: Some(cri::UInt64Value { value }),
        });
    }
}

fn ts(ns: u64) -> i64 {
    i64::try_from(ns).unwrap_or(i64::MAX)
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The series of one running container.
fn container(pod: &PodMetrics, r: &ContainerRecord, m: &ContainerMetrics) -> cri::ContainerMetrics {
    let now = now_ns();
    let mut metrics = Vec::new();
    let mut s = Samples {
        base: [
            r.labels
                .get("io.kubernetes.container.name")
                .cloned()
                .unwrap_or_else(|| r.name.clone()),
            pod.pod.config.name.clone(),
            pod.pod.config.namespace.clone(),
            r.image.clone(),
            r.id.to_string(),
        ],
        timestamp: ts(m.cgroup.as_ref().map_or(now, |c| c.timestamp_ns)),
        out: &mut metrics,
    };
    if let Some(c) = &m.cgroup {
        s.add(
            "container_cpu_usage_seconds_total",
            &[],
            c.cpu.usage_ns / NS_PER_S,
        );
        s.add(
            "container_cpu_user_seconds_total",
            &[],
            c.cpu.user_ns / NS_PER_S,
        );
        s.add(
            "container_cpu_system_seconds_total",
            &[],
            c.cpu.system_ns / NS_PER_S,
        );
        s.add("container_cpu_load_average_10s", &[], 0);
        let mem = &c.memory;
        s.add("container_memory_usage_bytes", &[], mem.usage);
        s.add("container_memory_max_usage_bytes", &[], mem.max_usage);
        s.add("container_memory_working_set_bytes", &[], mem.working_set);
        s.add("container_memory_cache", &[], mem.cache);
        s.add("container_memory_rss", &[], mem.rss);
        s.add("container_memory_mapped_file", &[], mem.mapped_file);
        s.add("container_memory_swap", &[], mem.swap);
        s.add("container_memory_failcnt", &[], mem.failcnt);
        for (kind, (own, total)) in [("pgfault", mem.pgfault), ("pgmajfault", mem.pgmajfault)] {
            s.add("container_memory_failures_total", &[kind, "container"], own);
            s.add(
                "container_memory_failures_total",
                &[kind, "hierarchy"],
                total,
            );
        }
        s.add("container_oom_events_total", &[], mem.oom_events);
        s.add(
            "container_spec_cpu_period",
            &[],
            c.cpu.period_us.unwrap_or(0),
        );
        if let Some(quota) = c.cpu.quota_us {
            s.add("container_spec_cpu_quota", &[], quota);
        }
        s.add("container_spec_cpu_shares", &[], c.cpu.shares.unwrap_or(0));
        s.add(
            "container_spec_memory_limit_bytes",
            &[],
            mem.limit.unwrap_or(0),
        );
        s.add(
            "container_spec_memory_reservation_limit_bytes",
            &[],
            mem.reservation.unwrap_or(0),
        );
        s.add(
            "container_spec_memory_swap_limit_bytes",
            &[],
            mem.swap_limit.unwrap_or(0),
        );
        block_io(&mut s, c, m);
        s.add("container_threads", &[], c.threads);
        s.add("container_threads_max", &[], c.pids_max.unwrap_or(0));
        for state in TASK_STATES {
            s.add("container_tasks_state", &[state], 0);
        }
    }
    let device = m.layer_device.as_ref().map_or("", |d| d.name.as_str());
    s.add(
        "container_fs_usage_bytes",
        &[device],
        m.writable_layer.bytes,
    );
    if let Some(fs) = &m.layer_filesystem {
        s.add("container_fs_limit_bytes", &[device], fs.bytes);
        s.add("container_fs_inodes_total", &[device], fs.inodes);
        s.add("container_fs_inodes_free", &[device], fs.inodes_free);
    }
    let p = &m.processes;
    s.add("container_processes", &[], p.processes);
    s.add("container_file_descriptors", &[], p.file_descriptors);
    s.add("container_sockets", &[], p.sockets);
    if let Some(n) = p.max_open_files {
        s.add("container_ulimits_soft", &["max_open_files"], n);
    }
    if let Ok(started) = u64::try_from(r.started_at_ns) {
        s.add("container_start_time_seconds", &[], started / NS_PER_S);
    }
    s.add("container_last_seen", &[], now / NS_PER_S);
    cri::ContainerMetrics {
        container_id: r.id.to_string(),
        metrics,
    }
}

/// Block I/O per device: every device the cgroup lists, and the device of
/// the writable layer (with zeros until the kernel counts I/O there, as
/// buffered writes are not counted on cgroup v1).
fn block_io(s: &mut Samples<'_>, c: &corten_runtime::cgroups::CgroupMetrics, m: &ContainerMetrics) {
    let mut io = c.io.clone();
    if let Some(d) = &m.layer_device {
        if !io.iter().any(|e| (e.major, e.minor) == (d.major, d.minor)) {
            io.push(corten_runtime::cgroups::DeviceIo {
                major: d.major,
                minor: d.minor,
                ..Default::default()
            });
        }
    }
    for e in &io {
        let name = match &m.layer_device {
            Some(d) if (d.major, d.minor) == (e.major, e.minor) => d.name.clone(),
            _ => String::new(),
        };
        let (major, minor) = (e.major.to_string(), e.minor.to_string());
        for (op, bytes) in [("Read", e.read_bytes), ("Write", e.write_bytes)] {
            s.add(
                "container_blkio_device_usage_total",
                &[&name, &major, &minor, op],
                bytes,
            );
        }
        s.add("container_fs_reads_bytes_total", &[&name], e.read_bytes);
        s.add("container_fs_reads_total", &[&name], e.reads);
        s.add("container_fs_writes_bytes_total", &[&name], e.write_bytes);
        s.add("container_fs_writes_total", &[&name], e.writes);
        s.add(
            "container_fs_sector_reads_total",
            &[&name],
            e.read_bytes / 512,
        );
        s.add(
            "container_fs_sector_writes_total",
            &[&name],
            e.write_bytes / 512,
        );
        for series in UNCOUNTED_IO {
            s.add(series, &[&name], 0);
        }
    }
}

/// The series of one pod: its network, then each running container's.
pub fn pod_metrics(p: &PodMetrics) -> cri::PodSandboxMetrics {
    let mut metrics = Vec::new();
    if let Some(n) = &p.network {
        let mut s = Samples {
            base: [
                "POD".into(),
                p.pod.config.name.clone(),
                p.pod.config.namespace.clone(),
                String::new(),
                p.pod.id.to_string(),
            ],
            timestamp: ts(n.timestamp_ns),
            out: &mut metrics,
        };
        for i in &n.interfaces {
            let at = [i.name.as_str()];
            s.add("container_network_receive_bytes_total", &at, i.rx_bytes);
            s.add("container_network_receive_packets_total", &at, i.rx_packets);
            s.add("container_network_receive_errors_total", &at, i.rx_errors);
            s.add(
                "container_network_receive_packets_dropped_total",
                &at,
                i.rx_dropped,
            );
            s.add("container_network_transmit_bytes_total", &at, i.tx_bytes);
            s.add(
                "container_network_transmit_packets_total",
                &at,
                i.tx_packets,
            );
            s.add("container_network_transmit_errors_total", &at, i.tx_errors);
            s.add(
                "container_network_transmit_packets_dropped_total",
                &at,
                i.tx_dropped,
            );
        }
    }
    cri::PodSandboxMetrics {
        pod_sandbox_id: p.pod.id.to_string(),
        metrics,
        container_metrics: p
            .containers
            .iter()
            .map(|(r, m)| container(p, r, m))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corten_runtime::linux::InterfaceCounters;
    use corten_runtime::sandbox::Pod;
    use corten_runtime::NetworkStats;

    #[test]
    fn descriptors_have_unique_names_and_the_base_labels_first() {
        let d = descriptors();
        let mut names: Vec<&str> = d.iter().map(|d| d.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), d.len(), "a series is described twice");
        for desc in &d {
            assert_eq!(desc.label_keys[..BASE.len()], BASE, "{}", desc.name);
            assert!(desc.name.starts_with("container_"), "{}", desc.name);
        }
    }

    #[test]
    fn a_pods_network_is_labelled_pod_per_interface() {
        let mut p = PodMetrics {
            pod: Pod::default(),
            network: Some(NetworkStats {
                timestamp_ns: 5,
                interfaces: vec![InterfaceCounters {
                    name: "eth0".into(),
                    rx_bytes: 100,
                    rx_packets: 2,
                    tx_bytes: 50,
                    tx_dropped: 1,
                    ..InterfaceCounters::default()
                }],
            }),
            containers: Vec::new(),
        };
        p.pod.config.name = "web".into();
        p.pod.config.namespace = "default".into();
        let m = pod_metrics(&p);
        assert_eq!(m.metrics.len(), 8);
        let d = descriptors();
        for metric in &m.metrics {
            let desc = d.iter().find(|d| d.name == metric.name).expect("described");
            assert_eq!(desc.label_keys.len(), metric.label_values.len());
            assert_eq!(metric.label_values[..3], ["POD", "web", "default"]);
            assert_eq!(metric.label_values.last().map(String::as_str), Some("eth0"));
            assert_eq!(metric.timestamp, 5);
        }
        let value = |name: &str| {
            m.metrics
                .iter()
                .find(|x| x.name == name)
                .and_then(|x| x.value.as_ref())
                .map(|v| v.value)
        };
        assert_eq!(value("container_network_receive_bytes_total"), Some(100));
        assert_eq!(value("container_network_receive_packets_total"), Some(2));
        assert_eq!(
            value("container_network_transmit_packets_dropped_total"),
            Some(1)
        );
        p.network = None;
        assert!(pod_metrics(&p).metrics.is_empty());
    }
}
