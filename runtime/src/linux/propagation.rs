//! Bidirectional (`rshared`) bind mounts: their sources must stay peers of
//! the host's mounts through the shim's and the container's mount
//! namespaces, while everything else there becomes a slave (nothing the
//! shim or the container mounts may show on the host).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt as _;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Spec;

use super::error::{Context, Result};

/// The sources of the spec's `rshared` bind mounts ("/" never counts: the
/// root must not be shared for `pivot_root`).
pub fn shared_sources(spec: &Spec) -> Vec<PathBuf> {
    spec.mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|m| {
            m.options()
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|o| o == "rshared" || o == "shared")
        })
        .filter_map(|m| m.source().clone())
        .filter(|s| s.is_absolute() && s != Path::new("/"))
        .collect()
}

/// Makes this mount namespace's mounts slaves of their peers: all of them
/// at once (recursively from `/`) when `keep` is empty, otherwise one by one
/// except those mounted exactly at a path of `keep`, which stay peers of
/// the host's (a source that is no mount point of its own gets no two-way
/// propagation: its containing mount is slaved like the rest).
pub(super) fn slave_all_but(keep: &[PathBuf], what: &str) -> Result<()> {
    if keep.is_empty() {
        return mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_SLAVE,
            None::<&str>,
        )
        .ctx(|| format!("make / rslave in {what}"));
    }
    let text = std::fs::read("/proc/self/mountinfo").ctx(|| "read /proc/self/mountinfo")?;
    for point in mount_points(&text) {
        if keep.contains(&point) {
            continue;
        }
        match mount(
            None::<&str>,
            &point,
            None::<&str>,
            MsFlags::MS_SLAVE,
            None::<&str>,
        ) {
            // Gone meanwhile, or hidden below a mount we cannot reach.
            Ok(()) | Err(Errno::ENOENT) | Err(Errno::EACCES) => {}
            Err(e) => return Err(e).ctx(|| format!("make {} a slave in {what}", point.display())),
        }
    }
    Ok(())
}

/// The mount points (field 5) of a mountinfo text, unescaped.
fn mount_points(text: &[u8]) -> Vec<PathBuf> {
    text.split(|b| *b == b'\n')
        .filter_map(|line| line.split(|b| *b == b' ').nth(4))
        .map(unescape)
        .collect()
}

/// Undoes the kernel's octal escapes (`\040` for a space, ...).
fn unescape(field: &[u8]) -> PathBuf {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let octal = field
            .get(i + 1..i + 4)
            .filter(|d| field[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_read_and_unescaped() {
        let text = b"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
            35 22 0:30 / /tmp/with\\040space rw shared:2 - tmpfs tmpfs rw\n\
            36 22 0:31 / /back\\134slash rw - tmpfs tmpfs rw\n";
        assert_eq!(
            mount_points(text),
            vec![
                PathBuf::from("/"),
                PathBuf::from("/tmp/with space"),
                PathBuf::from("/back\\slash")
            ]
        );
        assert_eq!(
            unescape(b"\\04"),
            PathBuf::from("\\04"),
            "truncated escape kept"
        );
    }

    #[test]
    fn shared_sources_are_the_rshared_binds_but_root() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "mounts": [
                {"destination": "/a", "type": "bind", "source": "/srv/a", "options": ["rbind", "rshared", "rw"]},
                {"destination": "/b", "type": "bind", "source": "/srv/b", "options": ["rbind", "rslave", "rw"]},
                {"destination": "/c", "type": "bind", "source": "/", "options": ["rbind", "rshared"]},
                {"destination": "/proc", "type": "proc", "source": "proc"}
            ]
        }))
        .expect("spec");
        assert_eq!(shared_sources(&spec), vec![PathBuf::from("/srv/a")]);
    }
}
