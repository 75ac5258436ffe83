//! The refusals of [`super::validate`] as the RPCs meet them: through the
//! whole conversion of a CRI container or pod config, field named.

use corten_cri_api::v1 as cri;
use tonic::Code;

use super::container::{new_container, resources};
use super::pod::pod_config;

fn container() -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: "web".into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: "busybox".into(),
            ..cri::ImageSpec::default()
        }),
        log_path: "web/0.log".into(),
        ..cri::ContainerConfig::default()
    }
}

fn pod() -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: "web".into(),
            uid: "0c6f2a6e-5a3b-4d4e-9a57-1f0c0d1e2f3a".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "web".into(),
        log_directory: "/var/log/pods/x".into(),
        ..cri::PodSandboxConfig::default()
    }
}

/// A change made to a valid message.
type Edit<T> = fn(&mut T);

/// Asserts an InvalidArgument whose message names `field`.
fn refused<T: std::fmt::Debug>(r: Result<T, tonic::Status>, field: &str) {
    let e = r.expect_err(field);
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains(field), "{field}: {e:?}");
}

#[test]
fn the_valid_configs_pass() {
    let n = new_container(&container()).expect("container");
    assert_eq!(n.log_path, "web/0.log");
    pod_config(&pod(), "").expect("pod");
}

#[test]
fn container_ids_names_and_log_paths() {
    let with_user = |uid: i64, gid: Option<i64>| {
        let mut c = container();
        c.linux = Some(cri::LinuxContainerConfig {
            security_context: Some(cri::LinuxContainerSecurityContext {
                run_as_user: Some(cri::Int64Value { value: uid }),
                run_as_group: gid.map(|value| cri::Int64Value { value }),
                ..Default::default()
            }),
            ..Default::default()
        });
        new_container(&c)
    };
    assert!(with_user(4_294_967_294, Some(4_294_967_294)).is_ok());
    refused(with_user(4_294_967_295, None), "run_as_user");
    refused(with_user(0, Some(4_294_967_295)), "run_as_group");

    let mut c = container();
    c.metadata = Some(cri::ContainerMetadata {
        name: "n".repeat(254),
        attempt: 0,
    });
    refused(new_container(&c), "config.metadata.name");

    for bad in ["/etc/x", "../../../../x.log", "a/../../x"] {
        let mut c = container();
        c.log_path = bad.into();
        refused(new_container(&c), "config.log_path");
    }
    let mut c = container();
    c.log_path = "web/./../web/0.log".into();
    assert_eq!(new_container(&c).expect("inside").log_path, "web/0.log");
    c.log_path = String::new();
    assert_eq!(new_container(&c).expect("no log").log_path, "");
}

#[test]
fn container_resources_the_kernel_would_refuse() {
    let with = |edit: fn(&mut cri::LinuxContainerResources)| {
        let mut r = cri::LinuxContainerResources::default();
        edit(&mut r);
        r
    };
    let fine = with(|r| {
        r.cpu_shares = 2;
        r.cpu_period = 100_000;
        r.cpu_quota = 1_000;
        r.cpuset_cpus = "0-1".into();
        r.unified.insert("memory.high".into(), "1M".into());
    });
    assert!(resources(Some(&fine)).is_ok());
    assert!(resources(Some(&with(|r| r.cpu_quota = -1))).is_ok());
    let cases: [(Edit<cri::LinuxContainerResources>, &str); 11] = [
        (|r| r.cpu_shares = 1, "linux.resources.cpu_shares"),
        (|r| r.cpu_shares = 262_145, "linux.resources.cpu_shares"),
        (|r| r.cpu_shares = -2, "linux.resources.cpu_shares"),
        (|r| r.cpu_period = 999, "linux.resources.cpu_period"),
        (|r| r.cpu_period = 1_000_001, "linux.resources.cpu_period"),
        (|r| r.cpu_quota = 999, "linux.resources.cpu_quota"),
        (|r| r.cpu_quota = -2, "linux.resources.cpu_quota"),
        (|r| r.memory_limit_in_bytes = -5, "memory_limit_in_bytes"),
        (
            |r| r.cpuset_mems = "0,x".into(),
            "linux.resources.cpuset_mems",
        ),
        (
            |r| {
                r.unified.insert("../../x.max".into(), "1".into());
            },
            "linux.resources.unified",
        ),
        (
            |r| {
                r.unified.insert("memory.high".into(), "1\n2".into());
            },
            "linux.resources.unified",
        ),
    ];
    for (edit, field) in cases {
        let r = with(edit);
        refused(resources(Some(&r)), field);
        // CreateContainer meets the same refusal.
        let mut c = container();
        c.linux = Some(cri::LinuxContainerConfig {
            resources: Some(r),
            ..Default::default()
        });
        refused(new_container(&c), field);
    }
}

#[test]
fn pod_names_hostnames_ids_ports_and_sysctls() {
    let cases: [(Edit<cri::PodSandboxConfig>, &str); 12] = [
        (
            |p| {
                if let Some(m) = p.metadata.as_mut() {
                    m.name = "n".repeat(254);
                }
            },
            "metadata.name",
        ),
        (
            |p| {
                if let Some(m) = p.metadata.as_mut() {
                    m.namespace = "n".repeat(254);
                }
            },
            "metadata.namespace",
        ),
        (
            |p| {
                if let Some(m) = p.metadata.as_mut() {
                    m.uid = "u".repeat(254);
                }
            },
            "metadata.uid",
        ),
        (
            |p| {
                if let Some(m) = p.metadata.as_mut() {
                    m.name = "web;IP=10.0.0.99".into();
                }
            },
            "metadata.name",
        ),
        (|p| p.hostname = "Bad_Host".into(), "hostname"),
        (|p| p.hostname = "a".repeat(64), "hostname"),
        (
            |p| {
                p.linux = Some(cri::LinuxPodSandboxConfig {
                    security_context: Some(cri::LinuxSandboxSecurityContext {
                        run_as_user: Some(cri::Int64Value {
                            value: 4_294_967_295,
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
            },
            "security_context.run_as_user",
        ),
        (
            |p| {
                p.linux = Some(cri::LinuxPodSandboxConfig {
                    security_context: Some(cri::LinuxSandboxSecurityContext {
                        run_as_group: Some(cri::Int64Value { value: -1 }),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
            },
            "security_context.run_as_group",
        ),
        (
            |p| {
                let m = cri::PortMapping {
                    protocol: cri::Protocol::Tcp as i32,
                    container_port: 80,
                    host_port: 8080,
                    host_ip: String::new(),
                };
                p.port_mappings = vec![m.clone(), m];
            },
            "port_mappings[1].host_port",
        ),
        (
            |p| {
                p.port_mappings = vec![cri::PortMapping {
                    protocol: cri::Protocol::Tcp as i32,
                    container_port: 80,
                    host_port: 8080,
                    host_ip: "not-an-ip".into(),
                }];
            },
            "port_mappings[0].host_ip",
        ),
        (
            |p| {
                let mut l = cri::LinuxPodSandboxConfig::default();
                l.sysctls
                    .insert("net.ipv4.ip_forward".into(), "1\nkernel.x=1".into());
                p.linux = Some(l);
            },
            "linux.sysctls",
        ),
        (
            |p| {
                let mut l = cri::LinuxPodSandboxConfig::default();
                l.sysctls.insert("net/../../etc/x".into(), "1".into());
                p.linux = Some(l);
            },
            "linux.sysctls",
        ),
    ];
    for (edit, field) in cases {
        let mut p = pod();
        edit(&mut p);
        refused(pod_config(&p, ""), field);
    }
    // What kubelet sends with setHostnameAsFQDN: a 64-byte FQDN.
    let mut p = pod();
    p.hostname = format!("{}.sub.default.svc.cluster.local", "a".repeat(34));
    assert_eq!(p.hostname.len(), 64);
    assert!(pod_config(&p, "").is_ok(), "{}", p.hostname);
}
