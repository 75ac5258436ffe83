//! Checks of CRI request fields shared by the conversions: each refuses with
//! InvalidArgument naming the field, before anything is made.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Display;
use std::net::IpAddr;

use corten_runtime::network::PortMapping;
use corten_runtime::spec::{linux_resources, Resources};
use tonic::Status;

/// An InvalidArgument naming `field`.
pub fn invalid(field: &str, why: impl Display) -> Status {
    Status::invalid_argument(format!("{field} {why}"))
}

/// The longest pod name, namespace, uid and container name taken, in bytes.
///
/// 253 is Kubernetes' longest object name (a DNS-1123 subdomain, the limit
/// of pod names). Kubernetes is stricter still for namespaces and container
/// names (DNS-1123 labels, 63) and its uids are 36-byte UUIDs, so kubelet
/// never comes near it; the cap is for other clients. Name, namespace and
/// uid go into `CNI_ARGS` of every CNI plugin run: unbounded, they make the
/// exec fail with E2BIG after the pod's namespaces are made.
pub const MAX_NAME: usize = 253;

/// A name of at most [`MAX_NAME`] bytes.
pub fn name(field: &str, value: &str) -> Result<(), Status> {
    if value.len() > MAX_NAME {
        return Err(invalid(
            field,
            format_args!("is {} bytes long, more than {MAX_NAME}", value.len()),
        ));
    }
    Ok(())
}

/// A pod name, namespace or uid: [`name`], and nothing that would change
/// the meaning of `CNI_ARGS` (`K=V` pairs joined by `;`: a `;` would add
/// pairs such as `IP=` that IPAM plugins obey, a `=` makes every plugin
/// refuse the pair) or cannot go into an environment (NUL). None of these
/// can occur in a Kubernetes name.
pub fn cni_name(field: &str, value: &str) -> Result<(), Status> {
    name(field, value)?;
    if value.contains([';', '=', '\0']) {
        return Err(invalid(
            field,
            format_args!("{value:?} holds ';', '=' or NUL"),
        ));
    }
    Ok(())
}

/// A uid or gid: 0..=4294967294. 4294967295 is (uid_t)-1, which setuid
/// and friends read as "leave unchanged", so it would run as root.
pub fn id(field: &str, v: i64) -> Result<u32, Status> {
    u32::try_from(v)
        .ok()
        .filter(|v| *v != u32::MAX)
        .ok_or_else(|| invalid(field, format_args!("{v} is not in 0..=4294967294")))
}

/// A container's log path, relative to the pod's log directory: the empty
/// path (no log) stays; an absolute one, one with NUL, or one that leaves
/// the directory or names the directory itself once `.` and `..` are
/// resolved (lexically) is refused. The path comes back normalised, so
/// the file opened is the one checked.
pub fn log_path(path: &str) -> Result<String, Status> {
    const FIELD: &str = "config.log_path";
    if path.is_empty() {
        return Ok(String::new());
    }
    if path.starts_with('/') {
        return Err(invalid(
            FIELD,
            format_args!("{path:?} is absolute; it must be relative to the pod's log_directory"),
        ));
    }
    if path.contains('\0') {
        return Err(invalid(FIELD, format_args!("{path:?} holds NUL")));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(invalid(
                        FIELD,
                        format_args!("{path:?} leaves the pod's log_directory"),
                    ));
                }
            }
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        return Err(invalid(
            FIELD,
            format_args!("{path:?} names the pod's log_directory itself, not a file in it"),
        ));
    }
    Ok(parts.join("/"))
}

/// A pod hostname: empty (the node's), or dot-separated DNS-1123 labels
/// (1 to 63 of `a-z`, `0-9`, `-`, neither first nor last a `-`), 64 bytes
/// in all at most (the kernel's limit).
///
/// Not a single label: kubelet sends the pod name when no hostname is set
/// (a DNS-1123 subdomain, dots allowed, cut to 63), and the FQDN (up to 64,
/// with a trailing dot when the cluster domain is empty) when
/// `setHostnameAsFQDN` is on. Nothing Kubernetes validates is refused.
pub fn hostname(h: &str) -> Result<(), Status> {
    const FIELD: &str = "PodSandboxConfig.hostname";
    if h.is_empty() {
        return Ok(());
    }
    if h.len() > 64 {
        return Err(invalid(
            FIELD,
            format_args!("{h:?} is {} bytes long, more than 64", h.len()),
        ));
    }
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    // An absolute name's one trailing dot: kubelet's FQDN is
    // `<pod>.<subdomain>.<ns>.svc.<cluster domain>`, which ends in a dot
    // when the cluster domain is empty (as on the node e2e suite's node).
    let labels = h.strip_suffix('.').unwrap_or(h);
    if !labels.split('.').all(label_ok) {
        return Err(invalid(
            FIELD,
            format_args!(
                "{h:?} is not an RFC 1123 name (dot-separated labels of a-z, 0-9 and '-', \
                 each 1 to 63 long and neither starting nor ending with '-')"
            ),
        ));
    }
    Ok(())
}

/// Port mappings: a host IP that parses (or none), and no two published
/// ports (host port not 0) on the same host IP, port and protocol — as
/// Kubernetes refuses them in a pod spec.
pub fn port_mappings(ports: &[PortMapping]) -> Result<(), Status> {
    let mut seen: HashSet<(Option<IpAddr>, u16, &str)> = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let ip = match p.host_ip.as_str() {
            "" => None,
            ip => Some(ip.parse::<IpAddr>().map_err(|_| {
                invalid(
                    &format!("PodSandboxConfig.port_mappings[{i}].host_ip"),
                    format_args!("{ip:?} is not an IP address"),
                )
            })?),
        };
        if p.host_port != 0 && !seen.insert((ip, p.host_port, p.protocol.as_str())) {
            return Err(invalid(
                &format!("PodSandboxConfig.port_mappings[{i}].host_port"),
                format_args!(
                    "{} ({}{}) is published twice",
                    p.host_port,
                    p.protocol,
                    ip.map(|ip| format!(" on {ip}")).unwrap_or_default()
                ),
            ));
        }
    }
    Ok(())
}

/// Pod sysctls: a name that stays under `/proc/sys` and a one-line value
/// (the runtime's check; which ones a pod may set is decided when it runs).
pub fn sysctls(sysctls: &BTreeMap<String, String>) -> Result<(), Status> {
    for (name, value) in sysctls {
        corten_runtime::linux::check_sysctl(name, value)
            .map_err(|e| invalid("PodSandboxConfig.linux.sysctls", e))?;
    }
    Ok(())
}

/// Cgroup limits the kernel would refuse, by the runtime's own check (the
/// one `UpdateContainerResources` meets when it applies them), with the
/// CRI field named.
pub fn resources(r: &Resources) -> Result<(), Status> {
    corten_runtime::cgroups::check_resources(&linux_resources(r)).map_err(|e| {
        let field = match &e {
            corten_runtime::cgroups::Error::InvalidValue { what, .. } => match *what {
                "cpu.shares" => "linux.resources.cpu_shares",
                "cpu.cfs_period_us" => "linux.resources.cpu_period",
                "cpu.cfs_quota_us" => "linux.resources.cpu_quota",
                "cpuset.cpus" => "linux.resources.cpuset_cpus",
                "cpuset.mems" => "linux.resources.cpuset_mems",
                "memory limit" => "linux.resources.memory_limit_in_bytes",
                w if w.starts_with("unified") => "linux.resources.unified",
                _ => "linux.resources",
            },
            _ => "linux.resources",
        };
        invalid(field, format_args!(": {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_capped_and_cni_names_clean() {
        assert!(name("f", &"a".repeat(253)).is_ok());
        let e = name("config.metadata.name", &"a".repeat(254)).expect_err("long");
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("config.metadata.name"), "{e:?}");
        assert!(cni_name("f", "web-0.x_Y").is_ok());
        for bad in ["a;IP=10.0.0.9", "a=b", "a\0"] {
            assert!(cni_name("f", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_stop_below_minus_one() {
        assert_eq!(id("u", 0).ok(), Some(0));
        assert_eq!(id("u", 4_294_967_294).ok(), Some(4_294_967_294));
        for bad in [-1, 4_294_967_295, 4_294_967_296, i64::MAX, i64::MIN] {
            let e = id("security_context.run_as_user", bad).expect_err("out of range");
            assert!(e.message().contains("run_as_user"), "{e:?}");
        }
    }

    #[test]
    fn log_paths_stay_in_the_log_directory() {
        for (given, normal) in [
            ("", ""),
            ("c/0.log", "c/0.log"),
            ("./c//0.log", "c/0.log"),
            ("a/../b.log", "b.log"),
            ("a/b/../../c.log", "c.log"),
        ] {
            assert_eq!(log_path(given).ok().as_deref(), Some(normal), "{given:?}");
        }
        for bad in [
            "/etc/x",
            "../x.log",
            "../../../../x.log",
            "a/../../x",
            "a/..",
            ".",
            "x\0.log",
        ] {
            let e = log_path(bad).expect_err(bad);
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
            assert!(e.message().contains("log_path"), "{e:?}");
        }
    }

    #[test]
    fn hostnames_are_what_kubernetes_sends() {
        let fqdn = format!("{}.sub.ns.svc.cluster.local", "a".repeat(39));
        assert_eq!(fqdn.len(), 64);
        // The FQDN of a node without a cluster domain (node conformance's
        // "FQDN is set as hostname" spec).
        let no_domain = "hostfqdn-182917.t.hostfqdn-5175.svc.";
        for ok in [
            "",
            "web-0",
            "a",
            "0abc",
            "pod.name",
            "a.",
            no_domain,
            &"a".repeat(63),
            &fqdn,
        ] {
            assert!(hostname(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "-web",
            "web-",
            "Web",
            "a_b",
            "a..b",
            ".a",
            ".",
            "a..",
            "a b",
            "a\nb",
            &"a".repeat(64),
            &format!("{fqdn}x"),
        ] {
            let e = hostname(bad).expect_err(bad);
            assert!(e.message().contains("PodSandboxConfig.hostname"), "{e:?}");
        }
    }

    fn port(host_ip: &str, host_port: u16, protocol: &str) -> PortMapping {
        PortMapping {
            container_port: 80,
            host_port,
            protocol: protocol.into(),
            host_ip: host_ip.into(),
        }
    }

    #[test]
    fn published_ports_are_unique_and_host_ips_parse() {
        let fine = [
            port("", 8080, "tcp"),
            port("", 8080, "udp"),
            port("127.0.0.1", 8080, "tcp"),
            port("::1", 8080, "tcp"),
            port("", 0, "tcp"),
            port("", 0, "tcp"),
        ];
        assert!(port_mappings(&fine).is_ok());
        let e = port_mappings(&[port("", 8080, "tcp"), port("", 8080, "tcp")]).expect_err("dup");
        assert!(e.message().contains("port_mappings[1].host_port"), "{e:?}");
        // The same address written two ways is the same address.
        assert!(port_mappings(&[port("::1", 1, "tcp"), port("0:0::1", 1, "tcp")]).is_err());
        for bad in ["localhost", "1.2.3", "10.0.0.1/24", " 10.0.0.1"] {
            let e = port_mappings(&[port(bad, 80, "tcp")]).expect_err(bad);
            assert!(e.message().contains("port_mappings[0].host_ip"), "{e:?}");
        }
    }

    #[test]
    fn sysctls_stay_under_proc_sys_with_one_line() {
        let map = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert!(sysctls(&map("net.ipv4.ip_local_port_range", "1024 65535")).is_ok());
        for (k, v) in [
            ("net.ipv4.ip_forward", "1\n0"),
            ("net.ipv4.ip_forward", "1\0"),
            ("net.ipv4.ip_forward\n", "1"),
            ("net/../../etc/passwd", "1"),
            ("net/ipv4/../../x", "1"),
        ] {
            let e = sysctls(&map(k, v)).expect_err(k);
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
            assert!(e.message().contains("linux.sysctls"), "{e:?}");
        }
    }
}
