//! Layer tars built in memory: a busybox root filesystem, whiteouts,
//! hostile entries, and reproducible incompressible filler.
//!
//! Every entry has mtime 0 and fixed owners, so the same inputs give the
//! same bytes and the same digests on every run.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use tar::{EntryType, Header};

/// Where Debian's busybox-static puts its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// The test user of the busybox image.
pub const TESTER_UID: u32 = 1000;
/// The primary group of the test user.
pub const TESTER_GID: u32 = 1000;
/// A supplementary group of the test user.
pub const EXTRA_GID: u32 = 1001;

pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
tester:x:1000:1000:tester:/home/tester:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";

pub const GROUP: &str = "root:x:0:\n\
tester:x:1000:\n\
extra:x:1001:tester\n\
nogroup:x:65534:\n";

/// A tar stream under construction. Paths are relative (no leading `/`).
pub struct LayerBuilder {
    tar: tar::Builder<Vec<u8>>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerBuilder {
    pub fn new() -> Self {
        let mut tar = tar::Builder::new(Vec::new());
        tar.mode(tar::HeaderMode::Deterministic);
        LayerBuilder { tar }
    }

    fn header(kind: EntryType, mode: u32, uid: u32, gid: u32, size: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid.into());
        h.set_gid(gid.into());
        h.set_mtime(0);
        h.set_size(size);
        h
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> Result<&mut Self> {
        self.dir_owned(path, mode, 0, 0)
    }

    pub fn dir_owned(&mut self, path: &str, mode: u32, uid: u32, gid: u32) -> Result<&mut Self> {
        let mut h = Self::header(EntryType::Directory, mode, uid, gid, 0);
        self.tar
            .append_data(&mut h, path, std::io::empty())
            .with_context(|| format!("tar dir {path}"))?;
        Ok(self)
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<&mut Self> {
        self.file_owned(path, mode, 0, 0, data)
    }

    pub fn file_owned(
        &mut self,
        path: &str,
        mode: u32,
        uid: u32,
        gid: u32,
        data: &[u8],
    ) -> Result<&mut Self> {
        let mut h = Self::header(EntryType::Regular, mode, uid, gid, data.len() as u64);
        self.tar
            .append_data(&mut h, path, data)
            .with_context(|| format!("tar file {path}"))?;
        Ok(self)
    }

    /// A hard link `path` to the earlier entry `target` (a layer path).
    pub fn hardlink(&mut self, path: &str, target: &str) -> Result<&mut Self> {
        let mut h = Self::header(EntryType::Link, 0o755, 0, 0, 0);
        self.tar
            .append_link(&mut h, path, target)
            .with_context(|| format!("tar hardlink {path} -> {target}"))?;
        Ok(self)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> Result<&mut Self> {
        let mut h = Self::header(EntryType::Symlink, 0o777, 0, 0, 0);
        self.tar
            .append_link(&mut h, path, target)
            .with_context(|| format!("tar symlink {path} -> {target}"))?;
        Ok(self)
    }

    /// Deletes `path` of a lower layer (`dir/.wh.name`).
    pub fn whiteout(&mut self, path: &str) -> Result<&mut Self> {
        let p = Path::new(path);
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("whiteout of {path:?} has no file name"))?;
        let wh = match p
            .parent()
            .and_then(|d| d.to_str())
            .filter(|d| !d.is_empty())
        {
            Some(dir) => format!("{dir}/.wh.{name}"),
            None => format!(".wh.{name}"),
        };
        self.file(&wh, 0o644, b"")
    }

    /// Hides everything a lower layer has under `dir` (`dir/.wh..wh..opq`).
    pub fn opaque(&mut self, dir: &str) -> Result<&mut Self> {
        self.file(&format!("{dir}/.wh..wh..opq"), 0o644, b"")
    }

    /// An entry written with raw name and link bytes, unchecked: this is how
    /// `..` and absolute names get into hostile layers.
    pub fn raw(&mut self, kind: EntryType, name: &[u8], link: &[u8], data: &[u8]) -> Result<()> {
        let mode = if kind == EntryType::Symlink {
            0o777
        } else {
            0o644
        };
        let mut h = Self::header(kind, mode, 0, 0, data.len() as u64);
        let old = h.as_old_mut();
        ensure!(name.len() < old.name.len(), "raw tar name too long");
        ensure!(link.len() < old.linkname.len(), "raw tar link too long");
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
        h.set_cksum();
        self.tar.append(&h, data).context("tar raw entry")
    }

    pub fn finish(self) -> Result<Vec<u8>> {
        self.tar.into_inner().context("finish tar")
    }
}

/// The applet names of `busybox`, from `busybox --list`.
pub fn busybox_applets(busybox: &Path) -> Result<Vec<String>> {
    let out = Command::new(busybox)
        .arg("--list")
        .output()
        .with_context(|| {
            format!(
                "running {} --list (install Debian package busybox-static)",
                busybox.display()
            )
        })?;
    ensure!(out.status.success(), "{} --list failed", busybox.display());
    let text = String::from_utf8(out.stdout).context("busybox --list output")?;
    let applets: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/') && !a.contains(".."))
        .map(String::from)
        .collect();
    ensure!(
        applets.iter().any(|a| a == "sh"),
        "busybox has no sh applet"
    );
    Ok(applets)
}

/// The busybox root filesystem: `/bin/busybox`, every applet as a hard link
/// to it in `/bin` (as the official busybox image has), the usual
/// directories, and `/etc/passwd` + `/etc/group` with root, nobody and
/// `tester` (uid 1000, gid 1000, supplementary group `extra` 1001).
pub fn busybox_rootfs(busybox: &Path) -> Result<Vec<u8>> {
    let binary = std::fs::read(busybox).with_context(|| {
        format!(
            "reading {} (install Debian package busybox-static)",
            busybox.display()
        )
    })?;
    let applets = busybox_applets(busybox)?;
    let mut l = LayerBuilder::new();
    for dir in [
        "bin", "dev", "etc", "home", "proc", "root", "sys", "usr", "usr/bin", "var",
    ] {
        let mode = if dir == "root" { 0o700 } else { 0o755 };
        l.dir(dir, mode)?;
    }
    l.dir("tmp", 0o1777)?;
    l.dir("var/tmp", 0o1777)?;
    l.dir_owned("home/tester", 0o755, TESTER_UID, TESTER_GID)?;
    l.file("etc/passwd", 0o644, PASSWD.as_bytes())?;
    l.file("etc/group", 0o644, GROUP.as_bytes())?;
    l.file("etc/hostname", 0o644, b"busybox\n")?;
    l.file("bin/busybox", 0o755, &binary)?;
    for applet in &applets {
        l.hardlink(&format!("bin/{applet}"), "bin/busybox")?;
    }
    l.finish()
}

/// Two layers for whiteout tests. The first has `data/keep`, `data/gone`
/// and `opq/{a,b}`; the second deletes `data/gone` with a `.wh.` entry,
/// empties `opq` with an opaque marker and adds `opq/new`.
pub fn whiteout_layers() -> Result<(Vec<u8>, Vec<u8>)> {
    let mut lower = LayerBuilder::new();
    lower.dir("data", 0o755)?;
    lower.file("data/keep", 0o644, b"keep\n")?;
    lower.file("data/gone", 0o644, b"gone\n")?;
    lower.dir("opq", 0o755)?;
    lower.file("opq/a", 0o644, b"a\n")?;
    lower.file("opq/b", 0o644, b"b\n")?;
    let mut upper = LayerBuilder::new();
    upper.whiteout("data/gone")?;
    upper.dir("opq", 0o755)?;
    upper.opaque("opq")?;
    upper.file("opq/new", 0o644, b"new\n")?;
    Ok((lower.finish()?, upper.finish()?))
}

/// Layers that try to write outside the root they are unpacked into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostileLayer {
    /// A file entry named `../escape`.
    DotDotEscape,
    /// Symlink `etc -> /etc`, then a file `etc/hostile-marker`.
    AbsoluteSymlinkThenWrite,
    /// A hard link `passwd-link` whose target is `/etc/passwd`.
    HardlinkToHostFile,
    /// Symlink `up -> ../../../../`, then a file `up/tmp/corten-escape-marker`.
    RelativeSymlinkEscape,
}

impl HostileLayer {
    pub const ALL: [HostileLayer; 4] = [
        HostileLayer::DotDotEscape,
        HostileLayer::AbsoluteSymlinkThenWrite,
        HostileLayer::HardlinkToHostFile,
        HostileLayer::RelativeSymlinkEscape,
    ];

    pub fn tar(self) -> Result<Vec<u8>> {
        let mut l = LayerBuilder::new();
        let marker = b"written by a hostile layer\n";
        match self {
            HostileLayer::DotDotEscape => {
                l.raw(EntryType::Regular, b"../escape", b"", marker)?;
            }
            HostileLayer::AbsoluteSymlinkThenWrite => {
                l.raw(EntryType::Symlink, b"etc", b"/etc", b"")?;
                l.raw(EntryType::Regular, b"etc/hostile-marker", b"", marker)?;
            }
            HostileLayer::HardlinkToHostFile => {
                l.raw(EntryType::Link, b"passwd-link", b"/etc/passwd", b"")?;
            }
            HostileLayer::RelativeSymlinkEscape => {
                l.raw(EntryType::Symlink, b"up", b"../../../../", b"")?;
                l.raw(
                    EntryType::Regular,
                    b"up/tmp/corten-escape-marker",
                    b"",
                    marker,
                )?;
            }
        }
        l.finish()
    }
}

/// A reproducible generator (splitmix64): the same seed gives the same bytes.
#[derive(Debug, Clone)]
pub struct SeededBytes(u64);

impl SeededBytes {
    pub fn new(seed: u64) -> Self {
        SeededBytes(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// A layer of incompressible pseudo-random files (`filler/<seed>-<n>.bin`,
/// at most 8 MiB each) totalling `bytes`.
pub fn random_layer(seed: u64, bytes: usize) -> Result<Vec<u8>> {
    if bytes == 0 {
        bail!("a random layer needs at least one byte");
    }
    const CHUNK: usize = 8 << 20;
    let mut rng = SeededBytes::new(seed);
    let mut l = LayerBuilder::new();
    l.dir("filler", 0o755)?;
    let mut left = bytes;
    let mut n = 0;
    while left > 0 {
        let mut buf = vec![0u8; left.min(CHUNK)];
        rng.fill(&mut buf);
        l.file(&format!("filler/{seed}-{n}.bin"), 0o644, &buf)?;
        left -= buf.len();
        n += 1;
    }
    l.finish()
}

/// A layer holding a copy of the host directory `host` at `dest` (a path
/// without a leading `/`), symlinks kept as symlinks: real binaries for
/// the pull benchmarks.
pub fn host_tree_layer(host: &Path, dest: &str) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.mode(tar::HeaderMode::Deterministic);
    b.append_dir_all(dest, host)
        .with_context(|| format!("archiving {}", host.display()))?;
    Ok(b.into_inner()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tar: &[u8]) -> Vec<(String, EntryType, Option<String>)> {
        let mut a = tar::Archive::new(tar);
        let entries = a.entries().expect("entries");
        entries
            .map(|e| {
                let e = e.expect("entry");
                let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                let link = e
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned());
                (name, e.header().entry_type(), link)
            })
            .collect()
    }

    #[test]
    fn hostile_names_are_written_verbatim() {
        let t = HostileLayer::DotDotEscape.tar().expect("tar");
        assert_eq!(names(&t)[0].0, "../escape");
        let t = HostileLayer::RelativeSymlinkEscape.tar().expect("tar");
        let n = names(&t);
        assert_eq!(n[0].2.as_deref(), Some("../../../../"));
        assert_eq!(n[1].0, "up/tmp/corten-escape-marker");
        let t = HostileLayer::HardlinkToHostFile.tar().expect("tar");
        assert_eq!(names(&t)[0].2.as_deref(), Some("/etc/passwd"));
    }

    #[test]
    fn whiteouts_and_opaque_markers() {
        let (_, upper) = whiteout_layers().expect("layers");
        let n: Vec<String> = names(&upper).into_iter().map(|e| e.0).collect();
        assert!(n.contains(&"data/.wh.gone".to_string()));
        assert!(n.contains(&"opq/.wh..wh..opq".to_string()));
    }

    #[test]
    fn random_layers_are_reproducible() {
        let a = random_layer(7, 100_000).expect("a");
        let b = random_layer(7, 100_000).expect("b");
        let c = random_layer(8, 100_000).expect("c");
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
