use std::path::Path;
use std::time::Duration;

use super::*;
use crate::image::LayerRecord;
use crate::snapshot::chain_ids;
use crate::ErrorKind;

pub(in crate::image) fn open_index(dir: &Path) -> ImageIndex {
    let store = Arc::new(MetaStore::open(&dir.join("meta.redb")).expect("meta"));
    let content = ContentStore::open(&dir.join("content")).expect("content");
    let snapshots = Arc::new(Snapshotter::open(&dir.join("snapshots")).expect("snapshots"));
    ImageIndex::open(store, content, snapshots).expect("index")
}

pub(in crate::image) fn setup() -> (tempfile::TempDir, ImageIndex) {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = open_index(dir.path());
    (dir, index)
}

fn full(name: &str) -> String {
    Reference::parse(name).expect("reference").to_string()
}

/// An image named `seed` with `layers` (layer contents by name, bottom
/// first), its blobs stored and its snapshots committed, not yet added.
pub(in crate::image) fn image(
    index: &ImageIndex,
    seed: &str,
    tags: &[&str],
    layers: &[&str],
) -> ImageRecord {
    let diff_ids: Vec<Digest> = layers
        .iter()
        .map(|l| Digest::sha256_of(l.as_bytes()))
        .collect();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"User": seed},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config_bytes = serde_json::to_vec(&config).expect("config");
    let id = Digest::sha256_of(&config_bytes);
    let manifest_bytes = format!("manifest of {seed}").into_bytes();
    let manifest_digest = Digest::sha256_of(&manifest_bytes);
    index.content().put(&id, &config_bytes).expect("put config");
    index
        .content()
        .put(&manifest_digest, &manifest_bytes)
        .expect("put manifest");
    let chains = chain_ids(&diff_ids);
    let mut layer_records = Vec::new();
    for ((name, diff_id), chain_id) in layers.iter().zip(&diff_ids).zip(&chains) {
        if !index.snapshots().exists(chain_id) {
            let tmp = index.snapshots().prepare().expect("prepare");
            std::fs::write(tmp.path().join("layer"), name).expect("write");
            index.snapshots().commit(tmp, chain_id).expect("commit");
        }
        layer_records.push(LayerRecord {
            digest: Digest::sha256_of(format!("gz {name}").as_bytes()),
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            size: 100,
            diff_id: diff_id.clone(),
            chain_id: chain_id.clone(),
        });
    }
    ImageRecord {
        id: id.into(),
        repo_tags: tags.iter().map(|t| full(t)).collect(),
        repo_digests: Vec::new(),
        size: config_bytes.len() as u64 + 100 * layers.len() as u64,
        manifest_digest,
        config,
        layers: layer_records,
        pulled_at_ns: 0,
    }
}

fn tags_of(index: &ImageIndex, id: &Digest) -> Vec<String> {
    index
        .resolve(&id.to_string())
        .expect("resolve")
        .expect("present")
        .repo_tags
}

#[test]
fn add_then_reopen_restores_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let record = {
        let index = open_index(dir.path());
        let mut record = image(&index, "a", &["busybox:1"], &["l1", "l2"]);
        record.repo_digests = vec![format!(
            "docker.io/library/busybox@{}",
            record.manifest_digest
        )];
        let stored = index.add(record.clone()).expect("add");
        assert_eq!(stored, record);
        record
    };
    let index = open_index(dir.path());
    assert_eq!(index.list(), vec![record.clone()]);
    assert_eq!(
        index.resolve("busybox:1").expect("resolve"),
        Some(record.clone())
    );
    assert_eq!(
        index.resolve(&record.id.to_string()).expect("id"),
        Some(record)
    );
}

#[test]
fn add_merges_names_into_a_record_with_the_same_id() {
    let (_dir, index) = setup();
    let first = image(&index, "a", &["busybox:1"], &["l1"]);
    index.add(first.clone()).expect("add");
    let mut again = first.clone();
    again.repo_tags = vec![full("busybox:latest"), full("busybox:1")];
    again.repo_digests = vec![format!(
        "docker.io/library/busybox@{}",
        first.manifest_digest
    )];
    again.pulled_at_ns = 7;
    let stored = index.add(again).expect("add again");
    assert_eq!(
        stored.repo_tags,
        vec![full("busybox:1"), full("busybox:latest")]
    );
    assert_eq!(stored.repo_digests.len(), 1);
    assert_eq!(stored.pulled_at_ns, 7);
    assert_eq!(index.list(), vec![stored]);
}

#[tokio::test]
async fn a_tag_moves_to_the_newer_image() {
    let (_dir, index) = setup();
    let old = image(
        &index,
        "old",
        &["app:1", "app:latest"],
        &["base", "old-top"],
    );
    index.add(old.clone()).expect("add old");
    let new = image(&index, "new", &["app:latest"], &["base", "new-top"]);
    index.add(new.clone()).expect("add new");

    assert_eq!(tags_of(&index, &old.id), vec![full("app:1")]);
    assert_eq!(tags_of(&index, &new.id), vec![full("app:latest")]);
    assert_eq!(
        index.resolve("app").expect("resolve").map(|r| r.id),
        Some(new.id.clone())
    );

    // The old image's last tag moves too: it is removed, and collected.
    let newer = image(&index, "newer", &["app:1"], &["base"]);
    index.add(newer.clone()).expect("add newer");
    assert_eq!(index.resolve(&old.id.to_string()).expect("resolve"), None);
    assert_eq!(index.list().len(), 2);

    // The background collection runs as soon as no pull holds the guard.
    let old_top = old.layers[1].chain_id.clone();
    crate::testing::wait_until(
        "the old layer and config to be collected",
        Duration::from_secs(30),
        || !index.snapshots().exists(&old_top) && !index.content().exists(&old.id),
    )
    .await;
    assert!(
        index.snapshots().exists(&old.layers[0].chain_id),
        "shared base kept"
    );
    assert!(index.content().exists(&new.id));

    // All of it is on disk.
    let metas = index
        .inner
        .records
        .store()
        .load_all::<ImageRecord>(Table::Images)
        .expect("load");
    assert_eq!(metas.len(), 2);
}

#[test]
fn a_tag_move_keeps_an_image_that_has_a_digest_reference() {
    let (_dir, index) = setup();
    let mut old = image(&index, "old", &["app:latest"], &["a"]);
    old.repo_digests = vec![format!("docker.io/library/app@{}", old.manifest_digest)];
    index.add(old.clone()).expect("add old");
    index
        .add(image(&index, "new", &["app:latest"], &["b"]))
        .expect("add new");
    let kept = index
        .resolve(&old.id.to_string())
        .expect("resolve")
        .expect("kept");
    assert!(kept.repo_tags.is_empty());
    assert_eq!(kept.repo_digests, old.repo_digests);
}

#[test]
fn resolve_by_every_form() {
    let (_dir, index) = setup();
    let mut busy = image(&index, "busy", &["busybox:latest", "busybox:1.36"], &["x"]);
    let index_digest = Digest::sha256_of(b"an index");
    busy.repo_digests = vec![format!("docker.io/library/busybox@{index_digest}")];
    index.add(busy.clone()).expect("add");
    let other = image(&index, "other", &["localhost:5000/team/app:v1"], &["y"]);
    index.add(other.clone()).expect("add");

    let id = busy.id.to_string();
    let hex = busy.id.hex();
    let found = |name: &str| index.resolve(name).expect(name).map(|r| r.id);
    let want = Some(busy.id.clone());
    assert_eq!(found(&id), want, "full id");
    assert_eq!(found(hex), want, "bare hex");
    assert_eq!(found(&hex[..12]), want, "prefix");
    assert_eq!(
        found(&format!("sha256:{}", &hex[..12])),
        want,
        "sha256: prefix"
    );
    assert_eq!(found("busybox"), want, "short name");
    assert_eq!(found("busybox:1.36"), want);
    assert_eq!(found("docker.io/library/busybox:latest"), want);
    assert_eq!(found("index.docker.io/busybox"), want);
    assert_eq!(
        found(&format!("busybox@{index_digest}")),
        want,
        "digest ref"
    );
    assert_eq!(
        found(&format!("busybox@{}", busy.manifest_digest)),
        want,
        "the manifest used, asked for by digest"
    );
    assert_eq!(found("localhost:5000/team/app:v1"), Some(other.id.clone()));

    assert_eq!(found("busybox:2"), None);
    assert_eq!(found("alpine"), None);
    assert_eq!(found(&format!("alpine@{index_digest}")), None, "other repo");
    assert_eq!(found(&Digest::sha256_of(b"nothing").to_string()), None);
    assert_eq!(found(&"f".repeat(64)), None);

    for bad in ["", "Busybox", "busybox:", "a b", "sha256:"] {
        let err = index.resolve(bad).expect_err(bad);
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad:?}: {err}");
    }
}

/// A record with id `sha256(seed)`, no content: enough for resolving.
fn bare(seed: &str) -> ImageRecord {
    ImageRecord {
        id: Digest::sha256_of(seed.as_bytes()).into(),
        repo_tags: Vec::new(),
        repo_digests: Vec::new(),
        size: 0,
        manifest_digest: Digest::sha256_of(format!("m{seed}").as_bytes()),
        config: serde_json::json!({}),
        layers: Vec::new(),
        pulled_at_ns: 0,
    }
}

#[test]
fn an_ambiguous_prefix_is_an_error_and_a_non_matching_one_a_name() {
    let (_dir, index) = setup();
    // Two ids sharing their first three hex characters (found by birthday
    // search; deterministic since the seeds are).
    let mut seen: BTreeMap<String, ImageRecord> = BTreeMap::new();
    let (a, b) = (0..100_000)
        .find_map(|i| {
            let r = bare(&format!("seed{i}"));
            let key = r.id.hex()[..MIN_ID_PREFIX].to_string();
            seen.insert(key, r.clone()).map(|earlier| (earlier, r))
        })
        .expect("a shared prefix");
    index.add(a.clone()).expect("add a");
    index.add(b.clone()).expect("add b");

    let prefix = &a.id.hex()[..MIN_ID_PREFIX];
    let err = index.resolve(prefix).expect_err("ambiguous");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        err.to_string(),
        format!("image id prefix {prefix:?} is ambiguous")
    );
    let common =
        a.id.hex()
            .bytes()
            .zip(b.id.hex().bytes())
            .take_while(|(x, y)| x == y)
            .count();
    let unique = &a.id.hex()[..common + 1];
    assert_eq!(
        index.resolve(unique).expect("unique").map(|r| r.id),
        Some(a.id.clone())
    );

    // Too short to be a prefix: a repository name, which is not there.
    assert_eq!(index.resolve(&a.id.hex()[..2]).expect("name"), None);
    // A hex prefix of no id, tried as a name: nothing.
    let none = if prefix == "fff" { "eee" } else { "fff" };
    assert_eq!(index.resolve(none).expect("name"), None);
}

#[tokio::test]
async fn remove_one_of_two_tags_keeps_the_image() {
    let (_dir, index) = setup();
    let r = image(&index, "a", &["app:1", "app:2"], &["l"]);
    index.add(r.clone()).expect("add");
    assert!(index.remove("app:1").await.expect("remove"));
    assert_eq!(tags_of(&index, &r.id), vec![full("app:2")]);
    assert!(index.snapshots().exists(&r.layers[0].chain_id));
    assert!(index.content().exists(&r.id));
    assert!(!index.remove("app:1").await.expect("again"), "already gone");

    // The change is durable.
    let metas = index
        .inner
        .records
        .store()
        .load_all::<ImageRecord>(Table::Images)
        .expect("load");
    assert_eq!(metas[0].1.repo_tags, vec![full("app:2")]);
}

#[tokio::test]
async fn remove_unknown_is_ok_false() {
    let (_dir, index) = setup();
    assert!(!index.remove("nothing:here").await.expect("unknown"));
    assert!(!index
        .remove(&Digest::sha256_of(b"x").to_string())
        .await
        .expect("id"));
    let err = index.remove("Not A Name").await.expect_err("invalid");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn list_is_sorted_by_pull_time_then_id() {
    let (_dir, index) = setup();
    let mut records: Vec<ImageRecord> = (0..4)
        .map(|i| {
            let mut r = image(&index, &format!("i{i}"), &[], &[]);
            r.pulled_at_ns = if i < 2 { 5 } else { 1 };
            r
        })
        .collect();
    for r in &records {
        index.add(r.clone()).expect("add");
    }
    records.sort_by(|a, b| (a.pulled_at_ns, &a.id).cmp(&(b.pulled_at_ns, &b.id)));
    assert_eq!(index.list(), records);
    assert_eq!(index.usage().expect("usage"), snapshot::Usage::default());
}

#[test]
fn stores_are_send_and_sync() {
    fn check<T: Send + Sync + std::fmt::Debug>() {}
    check::<ImageIndex>();
    check::<ContentStore>();
    check::<Snapshotter>();
    check::<crate::snapshot::TempSnapshot>();
}

#[tokio::test]
async fn the_tag_index_is_rebuilt_from_disk_with_moves_and_removals_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (old, new) = {
        let index = open_index(dir.path());
        let old = image(&index, "old", &["app:1", "app:stable"], &["a"]);
        let mut new = image(&index, "new", &["app:2"], &["b"]);
        new.repo_digests = vec![format!(
            "docker.io/library/app@{}",
            Digest::sha256_of(b"app index")
        )];
        index.add(old.clone()).expect("add old");
        index.add(new.clone()).expect("add new");
        // app:stable moves to the new image; app:1 is removed from the old.
        let mut moved = new.clone();
        moved.repo_tags = vec![full("app:stable")];
        index.add(moved).expect("move tag");
        assert!(index.remove("app:1").await.expect("remove tag"));
        // The collection started for the old image holds the store open.
        crate::testing::wait_until("the background collection", Duration::from_secs(30), || {
            Arc::strong_count(&index.inner) == 1
        })
        .await;
        (old, new)
    };
    let index = open_index(dir.path());
    let found = |name: &str| index.resolve(name).expect(name).map(|r| r.id);
    assert_eq!(found("app:stable"), Some(new.id.clone()), "moved tag");
    assert_eq!(found("app:2"), Some(new.id.clone()));
    assert_eq!(found("app:1"), None, "removed tag");
    assert_eq!(
        found(&format!("app@{}", Digest::sha256_of(b"app index"))),
        Some(new.id.clone()),
        "digest reference"
    );
    assert_eq!(found(&new.id.hex()[..10]), Some(new.id.clone()), "prefix");
    // The old image lost every name: it is gone, not merely untagged.
    assert_eq!(found(old.id.as_str()), None);
    assert_eq!(index.list().len(), 1);
}

#[test]
fn readers_do_not_wait_for_an_image_commit() {
    let (_dir, index) = setup();
    let record = image(&index, "a", &["busybox:1"], &["l1"]);
    index.add(record.clone()).expect("add");
    // A writer mid-commit holds this lock, and only this one.
    let writing = index.inner.records.writer();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let by_tag = index.resolve("busybox:1").map(|r| r.map(|r| r.id));
            let _ = tx.send((by_tag.ok().flatten(), index.list().len()));
        });
        let read = rx.recv_timeout(Duration::from_secs(30));
        drop(writing);
        let read = read.expect("readers answered during a commit");
        assert_eq!(read, (Some(record.id.clone()), 1));
    });
}

#[test]
fn a_pull_of_an_unchanged_image_writes_nothing_a_new_name_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stored = |id: &Digest| {
        open_index(dir.path())
            .resolve(&id.to_string())
            .expect("resolve")
            .expect("present")
    };
    let index = open_index(dir.path());
    let mut record = image(&index, "a", &["busybox:1"], &["l1"]);
    record.pulled_at_ns = 1;
    let id = record.id.clone();
    index.add(record.clone()).expect("add");

    // The same image pulled again (kubelet's Always policy): the record
    // on disk keeps its first pull.
    record.pulled_at_ns = 2;
    assert_eq!(index.add(record.clone()).expect("re-add").pulled_at_ns, 1);
    drop(index);
    assert_eq!(stored(&id).pulled_at_ns, 1, "nothing was written");

    // A pull that adds a name changes the record: written.
    let index = open_index(dir.path());
    record.pulled_at_ns = 3;
    record.repo_tags = vec![full("busybox:2")];
    let added = index.add(record).expect("add a tag");
    assert_eq!(added.repo_tags.len(), 2);
    drop(index);
    let on_disk = stored(&id);
    assert_eq!((on_disk.pulled_at_ns, on_disk.repo_tags.len()), (3, 2));
}
