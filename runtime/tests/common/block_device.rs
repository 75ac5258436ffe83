//! A host block device that opens, for the device filter tests of both
//! crates (`runtime/tests/cgroups_devices.rs`, and by path
//! `crictl-tests/tests/containers_devices.rs`).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sys::stat::{makedev, mknod, Mode, SFlag};

/// A block device of this host that opens, `(major, minor)`, with a node
/// for it made at `node`: the disk holding `/` first, then the others the
/// kernel lists (this machine's hypervisor refuses opening its root disk
/// to anyone; a loop device opens).
pub fn host_block_device(node: &Path) -> (u64, u64) {
    let dev = std::fs::metadata("/").expect("stat /").dev();
    let root = (
        u64::from(nix::sys::stat::major(dev) as u32),
        u64::from(nix::sys::stat::minor(dev) as u32),
    );
    let mut listed: Vec<(u64, u64)> = std::fs::read_dir("/sys/dev/block")
        .expect("/sys/dev/block")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let (a, b) = name.split_once(':')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect();
    listed.sort_by_key(|d| (*d != root, *d));
    for (major, minor) in listed {
        let _ = std::fs::remove_file(node);
        let made = mknod(
            node,
            SFlag::S_IFBLK,
            Mode::from_bits_truncate(0o600),
            makedev(major, minor),
        );
        if made.is_ok() && std::fs::File::open(node).is_ok() {
            return (major, minor);
        }
    }
    panic!("no block device of this host opens");
}
