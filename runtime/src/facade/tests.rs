//! The facade in a tempdir: what [`Runtime::open`] lays out and
//! reconciles, and stats across a pod and its containers (fake seams).

use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::container::fake::{FakeContainer, FakeShims};
use crate::container::ContainerFilter;
use crate::image::{Digest, ImageRecord, LayerRecord, RegistryConfig};
use crate::sandbox::fake_plumbing::FakePlumbing;
use crate::sandbox::{PidMode, PodConfig};
use crate::store::{MetaStore, Table};

fn config(dir: &Path) -> RuntimeConfig {
    RuntimeConfig {
        root_dir: dir.join("root"),
        state_dir: dir.join("state"),
        shim: dir.join("no-shim"),
        registry: RegistryConfig::default(),
        cni_conf_dir: dir.join("net.d"),
        cni_bin_dirs: vec![dir.join("cni-bin")],
        handlers: Default::default(),
    }
}

fn fakes() -> (Arc<FakeShims>, Arc<FakePlumbing>, Seams) {
    let shims = Arc::new(FakeShims::default());
    let plumbing = Arc::new(FakePlumbing::default());
    let seams = Seams {
        shims: Some(shims.clone()),
        plumbing: Some(plumbing.clone()),
    };
    (shims, plumbing, seams)
}

/// An image record named `docker.io/library/fake:latest`, one layer.
fn image() -> ImageRecord {
    let diff_id = Digest::sha256_of(b"layer");
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    ImageRecord {
        id: Digest::sha256_of(&serde_json::to_vec(&config).expect("config")).into(),
        repo_tags: vec!["docker.io/library/fake:latest".into()],
        repo_digests: Vec::new(),
        size: 1,
        manifest_digest: Digest::sha256_of(b"manifest"),
        config,
        layers: vec![LayerRecord {
            digest: Digest::sha256_of(b"gz layer"),
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            size: 1,
            diff_id: diff_id.clone(),
            chain_id: diff_id,
        }],
        pulled_at_ns: 0,
    }
}

/// Writes `record` into the metadata store of `layout` (before an open).
fn seed_image(layout: &Layout, record: &ImageRecord) {
    std::fs::create_dir_all(layout.root_dir()).expect("root dir");
    let store = MetaStore::open(&layout.meta_db()).expect("store");
    let change = store
        .encode(&record.id.to_string(), record)
        .expect("encode");
    store.apply(Table::Images, vec![change]).expect("apply");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_lays_out_both_roots_and_opens_again() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = config(tmp.path());
    let runtime = Runtime::open(config.clone()).await.expect("open");
    let layout = runtime.layout().clone();
    assert_eq!(layout.root_dir(), config.root_dir);
    assert_eq!(layout.state_dir(), config.state_dir);
    for dir in layout.dirs() {
        assert!(dir.is_dir(), "{} not made", dir.display());
    }
    assert!(layout.meta_db().is_file());
    assert_eq!(runtime.images().snapshot_root(), layout.snapshots());
    assert!(runtime.pods().list().is_empty());
    drop(runtime);
    // The database is released with the runtime: a restart opens it.
    let again = Runtime::open(config).await.expect("reopen");
    assert!(again.images().list().is_empty());
}

#[tokio::test]
async fn open_refuses_a_root_it_cannot_make_and_names_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("file");
    std::fs::write(&file, "").expect("file");
    let mut config = config(tmp.path());
    config.root_dir = file.join("root");
    let (_, _, seams) = fakes();
    let e = Runtime::open_with(config, seams)
        .await
        .expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::Internal);
    assert!(e.to_string().contains(&file.display().to_string()), "{e}");
}

#[tokio::test]
async fn open_reconciles_what_a_restart_finds() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = config(tmp.path());
    let layout = Layout::new(&config.root_dir, &config.state_dir);
    seed_image(&layout, &image());
    // A stray blob no image names (a pull cut short).
    let stray = Digest::sha256_of(b"stray");
    let blob_dir = layout.content().join("sha256");
    std::fs::create_dir_all(&blob_dir).expect("content dir");
    std::fs::write(blob_dir.join(stray.hex()), b"stray").expect("blob");
    let (shims, _, seams) = fakes();
    // A container a shim still has, with no record (created, then a crash).
    shims.insert("orphan", FakeContainer::running(7));

    let runtime = Runtime::open_with(config, seams).await.expect("open");
    assert_eq!(shims.container("orphan"), None, "orphan not deleted");
    assert!(!blob_dir.join(stray.hex()).exists(), "stray blob kept");
    let images = runtime.images().list();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].id, image().id);
}

#[tokio::test]
async fn pod_stats_carry_the_pod_cgroup_and_each_container() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = config(tmp.path());
    let layout = Layout::new(&config.root_dir, &config.state_dir);
    seed_image(&layout, &image());
    let (_, _, seams) = fakes();
    let runtime = Runtime::open_with(config, seams).await.expect("open");

    let labelled = |name: &str, app: &str| PodConfig {
        name: name.into(),
        namespace: "default".into(),
        uid: name.into(),
        pid: PidMode::Pod,
        labels: [("app".to_string(), app.to_string())].into(),
        ..PodConfig::default()
    };
    let web = runtime
        .pods()
        .run(labelled("web", "web"))
        .await
        .expect("run");
    let db = runtime.pods().run(labelled("db", "db")).await.expect("run");
    assert!(web.dir.starts_with(layout.pods()), "{}", web.dir.display());
    let new = NewContainer {
        name: "c".into(),
        image: "fake".into(),
        ..NewContainer::default()
    };
    let id = runtime
        .create_container(&web.id, new, PidNamespace::Pod)
        .await
        .expect("create");

    let stats = runtime.pod_stats(&web.id[..8]).await.expect("pod stats");
    assert_eq!(stats.pod.id, web.id);
    // The fake counts the pod's init in its cgroup.
    assert_eq!(stats.cgroup.as_ref().map(|c| c.pids_current), Some(1));
    // And gives its pinned netns one interface.
    let network = stats.network.as_ref().expect("network stats");
    let names: Vec<(&str, u64)> = network
        .interfaces
        .iter()
        .map(|i| (i.name.as_str(), i.rx_bytes))
        .collect();
    assert_eq!(names, [("eth0", 100)]);
    let ids: Vec<&str> = stats
        .containers
        .iter()
        .map(|c| c.record.id.as_str())
        .collect();
    assert_eq!(ids, vec![id.as_str()]);

    let all = runtime
        .list_pod_stats(&PodFilter::default())
        .await
        .expect("list");
    let mut want = vec![web.id.to_string(), db.id.to_string()];
    want.sort();
    let got: Vec<String> = all.iter().map(|s| s.pod.id.to_string()).collect();
    assert_eq!(got, want);
    let only_db = PodFilter {
        labels: [("app".to_string(), "db".to_string())].into(),
        ..PodFilter::default()
    };
    let got = runtime.list_pod_stats(&only_db).await.expect("list");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].pod.id, db.id);
    assert!(got[0].containers.is_empty());

    let usage = runtime
        .list_container_stats(&ContainerFilter::default())
        .await
        .expect("container stats");
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].record.pod_id, web.id);

    let e = runtime.pod_stats("nope").await.expect_err("unknown pod");
    assert_eq!(e.kind(), ErrorKind::NotFound);
}
