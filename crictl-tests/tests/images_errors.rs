//! Issue 3, error paths: every bad pull fails with a precise error and
//! leaves no image record and no half-made snapshot behind.

use std::path::Path;

use base64::Engine as _;
use std::time::Duration;

use crictl_tests::proxy::SlowProxy;
use crictl_tests::wait;
use crictl_tests::{
    Compression, Daemon, DaemonBuilder, HostileLayer, ImageBuilder, Registry, RegistryOptions,
};

fn registry() -> Registry {
    Registry::start(RegistryOptions::plain()).expect("registry starts")
}

/// No image recorded, nothing committed or left in the snapshot store.
fn assert_nothing_left(d: &Daemon) {
    assert_no_image_no_temp(d);
    let snapshots = d.root_dir().join("snapshots");
    let committed = || -> Vec<_> {
        std::fs::read_dir(&snapshots)
            .expect("snapshots dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .filter(|n| n != "tmp" && n != "usage")
            .collect()
    };
    // A removal collects layers in the background.
    let collected = wait::within(Duration::from_secs(30), || committed().is_empty());
    assert!(collected, "snapshots left: {:?}", committed());
    // Nor the measured usage of one.
    let usages: Vec<_> = std::fs::read_dir(snapshots.join("usage"))
        .expect("usage dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert!(usages.is_empty(), "usages left: {usages:?}");
}

/// No image recorded and no temporary snapshot; layers that completed
/// before the failure may stay, for the retry.
fn assert_no_image_no_temp(d: &Daemon) {
    let ids = d.crictl(&["images", "-q"]).ok();
    assert!(ids.trim().is_empty(), "an image was recorded: {ids}");
    let snapshots = d.root_dir().join("snapshots");
    let tmp = || -> Vec<String> {
        std::fs::read_dir(snapshots.join("tmp"))
            .expect("tmp dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    // A removal (an `rmi`'s background collection) moves its snapshot here
    // as `rm-…` and deletes it there: wait for those.
    wait::within(Duration::from_secs(30), || {
        !tmp().iter().any(|n| n.starts_with("rm-"))
    });
    let left = tmp();
    assert!(left.is_empty(), "temporary snapshots left: {left:?}");
}

#[test]
fn unknown_image_is_not_found() {
    let reg = registry();
    let d = Daemon::start();
    let err = d
        .crictl(&["pull", &format!("{}/no/such:image", reg.addr())])
        .fails();
    assert!(err.contains("code = NotFound"), "{err}");
    assert!(err.contains("no/such"), "{err}");
    assert_nothing_left(&d);
}

#[test]
fn invalid_reference_is_invalid_argument() {
    let d = Daemon::start();
    for bad in [
        "Upper/Case",
        "busybox@sha256:1234",
        "bad tag:x y",
        "busybox:",
    ] {
        let err = d.crictl(&["pull", bad]).fails();
        assert!(err.contains("code = InvalidArgument"), "{bad}: {err}");
        assert!(err.contains("invalid"), "{bad}: {err}");
    }
    let err = d.crictl(&["inspecti", "Upper/Case"]).fails();
    assert!(err.contains("InvalidArgument"), "{err}");
}

#[test]
fn hostile_layers_fail_the_pull_and_touch_nothing_outside() {
    let reg = registry();
    let d = Daemon::start();
    let outside = [
        Path::new("/etc/hostile-marker"),
        Path::new("/tmp/corten-escape-marker"),
    ];
    for path in outside {
        assert!(!path.exists(), "{} exists before the test", path.display());
    }
    let passwd_before = std::fs::read("/etc/passwd").expect("read passwd");
    for (i, kind) in [
        HostileLayer::DotDotEscape,
        HostileLayer::AbsoluteSymlinkThenWrite,
        HostileLayer::HardlinkToHostFile,
        HostileLayer::RelativeSymlinkEscape,
    ]
    .into_iter()
    .enumerate()
    {
        let repo = format!("hostile{i}");
        ImageBuilder::hostile(kind)
            .expect("builder")
            .build(Compression::Gzip)
            .expect("build")
            .push(&reg, &repo, "v1")
            .expect("push");
        let result = d.crictl(&["pull", &format!("{}/{repo}:v1", reg.addr())]);
        if result.output.status.success() {
            // A layer whose escape is confined inside the snapshot may unpack;
            // then nothing may have landed outside it.
            d.crictl(&["rmi", &format!("{}/{repo}:v1", reg.addr())])
                .ok();
        } else {
            let err = result.stderr();
            assert!(err.contains("InvalidArgument"), "{kind:?}: {err}");
            assert!(err.contains("layer"), "{kind:?}: {err}");
        }
        for path in outside {
            assert!(!path.exists(), "{kind:?} wrote {}", path.display());
        }
        assert_eq!(std::fs::read("/etc/passwd").expect("passwd"), passwd_before);
        assert_no_image_no_temp(&d);
    }
}

#[test]
fn blob_not_matching_its_digest_fails_and_stores_nothing() {
    let reg = registry();
    let img = ImageBuilder::busybox()
        .marker("corrupt")
        .expect("marker")
        .build(Compression::Gzip)
        .expect("build");
    img.push_corrupt_layer(&reg, "corrupt", "v1", 1)
        .expect("push");
    let d = Daemon::start();
    let err = d
        .crictl(&["pull", &format!("{}/corrupt:v1", reg.addr())])
        .fails();
    assert!(err.contains("digest"), "{err}");
    assert_no_image_no_temp(&d);
}

#[test]
fn layer_not_matching_its_diff_id_fails() {
    let reg = registry();
    ImageBuilder::busybox()
        .wrong_diff_id(0)
        .build(Compression::Gzip)
        .expect("build")
        .push(&reg, "wrongdiff", "v1")
        .expect("push");
    let d = Daemon::start();
    let err = d
        .crictl(&["pull", &format!("{}/wrongdiff:v1", reg.addr())])
        .fails();
    assert!(err.contains("does not match diff_id"), "{err}");
    assert!(err.contains("InvalidArgument"), "{err}");
    assert_no_image_no_temp(&d);
}

#[test]
fn tls_registry_with_auth() {
    let reg =
        Registry::start(RegistryOptions::plain().tls().auth("corten", "s3cret")).expect("registry");
    let (user, pass) = reg.credentials().expect("credentials");
    let client = reg.client().expect("client");
    let img = ImageBuilder::busybox()
        .build(Compression::Gzip)
        .expect("build");
    img.push_with(&client, "private/busybox", "v1")
        .expect("push");
    let name = format!("{}/private/busybox:v1", reg.addr());

    // Without the CA: the certificate is refused.
    let d = Daemon::start();
    let err = d
        .crictl(&["pull", "--creds", &format!("{user}:{pass}"), &name])
        .fails();
    assert!(
        err.contains("certificate") || err.contains("Unavailable"),
        "{err}"
    );
    drop(d);

    let d = DaemonBuilder::new()
        .ca_file(reg.ca_pem_path().expect("ca"))
        .start()
        .expect("start");
    let err = d.crictl(&["pull", &name]).fails();
    assert!(
        err.contains("code = Unauthenticated"),
        "no credentials: {err}"
    );
    let err = d
        .crictl(&["pull", "--creds", &format!("{user}:wrong"), &name])
        .fails();
    assert!(
        err.contains("code = Unauthenticated"),
        "wrong password: {err}"
    );
    assert!(!d.log().contains("wrong"), "a password reached the log");
    assert_nothing_left(&d);

    d.crictl(&["pull", "--creds", &format!("{user}:{pass}"), &name])
        .ok();
    assert!(!d.log().contains(pass), "the password reached the log");
    let listed = d.crictl(&["images"]).ok();
    assert!(listed.contains("private/busybox"), "{listed}");
    drop(d);

    // Credentials from a docker-style config.json named in the config.
    let auth_dir = tempfile::tempdir().expect("tempdir");
    let auth_file = auth_dir.path().join("config.json");
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    let auths = serde_json::json!({ "auths": { reg.addr(): { "auth": token } } });
    std::fs::write(&auth_file, auths.to_string()).expect("write config.json");
    let d = DaemonBuilder::new()
        .ca_file(reg.ca_pem_path().expect("ca"))
        .auth_file(&auth_file)
        .start()
        .expect("start");
    d.crictl(&["pull", &name]).ok();
    assert!(!d.log().contains(pass), "the password reached the log");
}

#[test]
fn registry_killed_mid_blob_then_retry_succeeds() {
    let mut reg = registry();
    // One 24 MiB layer of incompressible bytes, served at 4 MiB/s.
    ImageBuilder::big(24 << 20, 1)
        .expect("builder")
        .build(Compression::Gzip)
        .expect("build")
        .push(&reg, "big", "v1")
        .expect("push");
    let proxy = SlowProxy::start(&reg.addr(), 4 << 20).expect("proxy");
    let mut d = Daemon::start();
    let name = format!("{}/big:v1", proxy.addr());
    std::thread::scope(|s| {
        let pull = s.spawn(|| d.crictl(&["pull", &name]));
        // Once a layer is being unpacked its blob is on the wire (24 MiB
        // at 4 MiB/s): kill the registry then.
        d.wait_until_unpacking();
        reg.stop().expect("kill the registry");
        let result = pull.join().expect("pull thread");
        let err = result.fails();
        assert!(err.contains("code = Unavailable"), "{err}");
    });
    assert_no_image_no_temp(&d);
    // Layers that completed are kept for the retry; one that nothing
    // references is collected when the daemon starts.
    d.restart();
    assert_nothing_left(&d);
    reg.restart().expect("registry back");
    d.crictl(&["pull", &name]).ok();
    assert_eq!(d.crictl(&["images", "-q"]).ok().lines().count(), 1);
}

#[test]
fn concurrent_pulls_of_one_image_share_one_download() {
    let reg = registry();
    let img = ImageBuilder::big(8 << 20, 2)
        .expect("builder")
        .build(Compression::Gzip)
        .expect("build");
    img.push(&reg, "shared", "v1").expect("push");
    let proxy = SlowProxy::start(&reg.addr(), 16 << 20).expect("proxy");
    let d = Daemon::start();
    let name = format!("{}/shared:v1", proxy.addr());
    std::thread::scope(|s| {
        let a = s.spawn(|| d.crictl(&["pull", &name]));
        let b = s.spawn(|| d.crictl(&["pull", &name]));
        let (a, b) = (a.join().expect("a"), b.join().expect("b"));
        assert_eq!(a.ok(), b.ok());
    });
    let log = reg.log();
    for layer in &img.layers {
        let fetches = log
            .lines()
            .filter(|l| l.contains(&format!("GET /v2/shared/blobs/{}", layer.digest)))
            .count();
        assert_eq!(fetches, 1, "layer {} fetched {fetches} times", layer.digest);
    }
}

#[test]
fn images_survive_a_daemon_restart_and_tags_are_removed_one_by_one() {
    let reg = registry();
    let img = ImageBuilder::busybox()
        .build(Compression::Gzip)
        .expect("build");
    img.push(&reg, "tags", "one").expect("push");
    img.push(&reg, "tags", "two").expect("push");
    let mut d = Daemon::start();
    let one = format!("{}/tags:one", reg.addr());
    let two = format!("{}/tags:two", reg.addr());
    d.crictl(&["pull", &one]).ok();
    d.crictl(&["pull", &two]).ok();
    d.restart();
    let ids = d.crictl(&["images", "-q", "--no-trunc"]).ok();
    assert_eq!(ids.lines().count(), 1, "{ids}");
    let id = ids.trim().to_string();

    // Removing one of two tags keeps the image under the other.
    d.crictl(&["rmi", &one]).ok();
    let inspect = d.crictl(&["inspecti", &id]).json();
    assert_eq!(
        inspect["status"]["repoTags"].as_array().map(Vec::len),
        Some(1),
        "{inspect}"
    );
    assert_eq!(inspect["status"]["repoTags"][0], two.as_str());
    // By id: the image goes, with its snapshot.
    d.crictl(&["rmi", &id]).ok();
    assert_nothing_left(&d);
    // Gone already: crictl finds nothing to remove, the daemon is fine.
    let again = d.crictl(&["inspecti", &id]);
    assert!(!again.output.status.success() || again.stdout().contains("null"));
}
