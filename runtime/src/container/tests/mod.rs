//! Unit tests of the container state machine through [`FakeShims`]: each
//! backend step of create, start, stop, remove and recover fails in turn,
//! and what is left must be something a retry or a remove completes.

mod create;
mod lifecycle;
mod ops;
mod recover;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use super::fake::{FakeContainer, FakeShims};
use super::record::sample;
use super::{ContainerEvent, ContainerRecord, ContainerState, Containers, EventKind};
use crate::image::{Digest, ImageRecord, Images, LayerRecord, RegistryConfig};
use crate::store::{MetaStore, Table};

/// The name the test image is found by.
const IMAGE: &str = "fake";

struct Harness {
    _dir: tempfile::TempDir,
    fake: Arc<FakeShims>,
    containers: Containers,
    images: Images,
    events: broadcast::Receiver<ContainerEvent>,
}

/// Containers over a fake backend, with one image (`fake`, one layer) in
/// the index.
fn harness() -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(MetaStore::open(&dir.path().join("meta.redb")).expect("store"));
    let image = image_record();
    let change = store.encode(&image.id.to_string(), &image).expect("encode");
    store.apply(Table::Images, vec![change]).expect("apply");
    let layout = crate::layout::Layout::new(dir.path(), dir.path());
    let images = Images::open(store.clone(), &layout, RegistryConfig::default()).expect("images");
    let fake = Arc::new(FakeShims::default());
    let containers = Containers::open(store, fake.clone(), images.holds()).expect("open");
    let events = containers.subscribe();
    Harness {
        _dir: dir,
        fake,
        containers,
        images,
        events,
    }
}

fn image_record() -> ImageRecord {
    let diff_id = Digest::sha256_of(b"layer");
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/true"], "StopSignal": "SIGTERM"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    let id = Digest::sha256_of(&serde_json::to_vec(&config).expect("config"));
    ImageRecord {
        id: id.into(),
        repo_tags: vec![format!("docker.io/library/{IMAGE}:latest")],
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

impl Harness {
    /// A record of `id` in `state`, and its container in the fake as `fake`.
    fn given(&self, id: &str, state: ContainerState, fake: Option<FakeContainer>) {
        let mut record = sample(id, "pod");
        record.state = state;
        self.containers.inner.records.put(record).expect("save");
        if let Some(c) = fake {
            self.fake.insert(id, c);
        }
    }

    fn record(&self, id: &str) -> Option<ContainerRecord> {
        self.containers.status(id).ok()
    }

    /// The events so far, as (kind, container id).
    fn events(&mut self) -> Vec<(EventKind, String)> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push((e.kind, e.container_id.to_string()));
        }
        out
    }

    /// Waits for the next event (one may follow its record's write).
    async fn next_event(&mut self) -> (EventKind, String) {
        let e = tokio::time::timeout(Duration::from_secs(10), self.events.recv())
            .await
            .expect("an event never came")
            .expect("event channel");
        (e.kind, e.container_id.to_string())
    }

    /// Waits until the record of `id` satisfies `done`.
    async fn until(&self, id: &str, done: impl Fn(Option<&ContainerRecord>) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !done(self.record(id).as_ref()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "record of {id} never got there: {:?}",
                self.record(id)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
