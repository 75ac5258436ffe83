//! The images the node conformance specs run, built here and pushed to the
//! node's registry under the repositories and tags the suite names
//! (k8s.io/kubernetes `test/utils/image/manifest.go`): cortend's `*` mirror
//! serves every registry from that one, so `registry.k8s.io/pause:3.10.1`
//! comes from it as `pause:3.10.1`.
//!
//! They are stand-ins made of Debian parts, with what the specs call:
//!
//! - busybox: Debian's dynamically linked busybox and its libraries;
//! - agnhost: busybox with the agnhost binary built from the same
//!   Kubernetes module as the suite, `/agnhost` (and the `agnhost-2` link
//!   the entrypoint specs run), `/uploads`, and the user and group the
//!   supplemental-groups specs expect (1000 in group 50000);
//! - pause: `/pause`, the tests' `critest-double` in its pause mode;
//! - nginx and httpd (two versions each, the image-update specs switch
//!   between them), nonewprivs: busybox with `critest-double` serving HTTP
//!   on port 80, or printing its effective uid;
//! - nonroot (busybox as uid 1234), kitten and nautilus (agnhost serving
//!   HTTP, two distinct images for the image-update specs).

use std::path::Path;

use anyhow::{Context, Result};

use crate::critest::program_layer;
use crate::layers::LayerBuilder;
use crate::oci::Compression;
use crate::{ImageBuilder, Registry};

/// The e2e test images' repository prefix (`PromoterE2eRegistry`).
pub const E2E: &str = "registry.k8s.io/e2e-test-images";

/// One image to push: its upstream name (registry/repository:tag).
#[derive(Debug, Clone)]
pub struct Pushed {
    pub name: String,
    pub digest: String,
}

/// The user and group of agnhost's image.
const AGNHOST_PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const AGNHOST_GROUP: &str = "root:x:0:\n\
user-defined-in-image:x:1000:\n\
group-defined-in-image:x:50000:user-defined-in-image\n\
nogroup:x:65534:\n";

/// `/agnhost`, `/agnhost-2` (a symlink to it), `/uploads`, and the image's
/// user and group.
fn agnhost_layer(agnhost: &Path) -> Result<Vec<u8>> {
    let binary = std::fs::read(agnhost).with_context(|| format!("read {}", agnhost.display()))?;
    let mut l = LayerBuilder::new();
    l.file("agnhost", 0o755, &binary)?;
    l.symlink("agnhost-2", "agnhost")?;
    l.dir("uploads", 0o755)?;
    // The image's TLS pair (netexec --tls-cert-file /localhost.crt, as in
    // the lifecycle hook specs); made here, self-signed for localhost.
    let (cert, key) = localhost_tls()?;
    l.file("localhost.crt", 0o644, cert.as_bytes())?;
    l.file("localhost.key", 0o600, key.as_bytes())?;
    l.dir("etc", 0o755)?;
    l.file("etc/passwd", 0o644, AGNHOST_PASSWD.as_bytes())?;
    l.file("etc/group", 0o644, AGNHOST_GROUP.as_bytes())?;
    l.dir("home", 0o755)?;
    l.dir_owned("home/user-defined-in-image", 0o755, 1000, 1000)?;
    l.finish()
}

/// Debian's busybox has no `nmeter` applet, which the specs of
/// container_lifecycle_pod_construction.go call as `nmeter -d0 '%3t' | head
/// -n1` for the time of day with milliseconds. This stand-in prints that
/// line (UTC, as the specs read it) from the shell's `$EPOCHREALTIME`.
const NMETER: &str = "#!/bin/sh\n\
# Stand-in for busybox's nmeter: one line, the time as HH:MM:SS.mmm (UTC).\n\
t=$EPOCHREALTIME\n\
s=${t%.*}\n\
f=${t#*.}000\n\
echo \"$(date -u -d @$s +%H:%M:%S).$(echo $f | cut -c1-3)\"\n";

/// The host's bash (Debian's), for the stand-in images' shell.
const HOST_BASH: &str = "/bin/bash";

/// The root filesystem of the stand-in images: Debian's dynamically linked
/// busybox with its libraries (its shell runs what PATH finds, where
/// busybox-static's prefers its own applets: the specs' `nc -u` must reach
/// the `nc` stand-in in /usr/local/bin, not busybox's), and [`NMETER`] as
/// /bin/nmeter; its /bin/sh is `double`'s shell mode (busybox ash, or
/// bash where ash would drop variables: see `critest-double`).
fn e2e_busybox(double: &Path) -> Result<ImageBuilder> {
    let bb = crate::critest::dynamic_busybox().context(
        "Debian's dynamic busybox is not unpacked: crictl-tests/run.sh puts it in \
         .test-tools/busybox, or set CRITEST_BUSYBOX",
    )?;
    let mut l = LayerBuilder::new();
    l.dir("bin", 0o755)?;
    l.file("bin/nmeter", 0o755, NMETER.as_bytes())?;
    // The shell stand-in's ash: a link named sh, so that the process's
    // name (comm) is `sh`, as with upstream's /bin/sh link.
    l.dir("usr", 0o755)?;
    l.dir("usr/lib", 0o755)?;
    l.dir("usr/lib/corten", 0o755)?;
    l.symlink("usr/lib/corten/sh", "/bin/busybox")?;
    Ok(ImageBuilder::new()
        .busybox_path(&bb)
        .busybox_layer()
        .layer(program_layer(&bb, "", 0)?)
        .layer(l.finish()?)
        // Debian's busybox ash (1.35) drops environment variables whose
        // names are not shell identifiers (`data-1`, which the ConfigMap
        // and Secret envFrom specs print with `sh -c env`); upstream's
        // busybox 1.37 keeps them, and so does bash, which the shell
        // stand-in runs then. Otherwise it is ash, whose messages the
        // specs compare.
        .layer(program_layer(
            Path::new(HOST_BASH),
            "/usr/lib/corten/bash",
            0o755,
        )?)
        .layer(program_layer(double, "/bin/sh", 0o755)?))
}

/// A self-signed certificate for localhost and 127.0.0.1 and its key (PEM).
fn localhost_tls() -> Result<(String, String)> {
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .context("localhost certificate params")?;
    let key = rcgen::KeyPair::generate().context("localhost key")?;
    let cert = params.self_signed(&key).context("self-sign localhost")?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Builds every image and pushes it to `reg` under its upstream path (the
/// registry host dropped). `agnhost` is the built agnhost binary, `double`
/// the `critest-double` program. Returns what was pushed.
pub fn push_images(reg: &Registry, agnhost: &Path, double: &Path) -> Result<Vec<Pushed>> {
    let mut pushed = Vec::new();
    let mut push = |b: &ImageBuilder, name: &str| -> Result<()> {
        let img = b.build(Compression::Gzip)?;
        let (repo, tag) = repository(name).with_context(|| format!("image name {name}"))?;
        let digest = img
            .push(reg, repo, tag)
            .with_context(|| format!("push {name}"))?;
        pushed.push(Pushed {
            name: name.to_string(),
            digest,
        });
        Ok(())
    };
    // Built once (it reads busybox, bash and their libraries); every image
    // starts from a copy.
    let busybox = e2e_busybox(double)?;
    push(&busybox, &format!("{E2E}/busybox:1.37.0-1"))?;

    let agnhost = busybox
        .clone()
        .layer(agnhost_layer(agnhost)?)
        // Upstream's image adds Alpine's curl and netcat-openbsd, which the
        // networking and lifecycle hook specs call (busybox's nc has no -u).
        .layer(program_layer(double, "/usr/local/bin/curl", 0o755)?)
        .layer(program_layer(double, "/usr/local/bin/nc", 0o755)?)
        .entrypoint(&["/agnhost"])
        .cmd(&["pause"]);
    push(&agnhost, &format!("{E2E}/agnhost:2.56"))?;
    for kind in ["kitten", "nautilus"] {
        push(
            &agnhost.clone().marker(kind)?.cmd(&["test-webserver"]),
            &format!("{E2E}/{kind}:1.7"),
        )?;
    }

    push(
        &ImageBuilder::new()
            .layer(program_layer(double, "/pause", 0o755)?)
            .entrypoint(&["/pause"])
            .cmd(&[]),
        "registry.k8s.io/pause:3.10.1",
    )?;

    let double_layer = |dest: &str, mode: u32| program_layer(double, dest, mode);
    let nginx = busybox
        .clone()
        .layer(double_layer("/usr/sbin/nginx", 0o755)?)
        .cmd(&["nginx", "nginx", "80"]);
    push(&nginx, &format!("{E2E}/nginx:1.14-4"))?;
    push(&nginx.marker("nginx 1.15")?, &format!("{E2E}/nginx:1.15-4"))?;
    let httpd = busybox
        .clone()
        .layer(double_layer("/usr/local/bin/httpd", 0o755)?)
        .cmd(&["httpd", "httpd", "80"]);
    push(&httpd, &format!("{E2E}/httpd:2.4.38-4"))?;
    push(
        &httpd.marker("httpd 2.4.39")?,
        &format!("{E2E}/httpd:2.4.39-4"),
    )?;
    push(
        &busybox
            .clone()
            .layer(double_layer("/usr/local/bin/nnp", 0o4755)?)
            .cmd(&["/usr/local/bin/nnp", "nnp"]),
        &format!("{E2E}/nonewprivs:1.3"),
    )?;
    push(
        &busybox.clone().marker("nonroot")?.user("1234"),
        &format!("{E2E}/nonroot:1.4"),
    )?;
    Ok(pushed)
}

/// `registry/repo:tag` as the local registry's (`repo`, `tag`).
fn repository(name: &str) -> Option<(&str, &str)> {
    let (_, path) = name.split_once('/')?;
    let (repo, tag) = path.rsplit_once(':')?;
    (!repo.is_empty() && !tag.is_empty() && !tag.contains('/')).then_some((repo, tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_names_map_to_local_repositories() {
        assert_eq!(
            repository("registry.k8s.io/e2e-test-images/agnhost:2.56"),
            Some(("e2e-test-images/agnhost", "2.56"))
        );
        assert_eq!(
            repository("registry.k8s.io/pause:3.10.1"),
            Some(("pause", "3.10.1"))
        );
        assert_eq!(repository("registry.k8s.io/pause"), None);
        assert_eq!(repository("localhost:5000/pause"), None);
    }
}
