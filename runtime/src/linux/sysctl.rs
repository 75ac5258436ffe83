//! Which sysctls a pod may set: only those the kernel keeps per namespace,
//! and only for the namespaces the pod actually gets (setting a "net.*" key
//! without a new network namespace would change the host).

use std::path::PathBuf;

use super::error::{Error, Result};

/// The namespaces a pod sandbox pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Namespace {
    /// The user namespace (`user`): made first, it owns the others.
    User,
    /// The network namespace (`net`).
    Net,
    /// The System V IPC / POSIX message queue namespace (`ipc`).
    Ipc,
    /// The hostname namespace (`uts`).
    Uts,
}

impl Namespace {
    /// All of them, in the order they are pinned.
    pub const ALL: [Namespace; 4] = [
        Namespace::User,
        Namespace::Net,
        Namespace::Ipc,
        Namespace::Uts,
    ];

    /// The name of the namespace under `/proc/<pid>/ns/` (and of the pinned
    /// file).
    pub fn name(self) -> &'static str {
        match self {
            Namespace::User => "user",
            Namespace::Net => "net",
            Namespace::Ipc => "ipc",
            Namespace::Uts => "uts",
        }
    }
}

/// The namespace a sysctl belongs to; `None` when it is not namespaced (it
/// would change the whole host). Follows the set Kubernetes calls "safe or
/// unsafe but namespaced".
pub fn namespace_of(name: &str) -> Option<Namespace> {
    let dotted = name.replace('/', ".");
    let n = dotted.as_str();
    if n.starts_with("net.") {
        Some(Namespace::Net)
    } else if n.starts_with("kernel.shm")
        || n.starts_with("kernel.msg")
        || n == "kernel.sem"
        || n.starts_with("fs.mqueue.")
    {
        Some(Namespace::Ipc)
    } else {
        None
    }
}

/// The path under `/proc/sys` of a sysctl given in dotted (`net.ipv4.x`) or
/// slashed (`net/ipv4/conf/eth0.100/x`) form, with its value: refused when
/// the name is malformed (a component that is empty, `.` or `..`, or holds
/// anything but ASCII letters, digits and `_-.+`, so nothing can leave
/// `/proc/sys`) or the value holds a newline or NUL (one value per file).
/// Says nothing of namespaces; see [`check`].
pub fn check_shape(name: &str, value: &str) -> Result<PathBuf> {
    let bad = |reason: &str| Error::Sysctl {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    let parts: Vec<&str> = if name.contains('/') {
        name.split('/').collect()
    } else {
        name.split('.').collect()
    };
    let well_formed = |p: &&str| {
        !p.is_empty()
            && *p != "."
            && *p != ".."
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+'))
    };
    if parts.len() < 2 || !parts.iter().all(well_formed) {
        return Err(bad("not a sysctl name"));
    }
    if value.contains(['\n', '\0']) {
        return Err(bad("the value holds a newline or NUL"));
    }
    Ok(PathBuf::from("/proc/sys").join(parts.join("/")))
}

/// [`check_shape`], and refused when the sysctl is not namespaced in one
/// of `new` (the namespaces being created).
pub fn check(name: &str, value: &str, new: &[Namespace]) -> Result<PathBuf> {
    let path = check_shape(name, value)?;
    let bad = |reason: &str| Error::Sysctl {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    match namespace_of(name) {
        None => Err(bad(
            "not namespaced (only net.*, kernel.shm*, kernel.msg*, kernel.sem and fs.mqueue.* \
             can be set for a pod)",
        )),
        Some(ns) if !new.contains(&ns) => Err(bad(&format!(
            "needs the pod's own {} namespace, which it does not have",
            ns.name()
        ))),
        Some(_) => Ok(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    const ALL: &[Namespace] = &Namespace::ALL;

    #[test]
    fn namespaced_ones_map_to_proc_sys() {
        assert_eq!(
            check("net.ipv4.ping_group_range", "0 1", ALL).ok(),
            Some(PathBuf::from("/proc/sys/net/ipv4/ping_group_range"))
        );
        assert_eq!(
            check("net/ipv4/conf/eth0.100/forwarding", "1", ALL).ok(),
            Some(PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/forwarding"))
        );
        for ipc in [
            "kernel.shmmax",
            "kernel.msgmnb",
            "kernel.sem",
            "fs.mqueue.msg_max",
        ] {
            assert!(check(ipc, "1", &[Namespace::Ipc]).is_ok(), "{ipc}");
        }
    }

    #[test]
    fn host_wide_ones_are_refused() {
        for name in [
            "vm.swappiness",
            "kernel.hostname",
            "kernel.semx",
            "fs.file-max",
        ] {
            let e = check(name, "1", ALL).err();
            assert!(
                matches!(&e, Some(e) if e.kind() == ErrorKind::InvalidArgument
                    && e.to_string().contains("not namespaced")),
                "{name}: {e:?}"
            );
        }
    }

    #[test]
    fn needs_the_matching_new_namespace() {
        let e = check(
            "net.ipv4.ip_forward",
            "1",
            &[Namespace::Ipc, Namespace::Uts],
        )
        .err();
        assert!(matches!(&e, Some(e) if e.to_string().contains("net namespace")));
        assert!(check("kernel.shmmax", "1", &[Namespace::Net]).is_err());
    }

    #[test]
    fn malformed_names_are_refused() {
        for name in [
            "net",
            "net..x",
            "net/../../etc",
            "net.ipv4.a b",
            "",
            "net/ipv4/",
        ] {
            assert!(check(name, "1", ALL).is_err(), "{name:?}");
        }
        for name in ["net.ipv4.x\n", "net\0.x", "net/ipv4/../../../etc/x"] {
            assert!(check_shape(name, "1").is_err(), "{name:?}");
        }
    }

    #[test]
    fn values_are_one_line() {
        assert!(check_shape("net.ipv4.ip_local_port_range", "1024 65535").is_ok());
        assert!(check_shape("net.ipv4.ip_local_port_range", "1024\t65535").is_ok());
        for value in ["1\n2", "1\n", "1\0"] {
            let e = check_shape("net.ipv4.ip_forward", value).err();
            assert!(
                matches!(&e, Some(e) if e.kind() == ErrorKind::InvalidArgument),
                "{value:?}: {e:?}"
            );
        }
    }
}
