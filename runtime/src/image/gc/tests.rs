use std::sync::Arc;
use std::time::Duration;

use crate::image::index::tests::{image, setup};
use crate::image::{Digest, GcStats, ImageRecord};
use crate::store::Table;

#[tokio::test]
async fn remove_by_last_tag_removes_and_collects_unshared_content() {
    let (_dir, index) = setup();
    let a = image(&index, "a", &["a:1"], &["base", "a-top"]);
    let b = image(&index, "b", &["b:1"], &["base", "b-top"]);
    index.add(a.clone()).expect("add a");
    index.add(b.clone()).expect("add b");
    // Garbage from an interrupted pull, no record refers to it.
    let stray = Digest::sha256_of(b"stray");
    index.content().put(&stray, b"stray").expect("put");

    assert!(index.remove("a:1").await.expect("remove"));
    // Removal collects in the background; a collection of our own waits
    // for it (they take the same lock) or does the work.
    index.gc().await.expect("gc");
    assert_eq!(index.resolve(&a.id.to_string()).expect("resolve"), None);
    assert!(!index.snapshots().exists(&a.layers[1].chain_id));
    assert!(!index.content().exists(&a.id));
    assert!(!index.content().exists(&a.manifest_digest));
    assert!(!index.content().exists(&stray));
    assert!(
        index.snapshots().exists(&a.layers[0].chain_id),
        "base is b's too"
    );
    for layer in &b.layers {
        assert!(index.snapshots().exists(&layer.chain_id));
    }
    assert!(index.content().exists(&b.id));
    assert!(index.content().exists(&b.manifest_digest));
    assert!(
        index
            .inner
            .records
            .store()
            .load_all::<ImageRecord>(Table::Images)
            .expect("load")
            .len()
            == 1
    );
    assert_eq!(index.gc().await.expect("gc"), GcStats::default());
}

#[tokio::test]
async fn remove_by_id_or_digest_removes_every_name() {
    let (_dir, index) = setup();
    let mut a = image(&index, "a", &["a:1", "a:2"], &["la"]);
    let named = Digest::sha256_of(b"index of a");
    index.content().put(&named, b"index of a").expect("put");
    a.repo_digests = vec![format!("docker.io/library/a@{named}")];
    let b = image(&index, "b", &["b:1", "b:2"], &["lb"]);
    index.add(a.clone()).expect("add a");
    index.add(b.clone()).expect("add b");
    assert!(index.content().exists(&named));
    assert_eq!(
        index.gc().await.expect("gc"),
        GcStats::default(),
        "named index kept"
    );

    assert!(index
        .remove(&format!("a@{named}"))
        .await
        .expect("by digest"));
    index.gc().await.expect("gc");
    assert_eq!(index.list(), vec![b.clone()]);
    assert!(!index.content().exists(&named));
    assert!(index.remove(&b.id.hex()[..8]).await.expect("by id prefix"));
    index.gc().await.expect("gc");
    assert!(index.list().is_empty());
    assert!(index.snapshots().list().expect("list").is_empty());
    assert!(index.content().list().expect("list").is_empty());
}

#[tokio::test]
async fn gc_waits_for_pulls_in_flight() {
    let (_dir, index) = setup();
    let index = Arc::new(index);
    let guard = index.pull_guard().await;
    // What a pull has committed before its add: no record refers to it yet.
    let r = image(&index, "pulling", &["p:1"], &["l"]);

    let gc = tokio::spawn({
        let index = index.clone();
        async move { index.gc().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!gc.is_finished(), "gc must wait for the pull");
    assert!(index.snapshots().exists(&r.layers[0].chain_id));
    index.add(r.clone()).expect("add");
    drop(guard);

    let stats = tokio::time::timeout(Duration::from_secs(5), gc)
        .await
        .expect("gc finishes")
        .expect("join")
        .expect("gc");
    assert_eq!(stats, GcStats::default());
    assert!(index.snapshots().exists(&r.layers[0].chain_id));
}

#[tokio::test]
async fn held_layers_outlive_their_image() {
    let (_dir, index) = setup();
    let a = image(&index, "a", &["a:1"], &["base", "a-top"]);
    index.add(a.clone()).expect("add a");
    let held = index
        .hold_image("ctr1", &a.id)
        .await
        .expect("hold")
        .expect("present");
    assert_eq!(held.id, a.id);
    assert!(index.remove("a:1").await.expect("remove"));
    for layer in &a.layers {
        assert!(index.snapshots().exists(&layer.chain_id), "held layer kept");
    }
    index.holds().release("ctr1");
    index.gc().await.expect("gc");
    for layer in &a.layers {
        assert!(
            !index.snapshots().exists(&layer.chain_id),
            "released layer collected"
        );
    }
    assert!(index
        .hold_image("ctr2", &a.id)
        .await
        .expect("hold")
        .is_none());
}

#[tokio::test]
async fn releasing_the_last_hold_collects_the_layers() {
    let (_dir, index) = setup();
    let a = image(&index, "a", &["a:1"], &["only"]);
    index.add(a.clone()).expect("add a");
    index.hold_image("ctr", &a.id).await.expect("hold");
    assert!(index.remove("a:1").await.expect("remove"));
    assert!(index.snapshots().exists(&a.layers[0].chain_id));
    index.holds().release("ctr");
    crate::testing::wait_until(
        "the released layer to be collected",
        Duration::from_secs(30),
        || !index.snapshots().exists(&a.layers[0].chain_id),
    )
    .await;
}

/// Files in `dir` and below.
fn files_under(dir: &std::path::Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            } else {
                n += 1;
            }
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_does_not_wait_for_collected_files_to_be_deleted() {
    const FILES: usize = 20_000;
    let (_dir, index) = setup();
    let index = Arc::new(index);
    let kept = image(&index, "kept", &["kept:1"], &["kept-layer"]);
    index.add(kept.clone()).expect("add");
    // A big snapshot no image refers to: deleting its files takes a
    // while, taking it out of sight does not.
    let stray = Digest::sha256_of(b"stray layer");
    let tmp = index.snapshots().prepare().expect("prepare");
    for i in 0..FILES {
        let d = tmp.path().join(format!("d{}", i / 1000));
        if i % 1000 == 0 {
            std::fs::create_dir(&d).expect("mkdir");
        }
        std::fs::write(d.join(i.to_string()), b"").expect("write");
    }
    index.snapshots().commit(tmp, &stray).expect("commit");
    let work = index
        .snapshots()
        .path(&stray)
        .parent()
        .expect("root")
        .join("tmp");

    let gc = tokio::spawn({
        let index = index.clone();
        async move { index.gc().await }
    });
    // Out of sight: the collection has decided (and, before the change
    // this guards, still held the lock while it deleted).
    while index.snapshots().exists(&stray) {
        tokio::task::yield_now().await;
    }
    let held = index
        .hold_image("ctr", &kept.id)
        .await
        .expect("hold")
        .expect("present");
    assert_eq!(held.id, kept.id);
    let left = files_under(&work);
    assert!(
        left > 0,
        "the hold waited until every collected file was deleted"
    );
    let stats = gc.await.expect("join").expect("gc");
    assert_eq!(stats.snapshots, 1);
    assert_eq!(files_under(&work), 0, "deleted in the end");
    assert!(index.snapshots().exists(&kept.layers[0].chain_id));
}
