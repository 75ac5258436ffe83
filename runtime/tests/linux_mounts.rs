//! Root integration tests of the container's mounts (`corten_runtime::linux`):
//! flags, propagation, `ro` against `rro`, file targets, runs of siblings
//! and mounts that cover earlier ones, each made with the descriptor-based
//! mount calls and, under a filter that answers ENOSYS to them (an old
//! kernel), with `mount(2)`: both must give the same container.

// Tests may unwrap (clippy.toml), helpers of a test file included.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "linux_init/fixture.rs"]
mod fixture;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use fixture::{spec, Fixture};
use oci_spec::runtime::{Mount, MountBuilder, Spec};

/// The probe's environment for a kernel without open_tree/move_mount/mount_setattr.
const OLD_KERNEL: &[(&str, &str)] = &[("CORTEN_PROBE_OLD_KERNEL", "1")];

fn mount(dest: &str, typ: &str, source: &Path, options: &[&str]) -> Mount {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()
        .unwrap()
}

/// `s` with `extra` after its default mounts.
fn with_mounts(mut s: Spec, extra: Vec<Mount>) -> Spec {
    let mut mounts = s.mounts().clone().unwrap();
    mounts.extend(extra);
    s.set_mounts(Some(mounts));
    s
}

/// A directory with a `marker` file, to bind.
fn volume(fx: &Fixture) -> std::path::PathBuf {
    let src = fx.dir.path().join("volume");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("marker"), "volume\n").unwrap();
    src
}

/// The mounts under `/t/` of a mountinfo, as `point options propagation`,
/// peer group numbers left out (they differ from run to run).
fn table(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (left, _) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let point = *f.get(4)?;
            if !point.starts_with("/t/") {
                return None;
            }
            let tags: Vec<&str> = f[6..]
                .iter()
                .map(|t| t.split(':').next().unwrap_or(t))
                .collect();
            Some(format!("{point} {} {}", f[5], tags.join(",")))
        })
        .collect()
}

fn row<'a>(table: &'a [String], point: &str) -> &'a str {
    let prefix = format!("{point} ");
    table
        .iter()
        .find(|r| r.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no mount at {point}: {table:?}"))
}

#[test]
fn flags_and_propagation_are_those_of_the_classic_calls() {
    let fx = Fixture::new();
    let src = volume(&fx);
    let file = fx.dir.path().join("volume-file");
    fs::write(&file, "file\n").unwrap();
    let mut s = with_mounts(
        spec(&["cat", "/proc/self/mountinfo"]),
        vec![
            mount("/t/ro", "bind", &src, &["rbind", "rprivate", "ro"]),
            mount("/t/rw", "bind", &src, &["rbind", "rprivate", "rw"]),
            mount(
                "/t/nx",
                "bind",
                &src,
                &["bind", "ro", "nosuid", "nodev", "noexec"],
            ),
            mount("/t/sh", "bind", &src, &["rbind", "rshared", "ro"]),
            mount("/t/sl", "bind", &src, &["rbind", "rslave", "ro"]),
            mount("/t/pv", "bind", &src, &["bind", "private", "noatime"]),
            mount(
                "/t/st",
                "bind",
                &src,
                &["rbind", "strictatime", "nodiratime"],
            ),
            mount("/t/sync", "bind", &src, &["rbind", "sync"]),
            mount("/t/file", "bind", &file, &["bind", "ro"]),
        ],
    );
    // As with a host-to-container mount: a root that receives the host's
    // mounts, each mount's own propagation then set (an rshared root would
    // be made shared again, all of it, after pivot_root, as runc does).
    let mut linux = s.linux().clone().unwrap();
    linux.set_rootfs_propagation(Some("rslave".into()));
    s.set_linux(Some(linux));

    let (out, err, line) = fx.run(&s);
    assert_eq!(line, "exit 0", "{err}");
    let new = table(&out);
    assert_eq!(new.len(), 9, "{out}");
    assert!(row(&new, "/t/ro").contains(" ro,relatime "), "{new:?}");
    assert!(row(&new, "/t/rw").contains(" rw,"), "{new:?}");
    assert!(
        row(&new, "/t/nx").contains(" ro,nosuid,nodev,noexec,relatime "),
        "{new:?}"
    );
    assert!(row(&new, "/t/sh").ends_with("shared"), "{new:?}");
    assert!(!row(&new, "/t/pv").contains("shared"), "{new:?}");
    assert!(!row(&new, "/t/pv").contains("master"), "{new:?}");
    assert!(row(&new, "/t/pv").contains(" rw,noatime "), "{new:?}");
    assert!(row(&new, "/t/st").contains(" rw,nodiratime "), "{new:?}");
    assert!(row(&new, "/t/sync").contains(" rw,relatime "), "{new:?}");
    assert!(row(&new, "/t/file").contains(" ro,"), "{new:?}");

    let (out, err, line) = fx.run_with(&s, OLD_KERNEL);
    assert_eq!(line, "exit 0", "{err}");
    assert_eq!(table(&out), new, "mount(2) made another container");
}

#[test]
fn ro_is_the_top_mount_and_rro_every_mount() {
    let fx = Fixture::new();
    // Mounts made earlier in the list show at their host path, under the
    // rootfs: a tree of two tmpfs mounts to bind.
    let tree = fx.dir.path().join("rootfs/a");
    let none = Path::new("tmpfs");
    let s = with_mounts(
        spec(&[
            "sh",
            "-c",
            "touch /ro/x || echo ro-top; touch /ro/sub/x && echo sub-writable; \
             touch /rro/sub/x || echo rro-sub",
        ]),
        vec![
            mount("/a", "tmpfs", none, &[]),
            mount("/a/sub", "tmpfs", none, &[]),
            mount("/ro", "bind", &tree, &["rbind", "ro"]),
            mount("/rro", "bind", &tree, &["rbind", "ro", "rro"]),
        ],
    );
    let (out, err, line) = fx.run(&s);
    assert_eq!(line, "exit 0", "{err}");
    assert_eq!(out, "ro-top\nsub-writable\nrro-sub\n", "{err}");
    // rro needs mount_setattr: an old kernel refuses the container.
    let (_, err, line) = fx.run_with(&s, OLD_KERNEL);
    assert!(line.starts_with("spawn error:"), "{err}");
    assert!(line.contains("read-only recursively"), "{line}");
}

#[test]
fn later_mounts_go_on_top_of_those_covering_their_parent() {
    let fx = Fixture::new();
    let src = volume(&fx);
    symlink("/etc", fx.lower().join("data")).unwrap();
    let none = Path::new("tmpfs");
    let s = with_mounts(
        spec(&[
            "sh",
            "-c",
            "ls /m; ls /etc; cat /m/2/marker /data/b/marker /etc/b/marker",
        ]),
        vec![
            // Siblings, then their parent covered, then one more sibling:
            // it must land in the new tmpfs, not in the directory beneath.
            mount("/m/0", "bind", &src, &["rbind", "ro"]),
            mount("/m/1", "bind", &src, &["rbind", "ro"]),
            mount("/m", "tmpfs", none, &[]),
            mount("/m/2", "bind", &src, &["rbind", "ro"]),
            // The same through an image symlink (/data -> /etc).
            mount("/data/a", "bind", &src, &["rbind", "ro"]),
            mount("/etc", "tmpfs", none, &[]),
            mount("/data/b", "bind", &src, &["rbind", "ro"]),
        ],
    );
    for env in [&[][..], OLD_KERNEL] {
        let (out, err, line) = fx.run_with(&s, env);
        assert_eq!(line, "exit 0", "{env:?}: {err}");
        assert_eq!(out, "2\nb\nvolume\nvolume\nvolume\n", "{env:?}: {err}");
    }
    // Nothing was made outside the rootfs's own layer.
    assert!(fx.dir.path().join("upper/etc/a").is_dir());
    assert!(!fx.dir.path().join("upper/data").exists());
}

#[test]
fn files_are_bound_on_files() {
    let fx = Fixture::new();
    let file = fx.dir.path().join("volume-file");
    fs::write(&file, "file\n").unwrap();
    let s = with_mounts(
        spec(&[
            "sh",
            "-c",
            "cat /etc/new-file /etc/image-file; test -f /etc/new-file && echo plain",
        ]),
        vec![
            mount("/etc/new-file", "bind", &file, &["rbind", "ro"]),
            mount("/etc/image-file", "bind", &file, &["rbind", "ro"]),
        ],
    );
    for env in [&[][..], OLD_KERNEL] {
        let (out, err, line) = fx.run_with(&s, env);
        assert_eq!(line, "exit 0", "{env:?}: {err}");
        assert_eq!(out, "file\nfile\nplain\n", "{env:?}: {err}");
    }
}

#[test]
fn hundreds_of_siblings_are_all_mounted_read_only() {
    let fx = Fixture::new();
    let src = volume(&fx);
    const N: usize = 300;
    let s = with_mounts(
        spec(&[
            "sh",
            "-c",
            "ls /m | wc -l; grep -c ' /m/[0-9]* ro,' /proc/self/mountinfo; \
             cat /m/0/marker /m/299/marker; touch /m/7/x || echo refused",
        ]),
        (0..N)
            .map(|i| {
                mount(
                    &format!("/m/{i}"),
                    "bind",
                    &src,
                    &["rbind", "rprivate", "ro"],
                )
            })
            .collect(),
    );
    for env in [&[][..], OLD_KERNEL] {
        let (out, err, line) = fx.run_with(&s, env);
        assert_eq!(line, "exit 0", "{env:?}: {err}");
        assert_eq!(
            out,
            format!("{N}\n{N}\nvolume\nvolume\nrefused\n"),
            "{env:?}: {err}"
        );
    }
}
