//! These tests run as root (mknod, chown, trusted.* xattrs) in tempdirs.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use nix::sys::stat::{major, minor};
use tar::{EntryType, Header};

use super::*;
use crate::ErrorKind;

const MTIME: u64 = 1_600_000_000;
const DIR_MTIME: u64 = 1_500_000_000;

/// A tar stream built entry by entry.
struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Layer {
        Layer(tar::Builder::new(Vec::new()))
    }

    /// Appends an entry with the name (and link name) written as raw header
    /// bytes, bypassing the tar crate's checks so hostile names get through.
    fn raw(&mut self, kind: EntryType, name: &[u8], link: &[u8], mode: u32, data: &[u8]) {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h.set_size(data.len() as u64);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
    }

    fn header(kind: EntryType, mode: u32, uid: u64, gid: u64, mtime: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(mtime);
        h.set_size(0);
        h
    }

    fn file(&mut self, name: &str, data: &[u8], mode: u32, uid: u64, gid: u64) -> &mut Self {
        let mut h = Self::header(EntryType::Regular, mode, uid, gid, MTIME);
        h.set_size(data.len() as u64);
        self.0.append_data(&mut h, name, data).unwrap();
        self
    }

    fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        let mut h = Self::header(EntryType::Directory, mode, 0, 0, DIR_MTIME);
        self.0.append_data(&mut h, name, &[][..]).unwrap();
        self
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        let mut h = Self::header(EntryType::Symlink, 0o777, 0, 0, MTIME);
        self.0.append_link(&mut h, name, target).unwrap();
        self
    }

    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        if target.contains("..") {
            // The tar crate refuses such targets: write them raw.
            self.raw(
                EntryType::Link,
                name.as_bytes(),
                target.as_bytes(),
                0o644,
                b"",
            );
        } else {
            let mut h = Self::header(EntryType::Link, 0o644, 0, 0, MTIME);
            self.0.append_link(&mut h, name, target).unwrap();
        }
        self
    }

    fn node(&mut self, name: &str, kind: EntryType, mode: u32, dev: (u32, u32)) -> &mut Self {
        let mut h = Self::header(kind, mode, 0, 0, MTIME);
        h.set_device_major(dev.0).unwrap();
        h.set_device_minor(dev.1).unwrap();
        self.0.append_data(&mut h, name, &[][..]).unwrap();
        self
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// `outer/dest`: the layer goes into dest; nothing may appear in outer.
struct Dirs {
    outer: tempfile::TempDir,
}

impl Dirs {
    fn new() -> Dirs {
        let outer = tempfile::tempdir().unwrap();
        fs::create_dir(outer.path().join("dest")).unwrap();
        Dirs { outer }
    }

    fn dest(&self) -> std::path::PathBuf {
        self.outer.path().join("dest")
    }

    fn unpack(&self, tar: &[u8]) -> Result<Unpacked, Error> {
        unpack_layer(tar, Compression::None, &self.dest())
    }

    /// Names directly in `outer`: only "dest" is allowed.
    fn assert_outer_untouched(&self) {
        let names: Vec<_> = fs::read_dir(self.outer.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec!["dest"],
            "something escaped into {:?}",
            self.outer.path()
        );
    }
}

fn sample_layer() -> Vec<u8> {
    let mut l = Layer::new();
    l.dir("etc/", 0o755)
        .file("etc/hosts", b"127.0.0.1 localhost\n", 0o644, 1000, 1001)
        .file("bin/busybox", b"\x7fELF busybox", 0o4755, 0, 0)
        .symlink("bin/sh", "busybox")
        .symlink("bin/abs", "/bin/busybox")
        .hardlink("bin/ls", "bin/busybox")
        .hardlink("bin/cat", "/bin/busybox")
        .node("dev/null", EntryType::Char, 0o666, (1, 3))
        .node("dev/loop0", EntryType::Block, 0o660, (7, 0))
        .node("run/fifo", EntryType::Fifo, 0o600, (0, 0))
        .dir("tmp", 0o1777)
        .file("etc/motd", b"hi", 0o600, 0, 0);
    l.finish()
}

fn check_sample(dest: &Path) {
    let md = |p: &str| fs::symlink_metadata(dest.join(p)).unwrap();

    assert_eq!(
        fs::read(dest.join("etc/hosts")).unwrap(),
        b"127.0.0.1 localhost\n"
    );
    let hosts = md("etc/hosts");
    assert_eq!(
        (hosts.mode() & 0o7777, hosts.uid(), hosts.gid()),
        (0o644, 1000, 1001)
    );
    assert_eq!(hosts.mtime(), MTIME as i64);

    // Set-uid survives: chmod comes after chown.
    assert_eq!(md("bin/busybox").mode() & 0o7777, 0o4755);
    // Parents not in the layer are made 0755.
    assert_eq!(md("bin").mode() & 0o7777, 0o755);
    assert_eq!(md("dev").mode() & 0o7777, 0o755);

    assert_eq!(
        fs::read_link(dest.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        fs::read_link(dest.join("bin/abs")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert_eq!(md("bin/sh").mtime(), MTIME as i64);

    let busybox = md("bin/busybox");
    for link in ["bin/ls", "bin/cat"] {
        assert_eq!(md(link).ino(), busybox.ino(), "{link}");
    }
    assert_eq!(busybox.nlink(), 3);

    let null = md("dev/null");
    assert!(null.file_type().is_char_device());
    assert_eq!((major(null.rdev()), minor(null.rdev())), (1, 3));
    assert_eq!(null.mode() & 0o7777, 0o666);
    let lo = md("dev/loop0");
    assert!(lo.file_type().is_block_device());
    assert_eq!((major(lo.rdev()), minor(lo.rdev())), (7, 0));
    assert!(md("run/fifo").file_type().is_fifo());

    assert_eq!(md("tmp").mode() & 0o7777, 0o1777);
    // Directory mtimes are set after their children are written.
    assert_eq!(md("etc").mtime(), DIR_MTIME as i64);
}

#[test]
fn unpacks_plain_gzip_and_zstd_with_diff_id_of_plain_tar() {
    let tar = sample_layer();
    let want = Unpacked {
        diff_id: Digest::sha256_of(&tar),
        uncompressed_size: tar.len() as u64,
    };
    for (compression, blob) in [
        (Compression::None, tar.clone()),
        (Compression::Gzip, gzip(&tar)),
        (Compression::Zstd, zstd(&tar)),
    ] {
        let dirs = Dirs::new();
        let got = unpack_layer(&blob[..], compression, &dirs.dest()).unwrap();
        assert_eq!(got, want, "{compression:?}");
        check_sample(&dirs.dest());
        dirs.assert_outer_untouched();
    }
}

#[test]
fn diff_id_covers_bytes_after_the_tar_end() {
    let mut tar = sample_layer();
    tar.extend_from_slice(&[0u8; 8192]);
    let dirs = Dirs::new();
    let got = dirs.unpack(&tar).unwrap();
    assert_eq!(got.diff_id, Digest::sha256_of(&tar));
    assert_eq!(got.uncompressed_size, tar.len() as u64);
}

#[test]
fn concatenated_gzip_members_are_one_stream() {
    let tar = sample_layer();
    let (a, b) = tar.split_at(1024);
    let mut blob = gzip(a);
    blob.extend(gzip(b));
    let dirs = Dirs::new();
    let got = unpack_layer(&blob[..], Compression::Gzip, &dirs.dest()).unwrap();
    assert_eq!(got.diff_id, Digest::sha256_of(&tar));
    check_sample(&dirs.dest());
}

#[test]
fn root_entry_sets_root_metadata() {
    let mut l = Layer::new();
    l.dir("./", 0o750).file("./a", b"a", 0o644, 0, 0);
    let dirs = Dirs::new();
    dirs.unpack(&l.finish()).unwrap();
    let md = fs::metadata(dirs.dest()).unwrap();
    assert_eq!(md.permissions().mode() & 0o7777, 0o750);
    assert_eq!(md.mtime(), DIR_MTIME as i64);
}

#[test]
fn later_entries_replace_earlier_ones() {
    let mut l = Layer::new();
    l.dir("x/", 0o755)
        .file("x/inner", b"1", 0o644, 0, 0)
        .file("x", b"now a file", 0o644, 0, 0)
        .file("y", b"file", 0o644, 0, 0)
        .dir("y/", 0o700)
        .file("y/z", b"z", 0o644, 0, 0)
        .dir("keep/", 0o700)
        .file("keep/a", b"a", 0o644, 0, 0)
        .dir("keep/", 0o755);
    let dirs = Dirs::new();
    dirs.unpack(&l.finish()).unwrap();
    let dest = dirs.dest();
    assert_eq!(fs::read(dest.join("x")).unwrap(), b"now a file");
    assert_eq!(fs::read(dest.join("y/z")).unwrap(), b"z");
    // A directory entry over an existing directory keeps its content.
    assert_eq!(fs::read(dest.join("keep/a")).unwrap(), b"a");
    assert_eq!(
        fs::metadata(dest.join("keep")).unwrap().mode() & 0o7777,
        0o755
    );
}

#[test]
fn long_names_and_link_targets() {
    let long_dir = "d".repeat(90);
    let long_file = format!("{long_dir}/{}", "f".repeat(120));
    let long_target = format!("/{long_file}");
    let mut l = Layer::new();
    l.file(&long_file, b"long", 0o644, 0, 0)
        .symlink("s", &long_target)
        .hardlink("h", &long_file);
    let dirs = Dirs::new();
    dirs.unpack(&l.finish()).unwrap();
    let dest = dirs.dest();
    assert_eq!(fs::read(dest.join(&long_file)).unwrap(), b"long");
    assert_eq!(
        fs::read_link(dest.join("s")).unwrap(),
        Path::new(&long_target)
    );
    assert_eq!(fs::read(dest.join("h")).unwrap(), b"long");
}

mod hostile;
mod whiteouts;
