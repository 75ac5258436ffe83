//! The test-side image infrastructure against the real registry.
//!
//! Needs Debian's `docker-registry` and `busybox-static`; without them the
//! tests fail with a message naming the package (they never skip).

use std::collections::HashMap;
use std::io::Read;

use crictl_tests::oci::{self, ACCEPT_ALL_MANIFESTS};
use crictl_tests::{
    sha256_digest, Compression, HostileLayer, ImageBuilder, ImageIndex, ManifestFormat, Registry,
    RegistryClient, RegistryOptions,
};
use serde_json::Value;

fn start(opts: RegistryOptions) -> Registry {
    Registry::start(opts).unwrap_or_else(|e| panic!("starting the test registry failed: {e:#}"))
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("valid JSON")
}

fn decompress(media_type: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if media_type.ends_with("gzip") {
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("gunzip layer");
    } else if media_type.ends_with("zstd") {
        out = zstd::decode_all(bytes).expect("unzstd layer");
    } else {
        out = bytes.to_vec();
    }
    out
}

/// name -> (entry type, link target)
fn tar_entries(tar: &[u8]) -> HashMap<String, (tar::EntryType, Option<String>)> {
    let mut archive = tar::Archive::new(tar);
    let mut map = HashMap::new();
    for e in archive.entries().expect("tar entries") {
        let e = e.expect("tar entry");
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let link = e
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned());
        map.insert(name, (e.header().entry_type(), link));
    }
    map
}

/// Fetches `repo:reference` back and checks every digest; returns the
/// manifest, the config and the uncompressed layer tars.
fn fetch_verified(
    client: &RegistryClient,
    repo: &str,
    reference: &str,
) -> (Value, Value, Vec<Vec<u8>>) {
    let m = client
        .get_manifest(repo, reference, &ACCEPT_ALL_MANIFESTS)
        .expect("GET manifest");
    let digest = sha256_digest(&m.bytes);
    assert_eq!(m.digest_header.as_deref(), Some(digest.as_str()));
    let manifest = json(&m.bytes);
    assert_eq!(
        manifest["mediaType"].as_str(),
        Some(m.content_type.as_str())
    );
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .expect("config digest");
    let config_bytes = client.get_blob(repo, config_digest).expect("GET config");
    assert_eq!(sha256_digest(&config_bytes), config_digest);
    let config = json(&config_bytes);
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .expect("diff_ids")
        .clone();
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), diff_ids.len());
    let mut tars = Vec::new();
    for (layer, diff_id) in layers.iter().zip(&diff_ids) {
        let d = layer["digest"].as_str().expect("layer digest");
        let bytes = client.get_blob(repo, d).expect("GET layer");
        assert_eq!(sha256_digest(&bytes), d, "layer bytes match their digest");
        assert_eq!(layer["size"].as_u64(), Some(bytes.len() as u64));
        let tar = decompress(
            layer["mediaType"].as_str().expect("layer media type"),
            &bytes,
        );
        assert_eq!(
            Some(sha256_digest(&tar).as_str()),
            diff_id.as_str(),
            "diff_id"
        );
        tars.push(tar);
    }
    (manifest, config, tars)
}

#[test]
fn busybox_pushes_and_reads_back_with_hard_linked_applets() {
    let registry = start(RegistryOptions::plain());
    assert!(registry.url().starts_with("http://127.0.0.1:"));
    let img = ImageBuilder::busybox()
        .user("1000")
        .workdir("/home/tester")
        .stop_signal("SIGTERM")
        .build(Compression::Gzip)
        .expect("build busybox image");
    let pushed = img
        .push(&registry, "library/busybox", "latest")
        .expect("push");
    assert_eq!(pushed, img.digest());

    let client = registry.client().expect("client");
    let (manifest, config, tars) = fetch_verified(&client, "library/busybox", "latest");
    assert_eq!(manifest["mediaType"], oci::OCI_MANIFEST);
    assert_eq!(manifest["layers"][0]["mediaType"], oci::OCI_LAYER_GZIP);
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["config"]["User"], "1000");
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(config["config"]["WorkingDir"], "/home/tester");

    let entries = tar_entries(&tars[0]);
    assert_eq!(entries["bin/busybox"].0, tar::EntryType::Regular);
    for applet in ["sh", "ls", "cat", "sleep"] {
        let (kind, link) = &entries[&format!("bin/{applet}")];
        assert_eq!(*kind, tar::EntryType::Link, "{applet} is a hard link");
        assert_eq!(link.as_deref(), Some("bin/busybox"));
    }
    assert!(
        entries.values().all(|(k, _)| *k != tar::EntryType::Symlink),
        "no symlinks in the busybox layer"
    );
    for dir in [
        "etc", "tmp", "root", "home", "proc", "sys", "dev", "var", "usr/bin",
    ] {
        assert_eq!(entries[dir].0, tar::EntryType::Directory, "{dir}");
    }
    let mut archive = tar::Archive::new(&tars[0][..]);
    let mut passwd = String::new();
    for e in archive.entries().expect("entries") {
        let mut e = e.expect("entry");
        if e.path_bytes().as_ref() == b"etc/passwd" {
            e.read_to_string(&mut passwd).expect("read passwd");
        }
    }
    assert!(passwd.contains("tester:x:1000:1000:"), "{passwd}");

    // The same bytes every build: digests are reproducible.
    let again = ImageBuilder::busybox()
        .user("1000")
        .workdir("/home/tester")
        .stop_signal("SIGTERM")
        .build(Compression::Gzip)
        .expect("rebuild");
    assert_eq!(again.digest(), img.digest());
}

#[test]
fn zstd_uncompressed_and_docker_formats_read_back() {
    let registry = start(RegistryOptions::plain());
    let client = registry.client().expect("client");
    let cases = [
        (
            Compression::Zstd,
            ManifestFormat::Oci,
            oci::OCI_LAYER_ZSTD,
            oci::OCI_MANIFEST,
        ),
        (
            Compression::None,
            ManifestFormat::Oci,
            oci::OCI_LAYER,
            oci::OCI_MANIFEST,
        ),
        (
            Compression::Gzip,
            ManifestFormat::Docker,
            oci::DOCKER_LAYER_GZIP,
            oci::DOCKER_MANIFEST,
        ),
    ];
    for (i, (compression, format, layer_type, manifest_type)) in cases.into_iter().enumerate() {
        let tag = format!("v{i}");
        let img = ImageBuilder::busybox()
            .format(format)
            .build(compression)
            .expect("build");
        img.push(&registry, "test/formats", &tag).expect("push");
        let (manifest, _, tars) = fetch_verified(&client, "test/formats", &tag);
        assert_eq!(manifest["mediaType"], manifest_type);
        assert_eq!(manifest["layers"][0]["mediaType"], layer_type);
        assert!(tar_entries(&tars[0]).contains_key("bin/busybox"));
    }
}

#[test]
fn multi_platform_index_resolves_to_distinct_configs() {
    let registry = start(RegistryOptions::plain());
    let client = registry.client().expect("client");
    for (tag, format) in [
        ("oci", ManifestFormat::Oci),
        ("docker", ManifestFormat::Docker),
    ] {
        let index = ImageIndex::busybox_multi_arch(Compression::Gzip, format).expect("index");
        let digest = index
            .push(&registry, "library/multi", tag)
            .expect("push index");
        assert_eq!(digest, index.digest());
        let got = client
            .get_manifest("library/multi", tag, &ACCEPT_ALL_MANIFESTS)
            .expect("GET index");
        assert_eq!(got.content_type, format.index_media_type());
        let listed = json(&got.bytes);
        let entries = listed["manifests"].as_array().expect("manifests");
        assert_eq!(entries.len(), 2);
        let mut archs = Vec::new();
        for e in entries {
            let arch = e["platform"]["architecture"]
                .as_str()
                .expect("arch")
                .to_string();
            let child = e["digest"].as_str().expect("digest");
            let (_, config, _) = fetch_verified(&client, "library/multi", child);
            assert_eq!(config["architecture"], arch.as_str());
            assert_eq!(
                config["config"]["Labels"]["org.corten.test.arch"],
                arch.as_str()
            );
            archs.push(arch);
        }
        assert_eq!(archs, ["amd64", "arm64"]);
        assert_eq!(entries[1]["platform"]["variant"], "v8");
        assert_ne!(
            index.image("amd64").expect("amd64").config.digest,
            index.image("arm64").expect("arm64").config.digest
        );
    }
}

#[test]
fn whiteout_and_hostile_layers_push_verbatim() {
    let registry = start(RegistryOptions::plain());
    let client = registry.client().expect("client");
    let img = ImageBuilder::busybox_with_whiteouts()
        .expect("whiteouts")
        .build(Compression::Gzip)
        .expect("build");
    img.push(&registry, "test/whiteouts", "latest")
        .expect("push");
    let (_, _, tars) = fetch_verified(&client, "test/whiteouts", "latest");
    assert_eq!(tars.len(), 3);
    assert!(tar_entries(&tars[1]).contains_key("data/gone"));
    let upper = tar_entries(&tars[2]);
    assert!(upper.contains_key("data/.wh.gone"));
    assert!(upper.contains_key("opq/.wh..wh..opq"));

    for (i, kind) in HostileLayer::ALL.into_iter().enumerate() {
        let img = ImageBuilder::hostile(kind)
            .expect("hostile layer")
            .build(Compression::Gzip)
            .expect("build");
        let tag = format!("h{i}");
        img.push(&registry, "test/hostile", &tag).expect("push");
        let (_, _, tars) = fetch_verified(&client, "test/hostile", &tag);
        assert_eq!(
            tars[1],
            kind.tar().expect("tar"),
            "{kind:?} served verbatim"
        );
    }
}

#[test]
fn corrupt_blob_and_wrong_diff_id_are_served_as_pushed() {
    let registry = start(RegistryOptions::plain());
    let client = registry.client().expect("client");
    // The registry verifies uploads, so a lying digest cannot be pushed:
    // corrupt blobs are made by rewriting its storage instead.
    let lie = sha256_digest(b"other bytes");
    let err = client
        .push_blob("test/corrupt", &lie, b"these bytes")
        .expect_err("registry checks digests on upload");
    assert!(format!("{err:#}").contains("400"), "{err:#}");

    let img = ImageBuilder::busybox()
        .marker("corrupt")
        .expect("marker layer")
        .build(Compression::Gzip)
        .expect("build");
    img.push_corrupt_layer(&registry, "test/corrupt", "latest", 1)
        .expect("push corrupt");
    let layer = &img.layers[1];
    let served = client
        .get_blob("test/corrupt", &layer.digest)
        .expect("GET layer");
    assert_eq!(served.len(), layer.bytes.len());
    assert_ne!(sha256_digest(&served), layer.digest, "served bytes lie");
    // The untouched busybox layer is still fine.
    let ok = client
        .get_blob("test/corrupt", &img.layers[0].digest)
        .expect("GET");
    assert_eq!(sha256_digest(&ok), img.layers[0].digest);

    let img = ImageBuilder::busybox()
        .wrong_diff_id(0)
        .build(Compression::Gzip)
        .expect("build");
    img.push(&registry, "test/bad-diff-id", "latest")
        .expect("push");
    assert_ne!(img.diff_ids[0], sha256_digest(&img.layer_tars[0]));
    let config = json(
        &client
            .get_blob("test/bad-diff-id", &img.config.digest)
            .expect("GET"),
    );
    assert_eq!(config["rootfs"]["diff_ids"][0], img.diff_ids[0].as_str());
}

#[test]
fn tls_registry_needs_its_ca() {
    let registry = start(RegistryOptions::plain().tls());
    assert!(registry.url().starts_with("https://127.0.0.1:"));
    let ca = std::fs::read(registry.ca_pem_path().expect("CA path")).expect("read CA");
    assert!(String::from_utf8_lossy(&ca).contains("BEGIN CERTIFICATE"));
    let img = ImageBuilder::busybox()
        .build(Compression::Gzip)
        .expect("build");
    img.push(&registry, "library/busybox", "latest")
        .expect("push over TLS");
    let client = registry.client().expect("client");
    fetch_verified(&client, "library/busybox", "latest");
    let localhost = format!("https://localhost:{}", registry.port());
    let by_name = RegistryClient::new(&localhost, Some(&ca), None).expect("client");
    assert_eq!(by_name.ping().expect("ping localhost"), 200);

    let untrusting = RegistryClient::new(&registry.url(), None, None).expect("client");
    let err = untrusting.ping().expect_err("an unknown CA is refused");
    assert!(
        format!("{err:#}").to_lowercase().contains("certificate"),
        "{err:#}"
    );
    let plain =
        RegistryClient::new(&format!("http://{}", registry.addr()), None, None).expect("client");
    assert_ne!(
        plain.ping().ok(),
        Some(200),
        "no plain HTTP on a TLS registry"
    );
}

#[test]
fn auth_registry_refuses_without_credentials() {
    let registry = start(RegistryOptions::plain().auth("tester", "s3cret"));
    let anonymous = RegistryClient::new(&registry.url(), None, None).expect("client");
    assert_eq!(anonymous.ping().expect("ping"), 401);
    let wrong =
        RegistryClient::new(&registry.url(), None, Some(("tester", "nope"))).expect("client");
    assert_eq!(wrong.ping().expect("ping"), 401);
    let img = ImageBuilder::busybox()
        .build(Compression::Gzip)
        .expect("build");
    let err = img
        .push_with(&anonymous, "library/busybox", "latest")
        .expect_err("anonymous push refused");
    assert!(format!("{err:#}").contains("401"), "{err:#}");

    let client = registry.client().expect("client");
    assert_eq!(client.ping().expect("ping"), 200);
    img.push(&registry, "library/busybox", "latest")
        .expect("push with credentials");
    fetch_verified(&client, "library/busybox", "latest");
    assert!(anonymous
        .get_blob("library/busybox", img.config.digest.as_str())
        .is_err());
}

#[test]
fn tls_and_auth_together() {
    let registry = start(RegistryOptions::plain().tls().auth("u", "p"));
    let img = ImageBuilder::busybox()
        .build(Compression::Zstd)
        .expect("build");
    img.push(&registry, "library/busybox", "1").expect("push");
    fetch_verified(&registry.client().expect("client"), "library/busybox", "1");
}

#[test]
fn restart_keeps_port_and_content() {
    let mut registry = start(RegistryOptions::plain());
    let img = ImageBuilder::busybox()
        .build(Compression::Gzip)
        .expect("build");
    img.push(&registry, "library/busybox", "latest")
        .expect("push");
    let addr = registry.addr();
    let pid = registry.pid().expect("pid");

    registry.stop().expect("stop");
    assert!(!registry.is_running());
    let client = registry.client().expect("client");
    assert!(client.ping().is_err(), "stopped registry does not answer");

    registry.restart().expect("restart");
    assert!(registry.is_running());
    assert_eq!(registry.addr(), addr);
    assert_ne!(registry.pid(), Some(pid));
    fetch_verified(&client, "library/busybox", "latest");
}

#[test]
fn drop_kills_the_registry_and_removes_its_dir() {
    let registry = start(RegistryOptions::plain());
    let pid = registry.pid().expect("pid");
    let storage = registry.storage_dir();
    let client = registry.client().expect("client");
    drop(registry);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "process gone"
    );
    assert!(!storage.exists(), "tempdir removed");
    assert!(client.ping().is_err());
}

#[test]
fn big_image_is_over_50_mb_and_reproducible() {
    const SIZE: usize = 52 << 20;
    let registry = start(RegistryOptions::plain());
    let img = ImageBuilder::big(SIZE, 4)
        .expect("big layers")
        .build(Compression::Gzip)
        .expect("build");
    assert_eq!(img.layers.len(), 5);
    assert!(
        img.compressed_size() >= SIZE,
        "incompressible: {}",
        img.compressed_size()
    );
    img.push(&registry, "test/big", "latest").expect("push");
    let client = registry.client().expect("client");
    let m = client
        .get_manifest("test/big", "latest", &ACCEPT_ALL_MANIFESTS)
        .expect("GET manifest");
    assert_eq!(sha256_digest(&m.bytes), img.digest());
    let last = img.layers.last().expect("layer");
    let bytes = client
        .get_blob("test/big", &last.digest)
        .expect("GET layer");
    assert_eq!(sha256_digest(&bytes), last.digest);
    let again = ImageBuilder::big(SIZE, 4)
        .expect("big layers")
        .build(Compression::Gzip)
        .expect("build");
    assert_eq!(again.digest(), img.digest());
}

#[test]
fn missing_packages_are_named_in_the_error() {
    let opts = RegistryOptions {
        binary: Some("/nonexistent/docker-registry".into()),
        ..RegistryOptions::default()
    };
    let err = Registry::start(opts).expect_err("no binary, no registry");
    assert!(
        format!("{err:#}").contains("Debian package docker-registry"),
        "{err:#}"
    );
    let err = ImageBuilder::busybox()
        .busybox_path("/nonexistent/busybox")
        .build(Compression::Gzip)
        .expect_err("no busybox, no image");
    assert!(format!("{err:#}").contains("busybox-static"), "{err:#}");
}

#[test]
fn stop_cuts_a_download_and_restart_serves_it_again() {
    use std::io::Write;
    let mut registry = start(RegistryOptions::plain());
    let img = ImageBuilder::new()
        .layer(crictl_tests::layers::random_layer(42, 32 << 20).expect("layer"))
        .build(Compression::None)
        .expect("build");
    img.push(&registry, "test/cut", "latest").expect("push");
    let blob = &img.layers[0];

    // 32 MiB: more than loopback socket buffers can hold at once.
    let mut conn = std::net::TcpStream::connect(registry.addr()).expect("connect");
    write!(
        conn,
        "GET /v2/test/cut/blobs/{} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        blob.digest,
        registry.addr()
    )
    .expect("send request");
    let mut first = [0u8; 4096];
    let n = conn.read(&mut first).expect("first bytes");
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    registry.stop().expect("stop mid-download");
    let mut rest = Vec::new();
    let _ = conn.read_to_end(&mut rest);
    assert!(n + rest.len() < blob.bytes.len(), "download was cut short");

    registry.restart().expect("restart");
    let client = registry.client().expect("client");
    let again = client
        .get_blob("test/cut", &blob.digest)
        .expect("GET after restart");
    assert_eq!(sha256_digest(&again), blob.digest);
}
