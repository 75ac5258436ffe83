//! Device rules as an eBPF program on the unified hierarchy, against this
//! host's real cgroup2 mount (needs root; fails otherwise).
//!
//! The cgroups are made through a `Hierarchy::V2` at the host's cgroup2
//! mount: the pure v2 code path, which on a hybrid host is the controller-
//! less unified hierarchy. The kernel runs a device program attached there
//! for every mknod and open, as well as the v1 check (which, for a process
//! left in the v1 root cgroups, allows everything): so what is refused here
//! is refused by the program alone.
//!
//! The process tried is this test binary re-executed (role "devices"),
//! moved into the cgroup before it is told to go.

mod common;

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use corten_runtime::cgroups::{self, Cgroup, Hierarchy};
use corten_runtime::linux::{device_program_ids, Insn};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use oci_spec::runtime::{
    LinuxDeviceCgroup, LinuxDeviceType, LinuxResources, LinuxResourcesBuilder,
};

/// Helpers (in a cfg(test) module, where unwrapping is allowed).
#[cfg(test)]
mod support {
    use super::*;

    pub const ROLE: &str = "CORTEN_DEVICES_TEST_ROLE";
    pub const DIR: &str = "CORTEN_DEVICES_TEST_DIR";
    pub const BLOCK: &str = "CORTEN_DEVICES_TEST_BLOCK";
    pub static NEXT: AtomicU32 = AtomicU32::new(0);

    /// A cgroup in the unified hierarchy; on drop, kills what is left and
    /// removes it (with its attached programs).
    pub struct Guard {
        pub top: Cgroup,
        pub leaf: Cgroup,
    }

    impl Guard {
        pub fn new() -> Guard {
            common::require_root("makes cgroups and device nodes");
            let host = cgroups::detect().expect("detect");
            let root = host
                .unified()
                .expect("this host has no cgroup2 mount")
                .to_owned();
            let h = Hierarchy::V2 { root };
            let n = NEXT.fetch_add(1, Ordering::SeqCst);
            let top = format!("/corten-test-devices-{}-{n}", std::process::id());
            let top = cgroups::ensure_parent(&h, &top).expect("parent");
            let leaf = Cgroup::create(&h, &format!("{}/c", top.path())).expect("create");
            Guard { top, leaf }
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.leaf.kill_all();
            if let Err(e) = self.top.destroy() {
                eprintln!("cleanup of {} failed: {e}", self.top.path());
            }
        }
    }

    pub fn rule(
        allow: bool,
        typ: LinuxDeviceType,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(allow);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(access.to_owned()));
        r
    }

    /// A default container's rules (deny all, then the standard char nodes and
    /// the ptys), plus `extra`.
    pub fn resources(extra: &[LinuxDeviceCgroup]) -> LinuxResources {
        let mut rules = vec![rule(false, LinuxDeviceType::A, None, None, "rwm")];
        for (major, minor) in [
            (1, Some(3)),
            (1, Some(5)),
            (1, Some(7)),
            (1, Some(8)),
            (1, Some(9)),
            (5, Some(0)),
            (5, Some(2)),
            (136, None),
        ] {
            rules.push(rule(true, LinuxDeviceType::C, Some(major), minor, "rwm"));
        }
        rules.extend_from_slice(extra);
        LinuxResourcesBuilder::default()
            .devices(rules)
            .build()
            .unwrap()
    }

    pub use crate::common::block_device::host_block_device;

    /// What the process in the cgroup saw: each step's "ok" or errno name.
    #[derive(Debug)]
    pub struct Seen {
        pub block_mknod: String,
        pub block_open: String,
        pub null_open: String,
        pub null_mknod_open: String,
    }

    /// Runs the "devices" role inside `cg` with `dir` (holding `disk`, a node
    /// of the block device made outside the cgroup) and returns what it saw.
    pub fn try_devices(cg: &Cgroup, dir: &Path, (major, minor): (u64, u64)) -> Seen {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "helper_role", "--nocapture", "--test-threads=1"])
            .env(ROLE, "devices")
            .env(DIR, dir)
            .env(BLOCK, format!("{major}:{minor}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        cg.add_pid(i32::try_from(child.id()).unwrap()).unwrap();
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert!(child.wait().unwrap().success(), "{out}");
        let field = |key: &str| {
            out.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{key}=")).map(str::to_owned))
                .unwrap_or_else(|| panic!("no {key} in {out:?}"))
        };
        Seen {
            block_mknod: field("block-mknod"),
            block_open: field("block-open"),
            null_open: field("null-open"),
            null_mknod_open: field("null-mknod-open"),
        }
    }

    pub fn outcome<T>(r: Result<T, impl Into<std::io::Error>>) -> String {
        match r {
            Ok(_) => "ok".to_owned(),
            Err(e) => {
                let e: std::io::Error = e.into();
                format!(
                    "{:?}",
                    nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0))
                )
            }
        }
    }
}

use support::*;

/// Not a test of its own: the workload of a re-executed child. Without the
/// env var it does nothing.
#[test]
fn helper_role() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    assert_eq!(role, "devices");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).unwrap();
    let dir = PathBuf::from(std::env::var(DIR).unwrap());
    let block = std::env::var(BLOCK).unwrap();
    let (major, minor) = block.split_once(':').unwrap();
    let dev = makedev(major.parse().unwrap(), minor.parse().unwrap());
    let own = dir.join("own-block");
    let block_mknod = outcome(mknod(
        &own,
        SFlag::S_IFBLK,
        Mode::from_bits_truncate(0o600),
        dev,
    ));
    let block_open = outcome(std::fs::File::open(dir.join("disk")));
    let null_open = outcome(
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null"),
    );
    let null = dir.join("own-null");
    let null_mknod_open = outcome(
        mknod(
            &null,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(1, 3),
        )
        .map_err(std::io::Error::from)
        .and_then(|()| std::fs::OpenOptions::new().write(true).open(&null)),
    );
    let _ = std::fs::remove_file(&own);
    let _ = std::fs::remove_file(&null);
    println!(
        "block-mknod={block_mknod} block-open={block_open} null-open={null_open} null-mknod-open={null_mknod_open}"
    );
}

#[test]
fn a_default_allow_list_refuses_a_host_disk_and_a_given_device_passes() {
    let guard = Guard::new();
    let cg = &guard.leaf;
    let dir = cg.unified_dir().unwrap().to_owned();
    let tmp = tempfile::tempdir().unwrap();
    // The node made outside the cgroup: opening it is what the program judges.
    let (major, minor) = host_block_device(&tmp.path().join("disk"));

    // Nothing attached yet: the disk opens.
    assert!(device_program_ids(&dir).unwrap().is_empty());
    let seen = try_devices(cg, tmp.path(), (major, minor));
    assert_eq!(
        (seen.block_mknod.as_str(), seen.block_open.as_str()),
        ("ok", "ok"),
        "{seen:?}"
    );

    // The default allow-list: no mknod or open of the disk; /dev/null fine.
    cg.apply(&resources(&[])).unwrap();
    let first = device_program_ids(&dir).unwrap();
    assert_eq!(first.len(), 1, "{first:?}");
    let seen = try_devices(cg, tmp.path(), (major, minor));
    assert_eq!(seen.block_mknod, "EPERM", "{seen:?}");
    assert_eq!(seen.block_open, "EPERM", "{seen:?}");
    assert_eq!(seen.null_open, "ok", "{seen:?}");
    assert_eq!(seen.null_mknod_open, "ok", "{seen:?}");

    // Given the disk (rwm): the new program replaces the old one.
    let given = rule(
        true,
        LinuxDeviceType::B,
        Some(major as i64),
        Some(minor as i64),
        "rwm",
    );
    cg.apply(&resources(&[given])).unwrap();
    let second = device_program_ids(&dir).unwrap();
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second, first);
    let seen = try_devices(cg, tmp.path(), (major, minor));
    assert_eq!(
        (seen.block_mknod.as_str(), seen.block_open.as_str()),
        ("ok", "ok"),
        "{seen:?}"
    );
    assert_eq!(seen.null_open, "ok", "{seen:?}");

    // Given it read-only: it opens for reading, but mknod is refused.
    let read_only = rule(
        true,
        LinuxDeviceType::B,
        Some(major as i64),
        Some(minor as i64),
        "r",
    );
    cg.apply(&resources(&[read_only])).unwrap();
    assert_eq!(device_program_ids(&dir).unwrap().len(), 1);
    let seen = try_devices(cg, tmp.path(), (major, minor));
    assert_eq!(seen.block_mknod, "EPERM", "{seen:?}");
    assert_eq!(seen.block_open, "ok", "{seen:?}");

    // Privileged (allow all): everything passes again.
    let all = LinuxResourcesBuilder::default()
        .devices(vec![rule(true, LinuxDeviceType::A, None, None, "rwm")])
        .build()
        .unwrap();
    cg.apply(&all).unwrap();
    assert_eq!(device_program_ids(&dir).unwrap().len(), 1);
    let seen = try_devices(cg, tmp.path(), (major, minor));
    assert_eq!(
        (seen.block_mknod.as_str(), seen.block_open.as_str()),
        ("ok", "ok"),
        "{seen:?}"
    );
}

#[test]
fn a_bad_rule_attaches_nothing() {
    let guard = Guard::new();
    let dir = guard.leaf.unified_dir().unwrap().to_owned();
    let bad = rule(true, LinuxDeviceType::C, Some(1), Some(3), "rwx");
    let e = guard.leaf.apply(&resources(&[bad])).unwrap_err();
    assert_eq!(e.kind(), corten_runtime::ErrorKind::InvalidArgument, "{e}");
    assert!(device_program_ids(&dir).unwrap().is_empty());
}

#[test]
fn programs_of_every_shape_pass_the_kernels_verifier() {
    let guard = Guard::new();
    let cg = &guard.leaf;
    let dir = cg.unified_dir().unwrap().to_owned();
    let any = |allow, typ, access| rule(allow, typ, None, None, access);
    let shapes: Vec<Vec<LinuxDeviceCgroup>> = vec![
        // Default allow with refusals: wildcard majors, minors, big numbers.
        vec![
            any(false, LinuxDeviceType::B, "m"),
            rule(false, LinuxDeviceType::C, None, Some(3), "w"),
            rule(
                false,
                LinuxDeviceType::C,
                Some(i64::from(u32::MAX)),
                Some(0x8000_0000),
                "rwm",
            ),
        ],
        // Default deny with wildcards and an empty access.
        vec![
            rule(false, LinuxDeviceType::A, None, None, "rwm"),
            any(true, LinuxDeviceType::C, "m"),
            rule(true, LinuxDeviceType::B, Some(7), None, "r"),
            rule(true, LinuxDeviceType::C, Some(1), Some(3), ""),
        ],
        // A long list: 2000 exceptions.
        std::iter::once(rule(false, LinuxDeviceType::A, None, None, "rwm"))
            .chain((0..2000).map(|n| rule(true, LinuxDeviceType::C, Some(10), Some(n), "rw")))
            .collect(),
        // Deny all and nothing else.
        vec![rule(false, LinuxDeviceType::A, None, None, "rwm")],
    ];
    for rules in shapes {
        let r = LinuxResourcesBuilder::default()
            .devices(rules.clone())
            .build()
            .unwrap();
        if let Err(e) = cg.apply(&r) {
            panic!("{} rules refused: {e}", rules.len());
        }
        assert_eq!(device_program_ids(&dir).unwrap().len(), 1);
    }
}

#[test]
fn a_program_the_verifier_refuses_is_an_error_quoting_it() {
    common::require_root("loads bpf programs");
    // `exit` with r0 never set.
    let e = corten_runtime::linux::load_device_program(&[Insn::new(0x95, 0, 0, 0, 0)])
        .expect_err("the verifier refuses it");
    let text = e.to_string();
    assert!(text.contains("verifier: ") && text.contains("R0"), "{text}");
}
