//! Pulls of an image of real binaries, as big as a node's everyday image:
//! trees of this machine's own programs (the Go toolchain, which builds
//! the test tools, and system directories), one layer each, on busybox.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use corten_cri_api::v1 as k8s;

use crate::{image_spec, images, pull, Subject};
use crictl_tests::layers::host_tree_layer;
use crictl_tests::{Compression, ImageBuilder, Registry};

/// Its name, through the mirrored registry.
pub const REAL: &str = "docker.io/library/realbin:v1";

/// Host trees that become layers, where they exist.
const TREES: [&str; 5] = [
    "/usr/local/go/pkg/tool",
    "/usr/local/go/bin",
    "/usr/lib/gcc",
    "/usr/libexec",
    "/usr/sbin",
];

/// What was pushed: layers, compressed and unpacked bytes.
pub struct RealImage {
    pub layers: usize,
    pub compressed: usize,
    pub unpacked: usize,
}

/// Builds the image and pushes it to `reg` as [`REAL`].
pub fn push_real_image(reg: &Registry) -> Result<RealImage> {
    let mut b = ImageBuilder::busybox();
    let (mut layers, mut unpacked) = (1, 0);
    for tree in TREES {
        let path = Path::new(tree);
        if !path.is_dir() {
            continue;
        }
        let tar = host_tree_layer(path, tree.trim_start_matches('/'))?;
        unpacked += tar.len();
        layers += 1;
        b = b.layer(tar);
    }
    let image = b.build(Compression::Gzip)?;
    image.push(reg, "library/realbin", "v1")?;
    Ok(RealImage {
        layers,
        compressed: image.compressed_size(),
        unpacked,
    })
}

/// A pull of [`REAL`] with the image absent (removed before): the time.
pub async fn cold(s: &Subject) -> Result<Duration> {
    let mut c = images(&s.socket).await?;
    remove(&mut c, s).await?;
    let t = Instant::now();
    pull(&mut c, REAL).await?;
    Ok(t.elapsed())
}

/// A pull of [`REAL`] with the image present (kubelet's `Always` policy).
pub async fn warm(s: &Subject) -> Result<Duration> {
    let mut c = images(&s.socket).await?;
    pull(&mut c, REAL).await?;
    let t = Instant::now();
    pull(&mut c, REAL).await?;
    Ok(t.elapsed())
}

/// Removes [`REAL`] (absent is fine).
pub async fn remove(
    c: &mut k8s::image_service_client::ImageServiceClient<tonic::transport::Channel>,
    s: &Subject,
) -> Result<()> {
    c.remove_image(k8s::RemoveImageRequest {
        image: image_spec(REAL),
    })
    .await
    .with_context(|| format!("{}: RemoveImage {REAL}", s.name))?;
    Ok(())
}
