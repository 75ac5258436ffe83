//! Containers between CRI and the runtime: the CRI `ContainerConfig` into
//! a [`NewContainer`] (validated, errors naming the field), records back
//! into CRI `Container` and `ContainerStatus`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use corten_cri_api::v1 as cri;
use corten_cri_api::v1::security_profile::ProfileType;
use corten_runtime::container::{ContainerRecord, ContainerState, NewContainer};
use corten_runtime::spec::{
    ContainerConfig, DeviceConfig, ImageMount, MountConfig, Propagation, Resources, SeccompProfile,
    Security,
};
use tonic::Status;

use super::validate::{self, invalid};

/// The runtime's request for a CRI `ContainerConfig`.
pub fn new_container(c: &cri::ContainerConfig) -> Result<NewContainer, Status> {
    let meta = c
        .metadata
        .as_ref()
        .ok_or_else(|| invalid("config.metadata", "is required"))?;
    if meta.name.is_empty() {
        return Err(invalid("config.metadata.name", "is empty"));
    }
    validate::name("config.metadata.name", &meta.name)?;
    let log_path = validate::log_path(&c.log_path)?;
    let image = c
        .image
        .as_ref()
        .map(|i| i.image.as_str())
        .filter(|i| !i.is_empty())
        .ok_or_else(|| invalid("config.image.image", "is empty"))?;
    let mut env = Vec::with_capacity(c.envs.len());
    for kv in &c.envs {
        if kv.key.is_empty() || kv.key.contains('=') || kv.key.contains('\0') {
            return Err(invalid("config.envs", format!("bad name {:?}", kv.key)));
        }
        env.push((kv.key.clone(), kv.value.clone()));
    }
    let working_dir = Some(c.working_dir.clone()).filter(|w| !w.is_empty());
    if working_dir.as_ref().is_some_and(|w| !w.starts_with('/')) {
        return Err(invalid("config.working_dir", "is not an absolute path"));
    }
    let linux = c.linux.clone().unwrap_or_default();
    let config = ContainerConfig {
        command: c.command.clone(),
        args: c.args.clone(),
        env,
        working_dir,
        mounts: c.mounts.iter().map(mount).collect::<Result<_, _>>()?,
        devices: c
            .devices
            .iter()
            .map(|d| DeviceConfig {
                host_path: PathBuf::from(&d.host_path),
                container_path: d.container_path.clone(),
                permissions: d.permissions.clone(),
                node: None,
            })
            .collect(),
        resources: resources(linux.resources.as_ref())?,
        security: security(linux.security_context.as_ref())?,
        tty: c.tty,
        stdin: c.stdin,
        stdin_once: c.stdin_once,
        annotations: c
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        stop_signal: super::signal::from_cri("config.stop_signal", c.stop_signal)?,
        ..ContainerConfig::default()
    };
    Ok(NewContainer {
        name: meta.name.clone(),
        attempt: meta.attempt,
        image: image.to_string(),
        user_specified_image: c
            .image
            .as_ref()
            .map(|i| i.user_specified_image.clone())
            .filter(|u| !u.is_empty()),
        labels: sorted(&c.labels),
        annotations: sorted(&c.annotations),
        log_path,
        config,
        pid: None,
    })
}

/// Which PID namespace a container asks for (its security context's
/// namespace options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidChoice {
    /// The pod's (the CRI default).
    Pod,
    /// One of its own.
    Container,
    /// The host's.
    Node,
    /// That of this other container.
    Target(String),
}

/// The PID namespace the container config asks for.
pub fn pid_choice(c: &cri::ContainerConfig) -> Result<PidChoice, Status> {
    let Some(ns) = c
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref())
    else {
        return Ok(PidChoice::Pod);
    };
    match cri::NamespaceMode::try_from(ns.pid) {
        Ok(cri::NamespaceMode::Pod) => Ok(PidChoice::Pod),
        Ok(cri::NamespaceMode::Container) => Ok(PidChoice::Container),
        Ok(cri::NamespaceMode::Node) => Ok(PidChoice::Node),
        Ok(cri::NamespaceMode::Target) if !ns.target_id.is_empty() => {
            Ok(PidChoice::Target(ns.target_id.clone()))
        }
        Ok(cri::NamespaceMode::Target) => Err(invalid(
            "security_context.namespace_options.target_id",
            "is empty",
        )),
        Err(_) => Err(invalid(
            "security_context.namespace_options.pid",
            "is unknown",
        )),
    }
}

fn sorted(m: &HashMap<String, String>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn mount(m: &cri::Mount) -> Result<MountConfig, Status> {
    if !m.container_path.starts_with('/') {
        return Err(invalid(
            "config.mounts.container_path",
            format!("{:?} is not absolute", m.container_path),
        ));
    }
    let image = image_mount(m)?;
    if image.is_none() && !m.host_path.starts_with('/') {
        return Err(invalid(
            "config.mounts.host_path",
            format!("{:?} is not absolute", m.host_path),
        ));
    }
    let propagation = match cri::MountPropagation::try_from(m.propagation) {
        Ok(cri::MountPropagation::PropagationPrivate) => Propagation::Private,
        Ok(cri::MountPropagation::PropagationHostToContainer) => Propagation::HostToContainer,
        Ok(cri::MountPropagation::PropagationBidirectional) => Propagation::Bidirectional,
        Err(_) => return Err(invalid("config.mounts.propagation", "is unknown")),
    };
    if m.recursive_read_only && !m.readonly {
        return Err(invalid(
            "config.mounts.recursive_read_only",
            "needs readonly",
        ));
    }
    if m.recursive_read_only && propagation != Propagation::Private {
        return Err(invalid(
            "config.mounts.recursive_read_only",
            "needs private propagation",
        ));
    }
    Ok(MountConfig {
        host_path: PathBuf::from(&m.host_path),
        container_path: m.container_path.clone(),
        readonly: m.readonly,
        recursive_readonly: m.recursive_read_only,
        propagation,
        options: Vec::new(),
        image,
    })
}

/// The image volume a mount asks for (`image` set): read-only, no host
/// path, a relative sub path without `..`.
fn image_mount(m: &cri::Mount) -> Result<Option<ImageMount>, Status> {
    let Some(image) = m.image.as_ref().filter(|i| !i.image.is_empty()) else {
        if !m.image_sub_path.is_empty() {
            return Err(invalid(
                "config.mounts.image_sub_path",
                "is set without image",
            ));
        }
        return Ok(None);
    };
    let what = format!("image volume {:?} at {:?}", image.image, m.container_path);
    if !m.host_path.is_empty() {
        return Err(invalid(
            "config.mounts.host_path",
            format!("{what}: an image volume has no host path"),
        ));
    }
    if !m.readonly {
        return Err(invalid(
            "config.mounts.readonly",
            format!("{what}: image volumes are read-only"),
        ));
    }
    let sub = &m.image_sub_path;
    if sub.starts_with('/') || sub.contains('\0') {
        return Err(invalid(
            "config.mounts.image_sub_path",
            format!("{what}: {sub:?} is not a relative path"),
        ));
    }
    if sub.split('/').any(|c| c == "..") {
        return Err(invalid(
            "config.mounts.image_sub_path",
            format!("{what}: {sub:?} leaves the image (`..`)"),
        ));
    }
    Ok(Some(ImageMount {
        image: image.image.clone(),
        sub_path: sub.clone(),
        ..ImageMount::default()
    }))
}

/// CRI Linux resources (0 = unset) to the runtime's.
pub fn resources(r: Option<&cri::LinuxContainerResources>) -> Result<Resources, Status> {
    let Some(r) = r else {
        return Ok(Resources::default());
    };
    let positive = |v: i64| u64::try_from(v).ok().filter(|v| *v > 0);
    for (field, v) in [
        ("cpu_period", r.cpu_period),
        ("cpu_shares", r.cpu_shares),
        ("memory_limit_in_bytes", r.memory_limit_in_bytes),
    ] {
        if v < 0 {
            return Err(invalid(
                &format!("linux.resources.{field}"),
                format_args!("{v} is negative (0 means unset)"),
            ));
        }
    }
    if r.cpu_quota < -1 {
        return Err(invalid(
            "linux.resources.cpu_quota",
            format_args!("{} is negative (0 or -1 mean no limit)", r.cpu_quota),
        ));
    }
    let oom = i32::try_from(r.oom_score_adj)
        .ok()
        .filter(|v| (-1000..=1000).contains(v))
        .ok_or_else(|| invalid("linux.resources.oom_score_adj", "is not in -1000..1000"))?;
    let resources = Resources {
        cpu_shares: positive(r.cpu_shares),
        cpu_quota: Some(r.cpu_quota).filter(|q| *q > 0),
        cpu_period: positive(r.cpu_period),
        cpuset_cpus: Some(r.cpuset_cpus.clone()).filter(|s| !s.is_empty()),
        cpuset_mems: Some(r.cpuset_mems.clone()).filter(|s| !s.is_empty()),
        memory_limit_bytes: Some(r.memory_limit_in_bytes).filter(|m| *m > 0),
        pids_limit: None,
        oom_score_adj: Some(oom).filter(|v| *v != 0),
        unified: sorted(&r.unified),
    };
    validate::resources(&resources)?;
    Ok(resources)
}

fn security(s: Option<&cri::LinuxContainerSecurityContext>) -> Result<Security, Status> {
    let Some(s) = s else {
        return Ok(Security::default());
    };
    let id = |v: &Option<cri::Int64Value>, field: &str| -> Result<Option<u32>, Status> {
        v.as_ref().map(|v| validate::id(field, v.value)).transpose()
    };
    // A group without a user to go with it is refused, as containerd does.
    if s.run_as_group.is_some() && s.run_as_user.is_none() && s.run_as_username.is_empty() {
        return Err(invalid(
            "security_context.run_as_group",
            "is set without run_as_user or run_as_username",
        ));
    }
    let supplemental_groups = s
        .supplemental_groups
        .iter()
        .map(|g| validate::id("security_context.supplemental_groups", *g))
        .collect::<Result<_, _>>()?;
    let caps = s.capabilities.clone().unwrap_or_default();
    Ok(Security {
        privileged: s.privileged,
        run_as_user: id(&s.run_as_user, "security_context.run_as_user")?,
        run_as_group: id(&s.run_as_group, "security_context.run_as_group")?,
        run_as_username: Some(s.run_as_username.clone()).filter(|u| !u.is_empty()),
        supplemental_groups,
        strict_supplemental_groups: s.supplemental_groups_policy
            == cri::SupplementalGroupsPolicy::Strict as i32,
        add_capabilities: caps.add_capabilities,
        drop_capabilities: caps.drop_capabilities,
        readonly_rootfs: s.readonly_rootfs,
        no_new_privs: s.no_new_privs,
        seccomp: seccomp(s.seccomp.as_ref(), legacy_seccomp_path(s))?,
        masked_paths: Some(s.masked_paths.clone()).filter(|p| !p.is_empty()),
        readonly_paths: Some(s.readonly_paths.clone()).filter(|p| !p.is_empty()),
    })
}

/// The deprecated `seccomp_profile_path`, still sent by older clients.
#[allow(deprecated)]
fn legacy_seccomp_path(s: &cri::LinuxContainerSecurityContext) -> &str {
    &s.seccomp_profile_path
}

/// The seccomp profile: the `seccomp` field, else the deprecated path
/// field, else none (unconfined, as containerd without a default).
fn seccomp(p: Option<&cri::SecurityProfile>, legacy: &str) -> Result<SeccompProfile, Status> {
    if let Some(p) = p {
        return match ProfileType::try_from(p.profile_type) {
            Ok(ProfileType::RuntimeDefault) => Ok(SeccompProfile::RuntimeDefault),
            Ok(ProfileType::Unconfined) => Ok(SeccompProfile::Unconfined),
            Ok(ProfileType::Localhost) if p.localhost_ref.starts_with('/') => {
                Ok(SeccompProfile::Localhost(PathBuf::from(&p.localhost_ref)))
            }
            Ok(ProfileType::Localhost) => Err(invalid(
                "security_context.seccomp.localhost_ref",
                "is not an absolute path",
            )),
            Err(_) => Err(invalid(
                "security_context.seccomp.profile_type",
                "is unknown",
            )),
        };
    }
    match legacy {
        "" | "unconfined" => Ok(SeccompProfile::Unconfined),
        "runtime/default" | "docker/default" => Ok(SeccompProfile::RuntimeDefault),
        other => match other.strip_prefix("localhost/") {
            Some(path) if path.starts_with('/') => Ok(SeccompProfile::Localhost(path.into())),
            _ => Err(invalid(
                "security_context.seccomp_profile_path",
                format!("{other:?} is not a known profile"),
            )),
        },
    }
}

/// The CRI state of a record.
pub fn state(s: ContainerState) -> cri::ContainerState {
    match s {
        ContainerState::Created => cri::ContainerState::ContainerCreated,
        ContainerState::Running => cri::ContainerState::ContainerRunning,
        ContainerState::Exited => cri::ContainerState::ContainerExited,
        ContainerState::Unknown => cri::ContainerState::ContainerUnknown,
    }
}

/// The runtime state a CRI state filter asks for.
pub fn state_from_cri(s: i32) -> Result<ContainerState, Status> {
    match cri::ContainerState::try_from(s) {
        Ok(cri::ContainerState::ContainerCreated) => Ok(ContainerState::Created),
        Ok(cri::ContainerState::ContainerRunning) => Ok(ContainerState::Running),
        Ok(cri::ContainerState::ContainerExited) => Ok(ContainerState::Exited),
        Ok(cri::ContainerState::ContainerUnknown) => Ok(ContainerState::Unknown),
        Err(_) => Err(invalid("filter.state", "is unknown")),
    }
}

fn metadata(r: &ContainerRecord) -> cri::ContainerMetadata {
    cri::ContainerMetadata {
        name: r.name.clone(),
        attempt: r.attempt,
    }
}

fn unsorted(m: &BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn image_spec(r: &ContainerRecord) -> cri::ImageSpec {
    cri::ImageSpec {
        image: r.image.clone(),
        ..cri::ImageSpec::default()
    }
}

/// The CRI list entry of a record.
pub fn container(r: &ContainerRecord) -> cri::Container {
    cri::Container {
        id: r.id.to_string(),
        pod_sandbox_id: r.pod_id.to_string(),
        metadata: Some(metadata(r)),
        image: Some(image_spec(r)),
        image_ref: r.image_ref.clone(),
        state: state(r.state) as i32,
        created_at: r.created_at_ns,
        labels: unsorted(&r.labels),
        annotations: unsorted(&r.annotations),
        image_id: r.image_id.to_string(),
    }
}

/// A mount as ContainerStatus shows it.
fn status_mount(m: &MountConfig) -> cri::Mount {
    cri::Mount {
        container_path: m.container_path.clone(),
        // An image volume shows its image (and the id PullImage
        // answered, as image_ref), not where its shim mounts it.
        host_path: match &m.image {
            Some(_) => String::new(),
            None => m.host_path.display().to_string(),
        },
        image: m.image.as_ref().map(|i| cri::ImageSpec {
            image: i.image.clone(),
            image_ref: i.image_id.clone(),
            ..cri::ImageSpec::default()
        }),
        image_sub_path: m
            .image
            .as_ref()
            .map(|i| i.sub_path.clone())
            .unwrap_or_default(),
        readonly: m.readonly,
        recursive_read_only: m.recursive_readonly,
        propagation: match m.propagation {
            Propagation::Private => cri::MountPropagation::PropagationPrivate,
            Propagation::HostToContainer => cri::MountPropagation::PropagationHostToContainer,
            Propagation::Bidirectional => cri::MountPropagation::PropagationBidirectional,
        } as i32,
        ..cri::Mount::default()
    }
}

/// The CRI status of a record.
pub fn status(r: &ContainerRecord) -> cri::ContainerStatus {
    let mounts = r.mounts.iter().map(status_mount).collect();
    let res = &r.config.resources;
    let linux = cri::LinuxContainerResources {
        cpu_period: res
            .cpu_period
            .and_then(|v| i64::try_from(v).ok())
            .unwrap_or(0),
        cpu_quota: res.cpu_quota.unwrap_or(0),
        cpu_shares: res
            .cpu_shares
            .and_then(|v| i64::try_from(v).ok())
            .unwrap_or(0),
        memory_limit_in_bytes: res.memory_limit_bytes.unwrap_or(0),
        oom_score_adj: i64::from(res.oom_score_adj.unwrap_or(0)),
        cpuset_cpus: res.cpuset_cpus.clone().unwrap_or_default(),
        cpuset_mems: res.cpuset_mems.clone().unwrap_or_default(),
        unified: unsorted(&res.unified),
        ..cri::LinuxContainerResources::default()
    };
    cri::ContainerStatus {
        id: r.id.to_string(),
        metadata: Some(metadata(r)),
        state: state(r.state) as i32,
        created_at: r.created_at_ns,
        started_at: r.started_at_ns,
        finished_at: r.finished_at_ns,
        exit_code: r.exit_code,
        image: Some(image_spec(r)),
        image_ref: r.image_ref.clone(),
        reason: r.reason.clone(),
        message: r.message.clone(),
        labels: unsorted(&r.labels),
        annotations: unsorted(&r.annotations),
        mounts,
        log_path: r
            .log_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        resources: Some(cri::ContainerResources {
            linux: Some(linux),
            windows: None,
        }),
        image_id: r.image_id.to_string(),
        stop_signal: super::signal::to_cri(r.stop_signal_in_effect()),
        user: Some(cri::ContainerUser {
            linux: Some(cri::LinuxContainerUser {
                uid: i64::from(r.user.uid),
                gid: i64::from(r.user.gid),
                supplemental_groups: r
                    .user
                    .additional_gids
                    .iter()
                    .map(|g| i64::from(*g))
                    .collect(),
            }),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> cri::ContainerConfig {
        cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: "web".into(),
                attempt: 2,
            }),
            image: Some(cri::ImageSpec {
                image: "busybox".into(),
                ..cri::ImageSpec::default()
            }),
            ..cri::ContainerConfig::default()
        }
    }

    #[test]
    fn image_mounts_are_checked_and_shown_with_their_image() {
        let image = |readonly: bool, host: &str, sub: &str| cri::Mount {
            container_path: "/vol".into(),
            host_path: host.into(),
            readonly,
            image: Some(cri::ImageSpec {
                image: "sha256:abc".into(),
                ..cri::ImageSpec::default()
            }),
            image_sub_path: sub.into(),
            ..cri::Mount::default()
        };
        let m = mount(&image(true, "", "data/sub")).expect("an image volume");
        let volume = m.image.clone().expect("image");
        assert_eq!(
            (volume.image.as_str(), volume.sub_path.as_str()),
            ("sha256:abc", "data/sub")
        );
        assert!(m.readonly && m.host_path.as_os_str().is_empty());
        for (bad, field) in [
            (image(false, "", ""), "config.mounts.readonly"),
            (image(true, "/srv", ""), "config.mounts.host_path"),
            (image(true, "", "../x"), "config.mounts.image_sub_path"),
            (image(true, "", "a/../../x"), "config.mounts.image_sub_path"),
            (image(true, "", "/abs"), "config.mounts.image_sub_path"),
            (
                cri::Mount {
                    image: None,
                    host_path: "/srv".into(),
                    ..image(true, "", "sub")
                },
                "config.mounts.image_sub_path",
            ),
        ] {
            let e = mount(&bad).expect_err(field);
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
            assert!(e.message().contains(field), "{field}: {}", e.message());
        }

        // The status shows the image and its id, no host path.
        let mut shown = m.clone();
        shown.host_path = "/run/corten/containers/x/image-volumes/0/data/sub".into();
        if let Some(i) = shown.image.as_mut() {
            i.image_id = "sha256:abcdef".into();
        }
        let out = &status_mount(&shown);
        assert_eq!(out.host_path, "");
        assert_eq!(out.image_sub_path, "data/sub");
        let spec = out.image.clone().expect("image");
        assert_eq!(
            (spec.image.as_str(), spec.image_ref.as_str()),
            ("sha256:abc", "sha256:abcdef")
        );
    }

    #[test]
    fn missing_fields_are_named() {
        let mut c = config();
        c.metadata = None;
        let e = new_container(&c).expect_err("no metadata");
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("metadata"), "{}", e.message());
        let mut c = config();
        c.image = None;
        assert!(new_container(&c)
            .expect_err("no image")
            .message()
            .contains("image"));
        let mut c = config();
        c.mounts.push(cri::Mount {
            container_path: "rel".into(),
            host_path: "/x".into(),
            ..cri::Mount::default()
        });
        assert!(new_container(&c)
            .expect_err("relative")
            .message()
            .contains("container_path"));
        let mut c = config();
        c.working_dir = "srv".into();
        assert!(new_container(&c)
            .expect_err("relative wd")
            .message()
            .contains("working_dir"));
    }

    #[test]
    fn security_and_resources_convert() {
        let mut c = config();
        c.linux = Some(cri::LinuxContainerConfig {
            resources: Some(cri::LinuxContainerResources {
                memory_limit_in_bytes: 1 << 20,
                cpu_quota: 50_000,
                cpu_period: 100_000,
                oom_score_adj: -998,
                ..Default::default()
            }),
            security_context: Some(cri::LinuxContainerSecurityContext {
                run_as_user: Some(cri::Int64Value { value: 1000 }),
                readonly_rootfs: true,
                seccomp: Some(cri::SecurityProfile {
                    profile_type: ProfileType::RuntimeDefault as i32,
                    localhost_ref: String::new(),
                }),
                capabilities: Some(cri::Capability {
                    add_capabilities: vec!["NET_ADMIN".into()],
                    drop_capabilities: vec!["ALL".into()],
                    ..Default::default()
                }),
                ..Default::default()
            }),
        });
        let n = new_container(&c).expect("convert");
        assert_eq!((n.name.as_str(), n.attempt), ("web", 2));
        let r = &n.config.resources;
        assert_eq!(r.memory_limit_bytes, Some(1 << 20));
        assert_eq!((r.cpu_quota, r.cpu_period), (Some(50_000), Some(100_000)));
        assert_eq!(r.oom_score_adj, Some(-998));
        let s = &n.config.security;
        assert_eq!(s.run_as_user, Some(1000));
        assert!(s.readonly_rootfs);
        assert_eq!(s.seccomp, SeccompProfile::RuntimeDefault);
        assert_eq!(s.drop_capabilities, vec!["ALL".to_string()]);

        let mut bad = c.clone();
        if let Some(l) = bad.linux.as_mut() {
            if let Some(sc) = l.security_context.as_mut() {
                sc.run_as_user = Some(cri::Int64Value { value: -1 });
            }
        }
        assert!(new_container(&bad)
            .expect_err("negative uid")
            .message()
            .contains("run_as_user"));
    }

    #[test]
    fn legacy_seccomp_paths() {
        assert_eq!(seccomp(None, "").expect("none"), SeccompProfile::Unconfined);
        assert_eq!(
            seccomp(None, "runtime/default").expect("default"),
            SeccompProfile::RuntimeDefault
        );
        assert_eq!(
            seccomp(None, "localhost//p.json").expect("file"),
            SeccompProfile::Localhost("/p.json".into())
        );
        assert!(seccomp(None, "nope").is_err());
    }
}
