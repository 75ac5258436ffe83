//! CDI edits made into the container's config: device nodes, mounts and
//! environment become the config's own devices, bind mounts and variables,
//! so the checks and the spec generation of the CRI's apply to them.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use corten_runtime::spec::{
    ContainerConfig, DeviceConfig, DeviceKind, DeviceNode, HookConfig, MountConfig, Propagation,
};
use tonic::Status;

use super::registry::Resolved;
use super::spec::{self, ContainerEdits};

/// Makes the edits of `devices` into `config`, in order; refuses edits
/// corten cannot make (Intel RDT, network devices; hooks unless
/// `hooks_run`: an external runtime handler runs them, the built-in core
/// does not) and device nodes or mount sources missing on the host. Stats
/// host files.
pub fn apply(
    devices: &[Resolved<'_>],
    config: &mut ContainerConfig,
    hooks_run: bool,
) -> Result<(), Status> {
    for device in devices {
        for edits in &device.edits {
            apply_one(device.name, edits, config, hooks_run)?;
        }
    }
    Ok(())
}

fn refuse(device: &str, why: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("CDI device {device:?}: {why}"))
}

fn apply_one(
    device: &str,
    e: &ContainerEdits,
    c: &mut ContainerConfig,
    hooks_run: bool,
) -> Result<(), Status> {
    if let (false, Some(h)) = (hooks_run, e.hooks.first()) {
        return Err(refuse(
            device,
            format_args!(
                "hook {} ({}) not supported: corten's built-in runtime runs no OCI hooks \
                 (a pod with a runtime handler such as runc runs them)",
                h.hook_name, h.path
            ),
        ));
    }
    c.hooks.extend(e.hooks.iter().map(|h| HookConfig {
        point: h.hook_name.clone(),
        path: h.path.clone(),
        args: h.args.clone(),
        env: h.env.clone(),
        timeout: h.timeout,
    }));
    if e.intel_rdt.is_some() {
        return Err(refuse(device, "intelRdt not supported"));
    }
    if let Some(n) = e.net_devices.first() {
        return Err(refuse(
            device,
            format_args!("netDevices ({}) not supported", n.host_interface_name),
        ));
    }
    for kv in &e.env {
        if let Some((k, v)) = kv.split_once('=') {
            c.env.push((k.to_string(), v.to_string()));
        }
    }
    for n in &e.device_nodes {
        let d = device_node(n).map_err(|why| refuse(device, why))?;
        c.devices
            .retain(|old| !same_path(&old.container_path, &d.container_path));
        c.devices.push(d);
    }
    for m in &e.mounts {
        let m = mount(m).map_err(|why| refuse(device, why))?;
        c.mounts
            .retain(|old| !same_path(&old.container_path, &m.container_path));
        c.mounts.push(m);
    }
    for g in e.additional_gids.iter().filter(|g| **g != 0) {
        if !c.security.supplemental_groups.contains(g) {
            c.security.supplemental_groups.push(*g);
        }
    }
    Ok(())
}

fn same_path(a: &str, b: &str) -> bool {
    Path::new(a).components().eq(Path::new(b).components())
}

/// The kind a CDI type letter names.
fn kind_of(typ: &str) -> Option<DeviceKind> {
    match typ {
        "c" | "u" => Some(DeviceKind::Char),
        "b" => Some(DeviceKind::Block),
        "p" => Some(DeviceKind::Fifo),
        _ => None,
    }
}

/// A device node, what the spec leaves out filled from the host node (as
/// the reference library does): type and numbers unless the spec gives a
/// type and a major (a FIFO needs none), the mode unless given.
fn device_node(n: &spec::DeviceNode) -> Result<DeviceConfig, String> {
    let host = if n.host_path.is_empty() {
        &n.path
    } else {
        &n.host_path
    };
    let given = kind_of(&n.typ);
    let complete = given.is_some_and(|k| n.major != 0 || k == DeviceKind::Fifo);
    let (mut kind, mut major, mut minor, mut file_mode) = (given, n.major, n.minor, n.file_mode);
    match std::fs::metadata(host) {
        Err(e) if !complete => {
            return Err(format!("host device {host}: {e}"));
        }
        Err(_) => {}
        Ok(meta) => {
            let ft = meta.file_type();
            let host_kind = if ft.is_char_device() {
                Some(DeviceKind::Char)
            } else if ft.is_block_device() {
                Some(DeviceKind::Block)
            } else if ft.is_fifo() {
                Some(DeviceKind::Fifo)
            } else {
                None
            };
            file_mode = file_mode.or(Some(meta.mode() & 0o7777));
            if !complete {
                let Some(host_kind) = host_kind else {
                    return Err(format!("host path {host} is not a device node"));
                };
                if kind.is_some_and(|k| k != host_kind) {
                    return Err(format!(
                        "device node {}: type {:?} but the host node {host} is a {host_kind:?} device",
                        n.path, n.typ
                    ));
                }
                kind = Some(host_kind);
                if host_kind != DeviceKind::Fifo && major == 0 {
                    let rdev = meta.rdev();
                    major = i64::from(nix::sys::stat::major(rdev) as u32);
                    minor = i64::from(nix::sys::stat::minor(rdev) as u32);
                }
            }
        }
    }
    let kind = kind.ok_or_else(|| format!("device node {} has no type", n.path))?;
    Ok(DeviceConfig {
        host_path: PathBuf::from(host),
        container_path: n.path.clone(),
        permissions: n.permissions.clone(),
        node: Some(DeviceNode {
            kind,
            major,
            minor,
            file_mode,
            uid: n.uid,
            gid: n.gid,
        }),
    })
}

/// A bind mount (the only kind taken): `ro`/`rw` and propagation words
/// become the mount's fields, the other words its extra options.
fn mount(m: &spec::Mount) -> Result<MountConfig, String> {
    if !matches!(m.typ.as_str(), "" | "bind" | "none") {
        return Err(format!(
            "mount on {} of type {:?} not supported (bind mounts only)",
            m.container_path, m.typ
        ));
    }
    let source = Path::new(&m.host_path);
    if !source.is_absolute() || source.components().any(|c| c == Component::ParentDir) {
        return Err(format!(
            "mount source {:?} is not an absolute path without `..`",
            m.host_path
        ));
    }
    if let Err(e) = std::fs::symlink_metadata(source) {
        return Err(format!("mount source {}: {e}", m.host_path));
    }
    let mut out = MountConfig {
        host_path: source.to_path_buf(),
        container_path: m.container_path.clone(),
        ..MountConfig::default()
    };
    for o in &m.options {
        match o.as_str() {
            "ro" => out.readonly = true,
            "rw" => out.readonly = false,
            "private" | "rprivate" => out.propagation = Propagation::Private,
            "slave" | "rslave" => out.propagation = Propagation::HostToContainer,
            "shared" | "rshared" => out.propagation = Propagation::Bidirectional,
            other => out.options.push(other.to_string()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(path: &str, host: &str) -> spec::DeviceNode {
        spec::DeviceNode {
            path: path.into(),
            host_path: host.into(),
            ..spec::DeviceNode::default()
        }
    }

    #[test]
    fn device_nodes_are_completed_from_the_host_node() {
        let d = device_node(&node("/dev/vendor-null", "/dev/null")).expect("/dev/null");
        assert_eq!(d.host_path, PathBuf::from("/dev/null"));
        assert_eq!(d.container_path, "/dev/vendor-null");
        let n = d.node.expect("described");
        assert_eq!((n.kind, n.major, n.minor), (DeviceKind::Char, 1, 3));
        let mode = std::fs::metadata("/dev/null").expect("stat").mode() & 0o7777;
        assert_eq!(n.file_mode, Some(mode));
        assert_eq!((n.uid, n.gid), (None, None));

        // Given values win; a complete description needs no host node.
        let given = spec::DeviceNode {
            typ: "b".into(),
            major: 250,
            minor: 1,
            file_mode: Some(0o600),
            uid: Some(7),
            permissions: "r".into(),
            ..node("/dev/vendor-blk", "/nonexistent/dev")
        };
        let d = device_node(&given).expect("complete");
        assert_eq!(d.permissions, "r");
        let n = d.node.expect("described");
        assert_eq!(
            (n.kind, n.major, n.minor, n.file_mode, n.uid),
            (DeviceKind::Block, 250, 1, Some(0o600), Some(7))
        );

        // Missing, not a device, or of another type: refused, naming it.
        let err = device_node(&node("/dev/x", "/nonexistent/dev")).expect_err("missing");
        assert!(err.contains("/nonexistent/dev"), "{err}");
        let err = device_node(&node("/dev/x", "/etc/hostname")).expect_err("a file");
        assert!(err.contains("not a device node"), "{err}");
        let blk = spec::DeviceNode {
            typ: "b".into(),
            ..node("/dev/x", "/dev/null")
        };
        assert!(device_node(&blk).expect_err("type").contains("Char"));
    }

    #[test]
    fn mounts_become_bind_mounts_with_their_options() {
        let m = spec::Mount {
            host_path: "/usr/lib".into(),
            container_path: "/vendor/lib".into(),
            options: ["ro", "nosuid", "nodev", "rbind", "rslave"]
                .map(String::from)
                .to_vec(),
            typ: "bind".into(),
        };
        let out = mount(&m).expect("valid");
        assert!(out.readonly);
        assert_eq!(out.propagation, Propagation::HostToContainer);
        assert_eq!(out.options, ["nosuid", "nodev", "rbind"]);

        let tmpfs = spec::Mount {
            typ: "tmpfs".into(),
            ..m.clone()
        };
        assert!(mount(&tmpfs).expect_err("tmpfs").contains("not supported"));
        let missing = spec::Mount {
            host_path: "/nonexistent/lib".into(),
            ..m.clone()
        };
        assert!(mount(&missing)
            .expect_err("missing")
            .contains("/nonexistent/lib"));
        let relative = spec::Mount {
            host_path: "usr/lib".into(),
            ..m
        };
        assert!(mount(&relative).is_err());
    }

    #[test]
    fn edits_add_to_the_config_and_hooks_are_refused() {
        let mut c = ContainerConfig {
            env: vec![("A".into(), "cri".into())],
            mounts: vec![MountConfig {
                host_path: "/srv".into(),
                container_path: "/vendor/lib/".into(),
                ..MountConfig::default()
            }],
            ..ContainerConfig::default()
        };
        c.security.supplemental_groups = vec![44];
        let e = ContainerEdits {
            env: vec!["A=cdi".into(), "B=x=y".into()],
            device_nodes: vec![node("/dev/vendor-zero", "/dev/zero")],
            mounts: vec![spec::Mount {
                host_path: "/usr/lib".into(),
                container_path: "/vendor/lib".into(),
                ..spec::Mount::default()
            }],
            additional_gids: vec![0, 44, 45],
            ..ContainerEdits::default()
        };
        let devices = [Resolved {
            name: "example.com/dev=zero",
            edits: vec![&e],
        }];
        apply(&devices, &mut c, false).expect("applies");
        // Later entries win when the spec is generated.
        assert_eq!(
            c.env,
            [
                ("A".to_string(), "cri".to_string()),
                ("A".into(), "cdi".into()),
                ("B".into(), "x=y".into())
            ]
        );
        assert_eq!(c.devices.len(), 1);
        assert_eq!(c.devices[0].container_path, "/dev/vendor-zero");
        // The CDI mount replaces the CRI one of the same destination.
        assert_eq!(c.mounts.len(), 1);
        assert_eq!(c.mounts[0].host_path, PathBuf::from("/usr/lib"));
        assert_eq!(c.security.supplemental_groups, [44, 45]);

        let hooked = ContainerEdits {
            hooks: vec![spec::Hook {
                hook_name: "createContainer".into(),
                path: "/usr/bin/vendor-hook".into(),
                ..spec::Hook::default()
            }],
            ..ContainerEdits::default()
        };
        let devices = [Resolved {
            name: "example.com/dev=hooked",
            edits: vec![&hooked],
        }];
        let err = apply(&devices, &mut c, false).expect_err("hooks");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(
            err.message()
                .contains("\"example.com/dev=hooked\": hook createContainer"),
            "{}",
            err.message()
        );
        assert!(err.message().contains("not supported"), "{}", err.message());
        assert!(c.hooks.is_empty());
        // Under a runtime handler that runs hooks, they go to the spec.
        apply(&devices, &mut c, true).expect("hooks run");
        assert_eq!(c.hooks.len(), 1);
        assert_eq!(c.hooks[0].point, "createContainer");
        assert_eq!(c.hooks[0].path, "/usr/bin/vendor-hook");
    }
}
