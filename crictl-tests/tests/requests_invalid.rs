//! Requests a kernel, CNI or the file system would take badly, sent to a
//! real cortend through the CRI client: each is refused with
//! InvalidArgument naming its field, and nothing of it is made — no
//! record, no pod or container directory, no cgroup, no log file.

mod container_env;

use std::path::{Path, PathBuf};

use container_env::Env;
use corten_cri_api::v1 as api;
use crictl_tests::{cgroups, cri, DaemonBuilder, TestNetwork};
use tonic::Code;

/// Removes the cgroups under `.0` when dropped, should a request the test
/// expects refused have made some (declared before the daemon, so it goes
/// after the daemon removed its pods).
struct CgroupBase(String);

impl Drop for CgroupBase {
    fn drop(&mut self) {
        cgroups::remove_all(&self.0);
    }
}

/// Asserts that `r` is an InvalidArgument whose message names `field`.
fn refused<T: std::fmt::Debug>(what: &str, r: Result<T, tonic::Status>, field: &str) {
    let e = r.expect_err(what);
    assert_eq!(e.code(), Code::InvalidArgument, "{what}: {e:?}");
    assert!(
        e.message().contains(field),
        "{what}: the message names {field}: {e:?}"
    );
}

fn pod_config(name: &str, log_directory: &Path, cgroup_parent: &str) -> api::PodSandboxConfig {
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "e2e".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: log_directory.display().to_string(),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn linux(p: &mut api::PodSandboxConfig) -> &mut api::LinuxPodSandboxConfig {
    p.linux.get_or_insert_with(Default::default)
}

fn meta(p: &mut api::PodSandboxConfig) -> &mut api::PodSandboxMetadata {
    p.metadata.get_or_insert_with(Default::default)
}

fn tcp(host_port: i32, host_ip: &str) -> api::PortMapping {
    api::PortMapping {
        protocol: api::Protocol::Tcp as i32,
        container_port: 80,
        host_port,
        host_ip: host_ip.into(),
    }
}

/// The entries of `dir` (none when it does not exist).
fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect()
}

#[test]
fn bad_pod_sandboxes_are_refused_before_anything_is_made() {
    let base = CgroupBase(format!("/corten-e2e-invalid-{}", std::process::id()));
    let builder = DaemonBuilder::new();
    let net = TestNetwork::new(&builder);
    let d = builder.start().expect("cortend starts");
    let logs = d.dir().join("pod-logs");
    type Edit = fn(&mut api::PodSandboxConfig);
    let cases: [(&str, Edit, &str); 14] = [
        (
            "hostname",
            |p| p.hostname = "Bad_Host".into(),
            "PodSandboxConfig.hostname",
        ),
        (
            "hostname-too-long",
            |p| p.hostname = "h".repeat(65),
            "PodSandboxConfig.hostname",
        ),
        (
            "run-as-user",
            |p| {
                linux(p).security_context = Some(api::LinuxSandboxSecurityContext {
                    run_as_user: Some(api::Int64Value {
                        value: 4_294_967_295,
                    }),
                    ..Default::default()
                })
            },
            "security_context.run_as_user",
        ),
        (
            "run-as-group",
            |p| {
                linux(p).security_context = Some(api::LinuxSandboxSecurityContext {
                    run_as_user: Some(api::Int64Value { value: 0 }),
                    run_as_group: Some(api::Int64Value {
                        value: 4_294_967_295,
                    }),
                    ..Default::default()
                })
            },
            "security_context.run_as_group",
        ),
        (
            "ports-twice",
            |p| p.port_mappings = vec![tcp(18080, "127.0.0.1"), tcp(18080, "127.0.0.1")],
            "port_mappings[1].host_port",
        ),
        (
            "host-ip",
            |p| p.port_mappings = vec![tcp(18081, "not-an-ip")],
            "port_mappings[0].host_ip",
        ),
        (
            "sysctl-value",
            |p| {
                linux(p).sysctls.insert(
                    "net.ipv4.ip_unprivileged_port_start".into(),
                    "80\n90".into(),
                );
            },
            "linux.sysctls",
        ),
        (
            "sysctl-nul",
            |p| {
                linux(p)
                    .sysctls
                    .insert("net.ipv4.ip_forward".into(), "0\0".into());
            },
            "linux.sysctls",
        ),
        (
            "sysctl-name",
            |p| {
                linux(p)
                    .sysctls
                    .insert("net/../../kernel/x".into(), "1".into());
            },
            "linux.sysctls",
        ),
        (
            "name-long",
            |p| meta(p).name = format!("name-long-{}", "n".repeat(250)),
            "metadata.name",
        ),
        (
            "namespace-long",
            |p| meta(p).namespace = "n".repeat(254),
            "metadata.namespace",
        ),
        (
            "uid-long",
            |p| meta(p).uid = "u".repeat(254),
            "metadata.uid",
        ),
        (
            "name-cni-args",
            |p| meta(p).name = "name-cni-args;IP=10.210.255.99".into(),
            "metadata.name",
        ),
        (
            "log-directory",
            |p| p.log_directory = "relative/logs".into(),
            "log_directory",
        ),
    ];
    cri::block_on(async {
        let mut client = cri::runtime(d.socket()).await.expect("connect");
        for (name, edit, field) in cases {
            let mut config = pod_config(name, &logs, &format!("{}/{name}", base.0));
            edit(&mut config);
            let r = client
                .run_pod_sandbox(api::RunPodSandboxRequest {
                    config: Some(config),
                    runtime_handler: String::new(),
                })
                .await;
            refused(name, r, field);
        }
        let pods = client
            .list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
            .await
            .expect("list pods")
            .into_inner()
            .items;
        assert!(pods.is_empty(), "no pod was recorded: {pods:?}");
        assert_eq!(
            net.allocations(),
            Vec::<String>::new(),
            "no address handed out"
        );
        assert_eq!(entries(&d.dir().join("state/pods")), Vec::<PathBuf>::new());

        // The same daemon and network run a good one: the refusals above
        // were the requests', not the setup's.
        let good = pod_config("good", &logs, &format!("{}/good", base.0));
        client
            .run_pod_sandbox(api::RunPodSandboxRequest {
                config: Some(good),
                runtime_handler: String::new(),
            })
            .await
            .expect("a good pod runs");
    });
    let pod_dirs = entries(&d.dir().join("state/pods"));
    assert_eq!(
        pod_dirs.len(),
        1,
        "only the good pod's directory: {pod_dirs:?}"
    );
    let made = cgroups::children(&base.0);
    assert!(
        made.iter().all(|c| c.ends_with("good")),
        "no cgroup but the good pod's: {made:?}"
    );
    assert!(!d.log().contains("panicked"), "the daemon did not panic");
}

fn container_config(name: &str) -> api::ContainerConfig {
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: "busybox".into(),
            ..Default::default()
        }),
        command: vec!["true".into()],
        log_path: format!("{name}.log"),
        linux: Some(api::LinuxContainerConfig::default()),
        ..Default::default()
    }
}

fn security(c: &mut api::ContainerConfig) -> &mut api::LinuxContainerSecurityContext {
    c.linux
        .get_or_insert_with(Default::default)
        .security_context
        .get_or_insert_with(Default::default)
}

fn resources(c: &mut api::ContainerConfig) -> &mut api::LinuxContainerResources {
    c.linux
        .get_or_insert_with(Default::default)
        .resources
        .get_or_insert_with(Default::default)
}

#[test]
fn bad_containers_are_refused_before_anything_is_made() {
    let env = Env::new();
    let logs = env.logs_dir("bad");
    std::fs::create_dir_all(&logs).expect("the pod's log directory");
    // logs is <dir>/logs/bad: "../../x" lands in <dir>, the test's own.
    let escaped = env.dir.path().join("escaped.log");
    let absolute = env.dir.path().join("absolute.log");
    let pod = pod_config("bad", &logs, "");
    type Edit = fn(&mut api::ContainerConfig);
    let cases: [(&str, Edit, &str); 14] = [
        (
            "uid",
            |c| {
                security(c).run_as_user = Some(api::Int64Value {
                    value: 4_294_967_295,
                })
            },
            "run_as_user",
        ),
        (
            "gid",
            |c| {
                let s = security(c);
                s.run_as_user = Some(api::Int64Value { value: 0 });
                s.run_as_group = Some(api::Int64Value {
                    value: 4_294_967_295,
                });
            },
            "run_as_group",
        ),
        (
            "escape",
            |c| c.log_path = "../../escaped.log".into(),
            "config.log_path",
        ),
        (
            "escape-inner",
            |c| c.log_path = "a/../../../escaped.log".into(),
            "config.log_path",
        ),
        // Replaced by the absolute path under the test's directory below.
        ("absolute", |_| {}, "config.log_path"),
        (
            "name",
            |c| {
                c.metadata = Some(api::ContainerMetadata {
                    name: "n".repeat(254),
                    attempt: 0,
                })
            },
            "config.metadata.name",
        ),
        (
            "shares",
            |c| resources(c).cpu_shares = 1,
            "linux.resources.cpu_shares",
        ),
        (
            "period",
            |c| resources(c).cpu_period = 999,
            "linux.resources.cpu_period",
        ),
        (
            "quota",
            |c| {
                let r = resources(c);
                r.cpu_period = 100_000;
                r.cpu_quota = 500;
            },
            "linux.resources.cpu_quota",
        ),
        (
            "memory",
            |c| resources(c).memory_limit_in_bytes = -2,
            "linux.resources.memory_limit_in_bytes",
        ),
        (
            "cpuset",
            |c| resources(c).cpuset_cpus = "0-x".into(),
            "linux.resources.cpuset_cpus",
        ),
        (
            "unified-key",
            |c| {
                resources(c)
                    .unified
                    .insert("../../memory.max".into(), "1".into());
            },
            "linux.resources.unified",
        ),
        (
            "unified-value",
            |c| {
                resources(c)
                    .unified
                    .insert("memory.high".into(), "1\n2".into());
            },
            "linux.resources.unified",
        ),
        (
            "oom",
            |c| resources(c).oom_score_adj = 1001,
            "oom_score_adj",
        ),
    ];
    cri::block_on(async {
        let mut client = cri::runtime(env.d.socket()).await.expect("connect");
        let pod_id = client
            .run_pod_sandbox(api::RunPodSandboxRequest {
                config: Some(pod.clone()),
                runtime_handler: String::new(),
            })
            .await
            .expect("the pod runs")
            .into_inner()
            .pod_sandbox_id;
        let status = client
            .pod_sandbox_status(api::PodSandboxStatusRequest {
                pod_sandbox_id: pod_id.clone(),
                verbose: true,
            })
            .await
            .expect("pod status")
            .into_inner();
        let info: serde_json::Value =
            serde_json::from_str(status.info.get("info").map_or("{}", String::as_str))
                .expect("verbose info is JSON");
        let pod_cgroup = info["cgroup"].as_str().expect("a pod cgroup").to_string();
        assert!(!cgroups::dirs(&pod_cgroup).is_empty(), "{pod_cgroup}");

        for (name, edit, field) in cases {
            let mut config = container_config(name);
            edit(&mut config);
            if name == "absolute" {
                config.log_path = absolute.display().to_string();
            }
            let r = client
                .create_container(api::CreateContainerRequest {
                    pod_sandbox_id: pod_id.clone(),
                    config: Some(config),
                    sandbox_config: Some(pod.clone()),
                })
                .await;
            refused(name, r, field);
        }
        let listed = client
            .list_containers(api::ListContainersRequest { filter: None })
            .await
            .expect("list containers")
            .into_inner()
            .containers;
        assert!(listed.is_empty(), "no container was recorded: {listed:?}");
        assert_eq!(
            cgroups::children(&pod_cgroup),
            Vec::<PathBuf>::new(),
            "no container cgroup"
        );
        let bundles = entries(&env.d.dir().join("state/containers"));
        assert!(bundles.is_empty(), "no container directory: {bundles:?}");
        assert!(!escaped.exists(), "no log file outside: {escaped:?}");
        assert!(!absolute.exists(), "no log file outside: {absolute:?}");
        assert_eq!(entries(&logs), Vec::<PathBuf>::new(), "no log file");

        // The same pod takes a good container, with a log path that only
        // looks odd: the refusals above were the requests'.
        let mut good = container_config("good");
        good.log_path = "good/./../good.log".into();
        let id = client
            .create_container(api::CreateContainerRequest {
                pod_sandbox_id: pod_id.clone(),
                config: Some(good),
                sandbox_config: Some(pod.clone()),
            })
            .await
            .expect("a good container is created")
            .into_inner()
            .container_id;
        let status = client
            .container_status(api::ContainerStatusRequest {
                container_id: id,
                verbose: false,
            })
            .await
            .expect("status")
            .into_inner()
            .status
            .expect("a status");
        assert_eq!(
            Path::new(&status.log_path),
            logs.join("good.log"),
            "the log path is normalised"
        );
    });
    assert!(
        !env.d.log().contains("panicked"),
        "the daemon did not panic"
    );
}
