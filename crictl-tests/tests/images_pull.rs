//! Issue 3: pulling, listing, inspecting and removing images with the real
//! crictl, from a real registry on 127.0.0.1 holding images built here.

use std::os::unix::fs::FileTypeExt as _;

use crictl_tests::wait;
use crictl_tests::{
    Compression, Daemon, DaemonBuilder, ImageBuilder, ImageIndex, ManifestFormat, Registry,
    RegistryOptions,
};

fn registry() -> Registry {
    Registry::start(RegistryOptions::plain()).expect("registry starts")
}

/// A daemon whose docker.io is served by `reg`, as a user's mirror would.
fn daemon_with_mirror(reg: &Registry) -> Daemon {
    DaemonBuilder::new()
        .mirror("docker.io", &reg.url())
        .start()
        .expect("cortend starts")
}

fn image_ids(d: &Daemon) -> Vec<String> {
    let out = d.crictl(&["images", "-q", "--no-trunc"]).ok();
    out.lines().map(str::to_string).collect()
}

#[test]
fn pull_by_short_name_through_a_docker_io_mirror_then_list_inspect_remove() {
    let reg = registry();
    let img = ImageBuilder::busybox()
        .build(Compression::Gzip)
        .expect("build");
    let manifest_digest = img.push(&reg, "library/busybox", "latest").expect("push");
    let d = daemon_with_mirror(&reg);

    let out = d.crictl(&["pull", "busybox"]).ok();
    assert!(out.contains("Image is up to date for sha256:"), "{out}");

    let listed = d.crictl(&["images"]).ok();
    assert!(listed.contains("docker.io/library/busybox"), "{listed}");
    assert!(listed.contains("latest"), "{listed}");

    let inspect = d.crictl(&["inspecti", "busybox"]).json();
    let status = &inspect["status"];
    assert_eq!(status["repoTags"][0], "docker.io/library/busybox:latest");
    assert_eq!(
        status["repoDigests"][0],
        format!("docker.io/library/busybox@{manifest_digest}").as_str()
    );
    let size = status["size"]
        .as_str()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    assert_eq!(
        size,
        img.compressed_size() as u64 + img.config.bytes.len() as u64,
        "{inspect}"
    );
    assert_eq!(inspect["info"]["imageSpec"]["architecture"], "amd64");
    assert_eq!(inspect["info"]["imageSpec"]["config"]["Cmd"][0], "sh");

    // The layer is unpacked once, as an overlayfs lowerdir: busybox and its
    // hard-linked applets are there.
    let chain = inspect["info"]["chainID"].as_str().expect("chain id");
    let lower = d
        .root_dir()
        .join("snapshots")
        .join(chain.trim_start_matches("sha256:"));
    let busybox = std::fs::metadata(lower.join("bin/busybox")).expect("bin/busybox unpacked");
    assert!(busybox.len() > 100_000);
    use std::os::unix::fs::MetadataExt as _;
    assert!(busybox.nlink() > 50, "applets are hard links");

    let fs = d.crictl(&["imagefsinfo", "-o", "json"]).json();
    let used = fs["status"]["imageFilesystems"][0]["usedBytes"]["value"]
        .as_str()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(used > 500_000, "{fs}");

    // A filter names one image; one we do not have lists nothing.
    let filtered = d.crictl(&["images", "-q", "busybox"]).ok();
    assert_eq!(filtered.lines().count(), 1, "{filtered}");
    let none = d
        .crictl(&["images", "-q", "docker.io/library/nothere"])
        .ok();
    assert!(none.trim().is_empty(), "{none}");

    // Pulled again: nothing new is fetched, the same id comes back.
    let again = d.crictl(&["pull", "docker.io/library/busybox:latest"]).ok();
    assert_eq!(out, again);

    d.crictl(&["rmi", "busybox"]).ok();
    assert!(image_ids(&d).is_empty());
    // Collected in the background, right after the removal.
    wait::until(
        "the unreferenced snapshot to be garbage-collected",
        std::time::Duration::from_secs(30),
        || !lower.exists(),
    );
    // Removing what is gone is not an error (crictl resolves names first, so
    // use the id it no longer knows: crictl reports it, the RPC succeeds).
    let fs = d.crictl(&["imagefsinfo", "-o", "json"]).json();
    let used = fs["status"]["imageFilesystems"][0]["usedBytes"]["value"]
        .as_str()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    assert!(used < 100_000, "{fs}");
}

#[test]
fn loopback_registry_needs_no_config() {
    let reg = registry();
    ImageBuilder::busybox()
        .build(Compression::Gzip)
        .expect("build")
        .push(&reg, "library/busybox", "1.35")
        .expect("push");
    let d = Daemon::start();
    let name = format!("{}/library/busybox:1.35", reg.addr());
    d.crictl(&["pull", &name]).ok();
    let listed = d.crictl(&["images"]).ok();
    assert!(
        listed.contains(&format!("{}/library/busybox", reg.addr())),
        "{listed}"
    );
}

#[test]
fn every_layer_format_and_manifest_kind_pulls() {
    let reg = registry();
    let d = Daemon::start();
    let cases = [
        ("gzip-oci", Compression::Gzip, ManifestFormat::Oci),
        ("zstd-oci", Compression::Zstd, ManifestFormat::Oci),
        ("plain-oci", Compression::None, ManifestFormat::Oci),
        ("gzip-docker", Compression::Gzip, ManifestFormat::Docker),
    ];
    for (repo, compression, format) in cases {
        ImageBuilder::busybox()
            .format(format)
            .build(compression)
            .expect("build")
            .push(&reg, repo, "v1")
            .expect("push");
        let name = format!("{}/{repo}:v1", reg.addr());
        d.crictl(&["pull", &name]).ok();
    }
    // The same config (the diff_ids do not depend on compression or
    // manifest kind): one image id carrying the four names.
    assert_eq!(image_ids(&d).len(), 1, "{}", d.crictl(&["images"]).ok());
    let inspect = d
        .crictl(&["inspecti", &format!("{}/zstd-oci:v1", reg.addr())])
        .json();
    assert_eq!(
        inspect["status"]["repoTags"].as_array().map(Vec::len),
        Some(4),
        "{inspect}"
    );
    let snapshots = std::fs::read_dir(d.root_dir().join("snapshots"))
        .expect("snapshots")
        .filter_map(Result::ok)
        .filter(|e| e.file_name() != "tmp" && e.file_name() != "usage")
        .count();
    assert_eq!(snapshots, 1, "the shared layer is unpacked once");
}

#[test]
fn multi_platform_index_resolves_to_linux_amd64() {
    let reg = registry();
    for format in [ManifestFormat::Oci, ManifestFormat::Docker] {
        let repo = format!("multi-{format:?}").to_lowercase();
        let index = ImageIndex::busybox_multi_arch(Compression::Gzip, format).expect("index");
        let index_digest = index.push(&reg, &repo, "latest").expect("push");
        let d = Daemon::start();
        let name = format!("{}/{repo}", reg.addr());
        d.crictl(&["pull", &name]).ok();
        let inspect = d.crictl(&["inspecti", &name]).json();
        assert_eq!(
            inspect["info"]["imageSpec"]["architecture"], "amd64",
            "{inspect}"
        );
        let amd64 = index.image("amd64").expect("amd64 entry");
        assert_eq!(inspect["info"]["manifestDigest"], amd64.digest());
        // The repo digest is the index's, as the user asked for the index.
        let digests = inspect["status"]["repoDigests"].to_string();
        assert!(digests.contains(&index_digest), "{digests}");
    }
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    let reg = registry();
    ImageBuilder::busybox_with_whiteouts()
        .expect("builder")
        .build(Compression::Gzip)
        .expect("build")
        .push(&reg, "whiteouts", "v1")
        .expect("push");
    let d = Daemon::start();
    let name = format!("{}/whiteouts:v1", reg.addr());
    d.crictl(&["pull", &name]).ok();
    let inspect = d.crictl(&["inspecti", &name]).json();
    let layers = inspect["info"]["layers"]
        .as_array()
        .expect("layers")
        .clone();
    assert!(layers.len() >= 2, "{inspect}");
    let top = layers.last().expect("top")["chain_id"]
        .as_str()
        .expect("chain id")
        .trim_start_matches("sha256:")
        .to_string();
    let top_dir = d.root_dir().join("snapshots").join(top);
    let mut whiteouts = 0;
    for entry in walk(&top_dir) {
        let meta = std::fs::symlink_metadata(&entry).expect("stat");
        let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or("");
        assert!(
            !name.starts_with(".wh."),
            "a .wh. file was left: {}",
            entry.display()
        );
        if meta.file_type().is_char_device() {
            use std::os::unix::fs::MetadataExt as _;
            assert_eq!(meta.rdev(), 0, "whiteouts are 0:0 devices");
            whiteouts += 1;
        }
    }
    assert!(
        whiteouts >= 1,
        "no whiteout device in {}",
        top_dir.display()
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(Result::ok) {
            let p = e.path();
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

/// A registry whose mirrors are final is never contacted itself: an image
/// only it has cannot be pulled, and it sees no request. Without the
/// setting, the same pull falls back to it and succeeds.
#[test]
fn final_mirrors_never_fall_back_to_the_registry() {
    let upstream = registry();
    let mirror = registry();
    let img = ImageBuilder::busybox()
        .marker("only upstream")
        .expect("marker")
        .build(Compression::Gzip)
        .expect("build");
    img.push(&upstream, "library/onlyup", "1").expect("push");
    // What the upstream registry is asked after our own push.
    let pushed = upstream.log().len();
    let asked = || upstream.log()[pushed..].to_string();
    let name = format!("{}/library/onlyup:1", upstream.addr());
    let builder = |final_mirrors: bool| {
        DaemonBuilder::new()
            .mirror(&upstream.addr(), &mirror.url())
            .config(|c| {
                let list = if final_mirrors {
                    vec![toml::Value::String(upstream.addr())]
                } else {
                    Vec::new()
                };
                if let Some(r) = c.get_mut("registry").and_then(|r| r.as_table_mut()) {
                    r.insert("mirrors_final".into(), toml::Value::Array(list));
                }
            })
            .start()
            .expect("cortend starts")
    };

    let d = builder(true);
    let err = d.crictl(&["pull", &name]).fails();
    assert!(err.contains("not found"), "{err}");
    assert!(
        !asked().contains("/v2/library/onlyup/"),
        "the upstream registry was asked:\n{}",
        asked()
    );
    assert!(
        mirror.log().contains("/v2/library/onlyup/"),
        "{}",
        mirror.log()
    );
    drop(d);

    let d = builder(false);
    let out = d.crictl(&["pull", &name]).ok();
    assert!(out.contains("Image is up to date for sha256:"), "{out}");
    assert!(asked().contains("/v2/library/onlyup/"));
}
