//! critest against cortend: the test images critest pulls by name, built
//! here from Debian's busybox-static and the `critest-double` program, and
//! pushed to a local registry under the same repository paths; cortend's
//! mirrors for registry.k8s.io and gcr.io point at that registry, so the
//! images keep their upstream names.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _, Result};

use crate::layers::LayerBuilder;
use crate::oci::Compression;
use crate::{ImageBuilder, Registry};

/// The registries critest's images come from.
pub const UPSTREAMS: [&str; 2] = ["registry.k8s.io", "gcr.io"];

/// The `critest` binary: `$CRITEST`, or the copy `crictl-tests/run.sh`
/// builds into `.test-tools/bin`.
pub fn critest_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CRITEST") {
        return Some(PathBuf::from(p));
    }
    let local = crate::tools::workspace_root().join(".test-tools/bin/critest");
    local.is_file().then_some(local)
}

/// critest of cri-tools v1.37.0, for the specs v1.34.0 lacks (image
/// volumes): `$CRITEST_1_37`, or `critest-1.37` beside [`critest_binary`]
/// (`crictl-tests/cri-tools.sh` builds it into `.test-tools/bin`).
pub fn critest_1_37_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CRITEST_1_37") {
        return Some(PathBuf::from(p));
    }
    let beside = critest_binary()?.with_file_name("critest-1.37");
    let local = crate::tools::workspace_root().join(".test-tools/bin/critest-1.37");
    [beside, local].into_iter().find(|p| p.is_file())
}

/// The shared libraries `binary` loads (from `ldd`), the loader included.
fn shared_libs(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .context("running ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

/// Debian's dynamically linked busybox, unpacked by `crictl-tests/run.sh`
/// into `.test-tools/busybox` (`$CRITEST_BUSYBOX` elsewhere). Its shell is
/// not "standalone": `sh -c ls` runs the file /bin/ls, so masking /bin/ls
/// works as critest expects, which busybox-static's shell defeats by
/// running its built-in applet.
pub fn dynamic_busybox() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CRITEST_BUSYBOX") {
        return Some(PathBuf::from(p));
    }
    let local = crate::tools::workspace_root().join(".test-tools/busybox/bin/busybox");
    local.is_file().then_some(local)
}

/// A layer holding `binary` at `dest` (mode `mode`) with the libraries it
/// needs at their host paths; with `dest` empty, the libraries only.
pub fn program_layer(binary: &Path, dest: &str, mode: u32) -> Result<Vec<u8>> {
    let mut l = LayerBuilder::new();
    let mut dirs: Vec<String> = Vec::new();
    let mut add_dirs = |l: &mut LayerBuilder, path: &str| -> Result<()> {
        let mut acc = String::new();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(part);
            if !dirs.contains(&acc) {
                l.dir(&acc, 0o755)?;
                dirs.push(acc.clone());
            }
        }
        Ok(())
    };
    if !dest.is_empty() {
        let data =
            std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
        add_dirs(&mut l, dest)?;
        l.file_owned(dest.trim_start_matches('/'), mode, 0, 0, &data)?;
    }
    for lib in shared_libs(binary)? {
        let real = std::fs::canonicalize(&lib).unwrap_or_else(|_| lib.clone());
        let bytes = std::fs::read(&real).with_context(|| format!("reading {}", real.display()))?;
        let at = lib.display().to_string();
        // /lib64 etc. may be symlinks on the host (merged /usr): store the
        // file under the path the binary asks for; a directory symlink in
        // the image is not needed.
        add_dirs(&mut l, &at)?;
        l.file(at.trim_start_matches('/'), 0o755, &bytes)?;
    }
    l.finish()
}

/// Little scripts for the applets Debian's busybox lacks (`pgrep`, `ipcs`).
fn busybox_extras() -> Result<Vec<u8>> {
    let mut l = LayerBuilder::new();
    l.dir("usr", 0o755)?;
    l.dir("usr/bin", 0o755)?;
    l.file("usr/bin/pgrep", 0o755, b"#!/bin/sh\nexec pidof \"$@\"\n")?;
    l.file(
        "usr/bin/ipcs",
        0o755,
        b"#!/bin/sh\n# The shared memory segments, as /proc lists them.\ncat /proc/sysvipc/shm\n",
    )?;
    l.dir("var", 0o755)?;
    l.dir("var/run", 0o755)?;
    l.finish()
}

/// `/etc/passwd` and `/etc/group` of the predefined-group image.
fn predefined_group_layer() -> Result<Vec<u8>> {
    let mut l = LayerBuilder::new();
    l.dir("etc", 0o755)?;
    l.file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\ndefault-user:x:1000:1000:default:/home:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    l.file(
        "etc/group",
        0o644,
        b"root:x:0:\ndefault-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\nnogroup:x:65534:\n",
    )?;
    l.finish()
}

/// Builds every image critest v1.34 pulls (except the one it names by an
/// upstream digest) and pushes it to `reg` under its upstream path. The
/// images critest runs commands in use `busybox` (with its libraries) when
/// given, busybox-static otherwise.
pub fn push_images(reg: &Registry, double: &Path, busybox: Option<&Path>) -> Result<()> {
    let push = |b: ImageBuilder, repo: &str, tags: &[&str]| -> Result<()> {
        let img = b.build(Compression::Gzip)?;
        for tag in tags {
            img.push(reg, repo, tag)
                .with_context(|| format!("pushing {repo}:{tag}"))?;
        }
        Ok(())
    };
    let base = || -> Result<ImageBuilder> {
        let b = match busybox {
            Some(bb) => ImageBuilder::new()
                .busybox_path(bb)
                .busybox_layer()
                .layer(program_layer(bb, "", 0)?),
            None => ImageBuilder::busybox(),
        };
        Ok(b.layer(busybox_extras()?))
    };

    // registry.k8s.io
    push(base()?, "e2e-test-images/busybox", &["1.29-2"])?;
    push(
        base()?
            .layer(program_layer(double, "/usr/sbin/nginx", 0o755)?)
            .cmd(&["nginx", "nginx", "80"]),
        "e2e-test-images/nginx",
        &["1.14-2"],
    )?;
    push(
        base()?
            .layer(program_layer(double, "/usr/local/bin/httpd", 0o755)?)
            .cmd(&["httpd", "httpd", "80"]),
        "e2e-test-images/httpd",
        &["2.4.39-4"],
    )?;
    push(
        base()?
            .layer(program_layer(double, "/usr/local/bin/nnp", 0o4755)?)
            .cmd(&["/usr/local/bin/nnp", "nnp"]),
        "e2e-test-images/nonewprivs",
        &["1.3"],
    )?;

    // gcr.io/k8s-staging-cri-tools
    let cri = "k8s-staging-cri-tools";
    push(
        base()?
            .layer(program_layer(double, "/usr/sbin/nginx", 0o755)?)
            .cmd(&["nginx", "nginx", "12003"]),
        &format!("{cri}/hostnet-nginx-amd64"),
        &["latest"],
    )?;
    for (repo, tags) in [
        ("test-image-tag", &["test"][..]),
        ("test-image-latest", &["latest"][..]),
        ("test-image-1", &["latest"][..]),
        ("test-image-2", &["latest"][..]),
        ("test-image-3", &["latest"][..]),
        ("test-image-tags", &["1", "2", "3"][..]),
    ] {
        push(
            ImageBuilder::busybox().marker(repo)?,
            &format!("{cri}/{repo}"),
            tags,
        )?;
    }
    // test-image-tag:all must differ from test-image-tag:test.
    push(
        ImageBuilder::busybox().marker("test-image-tag:all")?,
        &format!("{cri}/test-image-tag"),
        &["all"],
    )?;
    for (repo, user) in [
        ("test-image-user-uid", "1002"),
        ("test-image-user-username", "www-data"),
        ("test-image-user-uid-group", "1003:1004"),
        ("test-image-user-username-group", "www-data:1004"),
    ] {
        push(
            ImageBuilder::busybox().marker(repo)?.user(user),
            &format!("{cri}/{repo}"),
            &["latest"],
        )?;
    }
    push(
        base()?.layer(predefined_group_layer()?).user("1000"),
        &format!("{cri}/test-image-predefined-group"),
        &["latest"],
    )?;
    Ok(())
}

/// The counts critest printed in its last `Ran … Specs` and `Passed |
/// Failed | Pending | Skipped` lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Specs run.
    pub ran: u32,
    /// Passed.
    pub passed: u32,
    /// Failed.
    pub failed: u32,
    /// Skipped (by focus/skip or by the spec itself).
    pub skipped: u32,
}

/// Parses critest's (ginkgo's) summary out of its output.
pub fn summary(output: &str) -> Result<Summary> {
    let mut s = Summary::default();
    let mut found = false;
    for line in output.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Ran ") {
            s.ran = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
        if line.contains(" Passed |") && line.contains(" Failed |") {
            found = true;
            for part in line.split('|') {
                let mut words = part.split_whitespace().rev();
                let (Some(label), Some(n)) = (words.next(), words.next()) else {
                    continue;
                };
                let n: u32 = n.parse().unwrap_or(0);
                match label {
                    "Passed" => s.passed = n,
                    "Failed" => s.failed = n,
                    "Skipped" => s.skipped = n,
                    _ => {}
                }
            }
        }
    }
    if !found {
        bail!("no critest summary in its output");
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ginkgo_summaries() {
        let out = "junk\nRan 10 of 113 Specs in 1.132 seconds\nFAIL! -- 8 Passed | 2 Failed | 0 Pending | 103 Skipped\n";
        assert_eq!(
            summary(out).expect("summary"),
            Summary {
                ran: 10,
                passed: 8,
                failed: 2,
                skipped: 103
            }
        );
        let ok = "Ran 1 of 2 Specs in 0.1 seconds\nSUCCESS! -- 1 Passed | 0 Failed | 0 Pending | 1 Skipped\n";
        assert_eq!(summary(ok).expect("summary").failed, 0);
        assert!(summary("nothing").is_err());
    }
}
