//! [`generate`]: the OCI runtime spec of a container.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{
    Capabilities, Linux, LinuxCapabilities, LinuxCpu, LinuxDevice, LinuxDeviceCgroup,
    LinuxDeviceType, LinuxIdMapping, LinuxIdMappingBuilder, LinuxMemory, LinuxNamespace,
    LinuxNamespaceType, LinuxPids, LinuxResources, Mount, PosixRlimitBuilder, PosixRlimitType,
    Process, Root, Spec, User,
};

use super::config::{
    ContainerConfig, DeviceKind, DeviceNode, NsMode, Propagation, Resources, SeccompProfile,
};
use super::defaults::{self, capability};
use super::image::{self, ImageConfig};
use super::{user, Error, RootfsView};
use crate::seccomp;

/// The OCI runtime spec for container `c` of `image`, whose files `rootfs`
/// reads. `root.path` is `rootfs` (relative to the bundle).
pub fn generate(
    c: &ContainerConfig,
    image: &ImageConfig,
    rootfs: &dyn RootfsView,
) -> Result<Spec, Error> {
    let sec = &c.security;
    check_mounts(c)?;
    let args = image::process_args(c, image)?;
    let user = user::resolve(sec, image.user.as_deref(), rootfs)?;

    // HOSTNAME first, so that the image's and the container's win.
    let hostname = c.hostname_env.iter().map(|h| format!("HOSTNAME={h}"));
    let base: Vec<String> = hostname.chain(image.env.iter().cloned()).collect();
    let mut env = image::merge_env(&base, &c.env);
    if !image::has_env(&env, "PATH") {
        env.insert(0, defaults::DEFAULT_PATH.to_string());
    }
    if c.tty && !image::has_env(&env, "TERM") {
        env.push("TERM=xterm".into());
    }
    if !image::has_env(&env, "HOME") {
        env.push(format!("HOME={}", user.home.as_deref().unwrap_or("/")));
    }
    image::check_exec_size(&args, &env, image::exec_stack_limit())?;
    let cwd = c
        .working_dir
        .clone()
        .or_else(|| image.working_dir.clone())
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(Error::WorkingDir(cwd));
    }

    let cap_names = defaults::capabilities(
        sec.privileged,
        &sec.add_capabilities,
        &sec.drop_capabilities,
    )?;
    let caps: Capabilities = cap_names
        .iter()
        .map(|n| capability(n))
        .collect::<Result<_, _>>()?;
    let mut capabilities = LinuxCapabilities::default();
    capabilities.set_bounding(Some(caps.clone()));
    capabilities.set_effective(Some(caps.clone()));
    capabilities.set_permitted(Some(caps));
    capabilities.set_inheritable(Some(HashSet::new()));
    capabilities.set_ambient(Some(HashSet::new()));

    let mut oci_user = User::default();
    oci_user.set_uid(user.uid);
    oci_user.set_gid(user.gid);
    oci_user.set_additional_gids(Some(user.additional_gids.clone()));

    let nofile = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .soft(defaults::NOFILE)
        .hard(defaults::NOFILE)
        .build()
        .map_err(|source| Error::Build {
            part: "rlimits",
            source,
        })?;

    let mut process = Process::default();
    process.set_terminal(Some(c.tty));
    process.set_user(oci_user);
    process.set_args(Some(args));
    process.set_env(Some(env));
    process.set_cwd(PathBuf::from(cwd));
    process.set_capabilities(Some(capabilities));
    process.set_rlimits(Some(vec![nofile]));
    process.set_no_new_privileges(Some(sec.no_new_privs));
    process.set_oom_score_adj(
        c.resources
            .oom_score_adj
            .map(|v| match c.oom_score_adj_cap {
                Some(floor) if v < floor => floor,
                _ => v,
            }),
    );

    let mut root = Root::default();
    root.set_path(PathBuf::from("rootfs"));
    root.set_readonly(Some(sec.readonly_rootfs));

    let mut spec = Spec::default();
    spec.set_version(oci_spec::runtime::VERSION.to_string());
    spec.set_root(Some(root));
    spec.set_process(Some(process));
    spec.set_mounts(Some(mounts(c)?));
    spec.set_hostname(match c.namespaces.uts {
        NsMode::Host => None,
        _ => c.hostname.clone(),
    });
    spec.set_annotations(Some(
        c.annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<HashMap<_, _>>(),
    ));
    spec.set_linux(Some(linux(c, &cap_names, (user.uid, user.gid))?));
    if !c.hooks.is_empty() {
        spec.set_hooks(Some(hooks(&c.hooks)?));
    }
    Ok(spec)
}

/// The OCI hooks of `list`, each at its point.
fn hooks(list: &[super::HookConfig]) -> Result<oci_spec::runtime::Hooks, Error> {
    use oci_spec::runtime::{Hook, HookBuilder, Hooks};
    let mut by_point: BTreeMap<&str, Vec<Hook>> = BTreeMap::new();
    for h in list {
        let bad = |reason: String| Error::Hook {
            path: h.path.clone(),
            reason,
        };
        if !super::HOOK_POINTS.contains(&h.point.as_str()) {
            return Err(bad(format!("{:?} is not an OCI hook point", h.point)));
        }
        if !Path::new(&h.path).is_absolute() {
            return Err(bad("the path is not absolute".into()));
        }
        let mut b = HookBuilder::default().path(PathBuf::from(&h.path));
        if !h.args.is_empty() {
            b = b.args(h.args.clone());
        }
        if !h.env.is_empty() {
            b = b.env(h.env.clone());
        }
        if let Some(t) = h.timeout {
            b = b.timeout(t);
        }
        let hook = b.build().map_err(|source| Error::Build {
            part: "hook",
            source,
        })?;
        by_point.entry(h.point.as_str()).or_default().push(hook);
    }
    let mut hooks = Hooks::default();
    let mut take = |point: &str| by_point.remove(point);
    hooks.set_prestart(take("prestart"));
    hooks.set_create_runtime(take("createRuntime"));
    hooks.set_create_container(take("createContainer"));
    hooks.set_start_container(take("startContainer"));
    hooks.set_poststart(take("poststart"));
    hooks.set_poststop(take("poststop"));
    Ok(hooks)
}

/// Refuses mounts and devices that could point outside what they should.
fn check_mounts(c: &ContainerConfig) -> Result<(), Error> {
    let container_path = |p: &str, err: &dyn Fn(&'static str) -> Error| {
        if !p.starts_with('/') {
            return Err(err("container path is not absolute"));
        }
        if Path::new(p).components().any(|c| c == Component::ParentDir) {
            return Err(err("container path contains `..`"));
        }
        Ok(())
    };
    for m in &c.mounts {
        let err = |reason| Error::Mount {
            path: m.container_path.clone(),
            reason,
        };
        container_path(&m.container_path, &err)?;
        if !m.host_path.is_absolute() {
            return Err(Error::Mount {
                path: m.host_path.display().to_string(),
                reason: "host path is not absolute",
            });
        }
    }
    for d in &c.devices {
        let err = |reason: &'static str| Error::Device {
            path: d.container_path.clone(),
            reason: reason.into(),
        };
        container_path(&d.container_path, &err)?;
    }
    Ok(())
}

/// Default mounts, replaced by user mounts of the same destination, then
/// the user's bind mounts, parents before children.
fn mounts(c: &ContainerConfig) -> Result<Vec<Mount>, Error> {
    let mut out = Vec::new();
    for (dest, typ, source, options) in defaults::mounts(c.security.privileged) {
        if c.mounts.iter().any(|m| same_path(&m.container_path, dest)) {
            continue;
        }
        out.push(mount(
            dest,
            typ,
            source,
            options.iter().map(|o| o.to_string()).collect(),
        ));
    }
    let mut binds: Vec<_> = c.mounts.iter().collect();
    binds.sort_by_key(|m| Path::new(&m.container_path).components().count());
    for m in binds {
        let propagation = match m.propagation {
            Propagation::Private => "rprivate",
            Propagation::HostToContainer => "rslave",
            Propagation::Bidirectional => "rshared",
        };
        let rw = if m.readonly { "ro" } else { "rw" };
        let bind = if m.options.iter().any(|o| o == "bind") {
            "bind"
        } else {
            "rbind"
        };
        let mut options = vec![bind.to_string(), propagation.into(), rw.into()];
        if m.recursive_readonly {
            options.push("rro".into());
        }
        let extra = m
            .options
            .iter()
            .filter(|o| !matches!(o.as_str(), "bind" | "rbind"));
        options.extend(extra.cloned());
        let source = m.host_path.to_string_lossy();
        out.push(mount(&m.container_path, "bind", &source, options));
    }
    Ok(out)
}

fn same_path(a: &str, b: &str) -> bool {
    Path::new(a).components().eq(Path::new(b).components())
}

fn mount(dest: &str, typ: &str, source: &str, options: Vec<String>) -> Mount {
    let mut m = Mount::default();
    // Normalised: no trailing `/` or `.` parts.
    m.set_destination(Path::new(dest).components().collect());
    m.set_typ(Some(typ.to_string()));
    m.set_source(Some(PathBuf::from(source)));
    m.set_options(Some(options));
    m
}

fn linux(c: &ContainerConfig, cap_names: &[String], owner: (u32, u32)) -> Result<Linux, Error> {
    let sec = &c.security;
    let mut linux = Linux::default();

    let mut namespaces = Vec::new();
    if let Some(user) = &c.namespaces.user {
        // First: the others are made (or joined) inside it.
        namespaces.push(namespace(LinuxNamespaceType::User, Some(user.path.clone())));
        let oci = |maps: &[crate::linux::IdMapping]| -> Result<Vec<LinuxIdMapping>, Error> {
            maps.iter()
                .map(|m| {
                    LinuxIdMappingBuilder::default()
                        .container_id(m.container_id)
                        .host_id(m.host_id)
                        .size(m.size)
                        .build()
                        .map_err(|source| Error::Build {
                            part: "id mappings",
                            source,
                        })
                })
                .collect::<Result<_, _>>()
        };
        linux.set_uid_mappings(Some(oci(&user.mappings.uids)?));
        linux.set_gid_mappings(Some(oci(&user.mappings.gids)?));
    }
    namespaces.push(namespace(LinuxNamespaceType::Mount, None));
    namespaces.push(namespace(LinuxNamespaceType::Cgroup, None));
    for (typ, mode) in [
        (LinuxNamespaceType::Network, &c.namespaces.network),
        (LinuxNamespaceType::Pid, &c.namespaces.pid),
        (LinuxNamespaceType::Ipc, &c.namespaces.ipc),
        (LinuxNamespaceType::Uts, &c.namespaces.uts),
    ] {
        match mode {
            NsMode::New => namespaces.push(namespace(typ, None)),
            NsMode::Path(p) => namespaces.push(namespace(typ, Some(p.clone()))),
            NsMode::Host => {}
        }
    }
    linux.set_namespaces(Some(namespaces));
    // Mounts that receive (or share) host mounts need a root that is not
    // private, as containerd sets it.
    let propagation = if c
        .mounts
        .iter()
        .any(|m| m.propagation == Propagation::Bidirectional)
    {
        Some("rshared")
    } else if c
        .mounts
        .iter()
        .any(|m| m.propagation == Propagation::HostToContainer)
    {
        Some("rslave")
    } else {
        None
    };
    linux.set_rootfs_propagation(propagation.map(str::to_string));

    let (devices, mut rules) = devices(c, owner)?;
    linux.set_devices(Some(devices));

    let mut resources = linux_resources(&c.resources);
    rules.insert(0, device_rule(false, None, None, None, "rwm"));
    resources.set_devices(Some(rules));
    linux.set_resources(Some(resources));

    if !c.cgroup_path.is_empty() {
        linux.set_cgroups_path(Some(PathBuf::from(&c.cgroup_path)));
    }
    let (masked, readonly) = if sec.privileged {
        (Vec::new(), Vec::new())
    } else {
        let or_default = |given: &Option<Vec<String>>, default: &[&str]| {
            given
                .clone()
                .unwrap_or_else(|| default.iter().map(|p| p.to_string()).collect())
        };
        (
            or_default(&sec.masked_paths, defaults::MASKED_PATHS),
            or_default(&sec.readonly_paths, defaults::READONLY_PATHS),
        )
    };
    linux.set_masked_paths(Some(masked));
    linux.set_readonly_paths(Some(readonly));
    linux.set_seccomp(match &sec.seccomp {
        _ if sec.privileged => None,
        SeccompProfile::Unconfined => None,
        SeccompProfile::RuntimeDefault => {
            let caps: Vec<String> = cap_names.iter().map(|c| format!("CAP_{c}")).collect();
            Some(seccomp::runtime_default(&caps))
        }
        SeccompProfile::Localhost(path) => Some(seccomp::from_file(path)?),
    });
    Ok(linux)
}

/// The cgroup limits of `r` (no device rules): what a container is created
/// with, and what `UpdateContainerResources` applies to a running one.
pub fn linux_resources(r: &Resources) -> LinuxResources {
    let mut resources = LinuxResources::default();
    if r.memory_limit_bytes.is_some_and(|m| m > 0) {
        let mut memory = LinuxMemory::default();
        memory.set_limit(r.memory_limit_bytes);
        resources.set_memory(Some(memory));
    }
    let positive = |v: Option<u64>| v.filter(|v| *v > 0);
    let mut cpu = LinuxCpu::default();
    cpu.set_shares(positive(r.cpu_shares));
    cpu.set_quota(r.cpu_quota.filter(|q| *q > 0));
    cpu.set_period(positive(r.cpu_period));
    cpu.set_cpus(r.cpuset_cpus.clone().filter(|s| !s.is_empty()));
    cpu.set_mems(r.cpuset_mems.clone().filter(|s| !s.is_empty()));
    if cpu != LinuxCpu::default() {
        resources.set_cpu(Some(cpu));
    }
    if let Some(limit) = r.pids_limit.filter(|l| *l > 0) {
        let mut pids = LinuxPids::default();
        pids.set_limit(limit);
        resources.set_pids(Some(pids));
    }
    if !r.unified.is_empty() {
        resources.set_unified(Some(r.unified.clone().into_iter().collect()));
    }
    resources
}

fn namespace(typ: LinuxNamespaceType, path: Option<PathBuf>) -> LinuxNamespace {
    let mut ns = LinuxNamespace::default();
    ns.set_typ(typ);
    ns.set_path(path);
    ns
}

fn device_rule(
    allow: bool,
    typ: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(allow);
    r.set_typ(Some(typ.unwrap_or(LinuxDeviceType::A)));
    r.set_major(major);
    r.set_minor(minor);
    r.set_access(Some(access.to_string()));
    r
}

/// Device nodes and the cgroup rules allowing them (after a deny-all rule
/// the caller puts first). `owner`: the process's uid and gid, which own
/// described nodes that name no owner.
fn devices(
    c: &ContainerConfig,
    owner: (u32, u32),
) -> Result<(Vec<LinuxDevice>, Vec<LinuxDeviceCgroup>), Error> {
    let mut nodes = Vec::new();
    let mut rules = Vec::new();
    if c.security.privileged {
        for host in defaults::host_devices(Path::new("/dev")) {
            if let Ok(d) = host_device(&host, &host.to_string_lossy()) {
                nodes.push(d);
            }
        }
        rules.push(device_rule(true, None, None, None, "rwm"));
    } else {
        for (path, major, minor) in defaults::DEVICES {
            let mut d = LinuxDevice::default();
            d.set_path(PathBuf::from(path));
            d.set_typ(LinuxDeviceType::C);
            d.set_major(*major);
            d.set_minor(*minor);
            d.set_file_mode(Some(0o666));
            d.set_uid(Some(0));
            d.set_gid(Some(0));
            nodes.push(d);
            rules.push(device_rule(
                true,
                Some(LinuxDeviceType::C),
                Some(*major),
                Some(*minor),
                "rwm",
            ));
        }
        for (major, minor) in defaults::PTY_DEVICES {
            rules.push(device_rule(
                true,
                Some(LinuxDeviceType::C),
                Some(*major),
                *minor,
                "rwm",
            ));
        }
    }
    for dc in &c.devices {
        let d = match &dc.node {
            Some(node) => described_device(node, &dc.container_path, owner),
            None => host_device(&dc.host_path, &dc.container_path)?,
        };
        let access = match dc.permissions.as_str() {
            "" => "rwm",
            "none" => "",
            given => given,
        };
        if !access.chars().all(|ch| matches!(ch, 'r' | 'w' | 'm')) {
            return Err(Error::Device {
                path: dc.container_path.clone(),
                reason: format!("permissions {access:?} are not some of `rwm`"),
            });
        }
        // The node is made inside the container's cgroup, so its rule has
        // `m` whatever else it allows (runc allows `m` on every device for
        // that; here only on the devices given). A FIFO is no device to
        // the cgroup.
        if d.typ() != LinuxDeviceType::P {
            let mut access = access.to_string();
            if !access.contains('m') {
                access.push('m');
            }
            rules.push(device_rule(
                true,
                Some(d.typ()),
                Some(d.major()),
                Some(d.minor()),
                &access,
            ));
        }
        nodes.retain(|n| n.path() != d.path());
        nodes.push(d);
    }
    Ok((nodes, rules))
}

/// The node `node` describes, at `container_path`.
fn described_device(node: &DeviceNode, container_path: &str, owner: (u32, u32)) -> LinuxDevice {
    let mut d = LinuxDevice::default();
    d.set_path(PathBuf::from(container_path));
    d.set_typ(match node.kind {
        DeviceKind::Char => LinuxDeviceType::C,
        DeviceKind::Block => LinuxDeviceType::B,
        DeviceKind::Fifo => LinuxDeviceType::P,
    });
    d.set_major(node.major);
    d.set_minor(node.minor);
    d.set_file_mode(Some(node.file_mode.unwrap_or(0o666) & 0o7777));
    d.set_uid(Some(node.uid.unwrap_or(owner.0)));
    d.set_gid(Some(node.gid.unwrap_or(owner.1)));
    d
}

/// The device node `host` (following symlinks), to appear at `container_path`.
fn host_device(host: &Path, container_path: &str) -> Result<LinuxDevice, Error> {
    let err = |reason: String| Error::Device {
        path: host.display().to_string(),
        reason,
    };
    if !host.is_absolute() {
        return Err(err("host path is not absolute".into()));
    }
    let meta = std::fs::metadata(host).map_err(|source| Error::DeviceUnreadable {
        path: host.display().to_string(),
        source,
    })?;
    let ft = meta.file_type();
    let typ = if ft.is_char_device() {
        LinuxDeviceType::C
    } else if ft.is_block_device() {
        LinuxDeviceType::B
    } else {
        return Err(err("not a device node".into()));
    };
    let rdev = meta.rdev();
    let mut d = LinuxDevice::default();
    d.set_path(PathBuf::from(container_path));
    d.set_typ(typ);
    d.set_major(i64::from(nix::sys::stat::major(rdev) as u32));
    d.set_minor(i64::from(nix::sys::stat::minor(rdev) as u32));
    d.set_file_mode(Some(meta.permissions().mode() & 0o7777));
    d.set_uid(Some(meta.uid()));
    d.set_gid(Some(meta.gid()));
    Ok(d)
}
